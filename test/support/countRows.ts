import type { Db } from '../../src/db/connect.js';
import type { Database } from '../../src/db/schema.js';

/** How many rows a table holds: tests count before and after to show a refused request stored nothing. */
export async function countRows(db: Db, table: keyof Database): Promise<number> {
  const row = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Authorization codes stored so far (consumed ones stay until they expire): a refused sign-in adds none. */
export async function countAuthorizationCodes(db: Db): Promise<number> {
  const row = await db
    .selectFrom('oidc_models')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('model', '=', 'AuthorizationCode')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
