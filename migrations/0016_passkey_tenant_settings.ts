import { type Kysely, sql } from 'kysely';

/**
 * Per-tenant WebAuthn settings of the passkey API, as Hanko keeps them (its `webauthn_configs`
 * and `mfa_configs`): user verification, authenticator attachment (`none` = any), resident
 * key requirement, attestation preference and the ceremony timeout, once for passkeys and
 * once for second factors. The defaults are what every tenant had before, so existing
 * tenants behave as they did.
 */
const SETTINGS = [
  { prefix: 'webauthn', uv: 'required', attachment: 'none', residentKey: 'required', attestation: 'none' },
  {
    prefix: 'mfa',
    uv: 'preferred',
    attachment: 'cross-platform',
    residentKey: 'discouraged',
    attestation: 'direct',
  },
] as const;

const TIMEOUT_MS = 300_000;

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const s of SETTINGS) {
    await db.schema
      .alterTable('passkey_tenants')
      .addColumn(`${s.prefix}_user_verification`, 'text', (c) =>
        c
          .notNull()
          .defaultTo(s.uv)
          .check(
            sql`${sql.ref(`${s.prefix}_user_verification`)} in ('required', 'preferred', 'discouraged')`,
          ),
      )
      .addColumn(`${s.prefix}_attachment`, 'text', (c) =>
        c
          .notNull()
          .defaultTo(s.attachment)
          .check(sql`${sql.ref(`${s.prefix}_attachment`)} in ('platform', 'cross-platform', 'none')`),
      )
      .addColumn(`${s.prefix}_resident_key`, 'text', (c) =>
        c
          .notNull()
          .defaultTo(s.residentKey)
          .check(sql`${sql.ref(`${s.prefix}_resident_key`)} in ('required', 'preferred', 'discouraged')`),
      )
      .addColumn(`${s.prefix}_attestation`, 'text', (c) =>
        c
          .notNull()
          .defaultTo(s.attestation)
          .check(sql`${sql.ref(`${s.prefix}_attestation`)} in ('none', 'indirect', 'direct', 'enterprise')`),
      )
      .addColumn(`${s.prefix}_timeout_ms`, 'integer', (c) =>
        c
          .notNull()
          .defaultTo(TIMEOUT_MS)
          .check(sql`${sql.ref(`${s.prefix}_timeout_ms`)} between 10000 and 600000`),
      )
      .execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const s of SETTINGS) {
    await db.schema
      .alterTable('passkey_tenants')
      .dropColumn(`${s.prefix}_user_verification`)
      .dropColumn(`${s.prefix}_attachment`)
      .dropColumn(`${s.prefix}_resident_key`)
      .dropColumn(`${s.prefix}_attestation`)
      .dropColumn(`${s.prefix}_timeout_ms`)
      .execute();
  }
}
