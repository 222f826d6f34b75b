import type { Context, Next } from 'koa';
import { isAdminAuthorityLost } from '../../accounts/adminAuthority.js';
import { notAPage, refusalOf, wantsJson } from '../middleware/errors.js';
import type { AdminPageKit } from './adminPageKit.js';

/** The admin menu's sections (views/admin/_nav.eta), each with the words of a link to its first page. */
const SECTIONS = new Map<string, string>([
  ['clients', 'Go to the clients'],
  ['users', 'Go to the users'],
  ['groups', 'Go to the groups'],
  ['passkey-tenants', 'Go to the passkey API apps'],
  ['resources', 'Go to the APIs'],
  ['api-keys', 'Go to the API keys'],
  ['branding', 'Go to branding'],
  ['mail', 'Go to mail'],
  ['audit', 'Go to the activity'],
]);

/**
 * What a form posted without a recent passkey step-up is told: the page's script asks for the
 * passkey first, so this is a form sent without JavaScript, or from a tab whose form had no
 * step-up then (a user made an administrator since, whose disabling asks for one).
 */
const STEP_UP_WITHOUT_SCRIPT =
  'This needs you to confirm with your passkey first. Open the page again and send the form from there: the page asks for your passkey. Passkeys need JavaScript: if it is off, turn it on for this site.';

/**
 * An admin page's request that is refused (4xx) answers with a page in the admin layout, its
 * menu and a link onward (the error's own `back`, else the section's first page), in English
 * as every admin page is. The refusal of a form sent from a tab left open while the user,
 * client or group it names was deleted in another tab is the usual case: the error page it
 * got before said "Something went wrong" in the browser's language over an English message,
 * and offered no way back but typing an address. Scripts still get the error handler's JSON.
 */
export function adminRefusals(render: AdminPageKit['render']) {
  return async function refusedInAdminLayout(ctx: Context, next: Next) {
    try {
      await next();
    } catch (caught) {
      // Sesame's refusals, and the body parser's (a form too large, malformed) made safe.
      const error = refusalOf(caught);
      // Someone whose administration or sign-in ended while the request was under way is no
      // administrator now: Sesame's own error page, without the admin menu.
      if (!error || error.status >= 500 || wantsJson(ctx) || isAdminAuthorityLost(error)) throw caught;
      const section = ctx.path.split('/')[2] ?? '';
      const label = SECTIONS.get(section);
      // A form's POST refused (4xx) changed nothing: bad input, a stale token, a thing gone.
      const heading = notAPage(ctx, error)
        ? 'Page not found'
        : ctx.method === 'POST'
          ? 'Nothing was changed'
          : 'Something went wrong';
      ctx.status = error.status;
      render(ctx, 'refused', {
        title: heading,
        section,
        heading,
        message: error.code === 'step_up_required' ? STEP_UP_WITHOUT_SCRIPT : error.message,
        next: error.back
          ? { href: error.back.url, label: error.back.label }
          : label
            ? { href: `/admin/${section}`, label }
            : { href: '/admin', label: 'Go to the admin pages' },
      });
    }
  };
}
