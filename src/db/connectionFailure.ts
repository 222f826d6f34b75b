/**
 * Errors that mean Sesame never got a working connection to Postgres, as opposed to a
 * statement that failed on one: the server's start and the `sesame` command say
 * "cannot connect to the database" for them, so "database does not exist" or ECONNREFUSED
 * is not read as a broken migration.
 */

/** Node's errors for a host that cannot be reached, named or answering. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  // TLS to the server (sslmode=require or verify-full) that could not be set up.
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * SQLSTATEs Postgres answers a connection with (PostgreSQL, Appendix A): class 08
 * (connection exception), class 28 (a role that does not exist, a wrong password),
 * 3D000 (no such database), 53300 (too many connections), 57P03 (starting up or shutting down).
 */
const CONNECTION_STATES = /^(08|28)|^(3D000|53300|57P03)$/;

/** Whether `error` (from pg, or Node beneath it) says no connection to the database was made. */
export function isConnectionFailure(error: unknown): boolean {
  const { code, message, syscall } = (error ?? {}) as {
    code?: unknown;
    message?: unknown;
    syscall?: unknown;
  };
  // A Unix socket that is not there is ENOENT from connect(), not a missing file.
  if (syscall === 'connect' || syscall === 'getaddrinfo') return true;
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || CONNECTION_STATES.test(code))) return true;
  // pg's own, without a code: connectionTimeoutMillis ran out, or the server hung up at once.
  // A server that refuses TLS to a URL that asks for it (sslmode=require) says so before any statement.
  return (
    typeof message === 'string' &&
    /^(Connection terminated (due to connection timeout|unexpectedly)|The server does not support SSL connections)/.test(
      message,
    )
  );
}

/**
 * What a start that cannot reach Postgres says before the driver's words: the setting that
 * names the database and its URL (password masked), so the operator knows what to fix even
 * when the log's "using Postgres" line is below LOG_LEVEL. Migrations and LISTEN use
 * DATABASE_DIRECT_URL, the rest DATABASE_URL: when they differ, both are named.
 */
export function cannotConnectTo(
  config: { databaseUrl: string | undefined; databaseDirectUrl: string | undefined },
  forLog: (url: string) => string,
): string {
  if (!config.databaseUrl) return 'cannot connect to the database';
  const named = [`DATABASE_URL ${forLog(config.databaseUrl)}`];
  if (config.databaseDirectUrl && config.databaseDirectUrl !== config.databaseUrl)
    named.push(`DATABASE_DIRECT_URL ${forLog(config.databaseDirectUrl)}`);
  return `cannot connect to the database (${named.join(', ')})`;
}

/** What to do about a failure whose fix is not in the driver's words: a database not created yet. */
export function connectionFailureHint(error: unknown): string | undefined {
  return (error as { code?: unknown } | undefined)?.code === '3D000'
    ? 'create it first (createdb): Sesame creates its tables, not the database'
    : undefined;
}
