import type { Db } from '../../src/db/connect.js';

/**
 * Marks a stored code (by its stored id) used in the database behind the instance's back, as
 * another instance redeeming it would (codes are not announced, so the instance that issued it
 * still holds it unused). @returns the grant it was issued under.
 */
export async function useCodeElsewhere(db: Db, codeId: string): Promise<string> {
  const { grant_id } = await db
    .selectFrom('oidc_models')
    .select('grant_id')
    .where('model', '=', 'AuthorizationCode')
    .where('id', '=', codeId)
    .executeTakeFirstOrThrow();
  if (!grant_id) throw new Error(`code ${codeId} names no grant`);
  await db
    .updateTable('oidc_models')
    .set({ consumed_at: new Date() })
    .where('model', '=', 'AuthorizationCode')
    .where('id', '=', codeId)
    .execute();
  return grant_id;
}

/** The models still stored of a grant: the grant itself and everything issued under it. */
export async function leftOfGrant(db: Db, grantId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('oidc_models')
    .select('model')
    .where((eb) => eb.or([eb('grant_id', '=', grantId), eb('id', '=', grantId)]))
    .execute();
  return rows.map((row) => row.model);
}
