import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import compose from 'koa-compose';
import { routersByPath, sesameRouter } from '../../src/http/router.js';
import { rawRequest } from '../support/rawRequest.js';

/**
 * Sesame's routers are dispatched by path (router.ts, routersByPath): a request goes only
 * through the routers with a route for its path. Every answer must be the one the routers
 * give when run one after another, as they were: status, Allow, body, and which handler ran.
 */

function routers(): Router[] {
  const pages = sesameRouter();
  pages.get('/interaction/:uid', (ctx) => (ctx.body = `page ${ctx.params.uid}`));
  pages.post('/interaction/:uid/login/verify', (ctx) => (ctx.body = 'verified'));
  const account = sesameRouter({ prefix: '/account' });
  account.get('/', (ctx) => (ctx.body = 'account'));
  account.post('/passkeys/:id/delete', (ctx) => (ctx.body = 'deleted'));
  // The same path in two routers, by different methods.
  const admin = sesameRouter({ prefix: '/admin' });
  admin.get('/clients', (ctx) => (ctx.body = 'list'));
  const adminWrites = sesameRouter({ prefix: '/admin' });
  adminWrites.post('/clients', (ctx) => (ctx.body = 'created'));
  // A route that passes the request on: the routers after it still see it.
  const passing = sesameRouter();
  passing.get('/both', async (ctx, next) => {
    ctx.set('x-first', 'yes');
    await next();
  });
  const last = sesameRouter();
  last.get('/both', (ctx) => (ctx.body = 'second'));
  // A route whose first segment is a parameter, and one after a route with a wildcard: the
  // routers are not told apart by a path's first segment then.
  const tenants = sesameRouter();
  tenants.get('/:tenant/things', (ctx) => (ctx.body = `things of ${ctx.params.tenant}`));
  const wildcard = sesameRouter({ prefix: '/api' });
  wildcard.get('/known', (ctx) => (ctx.body = 'known'));
  wildcard.all('/{*rest}', (ctx) => (ctx.body = 'unknown endpoint'));
  // A router of @koa/router's defaults (not sesameRouter's): case-insensitive. A later router
  // has a route for the path as it spells it.
  const loose = new Router();
  loose.get('/loose', (ctx) => (ctx.body = 'loose'));
  const capitals = sesameRouter();
  capitals.post('/LOOSE', (ctx) => (ctx.body = 'capitals'));
  // First, so each answers a path a later router has a route for too.
  return [tenants, loose, pages, account, admin, adminWrites, passing, last, wildcard, capitals];
}

function serve(middleware: Koa.Middleware) {
  const app = new Koa();
  app.use(middleware);
  // What none answers: Sesame's own 404 (app.ts, noSuchPage).
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = 'no such page';
  });
  return new Promise<http.Server>((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** What the comparison looks at in an answer: status, Allow, the passing route's header, body. */
async function ask(server: http.Server, method: string, path: string) {
  const { status, headers, text } = await rawRequest(
    `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    { method },
  );
  return { status, allow: headers.allow, first: headers['x-first'] as string | undefined, body: text };
}

let oneAfterAnother: http.Server;
let byPath: http.Server;
beforeAll(async () => {
  const chain = routers().flatMap((router) => [router.routes(), router.allowedMethods()] as Koa.Middleware[]);
  oneAfterAnother = await serve(compose(chain));
  byPath = await serve(routersByPath(routers()));
});
afterAll(async () => {
  await new Promise((resolve) => oneAfterAnother.close(resolve));
  await new Promise((resolve) => byPath.close(resolve));
});

const PATHS = [
  '/interaction/abc',
  '/interaction/abc/login/verify',
  '/Interaction/abc',
  '/interaction/abc/',
  '/account',
  '/account/',
  '/account/passkeys/p1/delete',
  '/admin/clients',
  '/both',
  '/acme/things',
  '/interaction/things',
  '/api/known',
  '/api/other/path',
  '/API/known',
  '/loose',
  '/LOOSE',
  '/loose/',
  '/nowhere',
  '/',
];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND'];

describe('routers dispatched by path', () => {
  it('answer every method at every path as the routers run one after another do', async () => {
    let compared = 0;
    // Twice: the second time each set of matching routers runs the stack composed for it before.
    for (const _time of [1, 2]) {
      for (const path of PATHS) {
        for (const method of METHODS) {
          const expected = await ask(oneAfterAnother, method, path);
          const actual = await ask(byPath, method, path);
          expect({ method, path, ...actual }).toEqual({ method, path, ...expected });
          compared += 1;
        }
      }
    }
    expect(compared).toBe(2 * PATHS.length * METHODS.length);
  });

  it('name the methods of both routers of a path in a 405 and an OPTIONS answer', async () => {
    const refused = await ask(byPath, 'DELETE', '/admin/clients');
    expect(refused.status).toBe(405);
    expect(refused.allow?.split(', ').sort()).toEqual(['GET', 'HEAD', 'POST']);
    const options = await ask(byPath, 'OPTIONS', '/admin/clients');
    expect(options.status).toBe(200);
    expect(options.allow?.split(', ').sort()).toEqual(['GET', 'HEAD', 'POST']);
    expect((await ask(byPath, 'POST', '/admin/clients')).body).toBe('created');
  });

  it('let a route that passes a request on reach the next router of its path', async () => {
    expect(await ask(byPath, 'GET', '/both')).toMatchObject({ status: 200, first: 'yes', body: 'second' });
  });

  it('answer a method no router implements with 501, at a path none knows too', async () => {
    expect((await ask(byPath, 'PROPFIND', '/nowhere')).status).toBe(501);
    expect((await ask(byPath, 'GET', '/nowhere')).status).toBe(404);
  });
});
