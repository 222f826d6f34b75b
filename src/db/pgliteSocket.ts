import type net from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import type { ConnectionQueue } from './pgliteDialect.js';

/**
 * A connection that holds the embedded database (inside a transaction, or between the
 * messages of one extended-protocol exchange) and then says nothing for this long is cut and
 * its transaction rolled back: while it holds PGlite, the server's own requests wait.
 */
const HOLD_TIMEOUT_MS = 10_000;

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const PROTOCOL_3 = 196608;
/** Sync: ends an extended-protocol exchange; the backend answers ReadyForQuery. */
const SYNC = Uint8Array.from([0x53, 0, 0, 0, 4]);
const ROLLBACK = Uint8Array.from([0x51, 0, 0, 0, 13, ...Buffer.from('rollback\0')]);
/** Parse: its first field names the prepared statement, empty for the unnamed one. */
const PARSE = 0x50;
/** Query: simple protocol, its text a C string. */
const QUERY = 0x51;

/** `name` quoted as a Postgres identifier. */
function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * What gives the holder its own session back when a client of the socket leaves: the client
 * ran on the same and only session, so whatever it set there (pg_dump's
 * `set_config('search_path', '', false)`, a SET ROLE, a cursor WITH HOLD, a temporary table)
 * would otherwise stay, and every later statement of the server would run under it. RESET ALL
 * brings each setting back to the one PGlite started with (its `-c search_path=public`
 * included) but leaves the user and role, so these are named. Not DISCARD ALL: it would also
 * UNLISTEN the server's own channels (row-cache invalidations); the client's prepared
 * statements are deallocated one by one (servePGliteSocket).
 */
export async function sessionReset(pglite: PGlite): Promise<string> {
  const { rows } = await pglite.query<{ session: string; current: string }>(
    'select session_user as session, current_user as current',
  );
  const { session, current } = rows[0]!;
  const role = current === session ? 'reset role' : `set role ${quoted(current)}`;
  return `set session authorization ${quoted(session)}; ${role}; reset all; close all; discard temp`;
}

/**
 * The status of the last ReadyForQuery in PGlite's answer: 'I' idle, 'T' in a transaction,
 * 'E' in a failed one; undefined when the answer has none (mid extended-protocol exchange).
 */
function sessionStatus(bytes: Uint8Array): string | undefined {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let status: string | undefined;
  for (let offset = 0; offset + 5 <= buffer.length; offset += 1 + buffer.readInt32BE(offset + 1)) {
    if (buffer[offset] === 0x5a) status = String.fromCharCode(buffer[offset + 5]!);
  }
  return status;
}

/**
 * Splits the next complete message off the front of `buffer`: untyped (length first) before
 * the startup message, typed (a byte, then the length) after it.
 */
function nextMessage(
  buffer: Buffer,
  started: boolean,
): { message: Buffer; rest: Buffer } | 'invalid' | undefined {
  const header = started ? 5 : 8;
  if (buffer.length < header) return undefined;
  const length = started ? 1 + buffer.readInt32BE(1) : buffer.readInt32BE(0);
  if (length < header) return 'invalid';
  if (buffer.length < length) return undefined;
  return { message: buffer.subarray(0, length), rest: buffer.subarray(length) };
}

/**
 * Serves one local client (the `sesame` command beside a running server) the embedded
 * database over the Postgres wire protocol. PGlite is a single session: a client holds it
 * through the same queue as the server's own connections (src/db/pgliteDialect.ts), from its
 * first message until PGlite reports the session idle again, so neither side's statements
 * ever run inside the other's transaction. PGlite reads its raw answers too, so the notices
 * a client's commit raises (row-cache invalidations) reach the server's listeners at once.
 * When the client leaves, the session is given back as the server had it: `reset` (from
 * {@link sessionReset}), the client's prepared statements deallocated, and the server's LISTENs
 * that the client dropped listened to again.
 * @returns a promise that settles once the connection is closed and PGlite handed back.
 */
export function servePGliteSocket(
  socket: net.Socket,
  pglite: PGlite,
  queue: ConnectionQueue,
  reset: string,
): Promise<void> {
  // Its 'close' has been emitted (or is about to be) and will not come again: waiting for it
  // would keep the holder from ever closing.
  if (socket.closed) return Promise.resolve();
  let buffer: Buffer = Buffer.alloc(0);
  let started = false;
  let closed = false;
  let release: (() => void) | undefined;
  let holdTimer: NodeJS.Timeout | undefined;
  let work: Promise<void> = Promise.resolve();
  /** The client sent more than its startup message: it may have left something in the session. */
  let spoke = false;
  /** The prepared statements this client made: the server's, and another client's, stay. */
  const prepared = new Set<string>();
  /** The channels the session listened on when the client came: an UNLISTEN of the client's would silence the server's. */
  let listening: string[] = [];

  const exec = (message: Uint8Array) => pglite.runExclusive(() => pglite.execProtocolRaw(message));
  const names = async (sql: string) =>
    (await pglite.query<{ name: string }>(sql)).rows.map((row) => row.name);
  const preparedNames = () => names('select name from pg_prepared_statements');

  /** Runs a client's message, noting the prepared statements it makes (a Parse names its own; a PREPARE is seen in the catalog). */
  async function run(message: Buffer): Promise<Uint8Array> {
    if (message[0] === PARSE) {
      const name = message.toString('utf8', 5, message.indexOf(0, 5));
      if (name) prepared.add(name);
    }
    if (message[0] !== QUERY || !/prepare/i.test(message.toString('utf8', 5))) return exec(message);
    // In a failed transaction the catalog cannot be read, and a PREPARE fails too (unless the
    // same message rolls back first: that statement is not noted, and stays).
    const before = await preparedNames().catch(() => undefined);
    const answer = await exec(message);
    if (before)
      for (const name of await preparedNames().catch(() => before))
        if (!before.includes(name)) prepared.add(name);
    return answer;
  }

  /** Gives the holder its session back once the client has gone (see {@link sessionReset}). */
  async function giveBack(): Promise<void> {
    await pglite.exec(reset);
    const left = await preparedNames();
    for (const name of prepared) if (left.includes(name)) await pglite.exec(`deallocate ${quoted(name)}`);
    const now = await names('select pg_listening_channels() as name');
    for (const channel of listening)
      if (!now.includes(channel)) await pglite.exec(`listen ${quoted(channel)}`);
  }

  async function handle(message: Buffer, untyped: boolean): Promise<void> {
    if (closed) return;
    if (untyped) {
      const code = message.readInt32BE(4);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        socket.write('N');
        return;
      }
      // PGlite has no backend to cancel (a cancel request comes on a connection of its own),
      // and speaks no other protocol version.
      if (code !== PROTOCOL_3) {
        socket.destroy();
        return;
      }
    }
    clearTimeout(holdTimer);
    release ??= await queue.acquire();
    if (closed) return;
    if (untyped) listening = await names('select pg_listening_channels() as name');
    else spoke = true;
    const answer = await run(message);
    if (answer.length > 0) socket.write(answer);
    if (sessionStatus(answer) === 'I') {
      release();
      release = undefined;
    } else {
      holdTimer = setTimeout(() => socket.destroy(), HOLD_TIMEOUT_MS);
    }
  }

  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const next = nextMessage(buffer, started);
      if (next === 'invalid') {
        socket.destroy();
        return;
      }
      if (!next) return;
      buffer = next.rest;
      const message = Buffer.from(next.message);
      const untyped = !started;
      // The startup message switches the framing of every later one.
      if (untyped && message.readInt32BE(4) === PROTOCOL_3) started = true;
      work = work
        .then(() => handle(message, untyped))
        .catch(() => {
          socket.destroy();
        });
    }
  });
  socket.on('error', () => socket.destroy());

  return new Promise<void>((resolve) => {
    socket.once('close', () => {
      closed = true;
      clearTimeout(holdTimer);
      work = work
        .then(async () => {
          if (release) {
            // A client gone mid-exchange or mid-transaction leaves PGlite idle again.
            await exec(SYNC);
            if (pglite.isInTransaction()) await exec(ROLLBACK);
          }
          if (!spoke || pglite.closed) return;
          release ??= await queue.acquire();
          await giveBack();
        })
        .catch(() => {})
        .finally(() => {
          release?.();
          release = undefined;
          resolve();
        });
    });
  });
}
