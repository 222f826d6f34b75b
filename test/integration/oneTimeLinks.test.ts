import { randomBytes } from 'node:crypto';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { deleteUser, disableUser, enableUser, issueRecoveryLink } from '../../src/admin/users.js';
import { sha256Hex } from '../../src/crypto.js';
import { oneTimeTokensQueries } from '../../src/db/queries/oneTimeTokens.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { countRows } from '../support/countRows.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { linkPath, onboard, rowCounts, useLink } from '../support/oneTimeLinkFlow.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8901/callback';

describe('one-time links (invites and recovery)', () => {
  let sesame: TestApp;
  let rp: TestRp;
  const logLines: string[] = [];
  let stderrWrite: typeof process.stderr.write;

  beforeAll(async () => {
    // Invite-only sign-up: links are the only way in. Debug logs are captured to prove the token never appears.
    stderrWrite = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      logLines.push(String(chunk));
      return (stderrWrite as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    sesame = await startTestApp({ SIGNUP: 'invite', LOG_LEVEL: 'debug' });
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Wiki', redirect_uris: [REDIRECT_URI] },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterAll(async () => {
    process.stderr.write = stderrWrite;
    await sesame.stop();
  });

  const invite = (email: string, extra: { admin?: boolean } = {}) =>
    createOneTimeLink(sesame.db, sesame.config, { email, actor: 'test', ...extra });

  async function signInAtApp(person: Person) {
    const pending = await beginLogin(rp);
    const loginPage = await person.open(pending.url);
    const callback = await person.continueToApp(await person.signIn(loginPage), REDIRECT_URI);
    return (await finishLogin(rp, pending, callback)).claims()!;
  }

  it('shows a "Create a passkey" page with a QR code of the link and no inline script', async () => {
    const { url } = await invite('qr@example.com');
    const page = await new Person(sesame.baseUrl).browser.request(linkPath(url));
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<button[^>]*>Create a passkey<\/button>/);
    expect(page.text).toContain('qr@example.com');
    expect(page.text).toMatch(/<img class="qr" src="data:image\/svg\+xml;base64,[A-Za-z0-9+/=]+"/);
    expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(page.headers.get('cache-control')).toBe('no-store');
  });

  it('creates the account on first use, signs the person in, and the passkey then signs in to an app', async () => {
    const { url, expiresAt } = await invite('grace@example.com', { admin: true });
    expect(url).toMatch(new RegExp(`^${sesame.baseUrl}/link/[A-Za-z0-9_-]{43}$`));
    expect(expiresAt.getTime() - Date.now()).toBeGreaterThan(23.9 * 3600 * 1000);

    const person = new Person(sesame.baseUrl);
    const verify = await useLink(person, url, 'Grace Hopper');
    expect(verify.status).toBe(200);
    // An administrator's invite opens the admin pages, as the setup link does.
    expect(verify.json()).toEqual({ redirect: '/admin' });
    expect((await person.browser.request('/admin/users')).status).toBe(200);

    const user = await sesame.db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', 'grace@example.com')
      .executeTakeFirstOrThrow();
    expect(user).toMatchObject({ name: 'Grace Hopper', is_admin: true });

    // Signed in right away: the account page opens without a second passkey prompt.
    const account = await person.browser.request('/account');
    expect(account.status).toBe(200);
    expect(account.text).toContain('grace@example.com');

    const claims = await signInAtApp(person.inNewBrowser());
    expect(claims.sub).toBe(user.id);
    expect(claims.email).toBe('grace@example.com');

    // The administrator's recovery link (a new device): the account page, where passkeys are.
    const recovery = await invite('grace@example.com');
    const recovered = await useLink(new Person(sesame.baseUrl), recovery.url);
    expect(recovered.status).toBe(200);
    expect(recovered.json()).toEqual({ redirect: '/account' });
  });

  it('works once: a second use gets a clear "already used" page and changes nothing', async () => {
    const { url } = await invite('once@example.com');
    const first = new Person(sesame.baseUrl);
    // A second tab opened the link and asked for options before the first use finished.
    const second = new Person(sesame.baseUrl);
    const page2 = await second.browser.request(linkPath(url));
    const csrf2 = page2.csrf();
    const options2 = await second.browser.postJson(`${linkPath(url)}/options`, csrf2, {});
    expect(options2.status).toBe(200);

    const used = await useLink(first, url);
    expect(used.status).toBe(200);
    // Not an administrator's invite: the account page, which is all this person may open.
    expect(used.json()).toEqual({ redirect: '/account' });
    const before = await rowCounts(sesame.db);

    const again = await second.browser.request(linkPath(url));
    expect(again.status).toBe(410);
    expect(again.text).toContain('This link was already used');
    expect(again.text).not.toContain('Create a passkey');

    const late = await second.authenticator.createCredential(options2.json(), second.browser.origin);
    const verify2 = await second.browser.postJson(`${linkPath(url)}/verify`, csrf2, late);
    expect(verify2.status).toBe(410);
    expect(verify2.json()).toMatchObject({ error: 'link_used' });
    expect(await rowCounts(sesame.db)).toEqual(before);
  });

  it('lets exactly one of two simultaneous uses through', async () => {
    const { url } = await invite('race@example.com');
    const path = linkPath(url);
    const people = [new Person(sesame.baseUrl), new Person(sesame.baseUrl)];
    const prepared = await Promise.all(
      people.map(async (person) => {
        const csrf = (await person.browser.request(path)).csrf();
        const options = await person.browser.postJson(`${path}/options`, csrf, {});
        const credential = await person.authenticator.createCredential(options.json(), person.browser.origin);
        return { person, csrf, credential };
      }),
    );
    const results = await Promise.all(
      prepared.map(({ person, csrf, credential }) =>
        person.browser.postJson(`${path}/verify`, csrf, credential),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 410]);
    const users = await sesame.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'race@example.com')
      .execute();
    expect(users).toHaveLength(1);
    const credentials = await sesame.db
      .selectFrom('credentials')
      .select('id')
      .where('user_id', '=', users[0]!.id)
      .execute();
    expect(credentials).toHaveLength(1);
  });

  it('refuses a passkey registered to another account as such, not as a taken email, and leaves the link unused', async () => {
    const tag = randomBytes(4).toString('hex');
    const owner = await onboard(sesame, `owner-${tag}@example.com`);
    const { id: credentialId } = await sesame.db
      .selectFrom('credentials')
      .select('id')
      .where('user_id', '=', owner.userId)
      .executeTakeFirstOrThrow();
    const { url } = await invite(`newcomer-${tag}@example.com`);
    const path = linkPath(url);
    const person = new Person(sesame.baseUrl);
    const csrf = (await person.browser.request(path)).csrf();
    const options = await person.browser.postJson(`${path}/options`, csrf, {});
    const credential = await person.authenticator.createCredential(options.json(), person.browser.origin, {
      credentialId,
    });
    const before = await rowCounts(sesame.db);

    const verify = await person.browser.postJson(`${path}/verify`, csrf, credential);
    expect(verify.status).toBe(409);
    expect(verify.json()).toMatchObject({
      error: 'passkey_registered',
      error_description: expect.stringContaining('The link was not used'),
    });
    expect(await rowCounts(sesame.db)).toEqual(before);
    // Still unused: a new passkey makes the account.
    expect((await useLink(person, url)).status).toBe(200);
  });

  it('refuses an expired link with a clear page and changes nothing', async () => {
    const { url, id } = await invite('late@example.com');
    const person = new Person(sesame.baseUrl);
    const csrf = (await person.browser.request(linkPath(url))).csrf();
    await sesame.db
      .updateTable('one_time_tokens')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', id)
      .execute();
    const before = await rowCounts(sesame.db);

    const page = await person.browser.request(linkPath(url));
    expect(page.status).toBe(410);
    expect(page.text).toContain('This link has expired');
    const options = await person.browser.postJson(`${linkPath(url)}/options`, csrf, {});
    expect(options.status).toBe(410);
    expect(options.json()).toMatchObject({ error: 'link_expired' });
    expect(await rowCounts(sesame.db)).toEqual(before);
  });

  it('refuses a forged or malformed token with a clear page and changes nothing', async () => {
    const person = new Person(sesame.baseUrl);
    // A real link's page gives this browser a CSRF token; the forged link's endpoints still refuse.
    const { url } = await invite('forged@example.com');
    const csrf = (await person.browser.request(linkPath(url))).csrf();
    const before = await rowCounts(sesame.db);
    for (const token of [randomBytes(32).toString('base64url'), 'short', `${'A'.repeat(43)}%00`]) {
      const page = await person.browser.request(`/link/${token}`);
      expect(page.status).toBe(404);
      expect(page.text).toContain('This link is not valid');
    }
    const options = await person.browser.postJson(`/link/${'B'.repeat(43)}/options`, csrf, {});
    expect(options.status).toBe(404);
    expect(options.json()).toMatchObject({ error: 'link_invalid' });
    expect(await rowCounts(sesame.db)).toEqual(before);
  });

  it('refuses requests without the CSRF token or from another origin, and changes nothing', async () => {
    const { url } = await invite('csrf@example.com');
    const path = linkPath(url);
    const person = new Person(sesame.baseUrl);
    const csrf = (await person.browser.request(path)).csrf();
    const options = await person.browser.postJson(`${path}/options`, csrf, {});
    const credential = await person.authenticator.createCredential(options.json(), person.browser.origin);
    const before = await rowCounts(sesame.db);

    const noToken = await person.browser.request(`${path}/verify`, {
      json: credential,
      headers: { accept: 'application/json' },
    });
    expect(noToken.status).toBe(403);
    const foreign = await person.browser.request(`${path}/verify`, {
      json: credential,
      headers: { accept: 'application/json', 'x-csrf-token': csrf, origin: 'https://evil.example' },
    });
    expect(foreign.status).toBe(403);
    const malformed = await person.browser.request(`${path}/verify`, {
      body: '{"id":',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': csrf },
    });
    expect(malformed.status).toBe(400);
    expect(await rowCounts(sesame.db)).toEqual(before);

    // The link still works afterwards.
    expect((await person.browser.postJson(`${path}/verify`, csrf, credential)).status).toBe(200);
  });

  it('stores only the SHA-256 of the token, and the token never appears in the logs', async () => {
    const { url, id } = await invite('secret@example.com');
    const token = linkPath(url).split('/').pop()!;
    const row = await sesame.db
      .selectFrom('one_time_tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(row.token_hash).toBe(sha256Hex(token));
    expect(JSON.stringify(row)).not.toContain(token);

    const person = new Person(sesame.baseUrl);
    expect((await useLink(person, url)).status).toBe(200);
    expect((await person.browser.request(linkPath(url))).status).toBe(410);
    expect(logLines.join('')).toContain('one-time link used');
    expect(logLines.join('')).not.toContain(token);
  });

  it('invalidates older unused links when a new one is issued for the same email', async () => {
    const older = await invite('twice@example.com');
    const newer = await invite('twice@example.com');
    const person = new Person(sesame.baseUrl);
    expect((await person.browser.request(linkPath(older.url))).status).toBe(410);
    expect((await useLink(person, newer.url)).status).toBe(200);
  });

  it('recovers an account whose passkey was lost: a new passkey signs in as the same sub', async () => {
    const { userId } = await onboard(sesame, 'lost@example.com');
    // The phone with the only passkey is gone.
    await sesame.db.deleteFrom('credentials').where('user_id', '=', userId).execute();

    const { url } = await invite('LOST@example.com');
    const link = await sesame.db
      .selectFrom('one_time_tokens')
      .selectAll()
      .where('token_hash', '=', sha256Hex(linkPath(url).split('/').pop()!))
      .executeTakeFirstOrThrow();
    expect(link).toMatchObject({ purpose: 'recovery', user_id: userId, grant_admin: false });

    const person = new Person(sesame.baseUrl, new SoftAuthenticator());
    const page = await person.browser.request(linkPath(url));
    expect(page.text).toContain('Add a passkey to your account');
    const usersBefore = (await rowCounts(sesame.db)).users;
    expect((await useLink(person, url)).status).toBe(200);
    expect((await rowCounts(sesame.db)).users).toBe(usersBefore);

    const claims = await signInAtApp(person.inNewBrowser());
    expect(claims.sub).toBe(userId);
  });

  it('signs out every earlier sign-in of the account when an admin recovery link is used: the lost or stolen device keeps nothing', async () => {
    const { person: lostDevice, userId } = await onboard(sesame, 'stolen@example.com');
    expect((await lostDevice.browser.request('/account')).status).toBe(200);

    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'stolen@example.com',
      actor: 'cli:test',
    });
    const owner = new Person(sesame.baseUrl, new SoftAuthenticator());
    expect((await useLink(owner, url)).status).toBe(200);

    expect((await owner.browser.request('/account')).status).toBe(200);
    expect((await lostDevice.browser.request('/account')).status).toBe(302);
    const audit = await sesame.db
      .selectFrom('audit_events')
      .select('action')
      .where('target', '=', userId)
      .execute();
    expect(audit.map((a) => a.action)).toContain('user.signed_out_everywhere');
  });

  it("never gives a deleted account's id to a new account: a passkey prompted for it is refused as stale", async () => {
    // Invited, then someone else signs up with the address before the invite is used.
    const { url } = await invite('gone@example.com');
    const { id: userId } = await usersQueries.insert(sesame.db, { email: 'gone@example.com', name: null });
    const person = new Person(sesame.baseUrl, new SoftAuthenticator());
    const path = linkPath(url);
    const csrf = (await person.browser.request(path)).csrf();
    const options = await person.browser.postJson(`${path}/options`, csrf, {});
    expect(options.status).toBe(200);
    // The account the prompt was shown for is deleted before the passkey comes back.
    await deleteUser(sesame.db, userId, 'test');
    const credential = await person.authenticator.createCredential(options.json(), person.browser.origin);
    const verify = await person.browser.postJson(`${path}/verify`, csrf, credential);
    expect(verify.status).toBe(409);
    expect(await sesame.db.selectFrom('users').select('id').where('id', '=', userId).execute()).toEqual([]);
    // Opened again, the link makes an account of a new id.
    expect((await useLink(person, url)).status).toBe(200);
    const created = await sesame.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'gone@example.com')
      .executeTakeFirstOrThrow();
    expect(created.id).not.toBe(userId);
  });

  it('sweeps links that expired a month ago, used or not, and keeps the others', async () => {
    const email = `sweep-${randomBytes(4).toString('hex')}@example.com`;
    const day = 86_400_000;
    const link = (tag: string, expiresAgoDays: number, used: boolean) => ({
      token_hash: sha256Hex(`${email}-${tag}`),
      purpose: 'invite',
      email,
      created_by: 'test',
      expires_at: new Date(Date.now() - expiresAgoDays * day),
      used_at: used ? new Date(Date.now() - (expiresAgoDays + 1) * day) : null,
    });
    await sesame.db
      .insertInto('one_time_tokens')
      .values([
        link('old', 31, false),
        link('old-used', 40, true),
        link('recent', 29, false),
        link('live', -1, false),
      ])
      .execute();
    expect(await oneTimeTokensQueries.deleteExpiredBefore(sesame.db, 30)).toBe(2);
    const left = await sesame.db
      .selectFrom('one_time_tokens')
      .select('token_hash')
      .where('email', '=', email)
      .execute();
    expect(left.map((row) => row.token_hash).sort()).toEqual(
      [sha256Hex(`${email}-recent`), sha256Hex(`${email}-live`)].sort(),
    );
  });

  it('issues no link for a disabled account, on the admin API nor directly, and says to enable it first', async () => {
    const { userId } = await onboard(sesame, 'asleep@example.com');
    await sesame.db.updateTable('users').set({ disabled_at: new Date() }).where('id', '=', userId).execute();
    const { key } = await createApiKey(sesame.db, 'links', 'test');
    const before = await countRows(sesame.db, 'one_time_tokens');

    const answer = await fetch(`${sesame.baseUrl}/api/admin/users/invite`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'Asleep@example.com' }),
    });
    expect(answer.status).toBe(409);
    expect(await answer.json()).toMatchObject({
      error: 'account_disabled',
      error_description:
        'asleep@example.com is disabled; enable it first (`sesame users enable asleep@example.com`), then issue the link',
      fields: { email: 'is disabled' },
    });
    await expect(issueRecoveryLink(sesame.db, sesame.config, userId, 'test')).rejects.toMatchObject({
      status: 409,
      code: 'account_disabled',
    });
    await expect(invite('asleep@example.com', { admin: true })).rejects.toMatchObject({ status: 409 });
    expect(await countRows(sesame.db, 'one_time_tokens')).toBe(before);

    // Enabled again, it gets its link.
    await sesame.db.updateTable('users').set({ disabled_at: null }).where('id', '=', userId).execute();
    expect((await invite('asleep@example.com')).url).toContain('/link/');
  });

  it('cancels the unused links for an account when it is disabled: enabling it again does not bring them back', async () => {
    const { userId } = await onboard(sesame, 'paused@example.com');
    const { url } = (await issueRecoveryLink(sesame.db, sesame.config, userId, 'test'))!;
    const other = await invite('bystander@example.com');
    await disableUser(sesame.db, userId, 'test');
    await enableUser(sesame.db, userId, 'test');

    const before = await rowCounts(sesame.db);
    const page = await new Person(sesame.baseUrl).browser.request(linkPath(url));
    expect(page.status).toBe(410);
    expect(await rowCounts(sesame.db)).toEqual(before);
    // Another account's link is not touched.
    expect((await new Person(sesame.baseUrl).browser.request(linkPath(other.url))).status).toBe(200);
  });

  it('refuses a recovery link for a disabled account', async () => {
    const { userId } = await onboard(sesame, 'off@example.com');
    const { url } = await invite('off@example.com');
    await sesame.db.updateTable('users').set({ disabled_at: new Date() }).where('id', '=', userId).execute();
    const before = await rowCounts(sesame.db);
    const person = new Person(sesame.baseUrl);
    const page = await person.browser.request(linkPath(url));
    expect(page.status).toBe(403);
    expect(page.text).toContain('This account is disabled');
    expect(await rowCounts(sesame.db)).toEqual(before);
  });
});
