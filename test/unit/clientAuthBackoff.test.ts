import { MemoryHitCounter } from '../../src/db/hitCounter.js';
import { CLIENT_AUTH_FAILURES_ALLOWED, ClientAuthBackoff } from '../../src/oidc/clientAuthBackoff.js';

describe('ClientAuthBackoff', () => {
  it('compares a secret with the stored client only while its address is not past its limit', async () => {
    const backoff = new ClientAuthBackoff(new MemoryHitCounter());
    backoff.notLockedOut.goLive();
    let storedReads = 0;
    const wrongStored = async () => {
      storedReads++;
      return false;
    };
    for (let i = 0; i < CLIENT_AUTH_FAILURES_ALLOWED; i++)
      expect(await backoff.authenticate('app', '192.0.2.1', () => false, wrongStored)).toBe(false);
    expect(storedReads).toBe(CLIENT_AUTH_FAILURES_ALLOWED);
    // Past the limit: refused, and the database is not asked.
    for (let i = 0; i < 5; i++)
      expect(await backoff.authenticate('app', '192.0.2.1', () => false, wrongStored)).toBe(false);
    expect(storedReads).toBe(CLIENT_AUTH_FAILURES_ALLOWED);
    // A secret only the stored client knows (rotated elsewhere) from another address; the held one from any.
    expect(
      await backoff.authenticate(
        'app',
        '192.0.2.2',
        () => false,
        async () => true,
      ),
    ).toBe(true);
    expect(await backoff.authenticate('app', '192.0.2.1', () => true, wrongStored)).toBe(true);
    expect(storedReads).toBe(CLIENT_AUTH_FAILURES_ALLOWED);
  });
});
