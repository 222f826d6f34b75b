import { sql } from 'kysely';
import { openAtRest, sealAtRest } from '../../src/crypto.js';
import { tenantJwks } from '../../src/passkeyApi/jwt.js';
import { createTenant, rotateTenantSigningKey } from '../../src/passkeyApi/tenants.js';
import { sealContext } from '../../src/sealContext.js';
import { openedTestDatabase } from '../support/openedDatabase.js';

/** The size of the cache of opened public keys in src/passkeyApi/jwt.ts. */
const CACHED_KEYS = 1000;
const SECRETS = {
  keyEncryptionSecret: 'a test secret of at least thirty-two characters',
  keyEncryptionSecretPrevious: undefined,
};

// This file's own module registry: the cache of opened keys starts empty here.
describe("a passkey API app's JWKS and the cache of its opened keys", () => {
  const database = openedTestDatabase();

  it('publishes every key of an app when the cache fills up while a new key of it is opened', async () => {
    const { db } = database();
    const made = (name: string) =>
      createTenant(db, SECRETS, { name, origins: ['https://notes.example'] }, 'test').then(
        (made) => made.tenant,
      );
    const rotating = await made('Rotating');
    const crowded = await made('Crowded');
    const kidsOf = async (tenant: typeof rotating) =>
      (await tenantJwks(db, tenant, SECRETS)).keys.map((key) => key.kid);

    const [signing] = await kidsOf(rotating);
    // Another app publishes keys until the cache holds exactly its size (its first key and the
    // one just opened count).
    const [own] = await db
      .selectFrom('passkey_tenant_keys')
      .select(['kid', 'private_jwk'])
      .where('tenant_id', '=', crowded.id)
      .execute();
    const jwk = openAtRest(own!.private_jwk, SECRETS, sealContext.passkeyTenantKey(crowded.id, own!.kid));
    const kids = Array.from({ length: CACHED_KEYS - 2 }, (_, i) => `pk-crowd-${String(i).padStart(4, '0')}`);
    await db
      .insertInto('passkey_tenant_keys')
      .values(
        kids.map((kid) => ({
          kid,
          tenant_id: crowded.id,
          private_jwk: sealAtRest(
            jwk,
            SECRETS.keyEncryptionSecret,
            sealContext.passkeyTenantKey(crowded.id, kid),
          ),
          activates_at: sql<Date>`now() + interval '1 hour'`,
        })),
      )
      .execute();
    expect(await kidsOf(crowded)).toHaveLength(CACHED_KEYS - 1);

    // The first app rotates: opening its new key finds the cache full and empties it, the
    // signing key's entry with the rest. Its JWKS still publishes both.
    const rotation = await rotateTenantSigningKey(db, SECRETS, rotating.id, 'test', {
      activateInSeconds: 60,
    });
    expect((await kidsOf(rotating)).sort()).toEqual([signing, rotation!.kid].sort());
    // And the next answer, from the cache as it is now, too.
    expect((await kidsOf(rotating)).sort()).toEqual([signing, rotation!.kid].sort());
  });
});
