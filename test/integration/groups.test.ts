import * as oidc from 'openid-client';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { createGroup, deleteGroup, OnlyAllowedGroupError } from '../../src/admin/groups.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { groupsQueries } from '../../src/db/queries/groups.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { ClientValidationError, createClient, setClientAllowedGroups } from '../../src/oidc/clients.js';
import { asPage } from '../support/browser.js';
import { countAuthorizationCodes, countRows } from '../support/countRows.js';
import { eventually } from '../support/eventually.js';
import { beginLogin, discoverRp, finishLogin, Person, stepUp, type TestRp } from '../support/oidcFlow.js';
import { cliJsonOn, linesOf, type ProcessResult, runCliOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const NOTES_URI = 'https://notes.example.com/callback';
const WIKI_URI = 'https://wiki.example.com/callback';

describe('groups, allowed groups and custom claims', () => {
  let sesame: TestApp;
  let key: string;
  let notes: TestRp;
  let notesId: string;
  let wiki: TestRp;
  let ada: Person;
  let adaId: string;
  let bob: Person;
  let bobId: string;

  /** A person signs up through the wiki (open to all) and consents to everything it asks. */
  async function signUp(email: string, name: string) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(wiki, 'openid email profile groups');
    const next = await person.signUp(await person.open(pending.url), email, name);
    await person.continueToApp(next, WIKI_URI);
    const user = await usersQueries.findByEmail(sesame.db, email);
    return { person, id: user!.id };
  }

  /** As {@link signUp}, then the person proves the address (the welcome mail's link would). */
  async function signUpVerified(email: string, name: string) {
    const signedUp = await signUp(email, name);
    await usersQueries.update(sesame.db, signedUp.id, { emailVerified: true });
    return signedUp;
  }

  async function sesameCli(...args: string[]) {
    return runCliOn(sesame, args);
  }
  // biome-ignore lint/suspicious/noExplicitAny: CLI output is checked field by field.
  const json = (...args: string[]): Promise<any> => cliJsonOn(sesame, args);

  function expectOneLineError(result: ProcessResult, pattern: RegExp) {
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/^sesame: /);
    expect(result.stderr).toMatch(pattern);
  }

  async function api(method: string, path: string, options: { json?: unknown; body?: string } = {}) {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    let body = options.body;
    if (options.json !== undefined) body = JSON.stringify(options.json);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, { method, headers, body });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: test responses are checked field by field.
    return { status: response.status, text, json: (): any => JSON.parse(text) };
  }

  /** Signs in to an app with a fresh login in the person's browser session (their session already exists). */
  async function signInTo(person: Person, rp: TestRp, redirectUri: string, scope: string, extra = {}) {
    const pending = await beginLogin(rp, scope, extra);
    const callback = await person.continueToApp(pending.url, redirectUri);
    return { pending, callback };
  }

  beforeAll(async () => {
    sesame = await startTestApp();
    key = (await createApiKey(sesame.db, 'tests', 'test')).key;
    const notesClient = await createClient(sesame.db, { name: 'Notes', redirect_uris: [NOTES_URI] }, 'test');
    notesId = notesClient.client.client_id;
    notes = await discoverRp(
      sesame.baseUrl,
      { client_id: notesId, client_secret: notesClient.client_secret },
      NOTES_URI,
    );
    const wikiClient = await createClient(sesame.db, { name: 'Wiki', redirect_uris: [WIKI_URI] }, 'test');
    wiki = await discoverRp(
      sesame.baseUrl,
      { client_id: wikiClient.client.client_id, client_secret: wikiClient.client_secret },
      WIKI_URI,
    );
    ({ person: ada, id: adaId } = await signUpVerified('ada@example.com', 'Ada'));
    ({ person: bob, id: bobId } = await signUpVerified('bob@example.com', 'Bob'));
  });

  afterAll(() => sesame.stop());

  /** Signs a new person up at /admin and makes them an admin; their session has no step-up yet. */
  async function signUpAdmin(email: string) {
    const admin = new Person(sesame.baseUrl);
    const next = await admin.signUp(asPage(await admin.browser.follow('/admin')), email);
    expect(asPage(await admin.browser.follow(next)).status).toBe(403);
    const user = await usersQueries.findByEmail(sesame.db, email);
    await usersQueries.update(sesame.db, user!.id, { isAdmin: true });
    return { admin, adminId: user!.id };
  }

  /** Moves a user's step-ups six minutes into the past: five minutes later they no longer count. */
  async function ageStepUps(userId: string) {
    await sesame.db
      .updateTable('step_ups')
      .set({ verified_at: new Date(Date.now() - 6 * 60 * 1000) })
      .where('user_id', '=', userId)
      .execute();
  }

  it('advertises the groups scope and claim in discovery', async () => {
    const discovery = (await (await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)).json()) as {
      scopes_supported: string[];
      claims_supported: string[];
    };
    expect(discovery.scopes_supported).toContain('groups');
    expect(discovery.claims_supported).toContain('groups');
  }, 120_000);

  it('creates, lists, renames groups and manages members with the CLI (--json), audited', async () => {
    const created = await json('groups', 'create', '--name', 'Finance');
    expect(created).toMatchObject({ id: expect.any(String), name: 'Finance', claims: {} });
    const added = await json('groups', 'add-member', 'finance', 'ada@example.com');
    expect(added).toMatchObject({ group: 'Finance', user_id: adaId, member: true });
    const listed = await json('groups', 'list');
    expect(listed).toEqual([expect.objectContaining({ name: 'Finance', member_count: 1 })]);
    const renamed = await json('groups', 'rename', created.id, '--name', 'finance-team');
    expect(renamed.name).toBe('finance-team');
    const shown = await json('groups', 'show', 'FINANCE-TEAM');
    expect(shown.members).toEqual([
      { id: adaId, email: 'ada@example.com', name: 'Ada', email_verified: true },
    ]);
    const actions = (await auditQueries.recent(sesame.db, 20)).map((event) => event.action);
    expect(actions).toEqual(expect.arrayContaining(['group.create', 'group.add_member', 'group.rename']));
    // The human form is a table.
    const human = await sesameCli('groups', 'list');
    expect(human.stdout).toMatch(/^ID\s+NAME\s+MEMBERS/);
  }, 120_000);

  it('refuses bad CLI input with one line naming the flag or the rule, and changes nothing', async () => {
    expectOneLineError(await sesameCli('groups', 'create', '--name', '   ', '--json'), /--name: is required/);
    expectOneLineError(
      await sesameCli('groups', 'create', '--name', 'x'.repeat(101), '--json'),
      /--name: must be at most 100 characters/,
    );
    expectOneLineError(
      await sesameCli('groups', 'create', '--name', 'Finance-Team', '--json'),
      /already exists/,
    );
    expectOneLineError(
      await sesameCli('groups', 'add-member', 'nope', adaId, '--json'),
      /No group with id or name nope/,
    );
    expectOneLineError(
      await sesameCli('groups', 'add-member', 'finance-team', 'nobody@example.com', '--json'),
      /No user with id or email nobody@example.com/,
    );
    expectOneLineError(
      await sesameCli('users', 'set-claim', 'ada@example.com', 'email', 'x@evil.example', '--json'),
      /email is a registered OIDC claim or one Sesame issues itself/,
    );
    expectOneLineError(
      await sesameCli('groups', 'set-claim', 'finance-team', 'groups', '["admins"]', '--json'),
      /groups is a registered OIDC claim/,
    );
    expectOneLineError(
      await sesameCli('users', 'set-claim', 'ada@example.com', 'k'.repeat(65), '1', '--json'),
      /at most 64 characters/,
    );
    expectOneLineError(
      await sesameCli(
        'users',
        'set-claim',
        'ada@example.com',
        'big',
        JSON.stringify('x'.repeat(3000)),
        '--json',
      ),
      /at most 2048 bytes/,
    );
    expectOneLineError(
      await sesameCli('clients', 'update', notesId, '--allowed-group', 'no-such-group', '--json'),
      /--allowed-group: no group with id or name no-such-group/,
    );
    expect(await countRows(sesame.db, 'groups')).toBe(1);
    expect((await usersQueries.findById(sesame.db, adaId))!.claims).toEqual({});
  }, 120_000);

  it('releases groups with the groups scope and custom claims with profile, in the ID token and userinfo; the user wins', async () => {
    await json('groups', 'set-claim', 'finance-team', 'department', 'Finance');
    await json('groups', 'set-claim', 'finance-team', 'cost_center', '4711');
    const claim = await json('users', 'set-claim', 'ada@example.com', 'department', '{"name":"Treasury"}');
    expect(claim).toEqual({
      id: adaId,
      email: 'ada@example.com',
      claims: { department: { name: 'Treasury' } },
    });

    // The CLI writes to the database, and the server hears of each change by its row notice a
    // moment after the commit (through PgBouncer, sometimes after the next request): Ada signs
    // in until her tokens carry the claims just set.
    let tokens!: Awaited<ReturnType<typeof finishLogin>>;
    const signedInWithTheClaims = async () => {
      const { pending, callback } = await signInTo(ada, wiki, WIKI_URI, 'openid profile groups');
      tokens = await finishLogin(wiki, pending, callback);
      const claims = tokens.claims()!;
      return (
        (claims.department as { name?: string } | undefined)?.name === 'Treasury' &&
        claims.cost_center === 4711
      );
    };
    expect(await eventually(signedInWithTheClaims)).toBe(true);
    const idToken = tokens.claims()!;
    expect(idToken.groups).toEqual(['finance-team']);
    expect(idToken.department).toEqual({ name: 'Treasury' });
    expect(idToken.cost_center).toBe(4711);
    expect(idToken.name).toBe('Ada');
    const userinfo = await oidc.fetchUserInfo(wiki.config, tokens.access_token, adaId);
    expect(userinfo).toMatchObject({
      groups: ['finance-team'],
      department: { name: 'Treasury' },
      cost_center: 4711,
    });

    // Without profile, no custom claims; without groups, no groups claim.
    const narrow = await signInTo(ada, wiki, WIKI_URI, 'openid groups');
    const narrowClaims = (await finishLogin(wiki, narrow.pending, narrow.callback)).claims()!;
    expect(narrowClaims.groups).toEqual(['finance-team']);
    expect(narrowClaims.department).toBeUndefined();
    const profileOnly = await signInTo(ada, wiki, WIKI_URI, 'openid profile');
    const profileClaims = (await finishLogin(wiki, profileOnly.pending, profileOnly.callback)).claims()!;
    expect(profileClaims.groups).toBeUndefined();
    expect(profileClaims.department).toEqual({ name: 'Treasury' });

    // Unset and membership changes show in later answers: nothing is served stale. The CLI
    // writes to the database, and the server hears of it by its row notice a moment after
    // the commit (through PgBouncer, sometimes after the next request).
    const latest = () => oidc.fetchUserInfo(wiki.config, tokens.access_token, adaId);
    await json('users', 'unset-claim', adaId, 'department');
    expect(await eventually(async () => (await latest()).department === 'Finance')).toBe(true);
    await json('groups', 'remove-member', 'finance-team', adaId);
    const leftTheGroup = async () => {
      const after = await latest();
      return (after.groups as string[]).length === 0 && after.department === undefined;
    };
    expect(await eventually(leftTheGroup)).toBe(true);
    // Back in the group, as the next test needs her: waited for the same way.
    await json('groups', 'add-member', 'finance-team', adaId);
    const backInTheGroup = async () => ((await latest()).groups as string[]).includes('finance-team');
    expect(await eventually(backInTheGroup)).toBe(true);
  }, 120_000);

  it('refuses claim names every JavaScript object has, null and numbers JSON would change, on the CLI and the API', async () => {
    expectOneLineError(
      await sesameCli('groups', 'set-claim', 'finance-team', 'constructor', '"x"', '--json'),
      /constructor is the name of a property every JavaScript object has/,
    );
    expectOneLineError(
      await sesameCli('users', 'set-claim', 'ada@example.com', 'toString', 'x', '--json'),
      /toString is the name of a property every JavaScript object has/,
    );
    expectOneLineError(
      await sesameCli('groups', 'set-claim', 'finance-team', 'account_no', '12345678901234567890', '--json'),
      /cannot be kept exactly as a number .* quote it to keep it as a string/,
    );
    expectOneLineError(
      await sesameCli('groups', 'set-claim', 'finance-team', 'big', '1e400', '--json'),
      /^sesame: 1e400 cannot be kept exactly as a number/,
    );
    expectOneLineError(
      await sesameCli('groups', 'set-claim', 'finance-team', 'sub_jwk', '{"kty":"EC"}', '--json'),
      /sub_jwk is a registered OIDC claim/,
    );
    const refused = await api('PUT', '/groups/finance-team/claims/valueOf', { json: { value: 1 } });
    expect(refused.status).toBe(400);
    expect(refused.json().error_description).toMatch(
      /valueOf is the name of a property every JavaScript object has/,
    );
    expect((await api('PUT', `/users/${adaId}/claims/gone`, { json: { value: null } })).status).toBe(400);
    expect(
      (await api('PUT', `/users/${adaId}/claims/n`, { body: '{"value":12345678901234567890}' })).status,
    ).toBe(400);
    const quoted = await json('groups', 'set-claim', 'finance-team', 'account_no', '"12345678901234567890"');
    expect(quoted.claims.account_no).toBe('12345678901234567890');
    await json('groups', 'unset-claim', 'finance-team', 'account_no');
    expect((await groupsQueries.findByIdOrName(sesame.db, 'finance-team'))!.claims).toEqual({
      department: 'Finance',
      cost_center: 4711,
    });
    expect((await usersQueries.findById(sesame.db, adaId))!.claims).toEqual({});
  }, 120_000);

  it('signs a member in whole when stored claims carry names or values no longer accepted: they are left out', async () => {
    // Rows from before such names were refused: a group's `constructor` claim left its members'
    // ID tokens without sub, amr and auth_time, and the app refused the sign-in.
    const legacy = await json('groups', 'create', '--name', 'legacy');
    await json('groups', 'add-member', 'legacy', adaId);
    await groupsQueries.setClaims(sesame.db, legacy.id, {
      constructor: 'x',
      hasOwnProperty: 1,
      shift: 'night',
    });
    await usersQueries.setClaims(sesame.db, adaId, { toString: 'y', retired: null });
    // What the admin sees says which of them no app gets.
    const shown = await sesameCli('groups', 'show', 'legacy');
    expect(shown.stdout).toContain(
      'not released: constructor, hasOwnProperty (names or values Sesame no longer allows; unset them)',
    );
    expect((await json('groups', 'show', 'legacy')).unreleased_claims).toEqual([
      'constructor',
      'hasOwnProperty',
    ]);
    const { admin } = await signUpAdmin('claims-admin@example.com');
    const page = asPage(await admin.browser.follow(`/admin/groups/${legacy.id}`));
    expect(page.text.match(/<strong>Not released:<\/strong>/g)).toHaveLength(2);

    let tokens!: Awaited<ReturnType<typeof finishLogin>>;
    const signedInWithTheLegacyClaims = async () => {
      const { pending, callback } = await signInTo(ada, wiki, WIKI_URI, 'openid email profile groups');
      tokens = await finishLogin(wiki, pending, callback);
      return tokens.claims()!.shift === 'night';
    };
    expect(await eventually(signedInWithTheLegacyClaims)).toBe(true);
    const idToken = tokens.claims()!;
    expect(idToken).toMatchObject({
      sub: adaId,
      email: 'ada@example.com',
      name: 'Ada',
      amr: expect.any(Array),
      auth_time: expect.any(Number),
      groups: ['finance-team', 'legacy'],
      department: 'Finance',
    });
    for (const left of ['constructor', 'hasOwnProperty', 'toString', 'retired'])
      expect(Object.hasOwn(idToken, left)).toBe(false);
    const userinfo = await oidc.fetchUserInfo(wiki.config, tokens.access_token, adaId);
    expect(userinfo).toMatchObject({ sub: adaId, shift: 'night', department: 'Finance' });
    for (const left of ['constructor', 'hasOwnProperty', 'toString', 'retired'])
      expect(Object.hasOwn(userinfo, left)).toBe(false);

    await usersQueries.setClaims(sesame.db, adaId, {});
    await json('groups', 'delete', 'legacy', '--yes');
    const latest = () => oidc.fetchUserInfo(wiki.config, tokens.access_token, adaId);
    expect(await eventually(async () => (await latest()).shift === undefined)).toBe(true);
  }, 120_000);

  it("lets only members of a client's allowed groups sign in; others see a page and the app gets access_denied, with nothing issued", async () => {
    const updated = await json('clients', 'update', notesId, '--allowed-group', 'finance-team');
    expect(updated.allowed_groups).toEqual(['finance-team']);

    // Ada (a member) signs in as usual.
    const allowed = await signInTo(ada, notes, NOTES_URI, 'openid groups');
    const adaTokens = await finishLogin(notes, allowed.pending, allowed.callback);
    expect(adaTokens.claims()!.groups).toEqual(['finance-team']);
    // Out of the group, her access token no longer reaches userinfo, and introspection calls it
    // inactive; back in, both as before.
    const team = (await groupsQueries.findByIdOrName(sesame.db, 'finance-team'))!;
    // Written straight to the database, the change reaches the server by its row notice, a
    // moment after the commit (through PgBouncer, sometimes after the next request).
    const userinfoStatus = () =>
      oidc.fetchUserInfo(notes.config, adaTokens.access_token, adaId).then(
        () => 200,
        (error: { status?: number }) => error.status,
      );
    // A resource server asking introspection (here Notes itself) hears the same: inactive.
    const active = async () => (await oidc.tokenIntrospection(notes.config, adaTokens.access_token)).active;
    expect(await active()).toBe(true);
    await groupsQueries.removeMember(sesame.db, team.id, adaId);
    expect(await eventually(async () => (await userinfoStatus()) === 401)).toBe(true);
    expect(await active()).toBe(false);
    await groupsQueries.addMember(sesame.db, team.id, adaId);
    expect(await eventually(async () => (await userinfoStatus()) === 200)).toBe(true);
    expect(await active()).toBe(true);
    expect((await oidc.fetchUserInfo(notes.config, adaTokens.access_token, adaId)).groups).toEqual([
      'finance-team',
    ]);

    // Bob (not a member) has a session: he sees the refusal page, not the consent page.
    const grantsBefore = await oidcModelsQueries.latestGrantOf(sesame.db, bobId, notesId);
    expect(grantsBefore).toBeUndefined();
    const codesBefore = await countAuthorizationCodes(sesame.db);
    const pending = await beginLogin(notes, 'openid');
    const page = asPage(await bob.browser.follow(pending.url));
    expect(page.status).toBe(403);
    expect(page.text).toContain("You don't have access to Notes");
    expect(page.text).not.toContain('>Allow<');
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    const back = await bob.browser.request(`/interaction/${uid}/abort`, { form: { _csrf: page.csrf() } });
    const landed = await bob.browser.follow(back.location()!, (url) => url.startsWith(NOTES_URI));
    const callback = new URL((landed as { stoppedAt: string }).stoppedAt);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('code')).toBeNull();
    await expect(finishLogin(notes, pending, callback.href)).rejects.toMatchObject({
      error: 'access_denied',
    });

    // Silent sign-in (prompt=none) with his session gets access_denied at once.
    const silent = await beginLogin(notes, 'openid', { prompt: 'none' });
    const silentEnd = await bob.browser.follow(silent.url, (url) => url.startsWith(NOTES_URI));
    const silentCallback = new URL((silentEnd as { stoppedAt: string }).stoppedAt);
    expect(silentCallback.searchParams.get('error')).toBe('access_denied');
    expect(silentCallback.searchParams.get('code')).toBeNull();

    // Signing in afresh (no session) ends the same way after the passkey.
    const fresh = bob.inNewBrowser();
    const freshPending = await beginLogin(notes, 'openid');
    const next = await fresh.signIn(await fresh.open(freshPending.url));
    const freshPage = asPage(await fresh.browser.follow(next));
    expect(freshPage.status).toBe(403);
    expect(freshPage.text).toContain('Notes');

    expect(await oidcModelsQueries.latestGrantOf(sesame.db, bobId, notesId)).toBeUndefined();
    expect(await countAuthorizationCodes(sesame.db)).toBe(codesBefore);

    // --allow-all-groups opens the app again, once the server hears of it by its row notice (a
    // moment after the CLI's commit): until then Bob still gets the refusal page.
    expect((await json('clients', 'update', notesId, '--allow-all-groups')).allowed_groups).toEqual([]);
    const letIn = async () =>
      asPage(await bob.browser.follow((await beginLogin(notes, 'openid')).url)).status === 200;
    expect(await eventually(letIn)).toBe(true);
    const open = await signInTo(bob, notes, NOTES_URI, 'openid');
    expect((await finishLogin(notes, open.pending, open.callback)).claims()!.sub).toBe(bobId);
  }, 120_000);

  it('manages groups, members, claims and allowed groups on the admin API, with 4xx on bad input', async () => {
    const created = await api('POST', '/groups', { json: { name: 'Editors' } });
    expect(created.status).toBe(201);
    const editors = created.json();
    expect(editors).toMatchObject({ name: 'Editors', claims: {} });
    expect((await api('POST', '/groups', { json: { name: 'editors' } })).status).toBe(409);
    expect((await api('POST', '/groups', { json: { name: 42 } })).status).toBe(400);
    expect((await api('POST', '/groups', { json: { name: 'x', extra: 1 } })).status).toBe(400);
    expect((await api('POST', '/groups', { body: '{"name":' })).status).toBe(400);
    expect((await api('POST', '/groups', { json: { name: '' } })).status).toBe(400);

    expect((await api('PUT', `/groups/${editors.id}/members/bob@example.com`)).json()).toMatchObject({
      member: true,
      user_id: bobId,
    });
    expect((await api('PUT', '/groups/Editors/members/nobody@example.com')).status).toBe(404);
    expect((await api('PUT', '/groups/nope/members/bob@example.com')).status).toBe(404);

    const claim = await api('PUT', '/groups/editors/claims/level', { json: { value: 3 } });
    expect(claim.status).toBe(200);
    expect(claim.json().claims).toEqual({ level: 3 });
    expect((await api('PUT', '/groups/editors/claims/sub', { json: { value: 'x' } })).status).toBe(400);
    expect((await api('PUT', '/groups/editors/claims/level', { json: {} })).status).toBe(400);
    expect((await api('PUT', `/users/${bobId}/claims/nickname`, { json: { value: 'b' } })).status).toBe(400);
    const userClaim = await api('PUT', `/users/${bobId}/claims/level`, { json: { value: 5 } });
    expect(userClaim.json()).toEqual({ id: bobId, email: 'bob@example.com', claims: { level: 5 } });
    expect((await api('DELETE', `/users/${bobId}/claims/level`)).json().claims).toEqual({});
    expect((await api('PUT', '/users/nobody@example.com/claims/level', { json: { value: 1 } })).status).toBe(
      404,
    );

    const patched = await api('PATCH', `/clients/${notesId}`, { json: { allowed_groups: ['Editors'] } });
    expect(patched.status).toBe(200);
    expect(patched.json().allowed_groups).toEqual(['Editors']);
    expect((await api('PATCH', `/clients/${notesId}`, { json: { allowed_groups: ['ghosts'] } })).status).toBe(
      400,
    );
    expect((await api('PATCH', `/clients/${notesId}`, { json: { allowed_groups: 'Editors' } })).status).toBe(
      400,
    );
    expect((await api('GET', `/clients/${notesId}`)).json().allowed_groups).toEqual(['Editors']);

    const renamed = await api('PATCH', '/groups/editors', { json: { name: 'Writers' } });
    expect(renamed.json().name).toBe('Writers');
    expect((await api('PATCH', '/groups/writers', { json: { name: 'finance-team' } })).status).toBe(409);
    const shown = await api('GET', '/groups/Writers');
    expect(shown.json().members).toEqual([expect.objectContaining({ email: 'bob@example.com' })]);
    expect((await api('GET', `/clients/${notesId}`)).json().allowed_groups).toEqual(['Writers']);

    expect((await api('DELETE', '/groups/Writers/members/bob@example.com')).json().member).toBe(false);
    // Notes' only allowed group: deleting it would open Notes to everyone.
    expect((await api('DELETE', '/groups/Writers')).status).toBe(409);
    expect((await api('PATCH', `/clients/${notesId}`, { json: { allowed_groups: [] } })).status).toBe(200);
    expect((await api('DELETE', '/groups/Writers')).status).toBe(204);
    expect((await api('DELETE', '/groups/Writers')).status).toBe(404);
    expect((await api('GET', `/clients/${notesId}`)).json().allowed_groups).toEqual([]);
    expect(await groupsQueries.findByIdOrName(sesame.db, editors.id)).toBeUndefined();
  }, 120_000);

  it('puts an account whose address nobody proved in a group, or gives it a claim, only when told so: CLI, API and admin page', async () => {
    // With open sign-up anyone can claim an address: eve@example.com may be a stranger's account.
    const { id: eveId } = await signUp('eve@example.com', 'Eve');
    await createGroup(sesame.db, 'Treasury', 'test');
    const isMember = async () =>
      (
        await groupsQueries.members(
          sesame.db,
          (await groupsQueries.findByIdOrName(sesame.db, 'Treasury'))!.id,
        )
      )
        .map((member) => member.id)
        .includes(eveId);
    const claims = async () => (await usersQueries.findById(sesame.db, eveId))!.claims;

    expectOneLineError(
      await sesameCli('groups', 'add-member', 'Treasury', 'eve@example.com', '--json'),
      /nobody has proved they receive mail at eve@example\.com.*add --unverified/,
    );
    expectOneLineError(
      await sesameCli('users', 'set-claim', 'eve@example.com', 'level', '9', '--json'),
      /nobody has proved they receive mail at eve@example\.com.*add --unverified/,
    );
    const refused = await api('PUT', '/groups/Treasury/members/eve@example.com');
    expect(refused.status).toBe(409);
    expect(refused.json()).toMatchObject({ error: 'email_unverified' });
    expect((await api('PUT', `/users/${eveId}/claims/level`, { json: { value: 9 } })).status).toBe(409);
    expect(
      (await api('PUT', '/groups/Treasury/members/eve@example.com', { json: { unverified: 'yes' } })).status,
    ).toBe(400);
    expect(await isMember()).toBe(false);
    expect(await claims()).toEqual({});

    // Told so, each adds her; the audit records that the address was unproven.
    expect(await json('groups', 'add-member', 'Treasury', 'eve@example.com', '--unverified')).toMatchObject({
      member: true,
    });
    expect(await isMember()).toBe(true);
    const shown = await sesameCli('groups', 'show', 'Treasury');
    expect(shown.stdout).toContain('eve@example.com (unverified)');
    expect((await api('DELETE', '/groups/Treasury/members/eve@example.com')).status).toBe(200);
    const added = await api('PUT', '/groups/Treasury/members/eve@example.com', {
      json: { unverified: true },
    });
    expect(added.json()).toMatchObject({ member: true, user_id: eveId });
    expect((await api('GET', '/groups/Treasury')).json().members).toEqual([
      expect.objectContaining({ email: 'eve@example.com', email_verified: false }),
    ]);
    expect(await json('users', 'set-claim', 'eve@example.com', 'level', '9', '--unverified')).toMatchObject({
      claims: { level: 9 },
    });
    const claimed = await api('PUT', `/users/${eveId}/claims/team`, {
      json: { value: 'b', unverified: true },
    });
    expect(claimed.json().claims).toEqual({ level: 9, team: 'b' });
    // Taking a claim away needs no such word.
    expect((await api('DELETE', `/users/${eveId}/claims/team`)).json().claims).toEqual({ level: 9 });
    const audit = await auditQueries.recent(sesame.db, 20);
    expect(audit).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          action: 'group.add_member',
          details: expect.objectContaining({ email_verified: false }),
        }),
      ]),
    );

    // The admin page refuses too, offers the box that says so, and marks her as unverified.
    await api('DELETE', '/groups/Treasury/members/eve@example.com');
    const { admin } = await signUpAdmin('gatekeeper@example.com');
    const treasury = (await groupsQueries.findByIdOrName(sesame.db, 'Treasury'))!;
    const groupPath = `/admin/groups/${treasury.id}`;
    const csrf = asPage(await admin.browser.follow(groupPath)).csrf();
    expect((await stepUp(admin, csrf)).status).toBe(200);
    const pageRefused = await admin.browser.request(`${groupPath}/members`, {
      form: { _csrf: csrf, user: 'eve@example.com' },
    });
    expect(pageRefused.status).toBe(409);
    expect(pageRefused.text).toContain('nobody has proved they receive mail at eve@example.com');
    expect(pageRefused.text).toContain('Add this unverified account anyway');
    expect(await isMember()).toBe(false);
    const pageAdded = await admin.browser.request(`${groupPath}/members`, {
      form: { _csrf: csrf, user: 'eve@example.com', unverified: 'on' },
    });
    expect(pageAdded.status).toBe(302);
    expect(await isMember()).toBe(true);
    expect(asPage(await admin.browser.follow(groupPath)).text).toMatch(
      /eve@example\.com <span class="hint">\(unverified/,
    );
  }, 120_000);

  it('deletes a group with the CLI, which needs --yes without a terminal', async () => {
    await json('groups', 'create', '--name', 'Temp');
    expectOneLineError(await sesameCli('groups', 'delete', 'Temp', '--json'), /--yes/);
    expect(await json('groups', 'delete', 'temp', '--yes')).toMatchObject({ name: 'Temp', deleted: true });
    expect(await groupsQueries.findByIdOrName(sesame.db, 'Temp')).toBeUndefined();
  }, 60_000);

  it("refuses to delete an app's only allowed group, which would open the app to everyone", async () => {
    await json('groups', 'create', '--name', 'Solo');
    await json('clients', 'update', notesId, '--allowed-group', 'Solo');
    expectOneLineError(
      await sesameCli('groups', 'delete', 'Solo', '--yes'),
      new RegExp(`Solo is the only group that client ${notesId} admits`),
    );
    const viaApi = await api('DELETE', '/groups/Solo');
    expect(viaApi.status).toBe(409);
    expect(viaApi.json()).toMatchObject({ error: 'conflict', clients: [notesId] });
    expect(await groupsQueries.findByIdOrName(sesame.db, 'Solo')).toBeDefined();
    expect((await json('clients', 'show', notesId)).allowed_groups).toEqual(['Solo']);

    // With another allowed group beside it, it goes, and the app still admits only that one.
    await json('groups', 'create', '--name', 'Backup');
    await json('clients', 'update', notesId, '--allowed-group', 'Solo', '--allowed-group', 'Backup');
    expect(await json('groups', 'delete', 'Solo', '--yes')).toMatchObject({ name: 'Solo', deleted: true });
    expect((await json('clients', 'show', notesId)).allowed_groups).toEqual(['Backup']);
    await json('clients', 'update', notesId, '--allow-all-groups');
    await json('groups', 'delete', 'Backup', '--yes');
  }, 60_000);

  // Concurrent transactions need Postgres: PGlite serves one connection, one at a time.
  const itOnPostgres = onPostgres ? it : it.skip;

  /**
   * Rounds of a race on an app of its own that allows two fresh groups, `a` and `b`; after each,
   * it must admit exactly one. 20 rounds make a lost race all but certain.
   */
  async function raceRounds(name: string, race: (app: string, a: string, b: string) => Promise<void>) {
    const { client } = await createClient(sesame.db, { name, redirect_uris: [NOTES_URI] }, 'test');
    const app = client.client_id;
    for (let n = 0; n < 20; n++) {
      const a = await createGroup(sesame.db, `${name}-a-${n}`, 'test');
      const b = await createGroup(sesame.db, `${name}-b-${n}`, 'test');
      await setClientAllowedGroups(sesame.db, app, [a.id, b.id], 'test');
      await race(app, a.id, b.id);
      expect(await groupsQueries.allowedIdsForClient(sesame.db, app)).toHaveLength(1);
    }
  }

  itOnPostgres(
    "refuses one of two concurrent deletes of an app's two allowed groups, leaving it the other",
    async () => {
      await raceRounds('Raced deletes', async (_app, a, b) => {
        const deletes = await Promise.allSettled([
          deleteGroup(sesame.db, a, 'test'),
          deleteGroup(sesame.db, b, 'test'),
        ]);
        expect(deletes.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
        const refused = deletes.find((result) => result.status === 'rejected');
        expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(OnlyAllowedGroupError);
      });
    },
    120_000,
  );

  itOnPostgres(
    'refuses either the narrowing of an app to one group or the concurrent delete of that group',
    async () => {
      await raceRounds('Raced update', async (app, a) => {
        const [narrowed, deleted] = await Promise.allSettled([
          setClientAllowedGroups(sesame.db, app, [a], 'test'),
          deleteGroup(sesame.db, a, 'test'),
        ]);
        if (narrowed.status === 'fulfilled') {
          expect((deleted as PromiseRejectedResult).reason).toBeInstanceOf(OnlyAllowedGroupError);
        } else {
          // The group was gone by the time the update named it: the app keeps the other one.
          expect(narrowed.reason).toBeInstanceOf(ClientValidationError);
          expect(deleted.status).toBe('fulfilled');
        }
      });
    },
    120_000,
  );

  it("lets an admin manage groups, members, claims and an app's allowed groups on the admin pages, with CSRF", async () => {
    const { admin, adminId } = await signUpAdmin('root@example.com');

    const list = asPage(await admin.browser.follow('/admin/groups'));
    expect(list.status).toBe(200);
    expect(list.text).toContain('Create group');
    const groupsBefore = await countRows(sesame.db, 'groups');
    // Without the CSRF token nothing is created.
    expect((await admin.browser.request('/admin/groups', { form: { name: 'Ops' } })).status).toBe(403);
    expect(await countRows(sesame.db, 'groups')).toBe(groupsBefore);
    // A bad name is said beside the field.
    const bad = await admin.browser.request('/admin/groups', { form: { _csrf: list.csrf(), name: ' ' } });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('name: is required');

    const created = await admin.browser.request('/admin/groups', {
      form: { _csrf: list.csrf(), name: 'Ops' },
    });
    expect(created.status).toBe(302);
    const groupPath = new URL(created.location()!).pathname;
    const ops = (await groupsQueries.findByIdOrName(sesame.db, 'Ops'))!;
    expect(groupPath).toBe(`/admin/groups/${ops.id}`);

    const page = asPage(await admin.browser.follow(groupPath));
    const csrf = page.csrf();
    // Changing a group needs a passkey step-up (see the next test).
    expect((await stepUp(admin, csrf)).status).toBe(200);
    const add = await admin.browser.request(`${groupPath}/members`, {
      form: { _csrf: csrf, user: 'ada@example.com' },
    });
    expect(add.status).toBe(302);
    expect((await groupsQueries.members(sesame.db, ops.id)).map((m) => m.email)).toEqual(['ada@example.com']);
    const noUser = await admin.browser.request(`${groupPath}/members`, {
      form: { _csrf: csrf, user: 'x@example.com' },
    });
    expect(noUser.status).toBe(400);
    expect(noUser.text).toContain('No user with id or email x@example.com');

    const reserved = await admin.browser.request(`${groupPath}/claims`, {
      form: { _csrf: csrf, key: 'email', value: 'x' },
    });
    expect(reserved.status).toBe(400);
    expect(reserved.text).toContain('email is a registered OIDC claim');
    const set = await admin.browser.request(`${groupPath}/claims`, {
      form: { _csrf: csrf, key: 'shift', value: '["night"]' },
    });
    expect(set.status).toBe(302);
    expect((await groupsQueries.findByIdOrName(sesame.db, 'Ops'))!.claims).toEqual({ shift: ['night'] });
    await admin.browser.request(`${groupPath}/claims/remove`, { form: { _csrf: csrf, key: 'shift' } });
    expect((await groupsQueries.findByIdOrName(sesame.db, 'Ops'))!.claims).toEqual({});
    const renamed = await admin.browser.request(`${groupPath}/rename`, {
      form: { _csrf: csrf, name: 'Operations' },
    });
    expect(renamed.status).toBe(302);

    // The client page lists the groups; saving who may sign in needs a passkey step-up.
    const clientPage = asPage(await admin.browser.follow(`/admin/clients/${notesId}`));
    expect(clientPage.text).toContain('Allowed groups');
    expect(clientPage.text).toContain('Operations');
    const allowedPath = `/admin/clients/${notesId}/allowed-groups`;
    await ageStepUps(adminId);
    const unconfirmed = await admin.browser.request(allowedPath, {
      form: { _csrf: clientPage.csrf(), group: ops.id },
    });
    expect(unconfirmed.status).toBe(403);
    expect((await groupsQueries.allowedForClient(sesame.db, notesId)).map((g) => g.name)).toEqual([]);
    expect((await stepUp(admin, clientPage.csrf())).status).toBe(200);
    const saved = await admin.browser.request(allowedPath, {
      form: { _csrf: clientPage.csrf(), group: ops.id },
    });
    expect(saved.status).toBe(302);
    expect((await groupsQueries.allowedForClient(sesame.db, notesId)).map((g) => g.name)).toEqual([
      'Operations',
    ]);
    const cleared = await admin.browser.request(allowedPath, { form: { _csrf: clientPage.csrf() } });
    expect(cleared.status).toBe(302);
    expect(await groupsQueries.allowedForClient(sesame.db, notesId)).toEqual([]);

    const removed = await admin.browser.request(`${groupPath}/members/remove`, {
      form: { _csrf: csrf, user: adaId },
    });
    expect(removed.status).toBe(302);
    expect(await groupsQueries.members(sesame.db, ops.id)).toEqual([]);
    const deleted = await admin.browser.request(`${groupPath}/delete`, { form: { _csrf: csrf } });
    expect(deleted.status).toBe(302);
    expect(await groupsQueries.findByIdOrName(sesame.db, ops.id)).toBeUndefined();
    const actions = (await auditQueries.recent(sesame.db, 50)).map((event) => event.action);
    expect(actions).toEqual(
      expect.arrayContaining(['group.delete', 'group.set_claim', 'group.unset_claim', 'client.update']),
    );
  }, 60_000);

  it("refuses an app's allowed groups naming a group deleted since the page was shown, or too many, with 400 and a way back, and changes nothing", async () => {
    const { admin } = await signUpAdmin('tabs@example.com');
    const kept = await createGroup(sesame.db, 'Kept', 'test');
    const gone = await createGroup(sesame.db, 'Gone', 'test');
    const clientPage = asPage(await admin.browser.follow(`/admin/clients/${notesId}`));
    expect((await stepUp(admin, clientPage.csrf())).status).toBe(200);
    const allowedPath = `/admin/clients/${notesId}/allowed-groups`;
    const before = await groupsQueries.allowedForClient(sesame.db, notesId);
    // Another tab deleted a group this page still offers; both were ticked.
    await sesame.db.deleteFrom('groups').where('id', '=', gone.id).execute();
    const stale = await admin.browser.request(allowedPath, {
      body: new URLSearchParams([
        ['_csrf', clientPage.csrf()],
        ['group', kept.id],
        ['group', gone.id],
      ]).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(stale.status).toBe(400);
    expect(stale.text).toContain('A group you ticked no longer exists');
    expect(stale.text).toContain(`<a href="/admin/clients/${notesId}#allowed-groups">Go to the client</a>`);
    expect(await groupsQueries.allowedForClient(sesame.db, notesId)).toEqual(before);

    // Ticking 21 groups or more sends as many fields of one name, which the form parser makes
    // an object: they are saved as any fewer are; past the 50 an app may name, the rule says so.
    const many: Awaited<ReturnType<typeof createGroup>>[] = [];
    for (let i = 0; i < 51; i++) many.push(await createGroup(sesame.db, `Team ${i}`, 'test'));
    const tick = (groups: typeof many) =>
      admin.browser.request(allowedPath, {
        body: new URLSearchParams([
          ['_csrf', clientPage.csrf()],
          ...groups.map((group) => ['group', group.id]),
        ]).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
    expect((await tick(many.slice(0, 21))).status).toBe(302);
    expect(await groupsQueries.allowedForClient(sesame.db, notesId)).toHaveLength(21);
    const tooMany = await tick(many);
    expect(tooMany.status).toBe(400);
    expect(tooMany.text).toContain('The allowed groups were refused: at most 50 groups.');
    expect(await groupsQueries.allowedForClient(sesame.db, notesId)).toHaveLength(21);
    expect((await tick([])).status).toBe(302);
    const made = [kept, ...many].map((group) => group.id);
    await sesame.db.deleteFrom('groups').where('id', 'in', made).execute();
  });

  it("changes a group's members, claims or name on the admin pages only after a passkey step-up, as an app's allowed groups", async () => {
    // Bob is in Payroll, and its claim gives him level 1.
    const payroll = await json('groups', 'create', '--name', 'Payroll');
    await json('groups', 'add-member', 'Payroll', 'bob@example.com');
    await json('groups', 'set-claim', 'Payroll', 'level', '1');
    const { admin, adminId } = await signUpAdmin('chief@example.com');
    // Each change the group page makes, by the form that makes it.
    const forms: [string, Record<string, string>][] = [
      ['members', { user: 'ada@example.com' }],
      ['claims', { key: 'role', value: 'superuser' }],
      ['claims/remove', { key: 'level' }],
      ['members/remove', { user: bobId }],
      ['rename', { name: 'Admins' }],
    ];
    const groupPath = `/admin/groups/${payroll.id}`;
    const page = asPage(await admin.browser.follow(groupPath));
    // Every form of the group page asks the page's script for a step-up before it posts.
    for (const [action] of forms) {
      expect(page.text).toMatch(new RegExp(`action="${groupPath}/${action}"[^>]*data-step-up>`));
    }
    expect(page.text).toContain('id="status"');

    const csrf = page.csrf();
    const changes = async () => {
      const answers = [];
      for (const [action, form] of forms) {
        answers.push(
          await admin.browser.request(`${groupPath}/${action}`, { form: { _csrf: csrf, ...form } }),
        );
      }
      return answers;
    };
    const state = async () => ({
      group: await groupsQueries.findByIdOrName(sesame.db, payroll.id),
      members: (await groupsQueries.members(sesame.db, payroll.id)).map((member) => member.email),
      audit: await countRows(sesame.db, 'audit_events'),
    });
    const before = await state();
    expect(before.members).toEqual(['bob@example.com']);
    const expectAllRefused = async () => {
      for (const refused of await changes()) {
        expect(refused.status).toBe(403);
        expect(refused.headers.get('content-type')).toContain('text/html');
        expect(refused.text).toContain('Confirm with one of your passkeys');
      }
      expect(await state()).toEqual(before);
    };
    await expectAllRefused();
    // A step-up older than five minutes does not count either.
    expect((await stepUp(admin, csrf)).status).toBe(200);
    await ageStepUps(adminId);
    await expectAllRefused();

    expect((await stepUp(admin, csrf)).status).toBe(200);
    for (const done of await changes()) expect(done.status).toBe(302);
    const after = await state();
    expect(after.group).toMatchObject({ name: 'Admins', claims: { role: 'superuser' } });
    expect(after.members).toEqual(['ada@example.com']);

    await json('groups', 'delete', 'Admins', '--yes');
  }, 60_000);

  it("keeps what the admin typed in the group page's forms when it is refused, with the message beside the field, and changes nothing", async () => {
    const kitchen = await json('groups', 'create', '--name', 'Kitchen');
    await json('groups', 'create', '--name', 'Pantry');
    await json('groups', 'add-member', 'Kitchen', 'bob@example.com');
    await json('groups', 'set-claim', 'Kitchen', 'level', '1');
    const { admin } = await signUpAdmin('keeper@example.com');
    const groupPath = `/admin/groups/${kitchen.id}`;
    const csrf = asPage(await admin.browser.follow(groupPath)).csrf();
    expect((await stepUp(admin, csrf)).status).toBe(200);
    const state = async () => ({
      group: await groupsQueries.findByIdOrName(sesame.db, kitchen.id),
      members: (await groupsQueries.members(sesame.db, kitchen.id)).map((member) => member.email),
      audit: await countRows(sesame.db, 'audit_events'),
    });
    const before = await state();
    /** The attributes of the input with this id, as the page shows them. */
    const inputOf = (text: string, id: string) => new RegExp(`<input id="${id}"[^>]*>`).exec(text)?.[0] ?? '';
    const shownValue = (text: string, id: string) => /value="([^"]*)"/.exec(inputOf(text, id))?.[1];

    const cases: [string, Record<string, string>, number, Record<string, string>, string, RegExp][] = [
      [
        'members',
        { user: 'nobody@example.com' },
        400,
        { 'member-user': 'nobody@example.com' },
        'member-user',
        /No user with id or email nobody@example\.com/,
      ],
      [
        'members',
        { user: '   ' },
        400,
        { 'member-user': '   ' },
        'member-user',
        /Enter the email address or user ID/,
      ],
      [
        'claims',
        { key: 'email', value: '"a@b"' },
        400,
        { 'claim-key': 'email', 'claim-value': '&quot;a@b&quot;' },
        'claim-key',
        /email is a registered OIDC claim/,
      ],
      [
        'claims',
        { key: 'note', value: 'x'.repeat(3000) },
        400,
        { 'claim-key': 'note', 'claim-value': 'x'.repeat(3000) },
        'claim-value',
        /at most 2048 bytes/,
      ],
      ['rename', { name: '' }, 400, { 'group-name': '' }, 'group-name', /name: is required/],
      [
        'rename',
        { name: 'Pantry' },
        409,
        { 'group-name': 'Pantry' },
        'group-name',
        /A group named Pantry already exists/,
      ],
    ];
    for (const [action, form, status, values, field, message] of cases) {
      const refused = await admin.browser.request(`${groupPath}/${action}`, {
        form: { _csrf: csrf, ...form },
      });
      const text = refused.text;
      expect({ action, form, status: refused.status }).toEqual({ action, form, status });
      expect(refused.headers.get('content-type')).toContain('text/html');
      for (const [id, value] of Object.entries(values))
        expect({ id, value: shownValue(text, id) }).toEqual({ id, value });
      // The message is beside the field, tied to it for screen readers, and only there.
      expect(inputOf(text, field)).toContain(
        `aria-invalid="true" aria-describedby="${field}-error" autofocus`,
      );
      expect(
        new RegExp(`<p id="${field}-error" class="field-error" role="alert">([^<]*)</p>`).exec(text)?.[1],
      ).toMatch(message);
      expect(text.match(/aria-invalid/g)).toHaveLength(1);
      expect(text.match(/autofocus/g)).toHaveLength(1);
      // No message at the top of the page (the note for browsers without JavaScript aside).
      expect(text.replace(/<noscript>[\s\S]*?<\/noscript>/g, '')).not.toMatch(
        /<p class="status" role="alert">/,
      );
      // The other forms show what they always do.
      if (action !== 'rename') expect(shownValue(text, 'group-name')).toBe('Kitchen');
      if (action !== 'members') expect(shownValue(text, 'member-user')).toBe('');
      if (action !== 'claims') expect(shownValue(text, 'claim-key')).toBe('');
    }
    expect(await state()).toEqual(before);
    await json('groups', 'delete', 'Kitchen', '--yes');
    await json('groups', 'delete', 'Pantry', '--yes');
  }, 60_000);

  it("stays on the delete page, naming the app and what to do, when the group is an app's only allowed group", async () => {
    const solo = await json('groups', 'create', '--name', 'Solo');
    await json('clients', 'update', notesId, '--allowed-group', 'Solo');
    const { admin } = await signUpAdmin('remover@example.com');
    const deletePath = `/admin/groups/${solo.id}/delete`;
    const confirm = asPage(await admin.browser.follow(deletePath));
    expect(confirm.status).toBe(200);
    expect((await stepUp(admin, confirm.csrf())).status).toBe(200);
    const audit = await countRows(sesame.db, 'audit_events');

    const refused = await admin.browser.request(deletePath, { form: { _csrf: confirm.csrf() } });
    expect(refused.status).toBe(409);
    expect(refused.text).toContain('<h1>Delete the group “Solo”?</h1>');
    expect(refused.text).toContain(
      '<p class="status" role="alert">“Solo” is the only group allowed to sign in to Notes: without it, everyone could. Change who may sign in to Notes first (allow another group, or everyone), then delete the group.</p>',
    );
    expect(refused.text).toContain(
      `<a href="/admin/clients/${notesId}#allowed-groups">Who may sign in to Notes</a>`,
    );
    expect(refused.text).toContain(`action="${deletePath}"`);
    expect(refused.text).not.toContain(notesId.concat(' admits'));
    expect(await groupsQueries.findByIdOrName(sesame.db, solo.id)).toBeDefined();
    expect((await groupsQueries.allowedForClient(sesame.db, notesId)).map((group) => group.name)).toEqual([
      'Solo',
    ]);
    expect(await countRows(sesame.db, 'audit_events')).toBe(audit);
    // The link leads to the client page's section that changes it.
    expect(asPage(await admin.browser.follow(`/admin/clients/${notesId}`)).text).toContain(
      '<h2 id="allowed-groups">Who may sign in</h2>',
    );

    await json('clients', 'update', notesId, '--allow-all-groups');
    expect((await admin.browser.request(deletePath, { form: { _csrf: confirm.csrf() } })).status).toBe(302);
    expect(await groupsQueries.findByIdOrName(sesame.db, solo.id)).toBeUndefined();
  }, 60_000);
});
