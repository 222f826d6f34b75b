import type { Context, Next } from 'koa';
import type { Logger } from '../../logger.js';

/**
 * One `info` line per request: method, URL, final status and duration. The logger redacts
 * the URL (a one-time link's token is its path; a logout carries an ID token in its query),
 * so this line is safe to ship to a log service.
 */
export function requestLog(log: Logger) {
  // At LOG_LEVEL=warn and above there is no line to write: no timing, no await.
  if (!log.writes('info')) return (_ctx: Context, next: Next) => next();
  return async function logRequest(ctx: Context, next: Next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      log.info('request', {
        method: ctx.method,
        url: ctx.originalUrl,
        // The provider answers on ctx.res itself; ctx.status reads the status it sent.
        status: ctx.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ip: ctx.ip,
      });
    }
  };
}
