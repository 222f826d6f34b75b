import type { Context } from 'koa';
import { HttpError } from '../../src/http/errors.js';
import { rateLimit, rateLimitKey } from '../../src/http/middleware/rateLimit.js';

/** A `next` that counts how often the request went on. */
function counter() {
  const next = async () => {
    next.calls += 1;
  };
  next.calls = 0;
  return next;
}

/** Just enough of a Koa context for the middleware: the client IP and response headers. */
function contextFrom(ip: string) {
  const headers: Record<string, string> = {};
  const ctx = { ip, set: (name: string, value: string) => (headers[name] = value) } as unknown as Context;
  return { ctx, headers };
}

describe('rateLimit', () => {
  it('lets `perMinute` requests of one client through, then refuses with 429 and Retry-After', async () => {
    const limit = rateLimit(3);
    const next = counter();
    for (let i = 0; i < 3; i++) await limit(contextFrom('192.0.2.1').ctx, next);
    const { ctx, headers } = contextFrom('192.0.2.1');
    await expect(limit(ctx, next)).rejects.toMatchObject({ status: 429, code: 'rate_limited' });
    await expect(limit(ctx, next)).rejects.toBeInstanceOf(HttpError);
    expect(Number(headers['Retry-After'])).toBeGreaterThanOrEqual(59);
    expect(next.calls).toBe(3);
    await limit(contextFrom('192.0.2.2').ctx, next);
    expect(next.calls).toBe(4);
  });

  it('with 0 never refuses', async () => {
    const limit = rateLimit(0);
    const next = counter();
    for (let i = 0; i < 10_000; i++) await limit(contextFrom('192.0.2.1').ctx, next);
    expect(next.calls).toBe(10_000);
  });
});

describe('rateLimitKey', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2::a', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:ffff:0:0:b', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    // A port some proxies write (a count per connection otherwise), with or without brackets.
    ['192.0.2.7:51234', '192.0.2.7'],
    ['[2001:db8:1:2::a]:51234', '2001:db8:1:2::/64'],
    ['[2001:db8:1:2::a]', '2001:db8:1:2::/64'],
    // No address at all (an entry a proxy mangled): one shared count, never an exception.
    ['1:2:3:4:5:6:7::8:9', 'unreadable'],
    ['not an address', 'unreadable'],
    ['', 'unreadable'],
  ])('counts %s as %s', (ip, key) => {
    expect(rateLimitKey(ip)).toBe(key);
  });
});
