import { createApiKey } from '../../src/admin/apiKeys.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { asPage } from '../support/browser.js';
import { Person } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/** A value for each route parameter: what a guard sees before any handler could look it up. */
const SAMPLE = '00000000-0000-4000-8000-000000000000';

/** A concrete path for a registered route: parameters filled in, a wildcard given one segment. */
function concretePath(pattern: string): string {
  return pattern
    .replace(/\{\/\*\w+\}/g, '/anything')
    .replace(/\{\*\w+\}/g, 'anything')
    .replace(/:\w+/g, SAMPLE);
}

/** Indexes of the letters that start a static segment: the spots a case or percent variant changes. */
function staticSegmentStarts(path: string): number[] {
  const starts: number[] = [];
  let offset = 0;
  for (const segment of path.split('/')) {
    if (segment && segment !== SAMPLE && segment !== 'anything') {
      const letter = segment.search(/[a-z]/);
      if (letter >= 0) starts.push(offset + letter);
    }
    offset += segment.length + 1;
  }
  return starts;
}

const at = (path: string, index: number, replacement: string) =>
  path.slice(0, index) + replacement + path.slice(index + 1);

/** Every other spelling of `path` a router or a proxy might take for the same resource. */
function variants(path: string): string[] {
  const starts = staticSegmentStarts(path);
  const out = new Set<string>([
    path.toUpperCase(),
    `${path}/`,
    `/${path}`,
    path.replace(/\/(?=[^/]*$)/, '//'),
  ]);
  for (const index of starts) {
    const letter = path[index]!;
    out.add(at(path, index, letter.toUpperCase()));
    out.add(at(path, index, `%${letter.charCodeAt(0).toString(16)}`));
  }
  out.delete(path);
  return [...out];
}

/** The routes of Sesame's own routers as (method, path) pairs, read from the routers themselves. */
function registeredRoutes(sesame: TestApp): Array<{ method: string; path: string }> {
  const routes: Array<{ method: string; path: string }> = [];
  for (const router of sesame.app.routers) {
    for (const layer of router.stack) {
      if (layer.methods.length === 0) continue;
      if (typeof layer.path !== 'string')
        throw new Error(`a route with a RegExp path: ${String(layer.path)}`);
      const methods = layer.methods.filter((m) => m !== 'HEAD');
      // A catch-all (router.all) is walked with the methods a client would use.
      const walked = methods.length > 5 ? ['GET', 'POST'] : methods;
      for (const method of walked) routes.push({ method, path: concretePath(layer.path) });
    }
  }
  return routes;
}

describe('every route answers only at its own spelling, never without its guard', () => {
  let sesame: TestApp;
  /** Cookies of a signed-in admin and an admin API key: what a variant must not let through. */
  let adminCredentials: Record<string, string>;
  /** Cookies of a signed-in person who is not an admin. */
  let personCredentials: Record<string, string>;

  async function signUp(email: string) {
    const person = new Person(sesame.baseUrl);
    const loginPage = asPage(await person.browser.follow('/account'));
    await person.browser.follow(await person.signUp(loginPage, email));
    const user = await usersQueries.findByEmail(sesame.db, email);
    return { person, userId: user!.id };
  }

  const cookiesOf = async (person: Person) => ({
    cookie: await person.browser.jar.getCookieString(`${sesame.baseUrl}/admin/clients`),
  });

  beforeAll(async () => {
    sesame = await startTestApp();
    const admin = await signUp('root@example.com');
    await usersQueries.update(sesame.db, admin.userId, { isAdmin: true });
    const { key } = await createApiKey(sesame.db, 'route walker', 'cli');
    adminCredentials = { ...(await cookiesOf(admin.person)), authorization: `Bearer ${key}` };
    personCredentials = await cookiesOf((await signUp('someone@example.com')).person);
  }, 60_000);

  afterAll(() => sesame.stop());

  /** Who a route is walked as: nobody, a signed-in person, a signed-in admin with an API key. */
  const everyCaller = () =>
    [
      ['nobody', {}],
      ['a person', personCredentials],
      ['an admin', adminCredentials],
    ] as const;

  /** Sends `method path` over a raw connection-level URL (fetch would normalise `//` and `%63`). */
  async function status(method: string, path: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${sesame.listenUrl}${path}`, {
      method,
      redirect: 'manual',
      headers: { accept: 'application/json', 'content-type': 'application/json', ...headers },
      ...(method === 'GET' || method === 'HEAD' ? {} : { body: '{}' }),
    });
    await response.arrayBuffer();
    return response.status;
  }

  it("answers a HEAD as its GET, with the GET's status, for a browser and a script", async () => {
    const problems: string[] = [];
    const callers = everyCaller();
    const gets = registeredRoutes(sesame).filter(({ method }) => method === 'GET');
    expect(gets.length).toBeGreaterThan(30);
    for (const { path } of gets) {
      for (const [who, credentials] of callers) {
        for (const accept of ['text/html', 'application/json']) {
          const headers = { ...credentials, accept };
          const get = await status('GET', path, headers);
          const head = await status('HEAD', path, headers);
          if (head !== get) problems.push(`HEAD ${path} as ${who}, ${accept}: ${head} (GET: ${get})`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('finds the routes it walks in the routers themselves', () => {
    const paths = registeredRoutes(sesame).map(({ path }) => path);
    expect(paths).toEqual(expect.arrayContaining(['/api/admin/clients', '/admin/users', '/account']));
    expect(paths.length).toBeGreaterThan(60);
  });

  it('answers a case, slash or percent variant of any route with 404 or its guard, with or without credentials', async () => {
    const problems: string[] = [];
    const callers = everyCaller();
    for (const { method, path } of registeredRoutes(sesame)) {
      for (const [who, headers] of callers) {
        const canonical = await status(method, path, headers);
        // The answer a guard gives this caller at the canonical path (401, 403) may come back
        // for a variant a router still claims; a handler's answer (2xx, 5xx) never may.
        const allowed = new Set([404, ...(canonical >= 400 && canonical < 500 ? [canonical] : [])]);
        // The variants of one path go out together: each answer is checked on its own.
        const spellings = variants(path);
        const answers = await Promise.all(spellings.map((variant) => status(method, variant, headers)));
        for (const [i, variant] of spellings.entries()) {
          if (!allowed.has(answers[i]!))
            problems.push(`${method} ${variant} as ${who}: ${answers[i]} (at ${path}: ${canonical})`);
        }
      }
    }
    expect(problems).toEqual([]);
  }, 300_000);

  it.each([
    ['GET', '/.well-known/openid-configuration'],
    ['GET', '/jwks'],
    ['POST', '/token'],
    ['GET', '/me'],
    ['POST', '/token/introspection'],
    ['POST', '/token/revocation'],
    ['GET', '/session/end'],
  ])('leaves %s %s to the provider at its own spelling only', async (method, path) => {
    expect(await status(method, path)).not.toBe(404);
    const answers = await Promise.all(variants(path).map(async (v) => [v, await status(method, v)] as const));
    expect(answers.filter(([, answer]) => answer !== 404)).toEqual([]);
  });

  it('still serves the canonical guarded routes to those allowed', async () => {
    expect(await status('GET', '/api/admin/clients', adminCredentials)).toBe(200);
    expect(await status('GET', '/api/admin/clients')).toBe(401);
    expect(await status('GET', '/admin/clients', adminCredentials)).toBe(200);
    expect(await status('GET', '/admin/clients', personCredentials)).toBe(403);
    expect(await status('GET', '/admin', { accept: 'text/html' })).toBe(302);
  });
});
