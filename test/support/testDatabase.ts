import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { withDatabaseName } from '../../src/db/connect.js';

/**
 * Which database the suite runs on: Postgres when DATABASE_URL is set, else PGlite.
 * globalSetup prepares a migrated template once; each test file gets its own copy, so
 * files never see each other's rows and nobody pays for initdb twice.
 */
export const onPostgres = Boolean(process.env.DATABASE_URL);

export const TEMPLATE_ENV = 'SESAME_TEST_TEMPLATE';

/**
 * Where databases are created, copied and dropped: DATABASE_DIRECT_URL when the suite runs
 * behind a pooler (DATABASE_URL then names the pooler), since Postgres copies no database
 * that a pooler's idle server connection still holds.
 */
const directUrl = process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL;

/** Environment for a fresh, migrated database of the test's own: `DATABASE_URL` or `DATA_DIR`. */
export interface TestDatabase {
  env: { DATABASE_URL?: string; DATABASE_DIRECT_URL?: string; DATA_DIR?: string };
  drop(): Promise<void>;
}

/**
 * Commits on a test's Postgres database return before their WAL reaches the disk
 * (`synchronous_commit = off` as the database's default): every commit is seen by every
 * reader at once just the same, and only a crash of Postgres could lose the newest ones,
 * which a test's throwaway database need not survive. An fdatasync costs ~3 ms on this
 * machine's disk (pg_test_fsync, 2026-12-06), a commit 5–6 ms against ~1 ms without the
 * wait while other runs were busy, and one file such as adminPages.test.ts commits ~1,700
 * times. `durableCommits` keeps the server's own default, for a test of what Sesame itself
 * sets per transaction. (PGlite's copies live on /dev/shm when there is room: jest.config.js.)
 */
const TEST_DATABASE_SETTINGS = 'set synchronous_commit = off';

export async function createTestDatabase(options: { durableCommits?: boolean } = {}): Promise<TestDatabase> {
  const template = process.env[TEMPLATE_ENV];
  if (!template)
    throw new Error(`${TEMPLATE_ENV} is not set: run the tests through jest (globalSetup prepares it)`);
  if (onPostgres) {
    const name = `sesame_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: directUrl });
    await admin.connect();
    try {
      await admin.query(`create database ${name} template ${template}`);
      if (!options.durableCommits) await admin.query(`alter database ${name} ${TEST_DATABASE_SETTINGS}`);
    } finally {
      await admin.end();
    }
    return {
      env: {
        DATABASE_URL: withDatabaseName(process.env.DATABASE_URL!, name),
        DATABASE_DIRECT_URL: withDatabaseName(directUrl!, name),
      },
      async drop() {
        const client = new pg.Client({ connectionString: directUrl });
        await client.connect();
        try {
          await client.query(`drop database if exists ${name} with (force)`);
        } finally {
          await client.end();
        }
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-test-'));
  fs.cpSync(template, dir, { recursive: true });
  fs.rmSync(path.join(dir, 'sesame.lock'), { force: true });
  return {
    env: { DATA_DIR: dir },
    async drop() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { withDatabaseName };
