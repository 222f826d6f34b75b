import { closeWithin } from '../support/boundedClose.js';

/** Runs teardown steps in turn as an afterAll hook does, recording what ran and what was logged. */
async function tearDown(steps: Array<[string, () => Promise<unknown> | undefined]>, ms = 50) {
  const lines: string[] = [];
  const ran: string[] = [];
  const finished: boolean[] = [];
  for (const [step, close] of steps) {
    finished.push(
      await closeWithin(
        step,
        () => {
          ran.push(step);
          return close();
        },
        { ms, log: (line) => lines.push(line) },
      ),
    );
  }
  return { lines, ran, finished };
}

const never = () => new Promise<void>(() => {});

describe('closeWithin, one bounded step of a teardown', () => {
  it('abandons a close that never finishes after its bound, logs one line naming it, and the next steps still run', async () => {
    const started = Date.now();
    const { lines, ran, finished } = await tearDown([
      ['context 1 close', async () => {}],
      ['context 2 close', never],
      ['Sesame stop', async () => {}],
    ]);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(ran).toEqual(['context 1 close', 'context 2 close', 'Sesame stop']);
    expect(finished).toEqual([true, false, true]);
    expect(lines).toEqual(['teardown: context 2 close did not finish in 0.05 s']);
  });

  it('logs a close that fails, with its message, and goes on', async () => {
    const { lines, ran, finished } = await tearDown([
      ['app close', () => Promise.reject(new Error('socket hang up'))],
      ['mail server stop', async () => {}],
    ]);
    expect(ran).toEqual(['app close', 'mail server stop']);
    expect(finished).toEqual([false, true]);
    expect(lines).toEqual(['teardown: app close failed: socket hang up']);
  });

  it('waits for a close that takes a while but finishes within its bound, and logs nothing', async () => {
    const { lines, finished } = await tearDown(
      [['browser close', () => new Promise((resolve) => setTimeout(resolve, 100))]],
      2_000,
    );
    expect(finished).toEqual([true]);
    expect(lines).toEqual([]);
  });

  it('treats a part that was never started (no close to wait for) as closed', async () => {
    const { lines, finished } = await tearDown([['app close', () => undefined]]);
    expect(finished).toEqual([true]);
    expect(lines).toEqual([]);
  });

  it('leaves no rejection unhandled when an abandoned close fails later', async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      const { lines } = await tearDown([
        ['browser close', () => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 100))],
      ]);
      expect(lines).toEqual(['teardown: browser close did not finish in 0.05 s']);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', listener);
    }
  });
});
