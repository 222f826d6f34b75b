// Prepares one migrated template database for the whole run; each test file clones it
// (test/support/testDatabase.ts). Plain JS on the built code: Jest loads global setup
// outside its module transform. `npm test` builds first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, withDatabaseName } from '../../dist/src/db/connect.js';

export const TEMPLATE_ENV = 'SESAME_TEST_TEMPLATE';

export default async function globalSetup() {
  if (!fs.existsSync(new URL('../../dist/src/db/connect.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm test` (it builds first) or `npm run build`');
  }
  if (process.env.DATABASE_URL) {
    // Databases are created, copied and dropped on a direct connection: a pooler keeps its
    // own server connections to a database open, and Postgres copies no database in use.
    const direct = process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL;
    const name = `sesame_template_${process.pid}`;
    const admin = new pg.Client({ connectionString: direct });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.query(`create database ${name}`);
    } finally {
      await admin.end();
    }
    const database = await openDatabase({ databaseUrl: withDatabaseName(direct, name), dataDir: '' });
    await database.migrate();
    await database.close();
    process.env[TEMPLATE_ENV] = name;
    return;
  }
  const dir = path.join(os.tmpdir(), `sesame-template-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const database = await openDatabase({ databaseUrl: undefined, dataDir: dir });
  await database.migrate();
  await database.close();
  process.env[TEMPLATE_ENV] = dir;
}
