import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import type { Db } from '../../src/db/connect.js';
import type { PageResponse } from './browser.js';
import { countRows } from './countRows.js';
import { Person } from './oidcFlow.js';
import type { SoftAuthenticator } from './softAuthenticator.js';
import type { TestApp } from './testApp.js';

/** The path of a link URL, e.g. /link/<token>. */
export const linkPath = (url: string) => new URL(url).pathname;

/**
 * Uses a one-time link as its page does: opens it, asks for creation options (with an
 * optional name), creates a passkey with the person's authenticator, and posts it back.
 * Returns the verify response (200 with `{ redirect }` on success).
 */
export async function useLink(person: Person, url: string, name?: string): Promise<PageResponse> {
  const path = linkPath(url);
  const page = await person.browser.request(path);
  if (page.status !== 200) return page;
  const csrf = page.csrf();
  const options = await person.browser.postJson(`${path}/options`, csrf, name ? { name } : {});
  if (options.status !== 200) return options;
  const credential = await person.authenticator.createCredential(options.json(), person.browser.origin);
  return person.browser.postJson(`${path}/verify`, csrf, credential);
}

/** Invites `email` with a one-time link and uses it: the person ends signed in to /account. */
export async function onboard(
  sesame: TestApp,
  email: string,
  options: { authenticator?: SoftAuthenticator; admin?: boolean; name?: string } = {},
): Promise<{ person: Person; userId: string }> {
  const { url } = await createOneTimeLink(sesame.db, sesame.config, {
    email,
    admin: options.admin,
    actor: 'test',
  });
  const person = new Person(sesame.baseUrl, options.authenticator);
  const verify = await useLink(person, url, options.name);
  if (verify.status !== 200) throw new Error(`link use failed: ${verify.status} ${verify.text}`);
  const user = await sesame.db
    .selectFrom('users')
    .select('id')
    .where('email', '=', email)
    .executeTakeFirstOrThrow();
  return { person, userId: user.id };
}

/** How many rows the tables a link touches hold: a refused use must change none of them. */
export async function rowCounts(db: Db) {
  const usedLinks = Number(
    (
      await db
        .selectFrom('one_time_tokens')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('used_at', 'is not', null)
        .executeTakeFirstOrThrow()
    ).n,
  );
  return {
    users: await countRows(db, 'users'),
    credentials: await countRows(db, 'credentials'),
    audit: await countRows(db, 'audit_events'),
    usedLinks,
  };
}
