import type { Logger } from '../../src/logger.js';
import { type ClaimedRow, OutboxWorker } from '../../src/outboxWorker.js';

interface Row extends ClaimedRow {
  id: number;
}

/** An outbox of two rows: the first attempt fails at once (a database error), the second takes a while. */
class TwoRows extends OutboxWorker<Row> {
  protected readonly name = 'test outbox';
  readonly finished: number[] = [];
  readonly warnings: string[] = [];
  #claimed = false;

  constructor() {
    const warnings: string[] = [];
    const log = { warn: (message: string) => warnings.push(message) } as unknown as Logger;
    super(log, new Set(), {
      pollMs: 60_000,
      backoffMs: [1_000],
      giveUpAfterMs: 60_000,
      leaseMs: 10_000,
      timeoutMs: 5_000,
    });
    this.warnings = warnings;
  }

  protected async claim(): Promise<Row[]> {
    if (this.#claimed) return [];
    this.#claimed = true;
    return [1, 2].map((id) => ({ id, attempts: 1, created_at: new Date() }));
  }

  protected async attempt(row: Row): Promise<void> {
    if (row.id === 1) throw new Error('connection terminated');
    await new Promise((resolve) => setTimeout(resolve, 200));
    this.finished.push(row.id);
  }
}

describe('an outbox round', () => {
  it('ends, and lets stop() end, only once every attempt of its batch has, when one of them fails', async () => {
    const outbox = new TwoRows();
    outbox.start();
    await outbox.stop();
    // Stopped with the second attempt still under way, the mail outbox closed its SMTP
    // transport (and the app its database) under that attempt.
    expect(outbox.finished).toEqual([2]);
    expect(outbox.warnings).toEqual(['test outbox failed']);
  });
});
