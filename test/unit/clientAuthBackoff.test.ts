import { MemoryHitCounter } from '../../src/db/hitCounter.js';
import {
  CLIENT_AUTH_FAILURES_ALLOWED,
  ClientAuthBackoff,
  StoredSecrets,
} from '../../src/oidc/clientAuthBackoff.js';

describe('ClientAuthBackoff', () => {
  it('accepts a secret only the stored client knows (rotated elsewhere) from any address, uncounted', async () => {
    const backoff = new ClientAuthBackoff(new MemoryHitCounter());
    backoff.notLockedOut.goLive();
    const wrong = async () => false;
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED + 3; i++)
      expect(await backoff.authenticate('app', '192.0.2.1', () => false, wrong)).toBe(false);
    // Past its limit, the address's right secret is still taken: the held one, and the stored one.
    expect(await backoff.authenticate('app', '192.0.2.1', () => true, wrong)).toBe(true);
    expect(
      await backoff.authenticate(
        'app',
        '192.0.2.1',
        () => false,
        async () => true,
      ),
    ).toBe(true);
    // A burst of the stored one from a fresh address: every one taken, none counted.
    const burst = await Promise.all(
      Array.from({ length: CLIENT_AUTH_FAILURES_ALLOWED + 5 }, () =>
        backoff.authenticate(
          'app',
          '192.0.2.2',
          () => false,
          async () => true,
        ),
      ),
    );
    expect(burst.every(Boolean)).toBe(true);
    expect(await backoff.authenticate('app', '192.0.2.2', () => false, wrong)).toBe(false);
  });
});

describe('StoredSecrets', () => {
  it('reads a client’s stored hash at most once a second, once for all who ask meanwhile', async () => {
    let reads = 0;
    const secrets = new StoredSecrets(async () => {
      reads++;
      return `hash${reads}`;
    }, 200);
    const first = await Promise.all([secrets.hashOf('app'), secrets.hashOf('app'), secrets.hashOf('app')]);
    expect(first).toEqual(['hash1', 'hash1', 'hash1']);
    expect(await secrets.hashOf('app')).toBe('hash1');
    expect(await secrets.hashOf('other')).toBe('hash2');
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(await secrets.hashOf('app')).toBe('hash3');
    expect(reads).toBe(3);
  });

  it('forgets a read that failed', async () => {
    let fail = true;
    const secrets = new StoredSecrets(async () => {
      if (fail) throw new Error('database down');
      return 'hash';
    });
    await expect(secrets.hashOf('app')).rejects.toThrow('database down');
    fail = false;
    expect(await secrets.hashOf('app')).toBe('hash');
  });
});
