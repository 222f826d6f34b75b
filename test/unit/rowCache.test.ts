import type { ListenHandlers } from '../../src/db/notifications.js';
import { keepCachesInStep, RowCache } from '../../src/db/rowCache.js';
import { createLogger } from '../../src/logger.js';
import { rowChangeListenerUp } from '../../src/metrics.js';

/**
 * Looks `key` up with a database read still in flight while `meanwhile` runs (notices arriving),
 * then answers `{ v: 1 }`; returns what the lookup gave.
 */
async function readWhile(cache: RowCache<{ v: number }>, key: string, meanwhile: () => void) {
  let answer!: (row: { v: number }) => void;
  const found = cache.find(key, () => new Promise((resolve) => (answer = resolve)));
  meanwhile();
  answer({ v: 1 });
  return found;
}

describe('RowCache', () => {
  const live = (recentChanges?: number) => {
    const cache = new RowCache<{ v: number }>(100, recentChanges);
    cache.goLive();
    return cache;
  };

  it('serves nothing until live, and forgets everything when dark', async () => {
    const cache = new RowCache<{ v: number }>(100);
    await cache.find('a', async () => ({ v: 1 }));
    expect(cache.peek('a')).toBeUndefined();
    cache.goLive();
    await cache.find('a', async () => ({ v: 1 }));
    expect(cache.peek('a')).toEqual({ v: 1 });
    cache.goDark();
    expect(cache.peek('a')).toBeUndefined();
  });

  it('does not keep an answer whose row changed while it was read', async () => {
    const cache = live();
    expect(await readWhile(cache, 'a', () => cache.invalidate('a'))).toEqual({ v: 1 });
    expect(cache.peek('a')).toBeUndefined();
  });

  it('keeps an answer while other rows change', async () => {
    const cache = live();
    await readWhile(cache, 'a', () => {
      cache.invalidate('b');
      cache.invalidate('c');
    });
    expect(cache.peek('a')).toEqual({ v: 1 });
  });

  it('does not keep an answer read before every row changed', async () => {
    const cache = live();
    await readWhile(cache, 'a', () => cache.invalidateAll());
    expect(cache.peek('a')).toBeUndefined();
  });

  it('does not keep an answer older than the changes it still tells apart', async () => {
    const cache = live(3);
    await readWhile(cache, 'a', () => {
      cache.invalidate('a');
      // 'a' falls out of the recent changes: the lookup is then older than what is known.
      for (const key of ['b', 'c', 'd']) cache.invalidate(key);
    });
    expect(cache.peek('a')).toBeUndefined();
    // A lookup that starts now is kept.
    await cache.find('a', async () => ({ v: 2 }));
    expect(cache.peek('a')).toEqual({ v: 2 });
  });

  it('drops the least recently used row beyond its size', async () => {
    const cache = new RowCache<{ v: number }>(2);
    cache.goLive();
    for (const [key, v] of [
      ['a', 1],
      ['b', 2],
    ] as const)
      await cache.find(key, async () => ({ v }));
    cache.peek('a');
    await cache.find('c', async () => ({ v: 3 }));
    expect(cache.peek('b')).toBeUndefined();
    expect(cache.peek('a')).toEqual({ v: 1 });
  });

  it('keeps a row found within the last half of its size, however many rows come after', async () => {
    const cache = new RowCache<{ v: number }>(10);
    cache.goLive();
    await cache.find('hot', async () => ({ v: 0 }));
    for (let v = 1; v <= 100; v += 1) {
      await cache.find(`row-${v}`, async () => ({ v }));
      expect(cache.peek('hot')).toEqual({ v: 0 });
    }
    expect(cache.size).toBe(10);
    // The rows came and went in order: the nine newest are the ones left.
    expect(cache.peek('row-92')).toEqual({ v: 92 });
    expect(cache.peek('row-91')).toBeUndefined();
  });

  it('drops a row not found within the last half of its size before a newer one', async () => {
    const cache = new RowCache<{ v: number }>(4);
    cache.goLive();
    for (const key of ['a', 'b', 'c', 'd']) await cache.find(key, async () => ({ v: 1 }));
    // 'a' is the oldest and two moves from the end: a hit moves it behind 'd'.
    cache.peek('a');
    await cache.find('e', async () => ({ v: 1 }));
    expect(cache.peek('b')).toBeUndefined();
    expect(cache.peek('a')).toEqual({ v: 1 });
  });
});

describe('keepCachesInStep', () => {
  /** Caches kept in step by a listener this test drives, the log lines, and the listener gauge. */
  async function keptInStep(warnAgainAfterMs: number) {
    const cache = new RowCache<{ v: number }>(10);
    const lines: { level: string; msg: string }[] = [];
    let handlers!: ListenHandlers;
    await keepCachesInStep(
      async (_channel, given) => {
        handlers = given;
        return { close: async () => {} };
      },
      { clients: cache },
      createLogger('debug', (line) => lines.push(JSON.parse(line))),
      warnAgainAfterMs,
    );
    const gauge = async () => (await rowChangeListenerUp.get()).values[0]?.value;
    return { cache, lines, handlers, gauge };
  }

  it('shows in the listener gauge whether the caches are live', async () => {
    const { cache, handlers, gauge } = await keptInStep(60_000);
    expect(await gauge()).toBe(0);
    handlers.onLive();
    expect([cache.live, await gauge()]).toEqual([true, 1]);
    handlers.onLost(new Error('gone'));
    expect([cache.live, await gauge()]).toEqual([false, 0]);
  });

  it('warns when notices are lost, again only once a while has passed, and says when they resume', async () => {
    const { lines, handlers } = await keptInStep(200);
    const levels = () => lines.map(({ level, msg }) => `${level}: ${msg}`);
    handlers.onLive();
    handlers.onLost(new Error('gone'));
    handlers.onLost(new Error('still gone'));
    handlers.onLost(new Error('still gone'));
    await new Promise((resolve) => setTimeout(resolve, 250));
    handlers.onLost(new Error('still gone'));
    handlers.onLive();
    expect(levels()).toEqual([
      'debug: row caches live',
      'warn: row change notifications lost; reading every row from the database until they resume',
      'debug: row change notifications still not arriving',
      'debug: row change notifications still not arriving',
      'warn: row change notifications still not arriving; reading every row from the database',
      'info: row change notifications resumed; caching rows again',
    ]);
  });
});
