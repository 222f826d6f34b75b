/**
 * The benchmark's own database: a fresh Postgres database per run (dropped after) or a
 * fresh PGlite data directory; and snapshots of what is stored, to work out rows and bytes
 * written per login. Only used while Sesame's server is stopped (PGlite allows one process).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase, withDatabaseName } from '../src/db/connect.js';

export interface BenchDatabase {
  kind: 'postgres' | 'pglite';
  /** The Postgres database's name (its backends' process titles carry it). */
  name?: string;
  /** DATABASE_URL or DATA_DIR for Sesame's processes. */
  env: { DATABASE_URL?: string; DATA_DIR?: string };
  drop(): Promise<void>;
}

export async function createBenchDatabase(adminUrl: string | undefined): Promise<BenchDatabase> {
  if (!adminUrl) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-bench-'));
    return {
      kind: 'pglite',
      env: { DATA_DIR: dir },
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `sesame_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`).finally(() => admin.end());
  return {
    kind: 'postgres',
    name,
    env: { DATABASE_URL: withDatabaseName(adminUrl, name) },
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`).finally(() => client.end());
    },
  };
}

/** What one table holds, and (Postgres only) how many rows were ever written to it. */
export interface TableFigures {
  rows: number;
  bytes: number;
  inserted?: number;
  updated?: number;
  deleted?: number;
}

export interface StorageSnapshot {
  tables: Record<string, TableFigures>;
  /** PGlite: the size of the data directory on disk. */
  dataDirBytes?: number;
  /** Postgres: transactions committed or rolled back in the database; each autocommit statement is one round trip. */
  transactions?: number;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/**
 * Row counts and table sizes (with indexes and TOAST) of every table. On Postgres also the
 * cumulative insert/update/delete counters; taken after the server has exited, so its
 * connections have flushed their statistics (Postgres 15 flushes them lazily otherwise).
 */
export async function snapshotStorage(database: BenchDatabase): Promise<StorageSnapshot> {
  const handle = await openDatabase(
    { databaseUrl: database.env.DATABASE_URL, dataDir: database.env.DATA_DIR ?? '' },
    { poolSize: 1 },
  );
  try {
    const stats = await sql<{
      table: string;
      bytes: string | number;
      inserted: string | number | null;
      updated: string | number | null;
      deleted: string | number | null;
    }>`
      select c.relname as "table", pg_total_relation_size(c.oid) as bytes,
             s.n_tup_ins as inserted, s.n_tup_upd as updated, s.n_tup_del as deleted
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
      left join pg_stat_user_tables s on s.relid = c.oid
      where c.relkind = 'r'`.execute(handle.db);
    const tables: Record<string, TableFigures> = {};
    for (const row of stats.rows) {
      const counted = await sql<{
        n: string | number;
      }>`select count(*) as n from ${sql.table(row.table)}`.execute(handle.db);
      tables[row.table] = {
        rows: Number(counted.rows[0]?.n ?? 0),
        bytes: Number(row.bytes),
        ...(database.kind === 'postgres' && {
          inserted: Number(row.inserted ?? 0),
          updated: Number(row.updated ?? 0),
          deleted: Number(row.deleted ?? 0),
        }),
      };
    }
    if (database.kind === 'pglite') return { tables, dataDirBytes: dirBytes(database.env.DATA_DIR!) };
    const xacts = await sql<{ n: string | number }>`
      select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()`.execute(
      handle.db,
    );
    return { tables, transactions: Number(xacts.rows[0]?.n ?? 0) };
  } finally {
    await handle.close();
  }
}

/** Per-login (or per-token) differences between two snapshots, per table and in total. */
export function writesPer(before: StorageSnapshot, after: StorageSnapshot, operations: number) {
  const per = (n: number) => Math.round((n / Math.max(operations, 1)) * 100) / 100;
  const tables: Record<string, Record<string, number>> = {};
  const total: Record<string, number> = {};
  for (const [name, now] of Object.entries(after.tables)) {
    const was = before.tables[name] ?? { rows: 0, bytes: 0 };
    const delta: Record<string, number> = {};
    for (const key of ['rows', 'bytes', 'inserted', 'updated', 'deleted'] as const) {
      if (now[key] === undefined) continue;
      delta[key] = per(now[key]! - (was[key] ?? 0));
      total[key] = (total[key] ?? 0) + (now[key]! - (was[key] ?? 0));
    }
    if (Object.values(delta).some((v) => v !== 0)) tables[name] = delta;
  }
  const totals = Object.fromEntries(Object.entries(total).map(([k, v]) => [k, per(v)]));
  if (before.dataDirBytes !== undefined && after.dataDirBytes !== undefined) {
    totals.dataDirBytes = per(after.dataDirBytes - before.dataDirBytes);
  }
  if (before.transactions !== undefined && after.transactions !== undefined) {
    // Less the first snapshot's own statements (one count per table, plus two), flushed when it disconnected.
    const own = Object.keys(before.tables).length + 2;
    totals.databaseTransactions = per(after.transactions - before.transactions - own);
  }
  return { operations, perOperation: totals, tables };
}

/**
 * Stores `count` extra sessions, copies of a real one with new ids, so a run can show
 * whether memory grows with what is stored (it must not: sessions live in the database).
 */
export async function insertSessions(database: BenchDatabase, count: number): Promise<number> {
  const handle = await openDatabase(
    { databaseUrl: database.env.DATABASE_URL, dataDir: database.env.DATA_DIR ?? '' },
    { poolSize: 1 },
  );
  try {
    const result = await sql`
      insert into oidc_models (model, id, payload, uid, expires_at)
      select 'Session', 'bench-' || g || '-' || md5(random()::text),
             s.payload || jsonb_build_object('jti', 'bench-' || g, 'uid', 'bench-uid-' || g),
             'bench-uid-' || g, s.expires_at
      from (select payload, expires_at from oidc_models where model = 'Session'
            order by expires_at desc limit 1) s,
           generate_series(1, ${count}::int) g`.execute(handle.db);
    return Number(result.numAffectedRows ?? 0);
  } finally {
    await handle.close();
  }
}

/** Rows of one table at the end of a soak; `expired` counts rows past their `expires_at` not yet swept. */
export interface TableRows {
  rows: number;
  expired?: number;
  /** Minutes since the oldest unswept expired row expired (the sweep runs every ten minutes). */
  oldestExpiredMinutes?: number;
  byModel?: Record<string, { rows: number; expired: number }>;
}

/** Rows in every table, the expired ones not yet swept, and oidc_models by model. */
export async function rowsPerTable(database: BenchDatabase): Promise<Record<string, TableRows>> {
  const handle = await openDatabase(
    { databaseUrl: database.env.DATABASE_URL, dataDir: database.env.DATA_DIR ?? '' },
    { poolSize: 1 },
  );
  try {
    const tables = await sql<{ table: string; expires: boolean }>`
      select c.relname as "table",
             exists (select 1 from information_schema.columns k where k.table_schema = 'public'
                     and k.table_name = c.relname and k.column_name = 'expires_at') as expires
      from pg_class c join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
      where c.relkind = 'r' order by 1`.execute(handle.db);
    const result: Record<string, TableRows> = {};
    for (const { table, expires } of tables.rows) {
      if (!expires) {
        const counted = await sql<{ n: string }>`select count(*) as n from ${sql.table(table)}`.execute(
          handle.db,
        );
        result[table] = { rows: Number(counted.rows[0]?.n ?? 0) };
        continue;
      }
      const counted = await sql<{ n: string; expired: string; oldest: string | null }>`
        select count(*) as n, count(*) filter (where expires_at < now()) as expired,
               extract(epoch from now() - min(expires_at) filter (where expires_at < now())) / 60 as oldest
        from ${sql.table(table)}`.execute(handle.db);
      const row = counted.rows[0]!;
      result[table] = {
        rows: Number(row.n),
        expired: Number(row.expired),
        ...(row.oldest !== null && { oldestExpiredMinutes: Math.round(Number(row.oldest) * 10) / 10 }),
      };
    }
    const models = await sql<{ model: string; n: string; expired: string }>`
      select model, count(*) as n, count(*) filter (where expires_at < now()) as expired
      from oidc_models group by model order by model`.execute(handle.db);
    if (result.oidc_models) {
      result.oidc_models.byModel = Object.fromEntries(
        models.rows.map((m) => [m.model, { rows: Number(m.n), expired: Number(m.expired) }]),
      );
    }
    return result;
  } finally {
    await handle.close();
  }
}
