import { randomBytes } from 'node:crypto';
import { LEASE_SHARE, PostgresHitCounter } from '../../src/db/hitCounter.js';
import { openedTestDatabase } from '../support/openedDatabase.js';

const WINDOW_SECONDS = 60;
/** Hits an instance takes from the shared count at once, of {@link LIMIT}. */
const LEASE = 5;
/** A limit large enough to be counted in leases of {@link LEASE} hits. */
const LIMIT = LEASE * LEASE_SHARE;

describe('rate-limit counts shared in the database (PostgresHitCounter)', () => {
  const database = openedTestDatabase();

  const newKey = () => `ip:test-${randomBytes(6).toString('hex')}`;
  /** The count every instance shares. */
  const sharedCount = async (key: string) =>
    (
      await database()
        .db.selectFrom('rate_limit_hits')
        .select('hits')
        .where('key', '=', key)
        .executeTakeFirst()
    )?.hits;

  it('takes a large limit from the shared count a lease at a time, and refuses the hit over the limit', async () => {
    const counter = new PostgresHitCounter(database().db);
    const key = newKey();
    expect((await counter.hit(key, LIMIT, WINDOW_SECONDS)).allowed).toBe(true);
    expect(await sharedCount(key)).toBe(LEASE);
    for (let i = 2; i <= LEASE; i++) await counter.hit(key, LIMIT, WINDOW_SECONDS);
    expect(await sharedCount(key)).toBe(LEASE);
    await counter.hit(key, LIMIT, WINDOW_SECONDS);
    expect(await sharedCount(key)).toBe(2 * LEASE);

    for (let i = LEASE + 2; i <= LIMIT; i++)
      expect((await counter.hit(key, LIMIT, WINDOW_SECONDS)).allowed).toBe(true);
    const over = await counter.hit(key, LIMIT, WINDOW_SECONDS);
    expect(over.allowed).toBe(false);
    expect(over.msBeforeNext).toBeGreaterThan(0);
    expect(over.msBeforeNext).toBeLessThanOrEqual(WINDOW_SECONDS * 1000);
  });

  it('lets two instances on one count through no more than the limit, and at most a lease each fewer', async () => {
    const instances = [new PostgresHitCounter(database().db), new PostgresHitCounter(database().db)];
    const key = newKey();
    let allowed = 0;
    // Uneven: the first instance gets two of every three hits.
    for (let i = 0; i < 2 * LIMIT; i++) {
      if ((await instances[i % 3 === 2 ? 1 : 0]!.hit(key, LIMIT, WINDOW_SECONDS)).allowed) allowed += 1;
    }
    expect(allowed).toBeLessThanOrEqual(LIMIT);
    expect(allowed).toBeGreaterThanOrEqual(LIMIT - 2 * (LEASE - 1));
  });

  it('takes one lease for hits of one key that arrive together', async () => {
    const counter = new PostgresHitCounter(database().db);
    const key = newKey();
    const verdicts = await Promise.all(
      Array.from({ length: LEASE }, () => counter.hit(key, LIMIT, WINDOW_SECONDS)),
    );
    expect(verdicts.every((verdict) => verdict.allowed)).toBe(true);
    expect(await sharedCount(key)).toBe(LEASE);
  });

  it('counts every hit of a small limit in the shared count', async () => {
    const counter = new PostgresHitCounter(database().db);
    const key = newKey();
    for (let i = 0; i < 3; i++) await counter.hit(key, 10, WINDOW_SECONDS);
    expect(await sharedCount(key)).toBe(3);
  });

  it('starts a new window, and a new lease, once the window has ended', async () => {
    const counter = new PostgresHitCounter(database().db);
    const key = newKey();
    for (let i = 0; i < LIMIT; i++) await counter.hit(key, LIMIT, 1);
    expect((await counter.hit(key, LIMIT, 1)).allowed).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await counter.hit(key, LIMIT, 1)).allowed).toBe(true);
    expect(await sharedCount(key)).toBe(LEASE);
  });
});
