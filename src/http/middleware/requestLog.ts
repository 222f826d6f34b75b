import type { Context, Next } from 'koa';
import type { Logger } from '../../logger.js';

/**
 * One `info` line per request: method, URL, final status and duration. The logger redacts
 * the URL (a one-time link's token is its path; a logout carries an ID token in its query),
 * so this line is safe to ship to a log service.
 */
export function requestLog(log: Logger) {
  const line = requestLine(log);
  // At LOG_LEVEL=warn and above there is no line to write: no timing, no await.
  if (!line) return (_ctx: Context, next: Next) => next();
  return async function logRequest(ctx: Context, next: Next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      // The provider answers on ctx.res itself; ctx.status reads the status it sent.
      line(ctx.method, ctx.originalUrl, ctx.status, started, ctx.ip);
    }
  };
}

/** Writes the `info` line of {@link requestLog} for a request that began at `started` (performance.now()); undefined when `log` writes no `info`. */
export function requestLine(log: Logger) {
  if (!log.writes('info')) return undefined;
  return (method: string | undefined, url: string | undefined, status: number, started: number, ip: string) =>
    log.info('request', { method, url, status, ms: Math.round((performance.now() - started) * 10) / 10, ip });
}
