import os from 'node:os';
import { createApp } from '../../src/app.js';
import { configFrom } from '../../src/config.js';
import { type Db, openDatabase } from '../../src/db/connect.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { credentialsQueries } from '../../src/db/queries/credentials.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createLogger } from '../../src/logger.js';
import {
  type CliSession,
  linesOf,
  type ProcessResult,
  runCli,
  startCliSession,
} from '../support/sesameProcess.js';
import { freePort } from '../support/testApp.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';

const APP_URI = 'https://crm.example.com/callback';

/**
 * The `sesame` command as an operator runs it: a process of its own on the server's database,
 * which runs this file's commands one after another (startCliSession), each opening and
 * closing the database; a few run as `node bin/sesame.js` too, the real binary's exit codes.
 * On the embedded database the command and the server cannot hold the data directory at
 * once, so each server here starts after the commands before it have finished.
 */
describe('the sesame command manages clients, API keys and users', () => {
  let database: TestDatabase;
  let port: number;
  let session: CliSession;

  beforeAll(async () => {
    database = await createTestDatabase();
    port = await freePort();
    session = await startCliSession(env());
  });

  afterAll(async () => {
    await session?.close();
    await database?.drop();
  });

  const env = () => ({ ...database.env, ISSUER: `http://localhost:${port}`, LOG_LEVEL: 'warn' });
  const sesame = (...args: string[]) => session.run(args);

  /** Runs a command that must succeed with --json and returns its one JSON value. */
  // biome-ignore lint/suspicious/noExplicitAny: CLI output is checked field by field.
  async function json(...args: string[]): Promise<any> {
    const result = await sesame(...args, '--json');
    if (result.code !== 0)
      throw new Error(`sesame ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    expect(result.stderr).toBe('');
    return JSON.parse(result.stdout);
  }

  /** A failed command: non-zero exit, nothing on stdout, one line `sesame: ...` on stderr. */
  function expectOneLineError(result: ProcessResult, pattern: RegExp) {
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/^sesame: /);
    expect(result.stderr).toMatch(pattern);
  }

  /** Opens the database in this process for setup and checks, and closes it before the next command. */
  async function withDb<T>(work: (db: Db) => Promise<T>): Promise<T> {
    const handle = await openDatabase(configFrom(env()), { poolSize: 1 });
    try {
      return await work(handle.db);
    } finally {
      await handle.close();
    }
  }

  /** Runs a server on the database, does `work` against its URL, then stops it and closes the database. */
  async function withServer(work: (baseUrl: string) => Promise<void>) {
    const config = configFrom({ ...env(), PORT: String(port), LOG_LEVEL: 'silent' });
    const handle = await openDatabase(config, { poolSize: 2 });
    const app = await createApp({
      config,
      db: handle.db,
      log: createLogger(config.logLevel),
      listen: handle.listen,
    });
    try {
      await app.start(port, '127.0.0.1');
      await work(config.issuer);
    } finally {
      await app.stop();
      await handle.close();
    }
  }

  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

  async function clientCredentials(baseUrl: string, id: string, secret: string) {
    const response = await fetch(`${baseUrl}/token`, {
      method: 'POST',
      headers: { authorization: basic(id, secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function introspect(baseUrl: string, as: { id: string; secret: string }, token: string) {
    const response = await fetch(`${baseUrl}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: basic(as.id, as.secret),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }).toString(),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { active: boolean };
  }

  it('creates, lists, updates, rotates and deletes a client; the old secret and then the client stop working', async () => {
    const created = await json('clients', 'create', '--name', 'CRM', '--redirect-uri', APP_URI);
    expect(created).toEqual({ client_id: expect.any(String), client_secret: expect.any(String) });
    const { client_id: clientId, client_secret: firstSecret } = created;
    // A resource server that introspects the app's tokens: marked as checking them.
    const rs = await json(
      'clients',
      'create',
      '--name',
      'API',
      '--grant-type',
      'client_credentials',
      '--introspect-tokens',
    );
    const resourceServer = { id: rs.client_id as string, secret: rs.client_secret as string };

    const listed = await sesame('clients', 'list', '--json');
    const clients = JSON.parse(listed.stdout);
    expect(clients.map((c: { client_id: string }) => c.client_id)).toEqual(
      expect.arrayContaining([clientId, resourceServer.id]),
    );
    expect(listed.stdout).not.toContain(firstSecret);
    expect(listed.stdout).not.toContain('secret');
    const table = await sesame('clients', 'list');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/CLIENT ID\s+NAME/);
    expect(table.stdout).toContain('CRM');

    const updated = await json(
      'clients',
      'update',
      clientId,
      '--redirect-uri',
      'https://crm.example.com/cb2',
    );
    expect(updated.redirect_uris).toEqual(['https://crm.example.com/cb2']);
    expectOneLineError(
      await sesame('clients', 'update', clientId, '--redirect-uri', 'javascript:alert(1)'),
      /^sesame: --redirect-uri: javascript:alert\(1\)/,
    );
    expect((await json('clients', 'show', clientId)).redirect_uris).toEqual(['https://crm.example.com/cb2']);

    const rotated = await json('clients', 'rotate-secret', clientId);
    expect(rotated.client_id).toBe(clientId);
    expect(rotated.client_secret).not.toBe(firstSecret);

    let earlierToken = '';
    await withServer(async (baseUrl) => {
      const withOld = await clientCredentials(baseUrl, clientId, firstSecret);
      expect(withOld.status).toBe(401);
      expect(withOld.body.error).toBe('invalid_client');
      const withNew = await clientCredentials(baseUrl, clientId, rotated.client_secret);
      expect(withNew.status).toBe(200);
      earlierToken = String(withNew.body.access_token);
      expect((await introspect(baseUrl, resourceServer, earlierToken)).active).toBe(true);
    });

    expect(await json('clients', 'delete', clientId, '--yes')).toEqual({
      client_id: clientId,
      deleted: true,
    });
    expectOneLineError(await sesame('clients', 'show', clientId), /no client/);

    await withServer(async (baseUrl) => {
      const afterDelete = await clientCredentials(baseUrl, clientId, rotated.client_secret);
      expect(afterDelete.status).toBe(401);
      expect(afterDelete.body.error).toBe('invalid_client');
      expect((await introspect(baseUrl, resourceServer, earlierToken)).active).toBe(false);
    });
  }, 240_000);

  it("marks a client as checking other apps' tokens, clears it, shows it, and refuses it for a public client", async () => {
    const checker = await json(
      'clients',
      'create',
      '--name',
      'Checker',
      '--grant-type',
      'client_credentials',
      '--introspect-tokens',
    );
    const plain = await json('clients', 'create', '--name', 'Plain', '--redirect-uri', APP_URI);
    expect((await json('clients', 'show', checker.client_id)).introspect_tokens).toBe(true);
    expect((await json('clients', 'show', plain.client_id)).introspect_tokens).toBe(false);
    const listed = (await json('clients', 'list')) as Array<{
      client_id: string;
      introspect_tokens: boolean;
    }>;
    expect(listed.find((c) => c.client_id === checker.client_id)?.introspect_tokens).toBe(true);
    expect(listed.find((c) => c.client_id === plain.client_id)?.introspect_tokens).toBe(false);
    const shown = await sesame('clients', 'show', checker.client_id);
    expect(shown.stdout).toContain("introspects other apps' tokens: yes");

    expect(
      (await json('clients', 'update', checker.client_id, '--no-introspect-tokens')).introspect_tokens,
    ).toBe(false);
    expect((await json('clients', 'show', checker.client_id)).introspect_tokens).toBe(false);
    expect((await json('clients', 'update', plain.client_id, '--introspect-tokens')).introspect_tokens).toBe(
      true,
    );
    expect((await json('clients', 'show', plain.client_id)).introspect_tokens).toBe(true);
    // An update that names other fields leaves it as it is.
    expect((await json('clients', 'update', plain.client_id, '--name', 'Plain 2')).introspect_tokens).toBe(
      true,
    );

    const before = (await json('clients', 'list')).length;
    expectOneLineError(
      await sesame(
        'clients',
        'create',
        '--name',
        'SPA',
        '--redirect-uri',
        APP_URI,
        '--public',
        '--introspect-tokens',
      ),
      /^sesame: --introspect-tokens: a public client cannot introspect other apps' tokens/,
    );
    expect((await json('clients', 'list')).length).toBe(before);
    const spa = await json('clients', 'create', '--name', 'SPA', '--redirect-uri', APP_URI, '--public');
    expectOneLineError(
      await sesame('clients', 'update', spa.client_id, '--introspect-tokens'),
      /^sesame: --introspect-tokens: a public client cannot introspect other apps' tokens/,
    );
    expect((await json('clients', 'show', spa.client_id)).introspect_tokens).toBe(false);
  }, 120_000);

  it('creates an API key shown once, lists it without the key, and revokes it with the links it issued', async () => {
    let keyLink = '';
    const created = await json('api-keys', 'create', '--name', 'terraform');
    expect(created).toEqual({
      id: expect.any(String),
      scope: 'admin',
      key: expect.stringMatching(/^ssk_[A-Za-z0-9_-]{43}$/),
    });

    const listed = await sesame('api-keys', 'list', '--json');
    expect(listed.stdout).not.toContain(created.key);
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ id: created.id, name: 'terraform', scope: 'admin', revoked_at: null }),
    ]);

    await withServer(async (baseUrl) => {
      const ok = await fetch(`${baseUrl}/api/admin/clients`, {
        headers: { authorization: `Bearer ${created.key}` },
      });
      expect(ok.status).toBe(200);
      const invited = await fetch(`${baseUrl}/api/admin/users/invite`, {
        method: 'POST',
        headers: { authorization: `Bearer ${created.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'by-key@example.com', admin: true }),
      });
      expect(invited.status).toBe(201);
      keyLink = ((await invited.json()) as { url: string }).url;
    });

    // The key's unused links go with it: a key made with the CLI has no admin whose demotion would.
    const revoked = await json('api-keys', 'revoke', created.id);
    expect(revoked).toMatchObject({ id: created.id, revoked_at: expect.any(String), cancelled_links: 1 });
    const table = await sesame('api-keys', 'list');
    expect(table.stdout).toMatch(/terraform\s.*revoked/);
    expectOneLineError(await sesame('api-keys', 'revoke', 'no-such-key'), /no API key/);
    expectOneLineError(await sesame('api-keys', 'create', '--name', '   '), /^sesame: --name: /);

    await withServer(async (baseUrl) => {
      const refused = await fetch(`${baseUrl}/api/admin/clients`, {
        headers: { authorization: `Bearer ${created.key}` },
      });
      expect(refused.status).toBe(401);
      expect((await fetch(new URL(new URL(keyLink).pathname, baseUrl))).status).toBe(410);
    });
  }, 240_000);

  it('creates a metrics key that opens /metrics and nothing else, and refuses a scope it does not know', async () => {
    const created = await json('api-keys', 'create', '--name', 'prometheus', '--scope', 'metrics');
    expect(created).toEqual({
      id: expect.any(String),
      scope: 'metrics',
      key: expect.stringMatching(/^ssk_[A-Za-z0-9_-]{43}$/),
    });
    expect((await sesame('api-keys', 'list')).stdout).toMatch(/prometheus\s+metrics\s/);
    const before = (await sesame('api-keys', 'list', '--json')).stdout;
    const refused = await sesame('api-keys', 'create', '--name', 'root', '--scope', 'root');
    expect(refused).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'sesame: --scope: must be one of admin, metrics\n',
    });
    expect((await sesame('api-keys', 'list', '--json')).stdout).toBe(before);

    await withServer(async (baseUrl) => {
      const get = (path: string) =>
        fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${created.key}` } });
      expect((await get('/metrics')).status).toBe(200);
      expect((await get('/api/admin/clients')).status).toBe(403);
    });
  }, 240_000);

  it('invites, lists, disables, enables and deletes users, and explains mistakes in one line', async () => {
    const invite = await json('users', 'invite', '--email', 'eve@example.com', '--admin');
    expect(invite.url.startsWith(`http://localhost:${port}/`)).toBe(true);
    expectOneLineError(await sesame('users', 'invite', '--email', 'not-an-email'), /email/i);

    // Someone who signed up, with a passkey, a session and a token of a grant.
    const userId = await withDb(async (db) => {
      const user = await usersQueries.insert(db, { email: 'Frank@Example.com', name: 'Frank' });
      await credentialsQueries.insert(db, {
        id: 'cred-frank',
        userId: user.id,
        publicKey: new Uint8Array([1, 2, 3]),
        counter: 0,
        transports: ['internal'],
        aaguid: '00000000-0000-0000-0000-000000000000',
        backupEligible: true,
        backupState: true,
        name: 'Phone',
      });
      await oidcModelsQueries.upsert(db, 'Session', 'sess-frank', { accountId: user.id }, 3600);
      await oidcModelsQueries.upsert(db, 'Grant', 'grant-frank', { accountId: user.id, clientId: 'x' }, 3600);
      await oidcModelsQueries.upsert(db, 'RefreshToken', 'rt-frank', { grantId: 'grant-frank' }, 3600);
      return user.id;
    });

    const listed = await json('users', 'list');
    expect(listed).toEqual([
      expect.objectContaining({ id: userId, email: 'Frank@Example.com', is_admin: false, disabled: false }),
    ]);
    expect((await sesame('users', 'list')).stdout).toMatch(/Frank@Example\.com\s+Frank\s+user\s+active/);
    expect(await json('users', 'list', '--search', 'FRANK')).toEqual(listed);
    expect(await json('users', 'list', '--search', 'nobody')).toEqual([]);

    // By email, whatever its case.
    expect(await json('users', 'disable', 'frank@example.com')).toMatchObject({ id: userId, disabled: true });
    await withDb(async (db) => {
      expect((await usersQueries.findById(db, userId))!.disabled_at).not.toBeNull();
      expect(await oidcModelsQueries.find(db, 'Session', 'sess-frank')).toBeUndefined();
      expect(await oidcModelsQueries.find(db, 'RefreshToken', 'rt-frank')).toBeUndefined();
      // Passkeys stay: an enabled account signs in with them again.
      expect(await credentialsQueries.findById(db, 'cred-frank')).toBeDefined();
      await oidcModelsQueries.upsert(db, 'Session', 'sess-frank-2', { accountId: userId }, 3600);
    });
    expect(await json('users', 'enable', userId)).toMatchObject({ disabled: false });

    expect(await json('users', 'delete', userId, '--yes')).toEqual({
      id: userId,
      email: 'Frank@Example.com',
      deleted: true,
      revoked_api_keys: [],
      cancelled_links: 0,
    });
    await withDb(async (db) => {
      expect(await usersQueries.findById(db, userId)).toBeUndefined();
      expect(await credentialsQueries.findById(db, 'cred-frank')).toBeUndefined();
      expect(await oidcModelsQueries.find(db, 'Session', 'sess-frank-2')).toBeUndefined();
    });

    expectOneLineError(await sesame('users', 'disable', 'nobody@example.com'), /no user/);
    expectOneLineError(await sesame('users', 'delete', 'not-an-id', '--yes'), /no user/);

    const help = await sesame('users', '--help');
    expect(help.code).toBe(0);
    for (const command of ['list', 'disable', 'enable', 'delete', 'invite'])
      expect(help.stdout).toContain(command);
  }, 240_000);
  it('answers a command group run without a subcommand, or with an unknown one, in one line and exit 1', async () => {
    const groups: Array<[string[], string]> = [
      [[], 'clients, api-keys, users, groups, passkey-api, resources, keys, migrate'],
      [['clients'], 'create, list, show, update, rotate-secret, delete'],
      [['api-keys'], 'create, list, revoke'],
      [['users'], 'list, disable, enable, promote, demote, delete, invite, set-claim, unset-claim'],
      [['groups'], 'create, list, show, rename, delete, add-member, remove-member, set-claim, unset-claim'],
      [['passkey-api'], 'create, list, update, rotate-key, rotate-signing-key, delete, delete-user'],
      [['resources'], 'create, list, allow-client, deny-client, delete'],
      [['keys'], 'rotate, rotate-cookie-key, reseal'],
    ];
    const results: ProcessResult[] = [];
    for (const [group] of groups) results.push(await sesame(...group));
    groups.forEach(([group, commands], i) => {
      expect(results[i]).toMatchObject({ code: 1, stdout: '' });
      expect(results[i]!.stderr).toBe(
        `sesame: missing command: ${commands} (see ${['sesame', ...group].join(' ')} --help)\n`,
      );
    });
    expectOneLineError(await sesame('clients', 'frobnicate'), /unknown command 'frobnicate'/);
    expectOneLineError(await sesame('frobnicate'), /unknown command 'frobnicate'/);
    expectOneLineError(await sesame('clients', 'create'), /--name/);
    expectOneLineError(await sesame('clients', 'list', '--bogus'), /unknown option '--bogus'/);
    // The real binary ends with the same exit code and line: `sesame clients`, an unknown command.
    const [missing, unknown] = await Promise.all([
      runCli(['clients'], env()),
      runCli(['clients', 'frobnicate'], env()),
    ]);
    expect(missing).toEqual({ ...results[1], signal: null });
    expectOneLineError(unknown, /unknown command 'frobnicate'/);
  }, 60_000);

  it('takes a flag where an option value is missing for the missing value, in one line, and changes nothing', async () => {
    const client = await json(
      'clients',
      'create',
      '--name',
      'Flags',
      '--redirect-uri',
      'https://flags.example/cb',
    );
    expectOneLineError(
      await sesame('clients', 'update', client.client_id, '--name', '--first-party'),
      /^sesame: option '--name <name>' argument missing: --first-party is an option \(see --help\)\n$/,
    );
    expect(await json('clients', 'show', client.client_id)).toMatchObject({
      name: 'Flags',
      first_party: false,
    });
    expectOneLineError(
      await sesame('clients', 'update', client.client_id, '--redirect-uri', '--no-first-party'),
      /--redirect-uri <uri>' argument missing: --no-first-party is an option/,
    );
    expectOneLineError(await sesame('groups', 'create', '--name', '--json'), /--json is an option/);
    expect((await json('groups', 'list')).map((group: { name: string }) => group.name)).not.toContain(
      '--json',
    );
  }, 60_000);

  it('refuses an option that takes one value given twice, in one line, and changes nothing', async () => {
    const client = await json(
      'clients',
      'create',
      '--name',
      'Twice',
      '--redirect-uri',
      'https://twice.example/cb',
    );
    expectOneLineError(
      await sesame('clients', 'update', client.client_id, '--name', 'Notes', '--name=Photos'),
      /^sesame: option '--name <name>' given 2 times: give it once \(see --help\)\n$/,
    );
    expect(await json('clients', 'show', client.client_id)).toMatchObject({ name: 'Twice' });
    // Options that collect a value per use take each.
    expect(
      await json(
        'clients',
        'update',
        client.client_id,
        '--redirect-uri',
        'https://twice.example/a',
        '--redirect-uri',
        'https://twice.example/b',
      ),
    ).toMatchObject({ redirect_uris: ['https://twice.example/a', 'https://twice.example/b'] });
  }, 60_000);

  it('prints usage on stdout and exits 0 for --help on every command', async () => {
    const commands = [
      [],
      ['clients'],
      ...['create', 'list', 'show', 'update', 'rotate-secret', 'delete'].map((c) => ['clients', c]),
      ['api-keys'],
      ...['create', 'list', 'revoke'].map((c) => ['api-keys', c]),
      ['users'],
      ...['list', 'disable', 'enable', 'delete', 'invite'].map((c) => ['users', c]),
      ['passkey-api'],
      ...['create', 'list', 'update', 'rotate-key', 'delete'].map((c) => ['passkey-api', c]),
      ['keys'],
      ['keys', 'rotate'],
      ['keys', 'rotate-cookie-key'],
      ['migrate'],
    ];
    for (const command of commands) {
      const result = await sesame(...command, '--help');
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toMatch(new RegExp(`^Usage: ${['sesame', ...command].join(' ')} `));
    }
    // The real binary too: usage on stdout, exit 0.
    const help = await runCli(['clients', 'create', '--help'], env());
    expect(help).toEqual({
      code: 0,
      signal: null,
      stderr: '',
      stdout: expect.stringMatching(/^Usage: sesame clients create /),
    });
  }, 120_000);

  it('names the operator as cli:<os username> in the audit log, also for keys rotate', async () => {
    const operator = `cli:${os.userInfo().username}`;
    const rotated = await json('keys', 'rotate');
    expect(rotated.kids).toEqual([expect.stringMatching(/^es256-/), expect.stringMatching(/^rs256-/)]);
    const key = await json('api-keys', 'create', '--name', 'audit-check');
    const events = await withDb((db) => auditQueries.recent(db, 20));
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          actor: operator,
          action: 'signing_keys.rotate',
          target: null,
          details: { kids: rotated.kids, activates_at: rotated.activates_at },
        }),
        expect.objectContaining({ actor: operator, action: 'api_key.create', target: key.id }),
      ]),
    );
    expect(events.filter((event) => event.actor.startsWith('cli')).map((event) => event.actor)).toEqual(
      events.filter((event) => event.actor.startsWith('cli')).map(() => operator),
    );
  }, 60_000);
});
