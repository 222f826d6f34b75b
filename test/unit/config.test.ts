import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, configWarnings, loadConfig } from '../../src/config.js';

/** Loads a config from exactly these variables (never from the test process's environment). */
const load = (env: Record<string, string>) => loadConfig(env as NodeJS.ProcessEnv);

/** The ConfigError a bad environment raises. */
function errorFor(env: Record<string, string>): ConfigError {
  try {
    load(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('configuration from the environment', () => {
  it('starts with sensible defaults when nothing is set', () => {
    const config = load({});
    expect(config).toEqual({
      issuer: 'http://localhost:3000',
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: path.resolve('./data'),
      rpName: 'Sesame',
      brand: { name: 'Sesame', accent: '#4f46e5', logo: undefined, favicon: undefined },
      rpId: 'localhost',
      origin: 'http://localhost:3000',
      signup: 'open',
      defaultLocale: 'en',
      logLevel: 'info',
      trustProxy: false,
      proxyHops: 0,
      keyEncryptionSecret: undefined,
      keyEncryptionSecretPrevious: undefined,
      inviteTtlSeconds: 24 * 3600,
      rateLimitPerMinute: 600,
      auditLogDays: 365,
      passkeyAuditLogDays: 90,
      secureCookies: false,
      mail: undefined,
      selfRecovery: false,
    });
  });

  it('is frozen, so nothing can change a setting after the start', () => {
    const config = load({});
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads every variable when it is set to a good value', () => {
    const config = load({
      ISSUER: 'https://id.example.com',
      PORT: '8080',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://sesame:pw@db:5432/sesame',
      DATABASE_DIRECT_URL: 'postgres://sesame:pw@db-direct:5432/sesame',
      DATA_DIR: '/var/lib/sesame',
      RP_NAME: 'Example Corp',
      SIGNUP: 'invite',
      DEFAULT_LOCALE: 'de',
      LOG_LEVEL: 'debug',
      TRUST_PROXY: 'true',
      KEY_ENCRYPTION_SECRET: 'k'.repeat(32),
      INVITE_TTL_HOURS: '72',
      RATE_LIMIT_PER_MINUTE: '120',
    });
    expect(config).toMatchObject({
      issuer: 'https://id.example.com',
      port: 8080,
      host: '127.0.0.1',
      databaseUrl: 'postgres://sesame:pw@db:5432/sesame',
      databaseDirectUrl: 'postgres://sesame:pw@db-direct:5432/sesame',
      dataDir: '/var/lib/sesame',
      rpName: 'Example Corp',
      signup: 'invite',
      defaultLocale: 'de',
      logLevel: 'debug',
      trustProxy: true,
      keyEncryptionSecret: 'k'.repeat(32),
      inviteTtlSeconds: 72 * 3600,
      rateLimitPerMinute: 120,
      secureCookies: true,
    });
  });

  it('derives the WebAuthn RP ID and origin from ISSUER, and drops a trailing slash', () => {
    const config = load({ ISSUER: 'https://Login.Example.COM:8443/' });
    expect(config.issuer).toBe('https://login.example.com:8443');
    expect(config.rpId).toBe('login.example.com');
    expect(config.origin).toBe('https://login.example.com:8443');
    expect(config.secureCookies).toBe(true);
  });

  it('keeps the default port out of the derived origin', () => {
    const config = load({ ISSUER: 'https://id.example.com:443' });
    expect(config.issuer).toBe('https://id.example.com');
    expect(config.origin).toBe('https://id.example.com');
  });

  it('treats empty and blank values as unset, as a copied .env file leaves them', () => {
    const config = load({
      ISSUER: '',
      PORT: '',
      HOST: '  ',
      DATABASE_URL: '',
      DATABASE_DIRECT_URL: '',
      DATA_DIR: '',
      RP_NAME: '',
      SIGNUP: '',
      LOG_LEVEL: '',
      TRUST_PROXY: '',
      KEY_ENCRYPTION_SECRET: '',
      INVITE_TTL_HOURS: '',
      RATE_LIMIT_PER_MINUTE: '',
    });
    expect(config).toEqual(load({}));
  });

  it('uses DATABASE_URL for LISTEN and migrations when DATABASE_DIRECT_URL is unset', () => {
    expect(load({ DATABASE_URL: 'postgres://db/sesame' }).databaseDirectUrl).toBe('postgres://db/sesame');
    expect(load({}).databaseDirectUrl).toBeUndefined();
  });

  it('accepts postgresql:// as well as postgres:// URLs', () => {
    expect(load({ DATABASE_URL: 'postgresql://localhost/sesame' }).databaseUrl).toBe(
      'postgresql://localhost/sesame',
    );
  });

  // What pg reads, the WHATWG URL parser does not all take: a user and no host names a Unix socket.
  it.each([
    'postgres://sesame@/sesame?host=/var/run/postgresql',
    'postgres://sesame:pw@/sesame?host=/var/run/postgresql&port=5433',
    'postgresql:///sesame?host=/var/run/postgresql',
    'postgres://sesame@%2Fvar%2Frun%2Fpostgresql/sesame',
    'postgres://sesame:p%40ss@[::1]:5432/sesame?sslmode=disable',
  ])('accepts the connection URL %s, as pg reads it', (url) => {
    expect(load({ DATABASE_URL: url, DATABASE_DIRECT_URL: url })).toMatchObject({
      databaseUrl: url,
      databaseDirectUrl: url,
    });
  });

  it.each([
    ['DATABASE_URL', 'postgres://sesame:hunter2-secret@db:99999/sesame'],
    ['DATABASE_DIRECT_URL', 'postgres://sesame:hunter2-secret@db:port/sesame'],
  ])('refuses %s=%s, which pg cannot read, in one line that does not repeat it', (variable, url) => {
    const { message } = errorFor({ DATABASE_URL: 'postgres://db/sesame', [variable]: url });
    expect(message).toBe(`${variable} is not a connection URL Postgres clients read: Invalid URL`);
    expect(message).not.toContain('hunter2');
  });

  it('refuses a DATABASE_URL with a bare % (pg would read it otherwise than written) in one line without the password', () => {
    const { message } = errorFor({ DATABASE_URL: 'postgres://sesame:hunter2%zz@db/sesame' });
    expect(message).toBe(
      'DATABASE_URL has a % that is not a percent-escape: write % as %25 (in its password too)',
    );
    expect(message).not.toContain('hunter2');
    expect(load({ DATABASE_URL: 'postgres://sesame:hunter2%25zz@db/sesame' }).databaseUrl).toBeDefined();
  });

  it.each([
    [
      { DATABASE_DIRECT_URL: 'postgres://db/sesame' },
      'DATABASE_DIRECT_URL is set but DATABASE_URL is not: set DATABASE_URL too, or neither for the embedded database',
    ],
    [{ SMTP_USER: 'sesame' }, 'SMTP_USER is set but SMTP_URL is not: set SMTP_URL to send mail'],
    [{ SMTP_PASSWORD: 'hunter2' }, 'SMTP_PASSWORD is set but SMTP_URL is not: set SMTP_URL to send mail'],
  ])('refuses %j, which works only with another setting, in one line naming it', (env, message) => {
    expect(errorFor(env).message).toBe(message);
  });

  it('keeps the audit log 365 days unless AUDIT_LOG_DAYS says otherwise (0: forever)', () => {
    expect(load({}).auditLogDays).toBe(365);
    expect(load({ AUDIT_LOG_DAYS: '0' }).auditLogDays).toBe(0);
    expect(load({ AUDIT_LOG_DAYS: '30' }).auditLogDays).toBe(30);
  });

  it('keeps the passkey API audit log 90 days unless PASSKEY_AUDIT_LOG_DAYS says otherwise (0: forever)', () => {
    expect(load({}).passkeyAuditLogDays).toBe(90);
    expect(load({ PASSKEY_AUDIT_LOG_DAYS: '0' }).passkeyAuditLogDays).toBe(0);
    expect(load({ PASSKEY_AUDIT_LOG_DAYS: '400' }).passkeyAuditLogDays).toBe(400);
  });

  it('reads RATE_LIMIT_PER_MINUTE=0 as no rate limit (not as the default)', () => {
    expect(load({ RATE_LIMIT_PER_MINUTE: '0' }).rateLimitPerMinute).toBe(0);
  });

  it.each(['true', 'TRUE', '1', 'yes'])('reads TRUST_PROXY=%s as on', (value) => {
    expect(load({ TRUST_PROXY: value }).trustProxy).toBe(true);
  });

  it.each(['false', '0', 'no'])('reads TRUST_PROXY=%s as off', (value) => {
    expect(load({ TRUST_PROXY: value })).toMatchObject({ trustProxy: false, proxyHops: 0 });
  });

  it.each([
    ['true', 1],
    ['1', 1],
    ['2', 2],
    [' 3 ', 3],
  ])('reads TRUST_PROXY=%s as %i trusted proxies', (value, hops) => {
    expect(load({ TRUST_PROXY: value })).toMatchObject({ trustProxy: true, proxyHops: hops });
  });

  it.each([
    ['ISSUER', 'not-a-url', 'ISSUER must be an absolute http(s) URL'],
    ['ISSUER', 'ftp://id.example.com', 'ISSUER must be an absolute http(s) URL'],
    ['ISSUER', 'https://id.example.com/?a=1', 'ISSUER must not have a query or fragment'],
    ['ISSUER', 'https://id.example.com/#top', 'ISSUER must not have a query or fragment'],
    ['ISSUER', 'https://user:pw@id.example.com', 'ISSUER must not contain a user name or password'],
    ['ISSUER', 'https://id.example.com/auth', 'ISSUER must not have a path'],
    ['PORT', 'abc', 'PORT must be a whole number'],
    ['PORT', '80.5', 'PORT must be a whole number'],
    ['PORT', '-1', 'PORT must be a whole number'],
    ['PORT', '0', 'PORT must be between 1 and 65535'],
    ['PORT', '70000', 'PORT must be between 1 and 65535'],
    ['HOST', 'local host', 'HOST must be a host name or an IP address'],
    ['DATABASE_URL', 'mysql://localhost/sesame', 'DATABASE_URL must be a postgres:// or postgresql:// URL'],
    ['DATABASE_URL', 'localhost:5432', 'DATABASE_URL must be a postgres:// or postgresql:// URL'],
    [
      'DATABASE_DIRECT_URL',
      'localhost:5432',
      'DATABASE_DIRECT_URL must be a postgres:// or postgresql:// URL',
    ],
    ['RP_NAME', 'x'.repeat(65), 'RP_NAME must be at most 64 characters'],
    ['RP_NAME', 'Acme\nBcc: someone@example.com', 'RP_NAME must not contain control characters'],
    ['BRAND_NAME', 'x'.repeat(65), 'BRAND_NAME must be at most 64 characters'],
    ['BRAND_NAME', 'Acme\u202eCorp', 'BRAND_NAME must not contain control characters'],
    ['RP_NAME', '\u200b\u2060', 'RP_NAME must show something, not only spaces or invisible characters'],
    ['BRAND_NAME', '\u200b\u00ad', 'BRAND_NAME must show something, not only spaces or invisible characters'],
    ['BRAND_ACCENT', 'indigo', 'BRAND_ACCENT must be a hex colour such as #4f46e5'],
    ['BRAND_ACCENT', '#4f46e', 'BRAND_ACCENT must be a hex colour'],
    [
      'BRAND_ACCENT',
      '#777777',
      'BRAND_ACCENT has a contrast of 4.48:1 on white; WCAG AA needs at least 4.5:1',
    ],
    ['BRAND_ACCENT', '#ffff00', 'BRAND_ACCENT has a contrast of 1.07:1 on white'],
    ['BRAND_LOGO', '/no/such/logo.png', 'BRAND_LOGO: cannot read /no/such/logo.png'],
    [
      'BRAND_FAVICON',
      'package.json',
      'BRAND_FAVICON must be a PNG, JPEG, WebP or ICO image (SVG is not accepted)',
    ],
    ['SIGNUP', 'closed', 'SIGNUP must be "open" or "invite"'],
    ['DEFAULT_LOCALE', 'de-AT', 'DEFAULT_LOCALE must be one of en, de, fr, es'],
    ['DEFAULT_LOCALE', 'klingon', 'DEFAULT_LOCALE must be one of en, de, fr, es'],
    ['LOG_LEVEL', 'verbose', 'LOG_LEVEL must be one of debug, info, warn, error, silent'],
    ['TRUST_PROXY', 'maybe', 'TRUST_PROXY must be true, false or the number of proxies in front of Sesame'],
    ['TRUST_PROXY', '-1', 'TRUST_PROXY must be true, false or the number of proxies in front of Sesame'],
    ['TRUST_PROXY', '11', 'TRUST_PROXY must be at most 10 proxies'],
    ['KEY_ENCRYPTION_SECRET', 'too-short', 'KEY_ENCRYPTION_SECRET must be at least 32 characters'],
    [
      'KEY_ENCRYPTION_SECRET_PREVIOUS',
      'too-short',
      'KEY_ENCRYPTION_SECRET_PREVIOUS must be at least 32 characters',
    ],
    ['INVITE_TTL_HOURS', 'a day', 'INVITE_TTL_HOURS must be a whole number'],
    ['INVITE_TTL_HOURS', '0', 'INVITE_TTL_HOURS must be between 1 and 720'],
    ['INVITE_TTL_HOURS', '721', 'INVITE_TTL_HOURS must be between 1 and 720'],
    [
      'RATE_LIMIT_PER_MINUTE',
      'lots',
      'RATE_LIMIT_PER_MINUTE must be a whole number (0 turns rate limiting off)',
    ],
    ['RATE_LIMIT_PER_MINUTE', '-5', 'RATE_LIMIT_PER_MINUTE must be a whole number'],
    ['RATE_LIMIT_PER_MINUTE', '1.5', 'RATE_LIMIT_PER_MINUTE must be a whole number'],
    ['RATE_LIMIT_PER_MINUTE', '1000001', 'RATE_LIMIT_PER_MINUTE must be between 0 and 1000000'],
    [
      'PASSKEY_AUDIT_LOG_DAYS',
      'a year',
      'PASSKEY_AUDIT_LOG_DAYS must be a whole number (0 keeps them forever)',
    ],
    ['PASSKEY_AUDIT_LOG_DAYS', '36501', 'PASSKEY_AUDIT_LOG_DAYS must be between 0 and 36500'],
    ['AUDIT_LOG_DAYS', '-1', 'AUDIT_LOG_DAYS must be a whole number (0 keeps them forever)'],
    ['AUDIT_LOG_DAYS', '36501', 'AUDIT_LOG_DAYS must be between 0 and 36500'],
  ])('refuses %s=%j with one line that names the variable', (variable, value, message) => {
    const error = errorFor({ [variable]: value });
    expect(error.name).toBe('ConfigError');
    expect(error.message.startsWith(variable)).toBe(true);
    expect(error.message).toContain(message);
    expect(error.message).not.toContain('\n');
  });

  it('reads the brand: BRAND_NAME over RP_NAME, the accent in lower case, the images with their type', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-brand-'));
    const png = Buffer.from('89504e470d0a1a0a0000000d494844520000004000000040', 'hex');
    fs.writeFileSync(path.join(dir, 'logo.png'), png);
    fs.writeFileSync(path.join(dir, 'big.png'), Buffer.concat([png, Buffer.alloc(64 * 1024)]));
    try {
      expect(load({ RP_NAME: 'Corp' }).brand.name).toBe('Corp');
      const config = load({
        RP_NAME: 'Corp',
        BRAND_NAME: ' Corp Login ',
        BRAND_ACCENT: '#0B5394',
        BRAND_LOGO: path.join(dir, 'logo.png'),
      });
      expect(config.brand).toEqual({
        name: 'Corp Login',
        accent: '#0b5394',
        logo: { bytes: png, type: 'image/png' },
        favicon: undefined,
      });
      // 64 KB and a few bytes: a logo may be that large, a favicon may not.
      expect(load({ BRAND_LOGO: path.join(dir, 'big.png') }).brand.logo?.type).toBe('image/png');
      expect(errorFor({ BRAND_FAVICON: path.join(dir, 'big.png') }).message).toBe(
        'BRAND_FAVICON must be at most 64 KB',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the first bad variable when several are wrong', () => {
    const error = errorFor({ ISSUER: 'nope', PORT: 'abc' });
    expect(error.message).toBe('ISSUER must be an absolute http(s) URL');
  });

  it('reads KEY_ENCRYPTION_SECRET_PREVIOUS beside KEY_ENCRYPTION_SECRET, and refuses it alone or equal to it, naming it', () => {
    const current = 'c'.repeat(32);
    const previous = 'p'.repeat(32);
    expect(load({ KEY_ENCRYPTION_SECRET: current, KEY_ENCRYPTION_SECRET_PREVIOUS: previous })).toMatchObject({
      keyEncryptionSecret: current,
      keyEncryptionSecretPrevious: previous,
    });
    expect(
      load({ KEY_ENCRYPTION_SECRET: current, KEY_ENCRYPTION_SECRET_PREVIOUS: '' })
        .keyEncryptionSecretPrevious,
    ).toBe(undefined);
    for (const env of <Record<string, string>[]>[
      { KEY_ENCRYPTION_SECRET_PREVIOUS: previous },
      { KEY_ENCRYPTION_SECRET: current, KEY_ENCRYPTION_SECRET_PREVIOUS: current },
    ]) {
      const error = errorFor(env);
      expect(error.name).toBe('ConfigError');
      expect(error.message).toMatch(/^KEY_ENCRYPTION_SECRET_PREVIOUS /);
      expect(error.message).not.toContain('\n');
      expect(error.message).not.toContain(previous);
      expect(error.message).not.toContain(current);
    }
  });

  it('does not put a secret value into the error message', () => {
    const error = errorFor({ KEY_ENCRYPTION_SECRET: 'hunter2-secret' });
    expect(error.message).not.toContain('hunter2');
  });

  it('ignores variables it does not know', () => {
    expect(() => load({ SESAME_UNKNOWN: 'x', NODE_ENV: 'production' })).not.toThrow();
  });
});

describe('ISSUER defaults and settings that start but cannot work', () => {
  it('defaults ISSUER to http://localhost:$PORT, so PORT alone moves every redirect with it', () => {
    const config = load({ PORT: '3400' });
    expect(config.issuer).toBe('http://localhost:3400');
    expect(config.origin).toBe('http://localhost:3400');
    expect(config.rpId).toBe('localhost');
  });

  it.each([
    ['http://localhost:3000', '0.0.0.0', undefined],
    ['http://sesame.localhost:3000', '0.0.0.0', undefined],
    ['https://id.example.com', '0.0.0.0', 'true'],
  ])('has nothing to say about ISSUER=%s on HOST=%s (TRUST_PROXY=%s)', (issuer, host, trustProxy) => {
    const env: Record<string, string> = { ISSUER: issuer, HOST: host };
    if (trustProxy) env.TRUST_PROXY = trustProxy;
    expect(configWarnings(load(env))).toEqual([]);
  });

  it.each([
    ['http://192.168.1.10:3402', /^ISSUER http:\/\/192\.168\.1\.10:3402 has an IP address as its host/],
    ['https://127.0.0.1:3000', /has an IP address as its host/],
    ['http://[::1]:3000', /has an IP address as its host/],
    ['http://sesame.example', /^ISSUER http:\/\/sesame\.example is http on a host other than localhost/],
  ])('warns in one line that passkeys cannot work on ISSUER=%s', (issuer, message) => {
    // TRUST_PROXY set, so only the ISSUER warning remains (https://127.0.0.1:3000 on the
    // default PORT 3000 is also told that Sesame serves no TLS there).
    const warnings = configWarnings(load({ ISSUER: issuer, TRUST_PROXY: 'true' }));
    expect(warnings[0]).toMatch(message);
    expect(warnings.slice(1)).toEqual(
      issuer.startsWith('https:') ? [expect.stringContaining('is https on port 3000')] : [],
    );
    expect(warnings[0]).not.toContain('\n');
  });

  it.each([
    ['http://localhost:3000', '3400', 3000],
    ['http://127.0.0.1:3000', '3400', 3000],
    ['http://sesame.localhost', '3000', 80],
  ])(
    'warns when ISSUER=%s is on this machine but PORT=%s is another port (a local proxy may map it)',
    (issuer, port, issuerPort) => {
      const warnings = configWarnings(load({ ISSUER: issuer, PORT: port }));
      expect(warnings).toContainEqual(
        `ISSUER ${issuer} is on this machine but Sesame listens on PORT ${port}: its links lead to port ${issuerPort}, where only a proxy forwarding to ${port} would answer`,
      );
    },
  );

  it.each([
    ['https://sesame.localhost:6004', '6004', undefined],
    ['https://localhost:6004', '6004', 'true'],
    ['https://localhost', '443', 'true'],
  ])(
    'warns that ISSUER=%s on PORT=%s needs a TLS proxy Sesame is not (TRUST_PROXY=%s)',
    (issuer, port, trustProxy) => {
      const env: Record<string, string> = { ISSUER: issuer, PORT: port };
      if (trustProxy) env.TRUST_PROXY = trustProxy;
      const warnings = configWarnings(load(env));
      const issuerPort = new URL(issuer).port || '443';
      expect(warnings[0]).toBe(
        `ISSUER ${issuer} is https on port ${issuerPort}, where Sesame itself serves plain http (PORT): an https ISSUER needs a TLS-terminating proxy in front, on that port forwarding to another PORT, or browsers get a TLS error on every page (locally, use http://localhost:${port})`,
      );
      // One line each; without TRUST_PROXY its own line follows, as for any https ISSUER.
      expect(warnings).toHaveLength(trustProxy ? 1 : 2);
    },
  );

  it.each([
    ['3000', 'on another port than PORT (a proxy can be there)'],
    ['443', "on PORT, on a host other than this machine (another machine's proxy can forward to that port)"],
  ])('says nothing of TLS when an https ISSUER is on PORT=%s: %s', (port) => {
    expect(
      configWarnings(load({ ISSUER: 'https://id.example.com', PORT: port, TRUST_PROXY: 'true' })),
    ).toEqual([]);
  });

  it.each([
    ['any address', {}],
    ['a loopback HOST (a proxy on the same machine)', { HOST: '127.0.0.1' }],
  ])('warns when ISSUER is https but TRUST_PROXY is unset, on %s', (_name, env) => {
    expect(configWarnings(load({ ISSUER: 'https://id.example.com', ...env }))).toEqual([
      expect.stringMatching(/^ISSUER is https but TRUST_PROXY is not set/),
    ]);
  });
});
