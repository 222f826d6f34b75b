import net from 'node:net';
import { createApp, type SesameApp } from '../../src/app.js';
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
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts Sesame for a test. `env` overrides settings (SIGNUP, ...) the way the environment
 * would; `log` replaces the stderr logger (a test that reads what Sesame logs passes its own).
 */
export async function startTestApp(
  env: Record<string, string> = {},
  options: { log?: Logger } = {},
): Promise<TestApp> {
  const port = await freePort();
  const testDb: TestDatabase = await createTestDatabase();
  const vars: Record<string, string> = {
    ISSUER: `http://localhost:${port}`,
    PORT: String(port),
    LOG_LEVEL: process.env.SESAME_TEST_LOG ?? 'silent',
    // One loopback address makes every request of a test file: tests of the limit set their own.
    RATE_LIMIT_PER_MINUTE: '0',
    ...testDb.env,
    ...env,
  };
  const config = configFrom(vars);
  const log = options.log ?? createLogger(config.logLevel);

  let database = await openDatabase(config, { poolSize: 5 });
  let app = await createApp({ config, db: database.db, log, listen: database.listen });
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
        app = await createApp({ config, db: database.db, log, listen: database.listen });
        await app.start(port, '127.0.0.1');
        handle.app = app;
        handle.db = database.db;
      }
    },
    async stop() {
      await app.stop();
      await database.close();
      await testDb.drop();
    },
  };
  return handle;
}
