import { setTimeout as sleep } from 'node:timers/promises';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { sha256Hex } from '../../src/crypto.js';
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
 * optional name), creates a passkey with the person's authenticator, and posts it back,
 * with `choices` beside it (a recovery page's `removeOtherPasskeys`).
 * Returns the verify response (200 with `{ redirect }` on success).
 */
export async function useLink(
  person: Person,
  url: string,
  name?: string,
  choices: Record<string, unknown> = {},
): Promise<PageResponse> {
  const ready = await prepareLinkUse(person, url, name, choices);
  return typeof ready === 'function' ? ready() : ready;
}

/**
 * Does all of {@link useLink} but the post of the passkey, and returns it to send later (or the
 * response that stopped it early): for a test that races the link's use against something.
 */
export async function prepareLinkUse(
  person: Person,
  url: string,
  name?: string,
  choices: Record<string, unknown> = {},
): Promise<PageResponse | (() => Promise<PageResponse>)> {
  const path = linkPath(url);
  const page = await person.browser.request(path);
  if (page.status !== 200) return page;
  const csrf = page.csrf();
  const options = await person.browser.postJson(`${path}/options`, csrf, name ? { name } : {});
  if (options.status !== 200) return options;
  const credential = await person.authenticator.createCredential(options.json(), person.browser.origin);
  return () => person.browser.postJson(`${path}/verify`, csrf, { ...credential, ...choices });
}

/**
 * With mail configured, waits until the outbox is done with the mail of the link `url` (sent,
 * or given up): a link used before its mail went makes the outbox give the mail up, which
 * tests that count the mails to an address would see as a missing mail. Without mail the
 * link has no mail, and this returns at once.
 */
export async function untilLinkMailed(db: Db, url: string): Promise<void> {
  const linkHash = sha256Hex(new URL(url).pathname.split('/').at(-1)!);
  for (const until = Date.now() + 20_000; ; await sleep(25)) {
    const row = await db
      .selectFrom('mail_outbox')
      .select('next_attempt_at')
      .where('link_hash', '=', linkHash)
      .executeTakeFirst();
    if (!row || row.next_attempt_at === null) return;
    if (Date.now() > until) throw new Error(`the mail of ${linkPath(url)} was not sent`);
  }
}

/** Invites `email` with a one-time link (its mail sent first, if any) and uses it: the person ends signed in to /account. */
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
  await untilLinkMailed(sesame.db, url);
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
