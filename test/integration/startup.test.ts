import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isProviderPath } from '../../src/oidc/providerPaths.js';
import {
  linesOf,
  runServerExpectingExit,
  type SesameProcess,
  startSesameProcess,
} from '../support/sesameProcess.js';

/** Fields of a public JWK that would give away the private key. */
const PRIVATE_JWK_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

describe('starting the built server (node dist/src/main.js)', () => {
  let dataDir: string;
  let sesame: SesameProcess;

  beforeAll(async () => {
    // An empty directory: the first start of a new installation, embedded database and all.
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-startup-'));
    // Waits longer than the 10 s the first test demands, so that on a busy machine only that
    // test fails and the others still check the server.
    sesame = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'info' }, 60_000);
  }, 70_000);

  afterAll(async () => {
    if (sesame && sesame.child.exitCode === null) await sesame.stop('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers discovery within 10 seconds of a first start on an empty data directory', () => {
    expect(sesame.readyAfterMs).toBeLessThan(10_000);
  });

  it('serves a discovery document whose issuer is ISSUER', async () => {
    const response = await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    const discovery = (await response.json()) as Record<string, unknown>;
    expect(discovery.issuer).toBe(sesame.baseUrl);
    expect(discovery.jwks_uri).toBe(`${sesame.baseUrl}/jwks`);
    expect(discovery.code_challenge_methods_supported).toEqual(['S256']);
  });

  it('sends every endpoint discovery advertises straight to the provider', async () => {
    const discovery = (await (
      await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    const endpoints = Object.entries(discovery)
      .filter(
        ([name, value]) => (name.endsWith('_endpoint') || name === 'jwks_uri') && typeof value === 'string',
      )
      .map(([, value]) => new URL(String(value)).pathname);
    expect(endpoints.length).toBeGreaterThanOrEqual(7);
    for (const endpoint of endpoints)
      expect({ endpoint, provider: isProviderPath(endpoint) }).toEqual({ endpoint, provider: true });
  });

  it('publishes an ES256 and an RS256 signing key, and nothing private', async () => {
    const response = await fetch(`${sesame.baseUrl}/jwks`);
    expect(response.status).toBe(200);
    const { keys } = (await response.json()) as { keys: Array<Record<string, string>> };
    expect(keys.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
    expect(keys.find((k) => k.alg === 'ES256')).toMatchObject({ kty: 'EC', crv: 'P-256', use: 'sig' });
    expect(keys.find((k) => k.alg === 'RS256')).toMatchObject({ kty: 'RSA', use: 'sig' });
    for (const key of keys) {
      expect(typeof key.kid).toBe('string');
      for (const field of PRIVATE_JWK_FIELDS) expect(key).not.toHaveProperty(field);
    }
  });

  it('answers 200 on /healthz and /readyz', async () => {
    for (const probe of ['/healthz', '/readyz']) {
      const response = await fetch(`${sesame.baseUrl}${probe}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ status: 'ok' });
    }
  });

  it('says in its log where the data lives', () => {
    const entries = linesOf(sesame.stderr())
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries).toContainEqual(
      expect.objectContaining({ level: 'info', msg: 'using the embedded database', data: dataDir }),
    );
    expect(entries).toContainEqual(
      expect.objectContaining({ msg: 'Sesame is listening', issuer: sesame.baseUrl, port: sesame.port }),
    );
  });

  it('logs a one-time setup link, as there is no administrator yet, whose page answers', async () => {
    const setupLine = () =>
      linesOf(sesame.stderr())
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, string>)
        .find((entry) => entry.msg === 'no administrator yet: open this link to create one');
    // Logged just after the server starts listening.
    for (let waited = 0; !setupLine() && waited < 15_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const url = setupLine()?.setup_url;
    expect(url).toMatch(new RegExp(`^${sesame.baseUrl}/setup/[A-Za-z0-9_-]{43}$`));
    const page = await fetch(url!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('>Create a passkey</button>');
  });

  it('refuses a second server on the same data directory with one line, and leaves the first one serving', async () => {
    const second = await runServerExpectingExit({
      DATA_DIR: dataDir,
      PORT: String(sesame.port),
      LOG_LEVEL: 'warn',
    });
    expect(second.code).not.toBe(0);
    expect(linesOf(second.stderr)).toEqual([
      `sesame: the embedded database in ${dataDir} is in use by another Sesame process (pid ${sesame.child.pid}); stop it first, or set DATABASE_URL to use Postgres`,
    ]);
    expect((await fetch(`${sesame.baseUrl}/readyz`)).status).toBe(200);
  });

  it('stops on SIGTERM with exit code 0 and releases the data directory', async () => {
    const result = await sesame.stop('SIGTERM');
    expect(result).toMatchObject({ code: 0, signal: null });
    expect(result.stderr).toContain('"msg":"shutting down"');
    expect(fs.existsSync(path.join(dataDir, 'sesame.lock'))).toBe(false);
  });
});

describe('refusing to start with a bad setting', () => {
  it.each([
    ['ISSUER', 'not-a-url', 'sesame: ISSUER must be an absolute http(s) URL'],
    ['PORT', 'abc', 'sesame: PORT must be a whole number'],
    ['SIGNUP', 'closed', 'sesame: SIGNUP must be "open" or "invite"'],
    ['DATABASE_URL', 'mysql://db/sesame', 'sesame: DATABASE_URL must be a postgres:// or postgresql:// URL'],
  ])('exits non-zero on %s=%s with exactly one line on stderr naming it', async (variable, value, line) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-badconfig-'));
    try {
      const result = await runServerExpectingExit({ DATA_DIR: dataDir, [variable]: value });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`${line}\n`);
      expect(result.stdout).toBe('');
      // Nothing was created: the settings are checked before the database is touched.
      expect(fs.readdirSync(dataDir)).toEqual([]);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
