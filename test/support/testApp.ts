import net from 'node:net';
import { type AppDeps, createApp, type SesameApp } from '../../src/app.js';
import { type Config, configFrom } from '../../src/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { createTestDatabase, type TestDatabase } from './testDatabase.js';

/** A Sesame server on a free loopback port with a database of its own. */
export interface TestApp {
  app: SesameApp;
  config: Config;
  db: DatabaseHandle['db'];
  baseUrl: string;
  /** Where the server listens (http on loopback); differs from baseUrl when ISSUER is https. */
  listenUrl: string;
  /** The environment a `sesame` command needs to act on this server's database with its issuer. */
  env: Record<string, string>;
  /** Stops the server and closes the database, then starts both again on the same data and port. */
  restart(): Promise<void>;
  /**
   * Stops the server and closes the database, runs `work` (a `sesame` command that must open
   * the embedded data directory the server held), then starts both again on the same data
   * and port. Whatever `work` returns is passed on.
   */
  whileStopped<T>(work: () => Promise<T>): Promise<T>;
  /** Runs `close` when the server stops for good (a helper's child process, say), before the database goes. */
  onStop(close: () => Promise<void>): void;
  stop(): Promise<void>;
}

/** Whether nothing listens on the loopback port now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Ports for test servers come from a range of this Jest worker's own, below the kernel's
 * ephemeral range (32768 and up on Linux). A port from `listen(0)` could be handed to another
 * worker, or to an outgoing connection, while its test has stopped the server to run a
 * command and means to start it again on the same port (the issuer names the port).
 */
const PORTS_PER_WORKER = 500;
/** SESAME_TEST_PORT_BASE moves the whole range, so suites of two checkouts can run side by side. */
const PORT_BASE = Number(process.env.SESAME_TEST_PORT_BASE ?? 20_000);
let nextPort = PORT_BASE + (Number(process.env.JEST_WORKER_ID ?? 1) % 4) * PORTS_PER_WORKER;
const lastPort = nextPort + PORTS_PER_WORKER;

export async function freePort(): Promise<number> {
  while (nextPort < lastPort) {
    const port = nextPort++;
    if (await canListen(port)) return port;
  }
  throw new Error('this Jest worker has used up its test ports');
}

/**
 * Starts Sesame for a test. `env` overrides settings (SIGNUP, ...) the way the environment
 * would; `log` replaces the stderr logger (a test that reads what Sesame logs passes its own).
 */
export async function startTestApp(
  env: Record<string, string> = {},
  options: {
    log?: Logger;
    /** Rewrites the database settings (a test that runs Sesame behind a pooler). */
    databaseEnv?: (env: TestDatabase['env']) => Record<string, string | undefined>;
    /** Short back-channel logout retries, for tests that wait for them. */
    backchannelTiming?: AppDeps['backchannelTiming'];
    /** Short mail retries, for tests that wait for them. */
    mailTiming?: AppDeps['mailTiming'];
    /** Short limits on slow requests, for tests that wait for them. */
    httpTiming?: AppDeps['httpTiming'];
    /** The ISSUER's host name instead of localhost (on the same port): a browser maps it to loopback. */
    issuerHost?: string;
    /** Row change notices this server hears go through it (a test that makes them late). */
    notices?: LateNotices;
  } = {},
): Promise<TestApp> {
  const port = await freePort();
  const testDb: TestDatabase = await createTestDatabase();
  const vars: Record<string, string> = {
    ISSUER: `http://${options.issuerHost ?? 'localhost'}:${port}`,
    PORT: String(port),
    LOG_LEVEL: process.env.SESAME_TEST_LOG ?? 'silent',
    // One loopback address makes every request of a test file: tests of the limit set their own.
    RATE_LIMIT_PER_MINUTE: '0',
    ...(options.databaseEnv ? options.databaseEnv(testDb.env) : testDb.env),
    ...env,
  };
  const config = configFrom(vars);
  const log = options.log ?? createLogger(config.logLevel);

  let database = await openDatabase(config, { poolSize: 5 });
  const listenOf = (handle: DatabaseHandle) => options.notices?.wrap(handle.listen) ?? handle.listen;
  const closers: Array<() => Promise<void>> = [];
  let app = await createApp({
    config,
    db: database.db,
    log,
    listen: listenOf(database),
    backchannelTiming: options.backchannelTiming,
    mailTiming: options.mailTiming,
    httpTiming: options.httpTiming,
  });
  await app.start(port, '127.0.0.1');

  const handle: TestApp = {
    app,
    config,
    db: database.db,
    baseUrl: config.issuer,
    listenUrl: `http://127.0.0.1:${port}`,
    env: vars,
    async restart() {
      await handle.whileStopped(async () => {});
    },
    async whileStopped<T>(work: () => Promise<T>): Promise<T> {
      await app.stop();
      await database.close();
      try {
        return await work();
      } finally {
        database = await openDatabase(config, { poolSize: 5 });
        app = await createApp({
          config,
          db: database.db,
          log,
          listen: listenOf(database),
          backchannelTiming: options.backchannelTiming,
          mailTiming: options.mailTiming,
          httpTiming: options.httpTiming,
        });
        await app.start(port, '127.0.0.1');
        handle.app = app;
        handle.db = database.db;
      }
    },
    onStop(close) {
      closers.push(close);
    },
    async stop() {
      for (const close of closers.splice(0)) await close();
      await app.stop();
      await database.close();
      await testDb.drop();
    },
  };
  return handle;
}

/**
 * The row change notices a server hears, held back while {@link hold} lasts, as if they were
 * slow to arrive (another instance's change, at load or over a slow network), then handed on
 * in order by {@link release}. The listener's own pings are not held: it stays live.
 */
export class LateNotices {
  #held: Array<() => void> | undefined;

  wrap(listen: DatabaseHandle['listen']): DatabaseHandle['listen'] {
    return (channel, handlers) =>
      listen(channel, {
        onNotice: (payload) => {
          if (this.#held) this.#held.push(() => handlers.onNotice(payload));
          else handlers.onNotice(payload);
        },
        onLive: () => handlers.onLive(),
        onLost: (error) => handlers.onLost(error),
        onPingUnsent: (error) => handlers.onPingUnsent?.(error),
      });
  }

  hold(): void {
    this.#held ??= [];
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const deliver of held) deliver();
  }
}

/** A second Sesame instance on a running one's database (Postgres), as behind a load balancer. */
export interface SecondInstance {
  url: string;
  stop(): Promise<void>;
}

export async function startSecondInstance(
  first: TestApp,
  options: { notices?: LateNotices } = {},
): Promise<SecondInstance> {
  const database: DatabaseHandle = await openDatabase(first.config, { poolSize: 5 });
  const app: SesameApp = await createApp({
    config: first.config,
    db: database.db,
    log: createLogger('silent'),
    listen: options.notices?.wrap(database.listen) ?? database.listen,
  });
  const port = await app.start(await freePort(), '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await app.stop();
      await database.close();
    },
  };
}
