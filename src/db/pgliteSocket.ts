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
 * @returns a promise that settles once the connection is closed and PGlite handed back.
 */
export function servePGliteSocket(socket: net.Socket, pglite: PGlite, queue: ConnectionQueue): Promise<void> {
  // Its 'close' has been emitted (or is about to be) and will not come again: waiting for it
  // would keep the holder from ever closing.
  if (socket.closed) return Promise.resolve();
  let buffer: Buffer = Buffer.alloc(0);
  let started = false;
  let closed = false;
  let release: (() => void) | undefined;
  let holdTimer: NodeJS.Timeout | undefined;
  let work: Promise<void> = Promise.resolve();

  const exec = (message: Uint8Array) => pglite.runExclusive(() => pglite.execProtocolRaw(message));

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
    const answer = await exec(message);
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
          if (!release) return;
          // A client gone mid-exchange or mid-transaction leaves PGlite idle again.
          await exec(SYNC);
          if (pglite.isInTransaction()) await exec(ROLLBACK);
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
