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
  options: Omit<NonNullable<Parameters<typeof openDatabase>[1]>, 'poolSize'> = {},
): () => DatabaseHandle {
  let testDb: TestDatabase | undefined;
  let database: DatabaseHandle | undefined;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { ...options, poolSize });
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
