import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config.js';
import { watchPool } from '../metrics.js';
import { COMMAND_MARKER_NAME, claimDataDir, DataDirBusyError, SOCKET_PORT } from './dataDirLock.js';
import { checkDataDirOwner } from './dataDirOwner.js';
import { migratePostgresToLatest, migrateToLatest } from './migrate.js';
import { type ListenHandlers, listenOnPGlite, listenOnPostgres, type Subscription } from './notifications.js';
import { ConnectionQueue, PGliteDialect } from './pgliteDialect.js';
import { type SocketSession, servePGliteSocket, sessionReset } from './pgliteSocket.js';
import { seedFromTemplate } from './pgliteTemplate.js';
import { makePrivate, PRIVATE_UMASK } from './privateFiles.js';
import { resendingEndedReads, runSqlOnPool } from './rawSql.js';
import type { Database } from './schema.js';
import { forgetServerIssuer } from './serverIssuer.js';

export type Db = Kysely<Database>;

/** An open database and how to close it. */
export interface DatabaseHandle {
  db: Db;
  kind: 'postgres' | 'embedded';
  /** Where the data lives, for the start-up log: a directory, or the URL without its password. */
  location: string;
  /** How many files and folders of an existing embedded data directory were opened to others and are now private. */
  madePrivate?: number;
  /** A first start of the embedded database, begun from the prebuilt template (dist/pglite-template) rather than initdb. */
  seededFromTemplate?: boolean;
  /** The embedded database reached through the running server that holds its directory (a `sesame` command beside it). */
  throughRunningServer?: boolean;
  /** Subscribes to a Postgres notification channel (NOTIFY is delivered after commit). */
  listen(channel: string, handlers: ListenHandlers): Promise<Subscription>;
  /** Applies every pending migration; resolves to the names of those that ran now. */
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

// int8 (counters, bigserial ids) arrives as a string by default; timestamps stay Dates.
pg.types.setTypeParser(20, (value) => Number(value));

/**
 * A Postgres URL's parts, read as text: the WHATWG URL parser refuses URLs pg reads, such as a
 * user and no host, the usual way to name a Unix socket
 * (`postgres://sesame@/sesame?host=/var/run/postgresql`).
 */
function partsOf(url: string) {
  const question = url.indexOf('?');
  const base = question === -1 ? url : url.slice(0, question);
  const authorityStart = base.indexOf('://') + 3;
  const slash = base.indexOf('/', authorityStart);
  const authorityEnd = slash === -1 ? base.length : slash;
  return {
    scheme: base.slice(0, authorityStart),
    authority: base.slice(authorityStart, authorityEnd),
    path: base.slice(authorityEnd),
    /** With its '?', or empty. */
    query: question === -1 ? '' : url.slice(question),
  };
}

/** A query parameter's name as pg reads it (URLSearchParams: `+` is a space, escapes decoded). */
function nameOf(param: string): string {
  const name = param.split('=', 1)[0]!.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/**
 * DATABASE_URL as the log shows it: its password masked, in the user part and as a parameter
 * (`password`, `sslpassword`).
 */
export function databaseUrlForLog(url: string): string {
  const { scheme, authority } = partsOf(url);
  // The user part ends at the authority's last '@'; its password, at its first ':'.
  const at = authority.lastIndexOf('@');
  const colon = authority.indexOf(':');
  let masked = url;
  if (at !== -1 && colon !== -1 && colon < at)
    masked = `${scheme}${authority.slice(0, colon)}:***${url.slice(scheme.length + at)}`;
  // No '@' in the authority but one further on: a password holding an unencoded '/' or '?'
  // (`sesame:2024/Spring@db`, which pg reads as host `sesame`, port 2024) was printed whole.
  // It is taken to run to the URL's last '@'; masking more of an odd URL (an '@' in a query
  // value) is the safe side.
  else if (at === -1 && colon !== -1 && url.lastIndexOf('@') > scheme.length + colon)
    masked = `${scheme}${authority.slice(0, colon)}:***${url.slice(url.lastIndexOf('@'))}`;
  const { authority: shown, path, query } = partsOf(masked);
  const params = query
    .slice(1)
    .split('&')
    .map((param) => (/^(ssl)?password$/i.test(nameOf(param)) ? param.replace(/=.*$/s, '=***') : param));
  return `${scheme}${shown}${path}${query && `?${params.join('&')}`}`;
}

/** `url` naming the database `name` instead of its own: for the bench and the test suite, which make databases. */
export function withDatabaseName(url: string, name: string): string {
  const { scheme, authority, query } = partsOf(url);
  return `${scheme}${authority}/${name}${query}`;
}

/** Opens Postgres when DATABASE_URL is set, else the embedded PGlite database in DATA_DIR. */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir'> & Partial<Pick<Config, 'databaseDirectUrl'>>,
  options: {
    poolSize?: number;
    onPoolError?: (error: Error) => void;
    /** Told once that the pool's server sessions do not keep prepared statements (rawSql.ts), and why. */
    onStatementsUnprepared?: (reason: string) => void;
    /**
     * When another process (a running server) holds the embedded data directory, work
     * through its socket instead of refusing. The server itself refuses: one process owns the files.
     */
    throughRunningServer?: boolean;
    /**
     * Told when the embedded database's session could not be given back after the last client
     * of its socket left (src/db/pgliteSocket.ts): the server then runs with what it left.
     */
    onSocketResetFailed?: (error: Error) => void;
  } = {},
): Promise<DatabaseHandle> {
  if (config.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: config.databaseUrl,
      max: options.poolSize ?? 10,
      // Fail (and say so) rather than hang when the database host does not answer.
      connectionTimeoutMillis: 10_000,
    });
    // An idle connection that breaks (Postgres restarted, network cut) is an 'error' event on
    // the pool; unhandled, it would kill the process. The pool drops that connection and the
    // next query opens a new one, so logging it is enough.
    pool.on('error', (error) => options.onPoolError?.(error));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: resendingEndedReads(pool) }) });
    runSqlOnPool(db, pool, options.onStatementsUnprepared);
    // LISTEN and migrations need one server session throughout, which a transaction-mode
    // pooler in front of DATABASE_URL does not give; DATABASE_DIRECT_URL names one that does.
    // The config sets it to DATABASE_URL when unset: the listener's advice then says to set it.
    const directUrl = config.databaseDirectUrl ?? config.databaseUrl;
    const unwatchPool = watchPool(pool);
    return {
      db,
      kind: 'postgres',
      location: databaseUrlForLog(config.databaseUrl),
      listen: (channel, handlers) =>
        listenOnPostgres(directUrl, db, channel, handlers, { direct: directUrl !== config.databaseUrl }),
      migrate: () => migratePostgresToLatest(directUrl),
      close: async () => {
        unwatchPool();
        await db.destroy();
        // Kysely ends the pool only if a query went through it; runSql's statements go to
        // the pool directly (rawSql.ts), and their connections must close too.
        if (!pool.ending) await pool.end();
      },
    };
  }
  return openEmbedded(config.dataDir, options.throughRunningServer ?? false, options.onSocketResetFailed);
}

/**
 * The embedded database, through the process that holds its directory: the `sesame`
 * command beside a running server. Its statements take their turn on the server's PGlite
 * (src/db/pgliteSocket.ts), so the server sees each change, row caches included, at once.
 */
function openThroughSocket(dataDir: string, socketDir: string): DatabaseHandle {
  // One connection: every statement runs on the holder's one PGlite session anyway, and a
  // second connection would wait for the first to leave its transaction.
  const pool = new pg.Pool({
    host: socketDir,
    port: SOCKET_PORT,
    user: 'postgres',
    database: 'postgres',
    max: 1,
  });
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    kind: 'embedded',
    location: dataDir,
    throughRunningServer: true,
    listen: async () => {
      throw new Error('notifications are not delivered through the data directory socket');
    },
    // The holder migrated at its start; a newer command refuses to migrate under it (cli/context.ts).
    migrate: () => migrateToLatest(db),
    close: () => db.destroy(),
  };
}

/** How long a closing holder lets commands working through its socket finish. */
const SOCKET_CLIENT_GRACE_MS = 5_000;

/**
 * Postgres's buffer cache inside the embedded database. PGlite starts with Postgres's default
 * 128MB, which costs ~4 ms per MB at every open (~0.5 s of a 1.1 s open, in every start and
 * every `sesame` command) and ~95 MB of resident memory. The files sit in the operating
 * system's page cache behind it anyway, and a small deployment's hot rows (sessions, tokens,
 * clients) fit in far less: 32MB opens in ~0.65 s (bench/README.md, "Measured on 2026-12-03,
 * 16:20–17:00").
 */
const EMBEDDED_SHARED_BUFFERS = '32MB';

/**
 * How long a starting server waits for a `sesame` command that holds the data directory: a
 * command takes a second or two, a slow one on a busy machine several.
 */
const COMMAND_HOLD_WAIT_MS = 30_000;

function readIfThere(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Claims the data directory; a server that finds a command holding it waits for the command to end. */
async function claimForServerOrCommand(dataDir: string, throughRunningServer: boolean) {
  const marker = path.join(dataDir, COMMAND_MARKER_NAME);
  const deadline = Date.now() + COMMAND_HOLD_WAIT_MS;
  let claim = await claimDataDir(dataDir);
  while (!claim.held && !throughRunningServer && fs.existsSync(marker) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    claim = await claimDataDir(dataDir);
  }
  if (!claim.held) return claim;
  // A command's marker names it, so one that lost the directory to another command leaves
  // the other's marker alone; a server clears one a killed command left.
  const token = crypto.randomBytes(8).toString('hex');
  if (throughRunningServer) fs.writeFileSync(marker, token, { mode: 0o600 });
  else fs.rmSync(marker, { force: true });
  const release = claim.release;
  return {
    ...claim,
    async release() {
      await release();
      if (throughRunningServer && readIfThere(marker) === token) fs.rmSync(marker, { force: true });
    },
  };
}

async function openEmbedded(
  dataDir: string,
  throughRunningServer: boolean,
  onSocketResetFailed: (error: Error) => void = () => {},
): Promise<DatabaseHandle> {
  const claim = await claimForServerOrCommand(dataDir, throughRunningServer);
  if (!claim.held) {
    if (throughRunningServer) return openThroughSocket(dataDir, claim.socketDir);
    throw new DataDirBusyError(
      `the embedded database in ${dataDir} is in use by another Sesame process; stop it first, or set DATABASE_URL to use Postgres`,
    );
  }
  const connections = new Set<Promise<void>>();
  try {
    checkDataDirOwner(dataDir);
    // What a holder before this one recorded is not this one's (a server records its own after).
    forgetServerIssuer(dataDir);
    // Every file this process creates from now on (PGlite's included) is its owner's alone.
    process.umask(PRIVATE_UMASK);
    const madePrivate = makePrivate(dataDir);
    const pgDir = path.join(dataDir, 'pg');
    // The copy runs on libuv's threads while PGlite's module loads.
    const [{ PGlite }, seededFromTemplate] = await Promise.all([
      import('@electric-sql/pglite'),
      seedFromTemplate(pgDir),
    ]);
    const pglite = await PGlite.create(pgDir, {
      startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${EMBEDDED_SHARED_BUFFERS}`],
    });
    // PGlite writes its relation-cache files (pg_internal.init) 0644 at each start, whatever
    // the umask; they are tightened at once, silently, since the directory hides them anyway.
    makePrivate(pgDir);
    const queue = new ConnectionQueue();
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite, queue) });
    /** The channels the server listens on, each with its number of subscriptions. */
    const channels = new Map<string, number>();
    const session: SocketSession = {
      pglite,
      queue,
      // Read before any client of the socket can have changed the session.
      reset: await sessionReset(pglite),
      listening: () => channels.keys(),
      onResetFailed: onSocketResetFailed,
      speaking: 0,
    };
    claim.accept((socket) => {
      const served = servePGliteSocket(socket, session);
      connections.add(served);
      void served.then(() => connections.delete(served));
    });
    return {
      db,
      kind: 'embedded',
      location: dataDir,
      madePrivate,
      seededFromTemplate,
      listen: async (channel, handlers) => {
        const subscription = await listenOnPGlite(db, pglite, channel, handlers);
        channels.set(channel, (channels.get(channel) ?? 0) + 1);
        let open = true;
        return {
          async close() {
            if (open) {
              open = false;
              const left = channels.get(channel)! - 1;
              if (left === 0) channels.delete(channel);
              else channels.set(channel, left);
            }
            await subscription.close();
          },
        };
      },
      migrate: () => migrateToLatest(db),
      close: async () => {
        // Clients of the socket go first (their open transactions are rolled back on PGlite),
        // then the files; the socket goes last, so nobody opens the files while they are open here.
        await claim.drain(SOCKET_CLIENT_GRACE_MS);
        await Promise.all(connections);
        await db.destroy();
        forgetServerIssuer(dataDir);
        await claim.release();
      },
    };
  } catch (error) {
    await claim.release();
    throw error;
  }
}
