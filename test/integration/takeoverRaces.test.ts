import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { verifyEmailWithLink } from '../../src/accounts/emailVerification.js';
import { createOneTimeLink, SELF_SERVICE_ACTOR } from '../../src/accounts/oneTimeLinks.js';
import { blockSuspectedClone } from '../../src/accounts/suspectedClone.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { createGroup, deleteGroup, groupMembers } from '../../src/admin/groups.js';
import { randomSecret, sha256Hex } from '../../src/crypto.js';
import { credentialsQueries } from '../../src/db/queries/credentials.js';
import { emailVerificationsQueries } from '../../src/db/queries/emailVerifications.js';
import { groupsQueries } from '../../src/db/queries/groups.js';
import { usersQueries } from '../../src/db/queries/users.js';
import type { User } from '../../src/db/schema.js';
import { createLogger } from '../../src/logger.js';
import { SuspectedClone } from '../../src/webauthn/errors.js';
import type { PageResponse } from '../support/browser.js';
import { Person } from '../support/oidcFlow.js';
import { onboard, prepareLinkUse } from '../support/oneTimeLinkFlow.js';
import { holdRow, untilWaitingForLocks } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/**
 * The owner of an address takes over the account someone else signed up with (a one-time
 * link sent there): the account's row is held, deleted, and the owner gets a new one with a
 * new id (confirmEmailOwner). Whatever else writes to that account meanwhile waits for the
 * takeover and is then told the account is gone, with a 4xx: never a success that changed
 * nothing, a 500, or a deadlock. Postgres only: the embedded database serves one connection,
 * so the row held here would stop everything else there, and nothing runs beside it anyway.
 */
(onPostgres ? describe : describe.skip)('a takeover racing other writes to the account', () => {
  let sesame: TestApp;
  let adminKey: string;
  let group: string;

  beforeAll(async () => {
    sesame = await startTestApp({ SIGNUP: 'open' });
    adminKey = (await createApiKey(sesame.db, 'races', 'test')).key;
    group = (await createGroup(sesame.db, 'Finance', 'test')).id;
  });

  afterAll(() => sesame?.stop());

  /** An account someone signed up with, whose address nobody proved. */
  const unproven = () =>
    usersQueries.insert(sesame.db, { email: `t${randomBytes(4).toString('hex')}@example.com`, name: null });

  /**
   * A recovery link for `email` (issued by `actor`, an administrator's by default) whose passkey
   * post is prepared: `ready` sends it (see send), with the link page's `choices`.
   */
  async function recoveryLinkReady(
    email: string,
    { actor = 'test', choices }: { actor?: string; choices?: Record<string, unknown> } = {},
  ) {
    const { url } = await createOneTimeLink(sesame.db, sesame.config, { email, purpose: 'recovery', actor });
    return { url, ready: await prepareLinkUse(new Person(sesame.baseUrl), url, undefined, choices) };
  }

  const hold = (lockSql: ReturnType<typeof sql>) => holdRow(sesame.db, lockSql);
  const untilWaiting = (n: number) => untilWaitingForLocks(sesame.db, n);

  /** Uses a link's prepared passkey post, failing the test when the link stopped it before. */
  const send = (ready: PageResponse | (() => Promise<PageResponse>)) => {
    if (typeof ready !== 'function') throw new Error(`the link page answered ${ready.status}`);
    return ready();
  };

  async function adminApi(method: string, path: string, json?: unknown) {
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      ...(json !== undefined && { body: JSON.stringify(json) }),
    });
    return { status: response.status, text: await response.text() };
  }

  const adminChanges: [string, (user: User) => ReturnType<typeof adminApi>][] = [
    [
      'set a claim',
      (user) =>
        adminApi('PUT', `/users/${user.id}/claims/department`, { value: 'finance', unverified: true }),
    ],
    [
      'add to a group',
      (user) => adminApi('PUT', `/groups/${group}/members/${user.email}`, { unverified: true }),
    ],
    ['disable', (user) => adminApi('POST', `/users/${user.id}/disable`)],
    ['promote', (user) => adminApi('POST', `/users/${user.id}/promote`, { unverified: true })],
  ];

  it.each(adminChanges)(
    'answers 404 to an admin change (%s) made while the owner takes the account over, and changes nothing',
    async (_, change) => {
      const squatted = await unproven();
      const { ready } = await recoveryLinkReady(squatted.email);

      // The owner's takeover waits on the account's row, and the admin's change behind it.
      const release = await hold(sql`select id from users where id = ${squatted.id} for update`);
      const takeover = send(ready);
      await untilWaiting(1);
      const changed = change(squatted);
      await untilWaiting(2);
      await release();

      expect((await takeover).status).toBe(200);
      const answer = await changed;
      expect({ status: answer.status, text: answer.text }).toEqual({
        status: 404,
        text: expect.stringContaining('No user with id'),
      });
      // The owner's new account got none of it, and the audit records no change that was not made.
      const ownerAccount = (await usersQueries.findByEmail(sesame.db, squatted.email))!;
      expect(ownerAccount.id).not.toBe(squatted.id);
      expect(ownerAccount).toMatchObject({ claims: {}, is_admin: false, disabled_at: null });
      expect((await groupMembers(sesame.db, group)).members.map((member) => member.email)).not.toContain(
        squatted.email,
      );
      const audited = await sesame.db
        .selectFrom('audit_events')
        .select('action')
        .where('target', 'in', [squatted.id, ownerAccount.id, group])
        .where('action', 'in', ['user.set_claim', 'group.add_member', 'user.disable', 'user.promote'])
        .execute();
      expect(audited).toEqual([]);
    },
  );

  it("refuses an admin change by an unproven administrator's key that waited for the account's takeover, and changes nothing", async () => {
    const squatted = await unproven();
    await usersQueries.update(sesame.db, squatted.id, { isAdmin: true });
    const { key } = await createApiKey(sesame.db, 'squatter', `user:${squatted.id}`);
    const { ready } = await recoveryLinkReady(squatted.email);

    // The takeover waits on the account's row; the key's admin invite checks its creator behind it.
    const release = await hold(sql`select id from users where id = ${squatted.id} for update`);
    const takeover = send(ready);
    await untilWaiting(1);
    const invitee = `i${randomBytes(4).toString('hex')}@example.com`;
    const invited = fetch(`${sesame.baseUrl}/api/admin/users/invite`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: invitee, admin: true }),
    });
    await Promise.race([untilWaiting(2), invited]);
    await release();

    expect((await takeover).status).toBe(200);
    expect((await invited).status).toBe(401);
    const links = await sesame.db
      .selectFrom('one_time_tokens')
      .select('id')
      .where('email', '=', invitee)
      .where('used_at', 'is', null)
      .execute();
    expect(links).toEqual([]);
  });

  it('lets one of two links for the account take it over when both are used at once, and tells the other its link is gone', async () => {
    const squatted = await unproven();
    // An administrator's recovery link, and one the owner mailed themselves ("Lost your passkey?").
    const { ready: first } = await recoveryLinkReady(squatted.email);
    const bySelf = await createOneTimeLink(sesame.db, sesame.config, {
      email: squatted.email,
      purpose: 'recovery',
      actor: SELF_SERVICE_ACTOR,
      selfService: true,
    });
    const second = await prepareLinkUse(new Person(sesame.baseUrl), bySelf.url);

    const release = await hold(sql`select id from users where id = ${squatted.id} for update`);
    const uses = [send(first)];
    await untilWaiting(1);
    uses.push(send(second));
    await untilWaiting(2);
    await release();

    const answers = await Promise.all(uses);
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 404]);
    expect(answers.find((answer) => answer.status === 404)!.json()).toMatchObject({ error: 'link_invalid' });
    const accounts = await sesame.db
      .selectFrom('users')
      .select(['id', 'email_verified'])
      .where('email', '=', squatted.email)
      .execute();
    expect(accounts).toEqual([{ id: expect.not.stringMatching(squatted.id), email_verified: true }]);
  });

  it('blocks a copied passkey while a recovery removes the passkeys, one after the other, without a deadlock', async () => {
    const email = `c${randomBytes(4).toString('hex')}@example.com`;
    const { person } = await onboard(sesame, email);
    const credentialId = person.authenticator.credentials()[0]!.id;
    const { url, ready } = await recoveryLinkReady(email, { choices: { removeOtherPasskeys: true } });

    // The link's use holds the account and waits for its link's row; the block, which took the
    // passkey's row before the account's, held what the use needed next: a deadlock.
    const linkHash = sha256Hex(url.split('/').at(-1)!);
    const release = await hold(sql`select id from one_time_tokens where token_hash = ${linkHash} for update`);
    const used = send(ready);
    await untilWaiting(1);
    const blocked = blockSuspectedClone(
      { db: sesame.db, config: sesame.config, log: createLogger('silent'), caches: sesame.app.caches },
      new SuspectedClone(credentialId, 5, 1),
    ).then(
      () => 'done',
      (error: Error) => error.message,
    );
    await untilWaiting(2);
    await release();

    expect((await used).status).toBe(200);
    expect(await blocked).toBe('done');
    // The recovery removed the passkey; nothing was left to block.
    expect(
      await sesame.db.selectFrom('credentials').select('id').where('id', '=', credentialId).execute(),
    ).toEqual([]);
  });

  it('uses a recovery link and issues a new one for the account at once, one after the other, without a deadlock', async () => {
    const account = await usersQueries.insert(sesame.db, {
      email: `t${randomBytes(4).toString('hex')}@example.com`,
      name: null,
      emailVerified: true,
    });
    const { ready } = await recoveryLinkReady(account.email);

    // The link's use waits for the account's row; the new link's issue behind it, never holding
    // the links the use needs next.
    const release = await hold(sql`select id from users where id = ${account.id} for update`);
    const used = send(ready);
    await untilWaiting(1);
    const issued = createOneTimeLink(sesame.db, sesame.config, {
      email: account.email,
      purpose: 'recovery',
      actor: 'test',
    });
    await untilWaiting(2);
    await release();

    expect((await used).status).toBe(200);
    const next = await issued;
    const links = await sesame.db
      .selectFrom('one_time_tokens')
      .select(['id', 'used_at'])
      .where('user_id', '=', account.id)
      .orderBy('created_at')
      .execute();
    expect(links).toEqual([
      { id: expect.any(String), used_at: expect.any(Date) },
      { id: next.id, used_at: null },
    ]);
  });

  it('verifies the address with the welcome link, or takes the account over, one after the other when both run at once', async () => {
    const squatted = await unproven();
    const token = randomSecret();
    const tokenHash = sha256Hex(token);
    await emailVerificationsQueries.replace(sesame.db, {
      userId: squatted.id,
      email: squatted.email,
      tokenHash,
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    const { ready } = await recoveryLinkReady(squatted.email);

    // The welcome link's use waits for its row; the takeover reaches the account (held or waited
    // on), and the welcome link's row (it goes with the account) last.
    const release = await hold(
      sql`select id from email_verifications where token_hash = ${tokenHash} for update`,
    );
    const verified = verifyEmailWithLink(sesame.db, token, squatted);
    await untilWaiting(1);
    const takeover = send(ready);
    await untilWaiting(2);
    await release();

    // The verification came first: the account is its signed-up holder's now, and the takeover's
    // page, made for an account nobody had proved, is out of date.
    expect(await verified).toMatchObject({ id: squatted.id, email_verified: true });
    const answer = await takeover;
    expect(answer.status).toBe(409);
    expect(answer.json()).toMatchObject({ error: 'link_stale' });
    expect(await usersQueries.findById(sesame.db, squatted.id)).toMatchObject({ email_verified: true });
  });

  it('deletes a group while the owner takes over an account in it, one after the other, without a deadlock', async () => {
    const squatted = await unproven();
    const suffix = randomBytes(4).toString('hex');
    const kept = (await createGroup(sesame.db, `Archive ${suffix}`, 'test')).id;
    const deleted = (await createGroup(sesame.db, `Payroll ${suffix}`, 'test')).id;
    for (const id of [kept, deleted]) await groupsQueries.addMember(sesame.db, id, squatted.id);
    const { ready } = await recoveryLinkReady(squatted.email);

    // The takeover reaches the first of the account's groups (by name) and waits for it; the
    // delete of the other group runs meanwhile. The takeover took the old account's memberships
    // before it held their groups: the delete, holding its group, waited for the membership, and
    // the takeover, re-adding it to the new account, for the group: a deadlock.
    const release = await hold(sql`select id from groups where id = ${kept} for update`);
    const takeover = send(ready);
    await untilWaiting(1);
    const deleting = deleteGroup(sesame.db, deleted, 'test').then(
      () => 'deleted',
      (error: Error) => error.message,
    );
    await Promise.race([untilWaiting(2), deleting]);
    await release();

    expect(await deleting).toBe('deleted');
    expect((await takeover).status).toBe(200);
    // The owner's new account is in the group that is left, and no membership outlives the other.
    const owner = (await usersQueries.findByEmail(sesame.db, squatted.email))!;
    expect(owner.id).not.toBe(squatted.id);
    expect((await groupsQueries.ofUser(sesame.db, owner.id)).map((group) => group.id)).toEqual([kept]);
    expect(
      await sesame.db.selectFrom('group_members').select('user_id').where('group_id', '=', deleted).execute(),
    ).toEqual([]);
  });

  it("lets one of two unproven administrators' recovery links for each other's account take it over when both are used at once, and cancels the other", async () => {
    const [first, second] = [await unproven(), await unproven()];
    for (const admin of [first, second]) {
      await usersQueries.update(sesame.db, admin.id, { isAdmin: true });
      // A passkey the signed-up holder added: the takeover removes it first.
      await credentialsQueries.insert(sesame.db, {
        id: `cred-${admin.id}`,
        userId: admin.id,
        publicKey: new Uint8Array([1, 2, 3]),
        counter: 0,
        transports: ['internal'],
        aaguid: '00000000-0000-0000-0000-000000000000',
        backupEligible: false,
        backupState: false,
        name: 'Phone',
      });
    }
    // Each administrator issued a recovery link for the other's address.
    const forFirst = await recoveryLinkReady(first.email, { actor: `user:${second.id}` });
    const forSecond = await recoveryLinkReady(second.email, { actor: `user:${first.id}` });

    // Each takeover used its link, then waits to remove its account's passkeys; next it cancels
    // the links its account's administrator issued: the other's link, which the other holds.
    const release = await hold(
      sql`select id from credentials where user_id in (${first.id}, ${second.id}) for update`,
    );
    const uses = [send(forFirst.ready)];
    await untilWaiting(1);
    uses.push(send(forSecond.ready));
    await untilWaiting(2);
    await release();

    // The first took its account over and cancelled the link its earlier holder issued.
    const [firstAnswer, secondAnswer] = await Promise.all(uses);
    expect(firstAnswer!.status).toBe(200);
    expect({ status: secondAnswer!.status, body: secondAnswer!.json() }).toMatchObject({
      status: 410,
      body: { error: 'link_expired' },
    });
    expect(await usersQueries.findById(sesame.db, first.id)).toBeUndefined();
    expect(await usersQueries.findById(sesame.db, second.id)).toMatchObject({ email_verified: false });
  });
});
