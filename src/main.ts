// Only the configuration is imported up front. The rest is loaded once the environment has
// been validated, so a bad setting stops the start with exactly one line on stderr, before
// any library prints on import. The app (oidc-provider and all) then loads while the
// database opens, a first start's files are copied and migrations run: on two cores that
// overlap is a good part of a first start. Its import notices (oidc-provider warns about the
// Node version when it loads; routeProviderNotices turns that into a JSON log line) are held
// until the database and the stored keys are known to be good, so a busy data directory or
// a wrong KEY_ENCRYPTION_SECRET still stops the start with its one line.
import { type Config, ConfigError, configWarnings, loadConfig } from './config.js';
import { cannotConnectTo, connectionFailureHint, isConnectionFailure } from './db/connectionFailure.js';
import { DataDirBusyError } from './db/dataDirLock.js';
import { createLogger, type Logger, routeProcessWarnings } from './logger.js';
import { routeProviderNotices } from './oidc/providerNotices.js';

/** What must be closed on the way out; filled in as the start progresses. */
interface Running {
  stopApp?: () => Promise<void>;
  closeDatabase?: () => Promise<void>;
  /** A stop (SIGTERM, SIGINT) came: the start goes no further than the step under way. */
  stopRequested?: boolean;
}

/** Ends a start that was asked to stop; the stop then closes what it opened. */
class StartStopped extends Error {}

/** Names the step that failed, so the one-line error says what Sesame was doing. */
class StartError extends Error {
  constructor(step: string, cause: unknown, hint?: string) {
    super(`${step}: ${(cause as Error)?.message ?? String(cause)}${hint ? `: ${hint}` : ''}`, { cause });
  }
}

/** The step a failure to reach the database is reported as; start() names the database once it knows it. */
let cannotConnect = 'cannot connect to the database';

async function step<T>(
  name: string,
  run: () => Promise<T>,
  hint?: (error: unknown) => string | undefined,
): Promise<T> {
  try {
    return await run();
  } catch (error) {
    // A setting the stored data refutes (KEY_ENCRYPTION_SECRET) is a config error: its one line as it is.
    if (error instanceof DataDirBusyError || error instanceof StartError || error instanceof ConfigError)
      throw error;
    throw isConnectionFailure(error)
      ? new StartError(cannotConnect, error, connectionFailureHint(error))
      : new StartError(name, error, hint?.(error));
  }
}

async function start(
  config: Config,
  log: Logger,
  running: Running,
  notices: { release(): void },
): Promise<void> {
  const startedAt = performance.now();
  const goOn = () => {
    if (running.stopRequested) throw new StartStopped();
  };
  const appModule = import('./app.js');
  // Awaited below; until then a failure to load must not count as unhandled.
  appModule.catch(() => {});
  const { databaseUrlForLog, openDatabase } = await import('./db/connect.js');
  cannotConnect = cannotConnectTo(config, databaseUrlForLog);
  const database = await step('cannot open the database', () =>
    openDatabase(config, {
      onPoolError: (error) => log.warn('idle database connection failed', { error: error.message }),
      onSocketResetFailed: (error) =>
        log.warn('the embedded database session could not be reset after its last local client left', {
          error: error.message,
        }),
      onStatementsUnprepared: (reason) =>
        log.warn(
          'statements are sent unprepared from now on: DATABASE_URL does not keep a server session per connection',
          {
            reason,
            hint: 'a transaction-mode pooler; PgBouncer 1.21+ with max_prepared_statements keeps them',
          },
        ),
    }),
  );
  running.closeDatabase = () => database.close();
  // For the `sesame` commands that will work through this server (serverIssuer.ts).
  if (database.kind === 'embedded') {
    const { recordServerIssuer } = await import('./db/serverIssuer.js');
    // Advice for the commands, not needed to serve: a directory that refuses it stops nothing.
    try {
      recordServerIssuer(config.dataDir, config.issuer);
    } catch (error) {
      log.warn('could not record ISSUER for the sesame commands beside this server', {
        data: config.dataDir,
        error: (error as Error).message,
      });
    }
  }
  goOn();
  log.info(database.kind === 'embedded' ? 'using the embedded database' : 'using Postgres', {
    data: database.location,
    ...(database.seededFromTemplate && { created: 'from the prebuilt template' }),
  });
  if (database.madePrivate) {
    log.warn('made the data directory private to its owner', {
      data: database.location,
      changed: database.madePrivate,
    });
  }
  const applied = await step('cannot migrate the database', () => database.migrate());
  if (applied.length) log.info('migrations applied', { migrations: applied });
  goOn();

  // Before the app's notices are let out, so a wrong secret is the only line printed.
  const { checkKeyEncryptionSecret } = await import('./keysAtRest.js');
  await step('cannot read the stored keys', () => checkKeyEncryptionSecret(database.db, config));

  const { createApp } = await step('cannot start', () => appModule);
  goOn();
  notices.release();
  const app = await step('cannot start', () =>
    createApp({ config, db: database.db, log, listen: database.listen }),
  );
  // Before it listens: the app already holds a subscription and the provider's timers.
  running.stopApp = () => app.stop();
  goOn();
  const port = await step(`cannot listen on ${config.host}:${config.port}`, () => app.start(), listenHint);
  goOn();
  log.info('Sesame is listening', {
    issuer: config.issuer,
    port,
    discovery: `${config.issuer}/.well-known/openid-configuration`,
    startup_ms: Math.round(performance.now() - startedAt),
  });
  const { announceSetupLink } = await import('./accounts/setupLink.js');
  goOn();
  await step('cannot issue the setup link', () => announceSetupLink(database.db, config, log));
}

/** What to change when the address cannot be listened on: the setting that names it. */
function listenHint(error: unknown): string | undefined {
  switch ((error as { code?: unknown } | undefined)?.code) {
    case 'EADDRINUSE':
      return 'another process (another Sesame?) listens on that port: stop it, or set PORT to another';
    case 'EADDRNOTAVAIL':
      return 'HOST is not an address of this machine: set HOST to one of them, or leave it unset (0.0.0.0)';
    case 'EACCES':
      return 'ports below 1024 need privileges: set PORT to 1024 or above and forward to it';
    default:
      return undefined;
  }
}

/** One line on stderr; the stack of an unexpected error goes to the debug log only. */
function reportStartFailure(error: unknown, log?: Logger): void {
  const message =
    error instanceof ConfigError || error instanceof DataDirBusyError || error instanceof StartError
      ? error.message
      : `failed to start: ${(error as Error)?.message ?? String(error)}`;
  process.stderr.write(`sesame: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  const cause = error instanceof StartError ? error.cause : error;
  log?.debug('start failure', { stack: (cause as Error)?.stack });
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    reportStartFailure(error);
    process.exit(1);
  }
  const log = createLogger(config.logLevel);
  routeProcessWarnings(log);
  for (const warning of configWarnings(config)) log.warn(warning);
  const notices = routeProviderNotices(log);
  const running: Running = {};

  let starting: Promise<void> = Promise.resolve();
  const shutdown = async (signal: string) => {
    if (running.stopRequested) return;
    running.stopRequested = true;
    log.info('shutting down', { signal });
    try {
      // A start under way ends at its next step; what it opened by then is closed here, once.
      await starting.catch(() => {});
      await running.stopApp?.();
      await running.closeDatabase?.();
      process.exit(0);
    } catch (error) {
      log.error('shutdown failed', { error: (error as Error).message });
      process.exit(1);
    }
  };
  // Registered before the start, so a stop requested while starting still closes the database cleanly.
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  starting = start(config, log, running, notices);
  try {
    await starting;
  } catch (error) {
    // Stopping: shutdown() waits for the start to end, closes what it opened and exits.
    if (running.stopRequested) return;
    reportStartFailure(error, log);
    await running.closeDatabase?.().catch(() => {});
    process.exit(1);
  }
}

await main();
