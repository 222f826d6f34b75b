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
  return (
    typeof message === 'string' &&
    /^Connection terminated (due to connection timeout|unexpectedly)/.test(message)
  );
}
