import fc from 'fast-check';
import { sql } from 'kysely';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import type { Db } from '../../src/db/connect.js';
import { usersQueries } from '../../src/db/queries/users.js';
import type { Database } from '../../src/db/schema.js';
import { createClient } from '../../src/oidc/clients.js';
import { PROVIDER_PATHS } from '../../src/oidc/providerPaths.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { asPage } from '../support/browser.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { rawRequest } from '../support/rawRequest.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/**
 * Every route, Sesame's and the provider's, gets malformed, oversized, odd-typed and
 * odd-unicode input. Whatever arrives, the answer is never a 5xx, and a refused request
 * (a 4xx, or a redirect carrying an OAuth error) changes no row.
 *
 * FUZZ_RUNS sets the cases per route, FUZZ_SEED the seed (fixed by default, so every run
 * sends the same cases). `npm test` sends 25 per route (about 30 s), so the whole suite stays
 * quick; CI also runs `npm run fuzz -- --runs 200` on its own (about 3 minutes, the two parts side by side), and
 * `npm run fuzz -- --runs 10000` runs more.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 25);
const SEED = Number(process.env.FUZZ_SEED ?? 20_260_417);
/** FUZZ_ROUTES (a regular expression) narrows the run to the routes whose path matches, while a fix is made. */
const ONLY = new RegExp(process.env.FUZZ_ROUTES ?? '');
// About a hundred routes; a case takes a few milliseconds, many more on a loaded machine.
const TIMEOUT_MS = Math.max(300_000, RUNS * 10_000);

const TABLES: (keyof Database)[] = [
  'users',
  'credentials',
  'webauthn_challenges',
  'oidc_models',
  'clients',
  'signing_keys',
  'app_secrets',
  'one_time_tokens',
  'api_keys',
  'audit_events',
  'step_ups',
  'admin_form_tokens',
  'passkey_tenants',
  'passkey_tenant_users',
  'passkey_tenant_credentials',
  'backchannel_deliveries',
  'passkey_tenant_transactions',
  'groups',
  'group_members',
  'client_allowed_groups',
  'resources',
  'branding',
  'mail_outbox',
  'email_verifications',
  // Not passkey_tenant_audit_logs: a refused ceremony is written there on purpose, as Hanko does.
];

/**
 * Row counts of every table, read in one statement: "a, b, c, ..." compares as a string.
 * Browser sessions (oidc_models rows of the Session model) are counted on their own, last.
 */
async function rowCounts(db: Db): Promise<string> {
  const row = await db
    .selectNoFrom((eb) => [
      ...TABLES.map((table) =>
        table === 'oidc_models'
          ? sql<string>`(select count(*) from oidc_models where model <> 'Session')`.as(table)
          : eb
              .selectFrom(table)
              .select((inner) => inner.fn.countAll<string>().as('n'))
              .as(table),
      ),
      sql<string>`(select count(*) from oidc_models where model = 'Session')`.as('browser_sessions'),
    ])
    .executeTakeFirstOrThrow();
  return [...TABLES, 'browser_sessions']
    .map((table) => `${table}=${(row as Record<string, unknown>)[table]}`)
    .join(', ');
}

/**
 * Routes whose refusal may start a browser session: the device page shows its code form
 * again with a new anti-forgery token, which lives in the visitor's session; so does a GET
 * of `/device/auth`, which is also the shape of a resumed device sign-in (`/device/:uid`).
 */
const REFUSAL_STARTS_SESSION = new Set(['/device', '/device/auth']);
const withoutSessions = (counts: string) => counts.replace(/, browser_sessions=\d+$/, '');

/** A route to fuzz: its methods and its path, with `:name` and `{*rest}` segments to fill. */
interface Route {
  methods: string[];
  path: string;
}

/** What the app answers, enumerated from its routers' stacks (so a new route is fuzzed too) and the provider's paths. */
function routesOf(sesame: TestApp): Route[] {
  const routes: Route[] = [];
  for (const router of sesame.app.routers) {
    for (const layer of router.stack) {
      // CONNECT opens a tunnel, not a request: node:http would wait for the tunnel forever.
      const methods = layer.methods.filter((m) => m !== 'HEAD' && m !== 'CONNECT');
      if (methods.length > 0 && typeof layer.path === 'string') routes.push({ methods, path: layer.path });
    }
  }
  for (const path of PROVIDER_PATHS) routes.push({ methods: ['GET', 'POST'], path });
  routes.push({ methods: ['GET', 'POST'], path: '/auth/:uid' });
  return routes;
}

// Lone surrogates cannot travel in UTF-8; in a URL or form they go as the bytes a careless
// encoder would write (CESU-8), which are invalid UTF-8. The rest is encoded a run at a time
// (a character at a time, the long strings took a third of the fuzz's CPU).
function encodeComponent(value: string): string {
  return value
    .split(/([\ud800-\udfff])/u)
    .map((part) => {
      const code = part.length === 1 ? part.charCodeAt(0) : 0;
      if (code < 0xd800 || code > 0xdfff) return encodeURIComponent(part);
      return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    })
    .join('');
}

const PARAMETER_NAMES = [
  'client_id',
  'client_secret',
  'response_type',
  'redirect_uri',
  'scope',
  'state',
  'nonce',
  'prompt',
  'code',
  'code_verifier',
  'code_challenge',
  'code_challenge_method',
  'grant_type',
  'refresh_token',
  'token',
  'token_type_hint',
  'access_token',
  'id_token_hint',
  'post_logout_redirect_uri',
  'logout',
  'request',
  'request_uri',
  'login_hint',
  'ui_locales',
  'max_age',
  'claims',
  'resource',
  'return_to',
  'cursor',
  'limit',
  'email',
  'name',
  'admin',
  'decision',
  '_csrf',
  'user_id',
  'username',
  'display_name',
  'icon',
  'redirect_uris',
  'post_logout_redirect_uris',
  'public',
  'first_party',
  'origins',
  'id',
  'rawId',
  'type',
  'response',
  'xsrf',
];

interface Values {
  clientId: string;
  userId: string;
  tenantId: string;
}

function oddString(values: Values): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        '\u0000',
        'a\u0000b',
        '\ud800',
        'x\udfffy',
        '\r\n',
        'a\r\nSet-Cookie: x=1',
        '/\r\nLocation: //evil.example',
        '//evil.example',
        '/\\evil.example',
        '',
        ' ',
        '%00',
        '%',
        '../../etc/passwd',
        '<script>alert(1)</script>',
        "' or 1=1 --",
        'true',
        '-1',
        '1e309',
        'NaN',
        '9007199254740993',
        'null',
        '[]',
        '{}',
        'code',
        'openid',
        'S256',
        'client_credentials',
        'authorization_code',
        'refresh_token',
        'ada@example.com',
        'https://app.example/cb',
        values.clientId,
        values.userId,
        values.tenantId,
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom('a'.repeat(65_536), '\u00e9'.repeat(40_000), '\u0000'.repeat(70_000)),
    },
  );
}

/** Any JSON value, with odd strings, deep nesting and arrays where strings belong. */
function oddJson(values: Values): fc.Arbitrary<unknown> {
  const text = oddString(values);
  const leaf = fc.oneof(
    text,
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -0, 1e308),
  );
  const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('tree'), { maxLength: 4 }),
      fc.dictionary(fc.oneof(fc.constantFrom(...PARAMETER_NAMES), text), tie('tree'), { maxKeys: 4 }),
    ),
  }));
  return fc.oneof(
    { weight: 6, arbitrary: fc.dictionary(fc.constantFrom(...PARAMETER_NAMES), tree, { maxKeys: 6 }) },
    { weight: 2, arbitrary: tree },
  );
}

/** Query strings and forms: known and unknown names, repeated names (arrays), odd values. */
function oddPairs(values: Values): fc.Arbitrary<[string, string][]> {
  return fc.array(
    fc.tuple(
      fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...PARAMETER_NAMES) }, oddString(values)),
      oddString(values),
    ),
    { maxLength: 6 },
  );
}

const encodePairs = (pairs: [string, string][]) =>
  pairs.map(([k, v]) => `${encodeComponent(k)}=${encodeComponent(v)}`).join('&');

type Body =
  | { kind: 'none' }
  | { kind: 'form'; pairs: [string, string][] }
  | { kind: 'json'; value: unknown; contentType: string }
  | { kind: 'raw'; text: string; contentType: string };

function oddBody(values: Values): fc.Arbitrary<Body> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant<Body>({ kind: 'none' }) },
    { weight: 3, arbitrary: oddPairs(values).map((pairs): Body => ({ kind: 'form', pairs })) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(
          oddJson(values),
          fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain'),
        )
        .map(([value, contentType]): Body => ({ kind: 'json', value, contentType })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          fc.oneof(
            oddString(values),
            // Nesting deep enough to overflow a recursive walker (sent as text: fast-check's printer would overflow on the value).
            fc.integer({ min: 500, max: 20_000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
            fc
              .integer({ min: 500, max: 5_000 })
              .map((depth) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
            fc.constantFrom(
              '{',
              '{"a":',
              '[1,2',
              '\u0000',
              '{"name":"\\ud800"}',
              '{"a":"\\u0000"}',
              'a=1&a=2&a[b]=3',
            ),
          ),
          fc.constantFrom(
            'application/json',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
            'text/xml',
            'application/octet-stream',
            'application/jwt',
            'application/json; charset=latin1',
            '',
          ),
        )
        .map(([text, contentType]): Body => ({ kind: 'raw', text, contentType })),
    },
  );
}

interface Case {
  method: string;
  params: (string | undefined)[];
  query: [string, string][];
  body: Body;
  credentials: boolean;
  csrf: boolean;
}

const ODD_METHODS = [
  'TRACE',
  'PROPFIND',
  'OPTIONS',
  'PUT',
  'PATCH',
  'DELETE',
  'HEAD',
  'MKCOL',
  'COPY',
  'SEARCH',
];

function oddCase(route: Route, values: Values): fc.Arbitrary<Case> {
  const slots = (route.path.match(/:\w+|\{\*\w+\}/g) ?? []).length;
  return fc.record({
    method: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...route.methods) },
      { weight: 1, arbitrary: fc.constantFrom(...ODD_METHODS) },
    ),
    // undefined: the real value of that segment (an existing interaction, link, tenant, ...).
    params: fc.array(fc.option(oddString(values), { nil: undefined, freq: 2 }), {
      minLength: slots,
      maxLength: slots,
    }),
    query: oddPairs(values),
    body: oddBody(values),
    credentials: fc.boolean(),
    csrf: fc.boolean(),
  });
}

/**
 * Fuzzes every `of`-th route starting at `shard` (0-based), against an app of its own: the
 * routes are split over two test files so the two Jest workers share the run.
 */
export function describeRouteFuzz(shard: number, of: number): void {
  describe(`fuzzing every route (part ${shard + 1} of ${of})`, () => {
    let sesame: TestApp;
    let values: Values;
    let admin: Person;
    let adminCsrf: string;
    let visitor: Person;
    let interactionUid: string;
    let linkToken: string;
    let apiKey: string;
    let tenantKey: string;

    beforeAll(async () => {
      sesame = await startTestApp();
      admin = new Person(sesame.baseUrl);
      const loginPage = asPage(await admin.browser.follow('/admin'));
      const next = await admin.signUp(loginPage, 'root@example.com');
      await admin.browser.follow(next);
      const adminId = (await usersQueries.findByEmail(sesame.db, 'root@example.com'))!.id;
      await usersQueries.update(sesame.db, adminId, { isAdmin: true });
      const adminPage = asPage(await admin.browser.follow('/admin/clients'));
      adminCsrf = adminPage.csrf();
      expect((await stepUp(admin, adminCsrf)).status).toBe(200);

      const { client } = await createClient(
        sesame.db,
        { name: 'Fuzzed', redirect_uris: ['https://app.example/cb'] },
        'test',
      );
      const { tenant, apiKey: key } = await createTenant(
        sesame.db,
        sesame.config,
        { name: 'Fuzzed', origins: ['https://app.example'] },
        'test',
      );
      tenantKey = key;
      apiKey = (await createApiKey(sesame.db, 'fuzz', 'test')).key;
      linkToken = new URL(
        (await createOneTimeLink(sesame.db, sesame.config, { email: 'new@example.com', actor: 'test' })).url,
      ).pathname
        .split('/')
        .pop()!;

      visitor = new Person(sesame.baseUrl);
      const prompt = asPage(await visitor.browser.follow('/account/login'));
      interactionUid = /\/interaction\/([^/?#]+)/.exec(prompt.url)![1]!;
      // Routes that name a user get someone else: the fuzzer may disable or delete them.
      const someone = await usersQueries.insert(sesame.db, { email: 'someone@example.com', name: null });
      values = { clientId: client.client_id, userId: someone.id, tenantId: tenant.id };
    }, 120_000);

    afterAll(() => sesame?.stop());

    /** The real value for a path segment, so most requests reach the handler behind it. */
    function realSegment(name: string, path: string): string {
      if (name === ':uid') return interactionUid;
      if (name === ':id' && path.includes('/users/')) return values.userId;
      if (name === ':id' && path.includes('/passkey-tenants/')) return values.tenantId;
      if (name === ':token') return linkToken;
      if (name === ':tenantId') return values.tenantId;
      if (name === ':clientId') return values.clientId;
      if (name === ':id') return values.clientId;
      return 'x';
    }

    async function send(route: Route, c: Case): Promise<{ status: number; refused: boolean; url: string }> {
      let index = 0;
      const path = route.path.replace(/:\w+|\{\*\w+\}/g, (name) => {
        const fuzzed = c.params[index++];
        return fuzzed === undefined ? realSegment(name, route.path) : encodeComponent(fuzzed) || 'x';
      });
      const query = encodePairs(c.query);
      const url = `${sesame.baseUrl}${path}${query ? `?${query}` : ''}`;
      const headers: Record<string, string> = {
        accept: 'text/html,application/json',
        origin: sesame.baseUrl,
      };
      // Signing out would leave the rest of the run without its admin session.
      const signsOut = /sign-out-everywhere|logout/.test(route.path);
      const person = route.path.startsWith('/interaction') ? visitor : admin;
      if (c.credentials && !signsOut) {
        const cookie = await person.browser.jar.getCookieString(url);
        if (cookie) headers.cookie = cookie;
        if (route.path.startsWith('/api/admin')) headers.authorization = `Bearer ${apiKey}`;
        if (route.path.startsWith('/passkey-api')) headers.apikey = tenantKey;
      }
      if (c.csrf) headers['x-csrf-token'] = adminCsrf;
      let body: string | undefined;
      const withBody = !['GET', 'HEAD'].includes(c.method);
      if (withBody && c.body.kind === 'form') {
        const pairs = c.csrf ? [...c.body.pairs, ['_csrf', adminCsrf] as [string, string]] : c.body.pairs;
        headers['content-type'] = 'application/x-www-form-urlencoded';
        body = encodePairs(pairs);
      } else if (withBody && c.body.kind === 'json') {
        headers['content-type'] = c.body.contentType;
        body = JSON.stringify(c.body.value);
      } else if (withBody && c.body.kind === 'raw') {
        if (c.body.contentType) headers['content-type'] = c.body.contentType;
        body = c.body.text;
      }
      const response = await rawRequest(url, { method: c.method, headers, body });
      const location = String(response.headers.location ?? '');
      const refused =
        (response.status >= 400 && response.status < 500) ||
        (response.status >= 300 && response.status < 400 && /[?&#]error=/.test(location));
      return { status: response.status, refused, url: `${c.method} ${url.slice(0, 300)}` };
    }

    it(
      `answers ${RUNS} odd requests per route without a 5xx, and a refused one changes no row`,
      async () => {
        const all = routesOf(sesame);
        expect(all.length).toBeGreaterThan(80);
        const routes = all.filter((route, index) => index % of === shard && ONLY.test(route.path));
        const failures: string[] = [];
        let sent = 0;
        for (const route of routes) {
          let counts = await rowCounts(sesame.db);
          const result = await fc.check(
            fc.asyncProperty(oddCase(route, values), async (c) => {
              const answer = await send(route, c);
              sent++;
              const after = await rowCounts(sesame.db);
              const changed = REFUSAL_STARTS_SESSION.has(route.path)
                ? withoutSessions(after) !== withoutSessions(counts)
                : after !== counts;
              const before = counts;
              counts = after;
              if (answer.status >= 500) throw new Error(`${answer.status} from ${answer.url}`);
              if (answer.refused && changed)
                throw new Error(
                  `refused with ${answer.status} but rows changed: ${before} -> ${after}: ${answer.url}`,
                );
            }),
            { numRuns: RUNS, seed: SEED, endOnFailure: true },
          );
          if (result.failed) {
            const error = result.errorInstance as Error | undefined;
            const example = JSON.stringify(result.counterexample?.[0])?.slice(0, 400);
            failures.push(
              `${route.path}: ${String(error?.message ?? error).slice(0, 600)} (case ${example})`,
            );
          }
        }
        // The figures for the issue note: how many requests this run sent over how many routes.
        console.log(
          `fuzz: ${sent} requests over ${routes.length} routes (part ${shard + 1} of ${of}; ${RUNS} cases each, seed ${SEED})`,
        );
        expect(failures).toEqual([]);
      },
      TIMEOUT_MS,
    );
  });
}
