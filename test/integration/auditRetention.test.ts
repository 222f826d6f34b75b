import { auditQueries } from '../../src/db/queries/audit.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const DAY_MS = 86_400_000;

describe('the audit log is kept AUDIT_LOG_DAYS', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame?.stop());

  it('keeps a year by default', () => {
    expect(sesame.config.auditLogDays).toBe(365);
  });

  it('sweeps the events older than the days given, a batch at a time, and keeps the rest', async () => {
    const event = (daysAgo: number, n: number) => ({
      actor: 'cli',
      action: 'retention.test',
      target: `${daysAgo}-${n}`,
      details: '{}',
      created_at: new Date(Date.now() - daysAgo * DAY_MS),
    });
    await sesame.db
      .insertInto('audit_events')
      .values([...[0, 1, 2, 3].map((n) => event(366, n)), event(3650, 0), event(364, 0), event(0, 0)])
      .execute();
    // Five old events in batches of two: the sweep goes on until a batch comes back short.
    expect(await auditQueries.deleteOlderThan(sesame.db, 365, 2)).toBe(5);
    const left = await sesame.db
      .selectFrom('audit_events')
      .select('target')
      .where('action', '=', 'retention.test')
      .execute();
    expect(left.map((row) => row.target).sort()).toEqual(['0-0', '364-0']);
    expect(await auditQueries.deleteOlderThan(sesame.db, 365)).toBe(0);
  });
});
