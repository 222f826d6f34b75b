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
const QUERY = 0x51;
const PARSE = 0x50;
const SYNC_TYPE = 0x53;

/** A typed protocol message: its type byte, its length (itself included), then `body`. */
function typedMessage(type: number, body: string): Buffer {
  const bytes = Buffer.from(body);
  const header = Buffer.from([type, 0, 0, 0, 0]);
  header.writeInt32BE(4 + bytes.length, 1);
  return Buffer.concat([header, bytes]);
}

/** Sync: ends an extended-protocol exchange; the backend answers ReadyForQuery. */
const SYNC = typedMessage(SYNC_TYPE, '');
const ROLLBACK = typedMessage(QUERY, 'rollback\0');
/**
 * COPY … FROM STDIN: PGlite's raw protocol call for it never returns (its wasm waits for the
 * data with the event loop stopped, so the whole server froze, pages and all). Refused before
 * it reaches PGlite, in a simple query or a Parse, wherever it stands in the text: a literal
 * that only contains the words is refused too, the price of never freezing. COPY … TO STDOUT
 * (pg_dump's data) works.
 */
const COPY_FROM_STDIN = /\bcopy\b[\s\S]*?\bfrom\s+stdin\b/i;

/** The SQL text of a simple query (`Q`) or a Parse (`P`, after the statement's name); else undefined. */
function sqlTextOf(message: Buffer): string | undefined {
  if (message[0] === QUERY) return message.toString('utf8', 5, message.length - 1);
  if (message[0] !== PARSE) return undefined;
  const nameEnd = message.indexOf(0, 5);
  if (nameEnd < 0) return undefined;
  const textEnd = message.indexOf(0, nameEnd + 1);
  return textEnd < 0 ? undefined : message.toString('utf8', nameEnd + 1, textEnd);
}

const COPY_FROM_STDIN_REFUSED =
  'COPY FROM STDIN is not served by a running Sesame on its embedded database (it would stop the server): stop the server to restore data';

/**
 * A simple query that fails with the refusal (feature_not_supported) inside PGlite itself, so
 * that the session's state is a real one after it: a transaction the COPY was in is aborted,
 * as a refused statement leaves it on Postgres.
 */
const REFUSE_COPY_QUERY = typedMessage(
  QUERY,
  `do $$ begin raise exception using errcode = 'feature_not_supported', message = '${COPY_FROM_STDIN_REFUSED}'; end $$\0`,
);

/** An ErrorResponse (feature_not_supported) to a refused Parse, with no ReadyForQuery: the client's Sync brings it. */
const REFUSED_PARSE = typedMessage(0x45, `SERROR\0VERROR\0C0A000\0M${COPY_FROM_STDIN_REFUSED}\0\0`);

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
 * included) but leaves the user and role, so these are named. DEALLOCATE ALL drops every named
 * prepared statement: the holder's own statements are unnamed (PGliteDialect runs
 * `pglite.query`), and pg_dump prepares fixed names, so a second dump would fail on the first's.
 * Not DISCARD ALL: it would also UNLISTEN the holder's own channels (row-cache invalidations).
 */
export async function sessionReset(pglite: PGlite): Promise<string> {
  const { rows } = await pglite.query<{ session: string; current: string }>(
    'select session_user as session, current_user as current',
  );
  const { session, current } = rows[0]!;
  const role = current === session ? 'reset role' : `set role ${quoted(current)}`;
  return `set session authorization ${quoted(session)}; ${role}; reset all; close all; discard temp; deallocate all`;
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
 * The holder's side of its socket: the one PGlite session its clients share, and how many of
 * them are connected and have sent something after their startup message.
 */
export interface SocketSession {
  pglite: PGlite;
  queue: ConnectionQueue;
  /** The statements that give the holder its session back ({@link sessionReset}). */
  reset: string;
  /** The channels the holder listens on now (its own LISTEN bookkeeping). */
  listening: () => Iterable<string>;
  /** Told when the session could not be given back (the holder then runs with what the clients left). */
  onResetFailed: (error: Error) => void;
  /** Clients connected that have spoken; the last of them to leave gives the session back. */
  speaking: number;
}

/**
 * Serves one local client (the `sesame` command beside a running server, psql, pg_dump) the
 * embedded database over the Postgres wire protocol. PGlite is a single session: a client holds
 * it through the same queue as the server's own connections (src/db/pgliteDialect.ts), from its
 * first message until PGlite reports the session idle again, so neither side's statements ever
 * run inside the other's transaction. PGlite reads its raw answers too, so the notices a
 * client's commit raises (row-cache invalidations) reach the server's listeners at once.
 * What a client sets in the session (a setting, a role, a temporary table, a prepared
 * statement) is every client's and the server's while it stays connected: the clients share
 * the session, and a reset while one is still connected would take its own away. When the
 * last client that spoke leaves, the session is given back as the server had it: `reset`
 * (from {@link sessionReset}). After every client that spoke, the server's channels are
 * listened to again (a client's UNLISTEN would have silenced them).
 * @returns a promise that settles once the connection is closed and PGlite handed back.
 */
export function servePGliteSocket(socket: net.Socket, session: SocketSession): Promise<void> {
  const { pglite, queue } = session;
  // Its 'close' has been emitted (or is about to be) and will not come again: waiting for it
  // would keep the holder from ever closing.
  if (socket.closed) return Promise.resolve();
  let buffer: Buffer = Buffer.alloc(0);
  let started = false;
  let closed = false;
  let release: (() => void) | undefined;
  let holdTimer: NodeJS.Timeout | undefined;
  let skippingToSync = false;
  let work: Promise<void> = Promise.resolve();
  /** The client sent more than its startup message: it may have left something in the session. */
  let spoke = false;

  const exec = (message: Uint8Array) => pglite.runExclusive(() => pglite.execProtocolRaw(message));

  /** Gives the holder its session back once the last client that spoke has gone. */
  async function giveBack(): Promise<void> {
    try {
      await pglite.exec(session.reset);
    } finally {
      await listenAgain();
    }
  }

  /**
   * Listens again on the holder's channels, which the client's UNLISTEN may have dropped (the
   * reset keeps them). LISTEN on a channel already listened to does nothing; the name goes as
   * PGlite's own listen sent it.
   */
  async function listenAgain(): Promise<void> {
    for (const channel of session.listening()) await pglite.exec(`listen ${channel}`);
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
    // Counted while holding PGlite, where the last leaver checks the count before its reset.
    if (!untyped && !spoke) {
      spoke = true;
      session.speaking += 1;
    }
    // After a refused Parse, the rest of its exchange up to Sync is dropped, as a backend
    // skips it after an error: a Bind would otherwise bind the holder's last unnamed statement.
    if (skippingToSync && message[0] !== SYNC_TYPE) {
      holdTimer = setTimeout(() => socket.destroy(), HOLD_TIMEOUT_MS);
      return;
    }
    skippingToSync = false;
    const text = untyped ? undefined : sqlTextOf(message);
    let answer: Uint8Array;
    if (text !== undefined && COPY_FROM_STDIN.test(text)) {
      skippingToSync = message[0] === PARSE;
      answer = skippingToSync ? REFUSED_PARSE : await exec(REFUSE_COPY_QUERY);
    } else {
      answer = await exec(message);
    }
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
          if (spoke) session.speaking -= 1;
          if (release) {
            // A client gone mid-exchange or mid-transaction leaves PGlite idle again.
            await exec(SYNC);
            if (pglite.isInTransaction()) await exec(ROLLBACK);
          }
          if (!spoke || pglite.closed) return;
          release ??= await queue.acquire();
          if (pglite.closed) return;
          if (session.speaking === 0) await giveBack();
          else await listenAgain();
        })
        .catch((error: unknown) => {
          if (!pglite.closed)
            session.onResetFailed(error instanceof Error ? error : new Error(String(error)));
        })
        .finally(() => {
          release?.();
          release = undefined;
          resolve();
        });
    });
  });
}
