import type Provider from 'oidc-provider';
import { KEYS_POLL_WHILE_DARK_MS } from '../../src/db/rowReloader.js';
import { createLogger } from '../../src/logger.js';
import type { SigningJwks } from '../../src/oidc/keys.js';
import { LiveProvider } from '../../src/oidc/liveProvider.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The provider is rebuilt when the signing keys change. A change is heard by its row notice;
 * while notices may be lost (behind a transaction pooler without DATABASE_DIRECT_URL, or
 * while the listener reconnects) nothing would be heard, and a key revoked as exposed went on
 * signing until a restart (found by probing two instances behind PgBouncer, 2026-12-06). Until
 * the listener is live, the keys are read again every KEYS_POLL_WHILE_DARK_MS.
 */
describe('LiveProvider', () => {
  let kid = 'es256-a';
  /** While set, reading the keys fails with it (the database out of reach). */
  let unreachable: Error | undefined;
  const built: string[] = [];
  let live: LiveProvider;

  beforeAll(() => {
    const keys = (): SigningJwks =>
      ({ jwks: { keys: [{ kid }] }, nextChangeInMs: undefined }) as unknown as SigningJwks;
    live = new LiveProvider(
      (jwks) => {
        built.push(jwks.keys.map((key) => key.kid).join(','));
        return { callback: () => () => {} } as unknown as Provider;
      },
      async () => {
        if (unreachable) throw unreachable;
        return keys();
      },
      createLogger('silent'),
      keys(),
    );
  });

  afterAll(() => live.stop());

  it('reads the keys again while no notice can be trusted, and rebuilds the provider when they changed', async () => {
    expect(built).toEqual(['es256-a']);
    kid = 'es256-b';
    await sleep(KEYS_POLL_WHILE_DARK_MS + 500);
    expect(built).toEqual(['es256-a', 'es256-b']);
  });

  it('stops reading them on its own once notices arrive, and rebuilds on a notice', async () => {
    live.goLive();
    await sleep(100);
    kid = 'es256-c';
    await sleep(KEYS_POLL_WHILE_DARK_MS + 500);
    expect(built).toEqual(['es256-a', 'es256-b']);
    live.invalidate();
    await sleep(100);
    expect(built).toEqual(['es256-a', 'es256-b', 'es256-c']);
    // Notices lost again: polling resumes.
    live.goDark();
    kid = 'es256-d';
    await sleep(KEYS_POLL_WHILE_DARK_MS + 500);
    expect(built.at(-1)).toBe('es256-d');
  });

  it('tries a reload that failed again soon, though notices arrive: the notice that asked for it is not sent again', async () => {
    live.goLive();
    await sleep(100);
    // A key revoked while the pooled connections were down for a moment: its notice came, the read failed.
    unreachable = new Error('connect ECONNREFUSED');
    kid = 'es256-e';
    live.invalidate();
    await sleep(100);
    expect(built.at(-1)).toBe('es256-d');
    unreachable = undefined;
    await sleep(KEYS_POLL_WHILE_DARK_MS + 500);
    expect(built.at(-1)).toBe('es256-e');
  });
});
