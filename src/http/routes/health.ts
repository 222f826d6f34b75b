import type Router from '@koa/router';
import { sql } from 'kysely';
import type { Db } from '../../db/connect.js';
import { sesameRouter } from '../router.js';

/**
 * `/healthz`: the process answers. `/readyz`: and its database does too.
 *
 * Neither fails while row change notices are not arriving: the instance still answers
 * correctly, reading every row from the database, only slower. All instances usually share
 * the cause (the direct connection, the pooler), so an unready answer would take every one
 * out of the balancer and turn slower answers into none. The metric
 * `sesame_row_change_listener_up` shows it instead.
 */
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
