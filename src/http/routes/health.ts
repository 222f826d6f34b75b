import type Router from '@koa/router';
import { sql } from 'kysely';
import type { Db } from '../../db/connect.js';
import { sesameRouter } from '../router.js';

/** `/healthz`: the process answers. `/readyz`: and its database does too. */
export function healthRoutes(db: Db): Router {
  const router = sesameRouter();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    try {
      await sql`select 1`.execute(db);
      ctx.body = { status: 'ok' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', reason: 'database does not answer' };
    }
  });
  return router;
}
