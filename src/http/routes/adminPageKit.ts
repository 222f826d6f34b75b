import type { Context, Next } from 'koa';
import type { Db } from '../../db/connect.js';
import type { OneShotForm } from './adminOneShotForms.js';

/** What every section of the admin pages shares: rendering in the admin layout, and who acts. */
export interface AdminPageKit {
  /** Renders views/admin/<view>.eta with the CSRF token, the signed-in admin and any notice. */
  render(ctx: Context, view: string, data: Record<string, unknown> & { title: string }): void;
  /** The audit actor for the signed-in admin: `user:<id>`. */
  actor(ctx: Context): string;
  /**
   * Route middleware for a POST that hands out a credential or a way into an account, decides
   * where sign-ins go, or cannot be undone: it passes only after a passkey step-up from the
   * last five minutes (see requireStepUp), so a browser left signed in to /admin cannot do it.
   * The forms carry `data-step-up`.
   */
  stepUp(ctx: Context, next: Next): Promise<void>;
  /** A new single-use token for a form whose POST mints a secret once (`it.once` in the views). */
  formToken(ctx: Context, action: string): Promise<string>;
  /** The token the POST carried, for the form shown again with a field in error (its token is still unspent). */
  sentFormToken(ctx: Context): string | undefined;
  /**
   * Runs `work` (with a transaction) once per form token. Undefined when the token was spent
   * or is not valid: the answer, a page saying so, is then rendered and nothing was done.
   */
  submitOnce<T>(
    ctx: Context,
    form: OneShotForm,
    work: (trx: Db) => Promise<T>,
  ): Promise<{ value: T } | undefined>;
}

/** One entry per line, as an admin pastes URIs or origins into a textarea; blank lines are ignored. */
export const lines = (text: string) =>
  text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
