import type Router from '@koa/router';
import type { Db } from '../../db/connect.js';
import { metricsRegistry } from '../../metrics.js';
import { requireApiKey } from '../middleware/apiKey.js';
import { sesameRouter } from '../router.js';

/**
 * `GET /metrics`: Prometheus text format, for a scraper holding an admin API key of scope
 * `metrics`, which opens nothing else (an `admin` key works too), sent as
 * `Authorization: Bearer <key>` (Prometheus: `authorization: { credentials: ... }`). The
 * numbers say how many people sign in and how the database copes: not for everyone.
 */
export function metricsRoutes(db: Db): Router {
  const router = sesameRouter({}, requireApiKey(db, 'metrics'));
  router.get('/metrics', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.type = metricsRegistry.contentType;
    ctx.body = await metricsRegistry.metrics();
  });
  return router;
}
