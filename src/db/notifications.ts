import { randomUUID } from 'node:crypto';
import type { PGlite } from '@electric-sql/pglite';
import { sql } from 'kysely';
import pg from 'pg';
import type { Db } from './connect.js';

/** What a subscriber to a notification channel is told. */
export interface ListenHandlers {
  /** A committed change was announced on the channel. */
  onNotice(payload: string): void;
  /** The subscription is live: every notice committed from now on reaches onNotice. */
  onLive(): void;
  /** The connection is gone: notices may be missed until the next onLive. */
  onLost(error: Error): void;
}

/** A live subscription; close() ends it and stops reconnecting. */
export interface Subscription {
  close(): Promise<void>;
}

/**
 * A LISTEN connection that dies quietly (a host gone, a half-open TCP connection), or that a
 * transaction-mode pooler has handed to other clients after the LISTEN (so notices go
 * elsewhere), would leave a cache trusting it forever. So the listener proves it hears: a
 * ping is announced through the pool, as every real change is, and must arrive on the
 * listening connection within the timeout, at start and this often after.
 */
const PING_INTERVAL_MS = 15_000;
const PING_TIMEOUT_MS = 5_000;
/** Reconnects back off from one second to half a minute, so a database restart is not hammered. */
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** Marks a ping on the channel; table names (the real notices' prefix) have no hyphen. */
const PING_PREFIX = 'sesame-ping:';

/**
 * Listens on Postgres through a connection of its own (a pooled one would hand the LISTEN
 * to whichever request borrows it next), on DATABASE_DIRECT_URL. Goes live only once a ping
 * sent through `pool` arrived, so a LISTEN that a transaction-mode pooler took away is
 * caught. Resolves once the first attempt has either gone live or failed; after a failure
 * it keeps retrying in the background.
 */
export async function listenOnPostgres(
  connectionString: string,
  pool: Db,
  channel: string,
  handlers: ListenHandlers,
  /** Whether `connectionString` is DATABASE_DIRECT_URL rather than DATABASE_URL: the words of a lost ping differ. */
  direct = false,
): Promise<Subscription> {
  // Behind a transaction-mode pooler a LISTEN on DATABASE_URL is lost; with a direct URL set,
  // the listening connection itself stopped answering, and the pooler hint would mislead.
  const unheard = direct
    ? 'the LISTEN connection (DATABASE_DIRECT_URL) did not answer; it is opened again'
    : 'behind a transaction-mode pooler, set DATABASE_DIRECT_URL to a direct or session-mode connection';
  let closed = false;
  let current: pg.Client | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = RETRY_MIN_MS;
  const pings = new Map<string, () => void>();

  function lose(client: pg.Client, error: Error) {
    if (current !== client) return;
    current = undefined;
    clearInterval(pingTimer);
    client.removeAllListeners('notification');
    client.end().catch(() => {});
    handlers.onLost(error);
    if (closed) return;
    retryTimer = setTimeout(() => void connect(), retryDelay);
    retryTimer.unref();
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
  }

  /** Announces a ping through the pool; rejects unless the listener hears it in time. */
  async function ping(): Promise<void> {
    const nonce = randomUUID();
    let timer: NodeJS.Timeout | undefined;
    const heard = new Promise<void>((resolve, reject) => {
      pings.set(nonce, resolve);
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `a notification sent through DATABASE_URL did not reach the LISTEN connection within ${PING_TIMEOUT_MS / 1000} s (${unheard})`,
            ),
          ),
        PING_TIMEOUT_MS,
      );
      // A ping in flight when the subscription closes must not hold the process for its timeout.
      timer.unref();
    });
    try {
      // Heard, the ping also proves the listening connection itself is still up.
      await Promise.all([sql`select pg_notify(${channel}, ${PING_PREFIX + nonce})`.execute(pool), heard]);
    } finally {
      clearTimeout(timer);
      pings.delete(nonce);
    }
  }

  async function connect(): Promise<void> {
    const client = new pg.Client({ connectionString, keepAlive: true, query_timeout: PING_TIMEOUT_MS });
    current = client;
    client.on('error', (error) => lose(client, error));
    client.on('end', () => lose(client, new Error('notification connection ended')));
    client.on('notification', (message) => {
      if (message.channel !== channel) return;
      const payload = message.payload ?? '';
      if (payload.startsWith(PING_PREFIX)) pings.get(payload.slice(PING_PREFIX.length))?.();
      else handlers.onNotice(payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${pg.escapeIdentifier(channel)}`);
      await ping();
    } catch (error) {
      lose(client, error as Error);
      return;
    }
    if (current !== client || closed) return;
    retryDelay = RETRY_MIN_MS;
    pingTimer = setInterval(() => {
      ping().catch((error: Error) => lose(client, error));
    }, PING_INTERVAL_MS);
    pingTimer.unref();
    handlers.onLive();
  }

  await connect();
  return {
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      const client = current;
      current = undefined;
      await client?.end().catch(() => {});
    },
  };
}

/**
 * Listens on the embedded database. PGlite is one session in this process, so its
 * notices cannot be lost while it is open. The LISTEN goes through Kysely's connection
 * queue, so it never runs inside another request's transaction (whose rollback would undo it).
 */
export async function listenOnPGlite(
  db: Db,
  pglite: PGlite,
  channel: string,
  handlers: ListenHandlers,
): Promise<Subscription> {
  const unlisten = await db.connection().execute(() => pglite.listen(channel, handlers.onNotice));
  handlers.onLive();
  return {
    async close() {
      if (pglite.closed) return;
      await db.connection().execute(() => unlisten());
    },
  };
}
