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
  /**
   * A ping the pool could not send (every pooled connection busy, or DATABASE_URL down), that
   * the listening connection then heard sent on another connection: the subscription stays live.
   */
  onPingUnsent?(error: Error): void;
}

/** A live subscription; close() ends it and stops reconnecting. */
export interface Subscription {
  close(): Promise<void>;
}

/** How long the Postgres listener waits for what; tests shorten these. */
export interface ListenTiming {
  /**
   * A LISTEN connection that dies quietly (a host gone, a half-open TCP connection), or that a
   * transaction-mode pooler has handed to other clients after the LISTEN (so notices go
   * elsewhere), would leave a cache trusting it forever. So the listener proves it hears: a
   * ping is announced through the pool, as every real change is, and must arrive on the
   * listening connection within `pingTimeoutMs`, at start and every `pingIntervalMs` after.
   * A cache may therefore serve a row changed after such a stall for up to their sum. A later
   * ping that the pool cannot send in that time is sent on a connection of its own, and the
   * listening connection must hear it within another `pingTimeoutMs`.
   */
  pingIntervalMs: number;
  /** Also the limit of each statement on the listening connection. */
  pingTimeoutMs: number;
  /**
   * Opening the listening connection may take this long: one that never completes (a
   * half-open network path, a proxy that swallows packets) would otherwise hold the listener
   * forever, and no retry would follow.
   */
  connectTimeoutMs: number;
  /** Reconnects back off from `retryMinMs` to `retryMaxMs`, so a database restart is not hammered. */
  retryMinMs: number;
  retryMaxMs: number;
  /** Between attempts once the LISTEN is known to go through a transaction-mode pooler. */
  retryBehindPoolerMs: number;
}

export const LISTEN_TIMING: ListenTiming = {
  pingIntervalMs: 15_000,
  pingTimeoutMs: 5_000,
  // As the pool's (connect.ts).
  connectTimeoutMs: 10_000,
  retryMinMs: 1_000,
  retryMaxMs: 30_000,
  // Each attempt through a transaction-mode pooler leaves a LISTEN on one of its server
  // sessions, which PgBouncer then drops ("got packet 'A' from server when not linked"), and
  // waits a ping timeout. Once in ten minutes that costs nothing, and should the pooler be
  // switched to session mode, or the diagnosis be wrong, caching comes back on its own.
  retryBehindPoolerMs: 10 * 60_000,
};

/** Marks a ping on the channel; table names (the real notices' prefix) have no hyphen. */
const PING_PREFIX = 'sesame-ping:';

/** The listening connection's application_name, unless its URL names one. */
export const LISTENER_APPLICATION_NAME = 'sesame-listener';

/** A LISTEN that answered on a connection whose later statements go to other server sessions. */
class ListenNotKeptError extends Error {}

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
  options: {
    /** Whether `connectionString` is DATABASE_DIRECT_URL rather than DATABASE_URL: the advice in a lost ping's words differs. */
    direct?: boolean;
    timing?: Partial<ListenTiming>;
  } = {},
): Promise<Subscription> {
  const timing = { ...LISTEN_TIMING, ...options.timing };
  const listenUrl = options.direct ? 'DATABASE_DIRECT_URL' : 'DATABASE_URL';
  const seconds = timing.pingTimeoutMs / 1000;
  const unheard = `a notification sent through DATABASE_URL did not reach the LISTEN connection within ${seconds} s`;
  const behindPooler = `${
    options.direct
      ? 'DATABASE_DIRECT_URL goes through a transaction-mode pooler: point it at a direct or session-mode connection'
      : 'behind a transaction-mode pooler, set DATABASE_DIRECT_URL to a direct or session-mode connection'
  }; LISTEN is tried again every ${timing.retryBehindPoolerMs / 60_000} min`;
  let closed = false;
  let current: pg.Client | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = timing.retryMinMs;
  const pings = new Map<string, () => void>();
  /** Connections open for a ping the pool could not send (sendAside); close() ends them. */
  const asides = new Set<pg.Client>();

  function lose(client: pg.Client, error: Error) {
    if (current !== client) return;
    current = undefined;
    clearInterval(pingTimer);
    client.removeAllListeners('notification');
    client.end().catch(() => {});
    handlers.onLost(error);
    if (closed) return;
    // Behind a transaction-mode pooler, retrying sooner would only fail the same way.
    const pooled = error instanceof ListenNotKeptError;
    retryTimer = setTimeout(() => void connect(), pooled ? timing.retryBehindPoolerMs : retryDelay);
    retryTimer.unref();
    if (!pooled) retryDelay = Math.min(retryDelay * 2, timing.retryMaxMs);
  }

  /**
   * Announces a ping through the pool; rejects, saying why, unless `client` hears it in time.
   * When the pool could not send it in time, or at all, resolves to why, provided the listening
   * connection hears the same ping sent on a connection of its own: see below.
   */
  async function ping(client: pg.Client): Promise<Error | undefined> {
    const nonce = randomUUID();
    const arrived = new Promise<'heard'>((resolve) => {
      pings.set(nonce, () => resolve('heard'));
    });
    const timers: NodeJS.Timeout[] = [];
    const within = () =>
      new Promise<'late'>((resolve) => {
        const timer = setTimeout(() => resolve('late'), timing.pingTimeoutMs);
        // A ping in flight when the subscription closes must not hold the process for its timeout.
        timer.unref();
        timers.push(timer);
      });
    const late = within();
    const sent = sql`select pg_notify(${channel}, ${PING_PREFIX + nonce})`
      .execute(pool)
      .then(() => 'sent' as const);
    // Its failure after the timeout is told no one: the ping has already failed.
    sent.catch(() => {});
    // Postgres hands a session its notices before it answers its next statement, so a listening
    // connection that answers a statement sent after the ping without having heard it has lost
    // its LISTEN to a transaction-mode pooler, which ran it on a server session it has since
    // lent to others. Asked alongside, so telling the two apart adds no wait.
    let answered = false;
    let over = false;
    sent
      // Not once this ping is over: the connection would run it beside the next ping's statement.
      .then(() => (over ? undefined : client.query('select 1')))
      .then(
        () => (answered = true),
        () => {},
      );
    try {
      const sending = await Promise.race([sent, late]).catch((error: Error) => error);
      if (sending !== 'sent') {
        const why =
          sending === 'late'
            ? `DATABASE_URL did not send a notification within ${seconds} s`
            : `DATABASE_URL could not send a notification (${sending.message})`;
        // Every pooled connection was busy (a burst, slow statements), or DATABASE_URL was down:
        // no sign of lost notices, and dropping the caches would read every row through that busy
        // pool until a ping got through it again. So the ping is sent once more, on a connection
        // of its own to the listening connection's database: heard, it proves that connection
        // still holds its LISTEN, and the caches stay. Not by the listening connection itself: a
        // session hears its own notices even when a transaction-mode pooler has lent it on and
        // drops every other session's (a connection that merely answers proves nothing either).
        // One that does not hear it has stalled or lost its LISTEN, and is opened again.
        sendAside(PING_PREFIX + nonce);
        if ((await Promise.race([arrived, within()])) === 'heard')
          return new Error(
            `${why}; the LISTEN connection heard it sent on another connection, so the caches stay`,
          );
        throw new Error(
          `${why}, and the LISTEN connection, ${listenUrl}, did not hear it sent on another connection within ${seconds} s; it is opened again`,
        );
      }
      // Heard, the ping also proves the listening connection itself is still up.
      if ((await Promise.race([arrived, late])) === 'heard') return undefined;
      if (!answered)
        throw new Error(
          `${unheard} (the LISTEN connection, ${listenUrl}, does not answer; it is opened again)`,
        );
      throw new ListenNotKeptError(`${unheard}, though that connection answers (${behindPooler})`);
    } finally {
      over = true;
      for (const timer of timers) clearTimeout(timer);
      pings.delete(nonce);
    }
  }

  /** Announces `payload` on the channel from a connection opened for it and closed after, bounded by a ping's timeout. */
  function sendAside(payload: string): void {
    if (closed) return;
    const aside = new pg.Client({
      connectionString,
      // Not the listening connection's name, by which it is told apart in pg_stat_activity.
      application_name: `${LISTENER_APPLICATION_NAME}-ping`,
      connectionTimeoutMillis: timing.pingTimeoutMs,
      query_timeout: timing.pingTimeoutMs,
    });
    aside.on('error', () => {});
    asides.add(aside);
    aside
      .connect()
      .then(() => aside.query('select pg_notify($1, $2)', [channel, payload]))
      .catch(() => {})
      .finally(() => {
        asides.delete(aside);
        return aside.end().catch(() => {});
      });
  }

  async function connect(): Promise<void> {
    const client = new pg.Client({
      connectionString,
      // Tells the listening connection apart in pg_stat_activity (its last statement is a ping's check).
      application_name: LISTENER_APPLICATION_NAME,
      keepAlive: true,
      connectionTimeoutMillis: timing.connectTimeoutMs,
      query_timeout: timing.pingTimeoutMs,
    });
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
      // Nothing is proved until a ping is heard: one the pool could not send keeps the caches off.
      const unsent = await ping(client);
      if (unsent) throw unsent;
    } catch (error) {
      lose(client, error as Error);
      return;
    }
    if (current !== client || closed) return;
    retryDelay = timing.retryMinMs;
    pingTimer = setInterval(() => {
      ping(client).then(
        (unsent) => unsent && current === client && handlers.onPingUnsent?.(unsent),
        (error: Error) => lose(client, error),
      );
    }, timing.pingIntervalMs);
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
      // An aside still connecting would otherwise hold the process up to its timeouts.
      await Promise.all([client, ...asides].map((open) => open?.end().catch(() => {})));
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
