import type { Context, Next } from 'koa';

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
}

/** One entry per line, as an admin pastes URIs or origins into a textarea; blank lines are ignored. */
export const lines = (text: string) =>
  text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
