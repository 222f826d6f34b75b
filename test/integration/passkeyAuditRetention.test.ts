import { passkeyTenantAuditLogsQueries } from '../../src/db/queries/passkeyTenantAuditLogs.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const KEY_ENCRYPTION_SECRET = 'passkey-audit-retention-test-key-encryption-secret';
const DAY_MS = 86_400_000;

describe("the passkey API's audit log is kept PASSKEY_AUDIT_LOG_DAYS", () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({ KEY_ENCRYPTION_SECRET });
  });

  afterAll(() => sesame?.stop());

  it("sweeps every tenant's entries older than the days given, a batch at a time, and keeps the rest", async () => {
    const tenants: string[] = [];
    for (const name of ['Shop', 'Bank']) {
      const { tenant } = await createTenant(
        sesame.db,
        sesame.config,
        { name, origins: ['https://app.example'] },
        'test',
      );
      tenants.push(tenant.id);
    }
    const entry = (tenantId: string, daysAgo: number, n: number) => ({
      tenant_id: tenantId,
      type: 'login_init_succeeded',
      meta_http_request_id: `${daysAgo}-${n}`,
      meta_source_ip: '203.0.113.7',
      meta_user_agent: 'test',
      created_at: new Date(Date.now() - daysAgo * DAY_MS),
    });
    await sesame.db
      .insertInto('passkey_tenant_audit_logs')
      .values(
        tenants.flatMap((id) => [
          ...[0, 1, 2].map((n) => entry(id, 91, n)),
          entry(id, 400, 0),
          entry(id, 89, 0),
          entry(id, 0, 0),
        ]),
      )
      .execute();
    // Eight old entries in batches of three: the sweep goes on until a batch comes back short.
    expect(await passkeyTenantAuditLogsQueries.deleteOlderThan(sesame.db, 90, 3)).toBe(8);
    const left = await sesame.db
      .selectFrom('passkey_tenant_audit_logs')
      .select(['tenant_id', 'meta_http_request_id'])
      .where('tenant_id', 'in', tenants)
      .execute();
    expect(
      left
        .map((row) => `${row.tenant_id === tenants[0] ? 'shop' : 'bank'} ${row.meta_http_request_id}`)
        .sort(),
    ).toEqual(['bank 0-0', 'bank 89-0', 'shop 0-0', 'shop 89-0']);
    expect(await passkeyTenantAuditLogsQueries.deleteOlderThan(sesame.db, 90)).toBe(0);
  });
});
