import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { configFrom } from '../../src/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { type ListenTiming, listenOnPostgres, type Subscription } from '../../src/db/notifications.js';
import { eventually } from '../support/eventually.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/testDatabase.js';

/**
 * A TCP proxy in front of Postgres that passes traffic or, while `passing` is false, swallows
 * it: it accepts connections and reads what comes, and answers nothing, as a half-open path
 * or a broken middlebox does. While `deaf`, it passes everything but the server's
 * notifications (NotificationResponse messages), as a connection whose LISTEN a pooler has
 * lent to another client answers statements and hears nothing; while `hearsOnlyItself`, only
 * the notifications its own server session sent, as such a connection behind PgBouncer in
 * transaction mode does (a session hears its own notices while it is linked to the client).
 */
class SwallowingProxy {
  passing = true;
  deaf = false;
  hearsOnlyItself = false;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  constructor(target: { host: string; port: number }) {
    this.#server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      let fromServer = Buffer.alloc(0);
      let serverPid: number | undefined;
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.#sockets.add(from);
        from.on('data', (chunk) => {
          if (!this.passing) return;
          if (from === client) return to.write(chunk);
          // The server's messages, whole: a type byte, then a length that counts itself.
          fromServer = Buffer.concat([fromServer, chunk]);
          while (fromServer.length >= 5 && fromServer.length >= 1 + fromServer.readUInt32BE(1)) {
            const message = fromServer.subarray(0, 1 + fromServer.readUInt32BE(1));
            fromServer = fromServer.subarray(message.length);
            // BackendKeyData ('K') and NotificationResponse ('A') both start with a session's pid.
            if (message[0] === 0x4b) serverPid = message.readInt32BE(5);
            const notice = message[0] === 0x41;
            if (notice && (this.deaf || (this.hearsOnlyItself && message.readInt32BE(5) !== serverPid)))
              continue;
            to.write(message);
          }
        });
        from.on('close', () => {
          this.#sockets.delete(from);
          to.destroy();
        });
        from.on('error', () => {});
      }
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.#sockets.size / 2;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

/** Short waits, so a lost connection is noticed and retried within a test's patience. */
const TIMING: Partial<ListenTiming> = {
  pingIntervalMs: 300,
  pingTimeoutMs: 400,
  connectTimeoutMs: 400,
  retryMinMs: 100,
  retryMaxMs: 200,
  // A reconnect that meets the fault a test made, still there for a moment (the path still
  // deaf as the pool frees up), is taken for a transaction-mode pooler: 10 minutes otherwise.
  retryBehindPoolerMs: 300,
};

(onPostgres ? describe : describe.skip)('the Postgres row change listener', () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;
  let proxy: SwallowingProxy;
  let proxiedUrl: string;
  let subscription: Subscription | undefined;
  const channel = `test_listener_${randomBytes(4).toString('hex')}`;
  const heard: string[] = [];
  const lost: string[] = [];
  let lives = 0;
  const handlers = {
    onNotice: (payload: string) => heard.push(payload),
    onLive: () => lives++,
    onLost: (error: Error) => lost.push(error.message),
  };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 2 });
    const direct = new URL(testDb.env.DATABASE_DIRECT_URL!);
    proxy = new SwallowingProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    direct.host = `127.0.0.1:${await proxy.start()}`;
    proxiedUrl = direct.toString();
  });

  beforeEach(() => {
    proxy.passing = true;
    proxy.deaf = false;
    proxy.hearsOnlyItself = false;
    heard.length = lost.length = lives = 0;
  });

  afterEach(async () => {
    await subscription?.close();
    subscription = undefined;
  });

  afterAll(async () => {
    await proxy?.stop();
    await database?.close();
    await testDb?.drop();
  });

  /** Whether a notice announced through the pool now reaches the listener. */
  async function noticeArrives(): Promise<boolean> {
    const payload = `clients:${randomBytes(4).toString('hex')}`;
    await sql`select pg_notify(${channel}, ${payload})`.execute(database.db);
    return eventually(async () => heard.includes(payload), 1_000);
  }

  it('gives up a connect that never completes, and listens once the path passes traffic again', async () => {
    proxy.passing = false;
    const subscribing = listenOnPostgres(proxiedUrl, database.db, channel, handlers, {
      direct: true,
      timing: TIMING,
    });
    expect(await eventually(async () => lost.length > 0)).toBe(true);
    expect(lives).toBe(0);
    proxy.passing = true;
    subscription = await subscribing;
    expect(await eventually(async () => lives === 1, 3_000)).toBe(true);
    expect(await noticeArrives()).toBe(true);
  });

  it.each([
    [true, 'DATABASE_DIRECT_URL'],
    [false, 'DATABASE_URL'],
  ])(
    'when its connection stalls without a word, says that connection (direct: %s, %s) does not answer, and opens it again',
    async (direct, name) => {
      subscription = await listenOnPostgres(proxiedUrl, database.db, channel, handlers, {
        direct,
        timing: TIMING,
      });
      expect(lives).toBe(1);
      expect(await noticeArrives()).toBe(true);

      proxy.passing = false;
      expect(await eventually(async () => lost.length > 0, 3_000)).toBe(true);
      expect(lost[0]).toContain(`the LISTEN connection, ${name}, does not answer; it is opened again`);
      // Not the advice for a transaction-mode pooler: this connection holds its LISTEN, and stalled.
      expect(lost[0]).not.toContain('pooler');

      proxy.passing = true;
      expect(await eventually(async () => lives === 2, 3_000)).toBe(true);
      expect(await noticeArrives()).toBe(true);
    },
  );

  /** Holds every connection of the pool (two) for `ms`, as a burst of slow statements does. */
  function poolBusyFor(ms: number): Promise<unknown> {
    return Promise.all([1, 2].map(() => sql`select pg_sleep(${ms / 1000})`.execute(database.db)));
  }

  it('keeps listening through pings its busy pool could not send, while its own connection answers', async () => {
    // A longer wait than the others' 400 ms, so only the pool, never a slow test machine, makes a ping late.
    subscription = await listenOnPostgres(proxiedUrl, database.db, channel, handlers, {
      direct: true,
      timing: { ...TIMING, pingIntervalMs: 1_000, pingTimeoutMs: 1_000 },
    });
    expect(lives).toBe(1);
    // Pings fall in this that the pool cannot send within their second.
    await poolBusyFor(2_500);
    expect(lost).toEqual([]);
    expect(lives).toBe(1);
    expect(await noticeArrives()).toBe(true);
  });

  it('opens its connection again when it stalls while the pool is too busy to send a ping', async () => {
    subscription = await listenOnPostgres(proxiedUrl, database.db, channel, handlers, {
      direct: true,
      // Each ping over before the next, as in production (15 s apart, 5 s each).
      timing: { ...TIMING, pingIntervalMs: 500 },
    });
    const busy = poolBusyFor(1_500);
    proxy.passing = false;
    expect(await eventually(async () => lost.length > 0, 3_000)).toBe(true);
    expect(lost[0]).toContain(
      'did not send a notification within 0.4 s, and the LISTEN connection, DATABASE_DIRECT_URL, did not hear it sent on another connection within 0.4 s; it is opened again',
    );
    await busy;
    proxy.passing = true;
    await eventually(async () => lives === 2, 6_000);
    expect({ lives, lost }).toEqual({ lives: 2, lost: expect.any(Array) });
    expect(await noticeArrives()).toBe(true);
  });

  // Answering a statement proves nothing of a LISTEN, nor does hearing its own notices: only a
  // notice sent on another connection does.
  it.each([
    ['answers but no longer hears', 'deaf'],
    ['hears only its own notices, as behind a transaction-mode pooler', 'hearsOnlyItself'],
  ] as const)(
    'opens its connection again when it %s, while the pool is too busy to send a ping',
    async (_, mode) => {
      subscription = await listenOnPostgres(proxiedUrl, database.db, channel, handlers, {
        direct: true,
        timing: { ...TIMING, pingIntervalMs: 500 },
      });
      const busy = poolBusyFor(2_000);
      proxy[mode] = true;
      expect(await eventually(async () => lost.length > 0, 1_900)).toBe(true);
      expect(lost[0]).toContain('did not hear it sent on another connection');
      await busy;
      proxy[mode] = false;
      // On a failure, why each connection was given up.
      await eventually(async () => lives === 2, 6_000);
      expect({ lives, lost }).toEqual({ lives: 2, lost: expect.any(Array) });
      expect(await noticeArrives()).toBe(true);
    },
  );

  /** A pool that refuses every connection at once while `down` is set, as DATABASE_URL unreachable does. */
  function refusingPool() {
    const state = { down: false };
    const pool = new pg.Pool({ connectionString: testDb.env.DATABASE_URL, max: 2 });
    // As Sesame's own pool (connect.ts): pg-pool's end() resolves before its idle connections
    // have closed, and one the database then ends (the drop after the tests) reports an error
    // on the pool, which without a listener throws (a CI run failed on it once).
    pool.on('error', () => {});
    const db = new Kysely<unknown>({
      dialect: new PostgresDialect({
        pool: {
          connect: () => (state.down ? Promise.reject(new Error('connect ECONNREFUSED')) : pool.connect()),
          end: () => pool.end(),
        },
      }),
    });
    return { state, db: db as never as DatabaseHandle['db'], destroy: () => db.destroy() };
  }

  it('keeps listening, and says so, while DATABASE_URL refuses connections', async () => {
    const refusing = refusingPool();
    const unsent: string[] = [];
    try {
      subscription = await listenOnPostgres(
        proxiedUrl,
        refusing.db,
        channel,
        { ...handlers, onPingUnsent: (error) => unsent.push(error.message) },
        { direct: true, timing: TIMING },
      );
      refusing.state.down = true;
      expect(await eventually(async () => unsent.length >= 2, 2_000)).toBe(true);
      expect(lost).toEqual([]);
      // Not the listening connection's fault, and not said to be.
      expect(unsent[0]).toBe(
        'DATABASE_URL could not send a notification (connect ECONNREFUSED); the LISTEN connection heard it sent on another connection, so the caches stay',
      );
    } finally {
      await subscription?.close();
      subscription = undefined;
      await refusing.destroy();
    }
  });

  it('ends the connection it opened for such a ping when it is closed, not at that connection’s timeout', async () => {
    const refusing = refusingPool();
    try {
      subscription = await listenOnPostgres(proxiedUrl, refusing.db, channel, handlers, {
        direct: true,
        timing: { ...TIMING, pingTimeoutMs: 5_000 },
      });
      expect(proxy.connections).toBe(1);
      refusing.state.down = true;
      // The ping's own connection gets no answer while the path swallows traffic.
      proxy.passing = false;
      expect(await eventually(async () => proxy.connections === 2, 2_000)).toBe(true);
      await subscription.close();
      subscription = undefined;
      expect(await eventually(async () => proxy.connections === 0, 1_000)).toBe(true);
    } finally {
      await subscription?.close();
      subscription = undefined;
      await refusing.destroy();
    }
  });
});
