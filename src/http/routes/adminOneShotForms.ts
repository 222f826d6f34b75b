import type { Context } from 'koa';
import { type FormSubmission, issueFormToken, submitFormOnce } from '../../admin/formTokens.js';
import type { Db } from '../../db/connect.js';
import type { AdminPageKit } from './adminPageKit.js';

/** The form field that carries an admin form's single-use token. */
const TOKEN_FIELD = '_once';

/**
 * What the page's script puts before a form's token. A browser keeps a form's text field for
 * the page in its history only when its value differs from the one the page was served with;
 * so marked, going Back to a form that was sent puts back the token it was sent with (spent:
 * "already done"), not the new page's, with which the form minted again.
 */
const TOKEN_MARK = '~';

/** A form whose POST mints a secret that is shown once: what it does, and what a repeat is told. */
export interface OneShotForm {
  /** What the form does, with its target (`client.rotate_secret:<id>`): the token is bound to it. */
  action: string;
  /** The admin menu's section the answers belong to. */
  section: string;
  /** Where the form is shown afresh, with a new token. */
  formPath: string;
  /** The answer to a repeated send: the work was done once, and the secret is not shown again. */
  repeated: { heading: string; message: string; next: { href: string; label: string } };
}

/** What {@link oneShotForms} adds to the admin page kit. */
export type OneShotFormKit = Pick<AdminPageKit, 'formToken' | 'sentFormToken' | 'submitOnce'>;

/**
 * Single-use tokens for the admin forms that mint a secret once (a client's or a passkey
 * API app's registration and rotation, an admin API key): the page that shows the form puts
 * a token in it, and the POST does its work only while the token is unspent. A reload of
 * the answer, a double click or a resubmitted page gets a page saying it was done, not a
 * second client or a second rotation. Stored in the database: any instance answers.
 */
export function oneShotForms(db: Db, render: AdminPageKit['render']): OneShotFormKit {
  const bindingOf = (ctx: Context, action: string) => ({
    sessionUid: ctx.state.signedIn!.sessionUid,
    userId: ctx.state.signedIn!.user.id,
    action,
  });

  /** The token sent; the page's script marks it with a leading `~` (src/client/admin.ts), dropped here. */
  function sentFormToken(ctx: Context): string | undefined {
    const token = (ctx.request.body as Record<string, unknown> | undefined)?.[TOKEN_FIELD];
    if (typeof token !== 'string') return undefined;
    return token.startsWith(TOKEN_MARK) ? token.slice(TOKEN_MARK.length) : token;
  }

  function refuse(
    ctx: Context,
    form: OneShotForm,
    outcome: Exclude<FormSubmission<unknown>['outcome'], 'done'>,
  ) {
    if (outcome === 'repeated') {
      ctx.status = 409;
      render(ctx, 'form-spent', { title: form.repeated.heading, section: form.section, ...form.repeated });
      return;
    }
    ctx.status = 400;
    render(ctx, 'form-spent', {
      title: 'This form has expired',
      section: form.section,
      heading: 'This form has expired',
      message:
        'Nothing was done: the form was shown more than an hour ago, or to another sign-in. Open it again to go on.',
      next: { href: form.formPath, label: 'Open the form again' },
    });
  }

  return {
    formToken: (ctx, action) => issueFormToken(db, bindingOf(ctx, action)),
    sentFormToken,
    async submitOnce(ctx, form, work) {
      const sent = await submitFormOnce(db, sentFormToken(ctx), bindingOf(ctx, form.action), work);
      if (sent.outcome === 'done') return { value: sent.value };
      refuse(ctx, form, sent.outcome);
      return undefined;
    },
  };
}
