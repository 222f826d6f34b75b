import { configFrom } from '../../src/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { createTestDatabase, type TestDatabase } from './testDatabase.js';

/**
 * A migrated database of the calling describe block's own, opened as the server opens it,
 * made before its tests and dropped after them. Call it in the describe body; the returned
 * function gives the open database inside hooks and tests.
 */
export function openedTestDatabase(
  poolSize = 4,
  options: Omit<NonNullable<Parameters<typeof openDatabase>[1]>, 'poolSize'> & {
    /** Commits wait for the disk, as on a server's own database (see {@link createTestDatabase}). */
    durableCommits?: boolean;
  } = {},
): () => DatabaseHandle {
  const { durableCommits, ...openOptions } = options;
  let testDb: TestDatabase | undefined;
  let database: DatabaseHandle | undefined;
  beforeAll(async () => {
    testDb = await createTestDatabase({ durableCommits });
    database = await openDatabase(configFrom(testDb.env), { ...openOptions, poolSize });
  });
  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
  });
  return () => {
    if (!database) throw new Error('the test database opens in beforeAll');
    return database;
  };
}
