import type { Person } from './oidcFlow.js';

/**
 * Presses "Sign out" on the account page and opens the provider's confirmation (RP-initiated
 * logout, as an app's logout reaches it too); the returned function submits it, which ends
 * the browser's session (the provider deletes it), and answers with the status.
 */
export async function signOutPrepared(person: Person): Promise<() => Promise<number>> {
  const csrf = (await person.browser.request('/account')).csrf();
  const signOut = await person.browser.request('/account/logout', { form: { _csrf: csrf } });
  const confirm = await person.browser.request(signOut.location()!);
  const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirm.text);
  if (!form) throw new Error(`no sign-out form: ${confirm.status} ${confirm.text.slice(0, 300)}`);
  return async () =>
    (await person.browser.request(form[1]!, { form: { xsrf: form[2]!, logout: 'yes' } })).status;
}
