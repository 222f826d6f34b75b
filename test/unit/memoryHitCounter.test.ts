import { MemoryHitCounter } from '../../src/db/hitCounter.js';

/**
 * The embedded database counts rate-limit hits in memory, keyed by what callers send (an
 * address, an email). Past its cap it swept ended windows only, on every hit: a flood of
 * live keys grew the map without end, and each request walked all of it (found by probing,
 * 2026-12-06).
 */
describe('MemoryHitCounter', () => {
  it('holds at most its cap of keys however many live windows a flood opens, keeping the newest', async () => {
    const counter = new MemoryHitCounter(100);
    for (let i = 0; i < 1_000; i++) await counter.hit(`flood:${i}`, 5, 900);
    expect(counter.size).toBeLessThanOrEqual(100);
    // The newest keys keep their counts: a limit on them still holds.
    for (let i = 0; i < 5; i++) await counter.hit('flood:999', 5, 900);
    expect((await counter.check('flood:999', 5)).allowed).toBe(false);
  });

  it('drops ended windows before live ones', async () => {
    const counter = new MemoryHitCounter(10);
    for (let i = 0; i < 5; i++) await counter.hit(`live:${i}`, 2, 900);
    for (let i = 0; i < 5; i++) await counter.hit(`ended:${i}`, 2, 0);
    for (let i = 5; i < 10; i++) await counter.hit(`live:${i}`, 2, 900);
    await counter.hit('live:0', 2, 900);
    // live:0 was the oldest key, yet the ended windows made room: it still has its first hit.
    expect((await counter.check('live:0', 2)).allowed).toBe(false);
    expect(counter.size).toBeLessThanOrEqual(10);
  });
});
