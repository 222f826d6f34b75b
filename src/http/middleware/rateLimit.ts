import type { Context, Middleware, Next } from 'koa';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { HttpError } from '../errors.js';

/**
 * The window RATE_LIMIT_PER_MINUTE counts in. Passkey ceremonies and one-time links are
 * what a guesser or a scripted abuser hammers (challenges to fill the table, assertions to
 * replay, link tokens to probe); a person needs a handful per minute, so the default of 600
 * per client IP stops scripts long before it bothers anyone, even behind a shared NAT.
 */
const WINDOW_SECONDS = 60;

/**
 * The client a request is counted against: its IP address (the proxy's X-Forwarded-For
 * when TRUST_PROXY is on, as Koa reads it), and for IPv6 its /64 network, since one host
 * commonly holds a whole /64 and could otherwise take a fresh address per request.
 */
export function rateLimitKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const [head = '', tail] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/**
 * A per-client-IP limit shared by every route it guards: `perMinute` requests in a rolling
 * minute, then 429 `rate_limited` with Retry-After (seconds) until the window frees up.
 * In memory, per instance: a limit, not an exact count, across several instances.
 * `perMinute` 0 turns it off (the benchmark measures throughput that way).
 */
export function rateLimit(perMinute: number): Middleware {
  if (perMinute === 0) {
    return async function noRateLimit(_ctx: Context, next: Next) {
      await next();
    };
  }
  const limiter = new RateLimiterMemory({ points: perMinute, duration: WINDOW_SECONDS });
  return async function limitRate(ctx: Context, next: Next) {
    await consumeOrRefuse(ctx, limiter, rateLimitKey(ctx.ip));
    await next();
  };
}

/** Counts one request against `key`; over the limit, 429 `rate_limited` with Retry-After. */
async function consumeOrRefuse(ctx: Context, limiter: RateLimiterMemory, key: string) {
  try {
    await limiter.consume(key);
  } catch (rejection) {
    if (!(rejection instanceof RateLimiterRes)) throw rejection;
    const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
    ctx.set('Retry-After', String(retryAfter));
    throw new HttpError(429, 'rate_limited', 'Too many requests. Wait a minute, then try again.', {
      retry_after: retryAfter,
    });
  }
}

/**
 * Sign-up attempts per email address, whichever IP they come from: a person retries a
 * cancelled passkey prompt a few times, while a script probing which addresses have
 * accounts (the answer for a taken one differs) spreads over many IPs.
 */
export const SIGNUP_ATTEMPTS_PER_ADDRESS = { points: 5, seconds: 15 * 60 };

/**
 * A limit on what the caller names as `key` (an email address) rather than the client IP:
 * `points` per `seconds`, then the same 429 as {@link rateLimit}. `enabled` false (with
 * RATE_LIMIT_PER_MINUTE=0) turns it off.
 */
export function keyedRateLimit({ points, seconds }: { points: number; seconds: number }, enabled = true) {
  const limiter = new RateLimiterMemory({ points, duration: seconds });
  return async function countAttempt(ctx: Context, key: string): Promise<void> {
    if (enabled) await consumeOrRefuse(ctx, limiter, key);
  };
}
