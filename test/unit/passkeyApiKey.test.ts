import type { Context } from 'koa';
import type { Config } from '../../src/config.js';
import { sha256Hex } from '../../src/crypto.js';
import { MemoryHitCounter } from '../../src/db/hitCounter.js';
import type { StoredTenant, TenantId } from '../../src/db/queries/passkeyTenants.js';
import { rateLimit } from '../../src/http/middleware/rateLimit.js';
import { limitPerTenantOrIp, presentsTenantKey } from '../../src/http/routes/passkeyApiKit.js';

const KEY = 'spk_right';

function tenantWithKey(key: string, id = '0f0e0d0c-0b0a-4909-8807-060504030201'): StoredTenant {
  return {
    id: id as TenantId,
    name: 'Shop',
    rpId: 'shop.example',
    origins: ['https://shop.example'],
    apiKeyHash: sha256Hex(key),
    previousApiKeyHash: null,
    settings: {} as StoredTenant['settings'],
    createdAt: new Date(0),
  };
}

/** Just enough of a Koa context: the tenant loadTenant put in its state, and the `apikey` header. */
function requestFor(tenant: StoredTenant, apikey: string | undefined): Context {
  return {
    ip: '192.0.2.1',
    state: { tenant },
    get: (name: string) => (name.toLowerCase() === 'apikey' ? (apikey ?? '') : ''),
    set: () => {},
  } as unknown as Context;
}

function limiter(perMinute: number) {
  return limitPerTenantOrIp({
    config: { rateLimitPerMinute: perMinute } as Config,
    hits: new MemoryHitCounter(),
    rateLimit: rateLimit(perMinute),
  });
}

describe("a passkey API call's API key, compared once", () => {
  it("gives the route the rate limiter's answer: the key is not hashed again", async () => {
    const tenant = tenantWithKey(KEY);
    const ctx = requestFor(tenant, KEY);
    let atRoute: boolean | undefined;
    await limiter(600)(ctx, async () => {
      // Were the key compared again here, it would no longer match.
      tenant.apiKeyHash = sha256Hex('spk_other');
      atRoute = presentsTenantKey(ctx);
    });
    expect(atRoute).toBe(true);
  });

  it('compares anew for another tenant, even one with the same id, or another header', () => {
    const ctx = requestFor(tenantWithKey(KEY), KEY);
    expect(presentsTenantKey(ctx)).toBe(true);
    (ctx.state as { tenant: StoredTenant }).tenant = tenantWithKey('spk_other');
    expect(presentsTenantKey(ctx)).toBe(false);

    const again = requestFor(tenantWithKey(KEY), 'spk_wrong');
    expect(presentsTenantKey(again)).toBe(false);
    (again as unknown as { get: (name: string) => string }).get = () => KEY;
    expect(presentsTenantKey(again)).toBe(true);
  });

  it('compares the key when no limiter did (RATE_LIMIT_PER_MINUTE=0), and refuses a wrong one', async () => {
    for (const [presented, expected] of [
      [KEY, true],
      ['spk_wrong', false],
      [undefined, false],
    ] as const) {
      const ctx = requestFor(tenantWithKey(KEY), presented);
      let atRoute: boolean | undefined;
      await limiter(0)(ctx, async () => {
        expect((ctx.state as { apiKeyVerdict?: unknown }).apiKeyVerdict).toBeUndefined();
        atRoute = presentsTenantKey(ctx);
      });
      expect({ presented, atRoute }).toEqual({ presented, atRoute: expected });
    }
  });

  it('takes the key a rotation replaced while it still works, beside the current one', () => {
    const tenant = { ...tenantWithKey(KEY), previousApiKeyHash: sha256Hex('spk_previous') };
    expect(presentsTenantKey(requestFor(tenant, 'spk_previous'))).toBe(true);
    expect(presentsTenantKey(requestFor(tenant, KEY))).toBe(true);
    expect(presentsTenantKey(requestFor(tenant, 'spk_wrong'))).toBe(false);
  });
});
