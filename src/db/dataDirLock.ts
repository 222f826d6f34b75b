import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Raised when another live process holds the embedded data directory. */
export class DataDirBusyError extends Error {
  override name = 'DataDirBusyError';
}

/**
 * The socket the process that holds the data directory listens on. Named the way libpq and
 * `pg` look for a server in a directory (`host=<dir>`, port 5432), since it speaks the
 * Postgres protocol (src/db/pgliteSocket.ts).
 */
export const SOCKET_PORT = 5432;
export const SOCKET_NAME = `.s.PGSQL.${SOCKET_PORT}`;

/**
 * Beside the socket while a `sesame` command holds the directory (it found no server to work
 * through): a command lets go within seconds, so a server that starts meanwhile waits for it
 * instead of refusing to start.
 */
export const COMMAND_MARKER_NAME = `${SOCKET_NAME}.command`;

/** A takeover left half-done by a process that died is cleared after this long. */
const TAKEOVER_STALE_MS = 10_000;
/** A holder that accepts no connection within this long is taken to be alive (and busy). */
const PROBE_TIMEOUT_MS = 2_000;
const ATTEMPTS = 50;
const RETRY_MS = 20;
/** sockaddr_un holds 108 bytes on Linux, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 107;

/** The data directory, held by this process: other processes reach it through the socket. */
export interface HeldDataDir {
  held: true;
  /** Hands every connection to the socket (earlier ones included) to `serve`. */
  accept(serve: (socket: net.Socket) => void): void;
  /**
   * Turns new connections away (the socket stays, so nobody takes the directory meanwhile),
   * gives open ones `graceMs` to finish, then cuts them.
   */
  drain(graceMs: number): Promise<void>;
  /**
   * Stops listening and removes the socket, so the next process can take the directory.
   * Call it only once the database files are closed.
   */
  release(): Promise<void>;
}

/** The data directory, held by another live process that listens at `socketDir`. */
export interface BusyDataDir {
  held: false;
  socketDir: string;
}

/**
 * Whether a process listens on the socket. Liveness is judged by the socket itself, not by a
 * pid: a pid means nothing in another PID namespace (a second container on the same volume),
 * while a connection to the socket reaches the holder from anywhere that sees the file.
 */
function isListening(socketPath: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = net.connect(socketPath);
    const timer = setTimeout(() => finish(true), PROBE_TIMEOUT_MS);
    function finish(alive: boolean, error?: Error) {
      clearTimeout(timer);
      probe.destroy();
      if (error) reject(error);
      else resolve(alive);
    }
    probe.once('connect', () => finish(true));
    probe.once('error', (error: NodeJS.ErrnoException) => {
      // No file, or a file nobody listens on (its holder died): free to take over.
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') finish(false);
      else finish(false, error);
    });
  });
}

function listen(socketPath: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts listening on the data directory's socket, unless a live process already does.
 * The new socket is bound under a name of its own and renamed into place (atomic), and only
 * while holding a takeover directory (mkdir is atomic) and after checking again that nobody
 * listens: of two processes that find a dead socket at once, exactly one takes it.
 */
async function tryTakeOver(socketPath: string): Promise<net.Server | 'busy' | 'retry'> {
  const takeover = `${socketPath}.takeover`;
  try {
    fs.mkdirSync(takeover, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = Date.now() - (fs.statSync(takeover, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > TAKEOVER_STALE_MS) fs.rmSync(takeover, { recursive: true, force: true });
    return 'retry';
  }
  try {
    if (await isListening(socketPath)) return 'busy';
    const staging = `${socketPath}.${crypto.randomBytes(3).toString('hex')}`;
    const server = await listen(staging);
    try {
      fs.chmodSync(staging, 0o600);
      fs.renameSync(staging, socketPath);
    } catch (error) {
      server.close();
      fs.rmSync(staging, { force: true });
      throw error;
    }
    return server;
  } finally {
    fs.rmSync(takeover, { recursive: true, force: true });
  }
}

/**
 * Claims the embedded database directory. PGlite has no locking of its own: two processes
 * writing one data directory corrupt it, so exactly one process holds it and listens on a
 * Unix socket inside it (mode 0600 in a 0700 directory). Any other process, whatever its
 * PID namespace, finds that socket alive and is told where it is; a socket whose holder died
 * (nobody answers) is taken over.
 */
export async function claimDataDir(dataDir: string): Promise<HeldDataDir | BusyDataDir> {
  // A new directory is private from the start; the holder tightens an existing one (connect.ts).
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const socketDir = path.resolve(dataDir);
  const socketPath = path.join(socketDir, SOCKET_NAME);
  if (Buffer.byteLength(socketPath) + 8 > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `DATA_DIR ${socketDir} is too long a path for its socket; use one of at most ${MAX_SOCKET_PATH_BYTES - 8 - SOCKET_NAME.length - 1} bytes`,
    );
  }
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await isListening(socketPath)) return { held: false, socketDir };
    const outcome = await tryTakeOver(socketPath);
    if (outcome === 'busy') return { held: false, socketDir };
    if (outcome === 'retry') {
      await sleep(RETRY_MS);
      continue;
    }
    return holding(outcome, socketPath);
  }
  throw new DataDirBusyError(
    `could not take ${socketPath}; remove ${socketPath}.takeover if no Sesame process is running`,
  );
}

function holding(server: net.Server, socketPath: string): HeldDataDir {
  const inode = fs.statSync(socketPath).ino;
  const waiting: net.Socket[] = [];
  const open = new Set<net.Socket>();
  let serve: ((socket: net.Socket) => void) | undefined;
  let draining = false;
  server.on('connection', (socket) => {
    if (draining) {
      socket.destroy();
      return;
    }
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      // One that hung up while the holder was opening (a check that the directory is taken)
      // is not handed to `serve`.
      const index = waiting.indexOf(socket);
      if (index !== -1) waiting.splice(index, 1);
    });
    if (serve) serve(socket);
    else waiting.push(socket);
  });
  // Removes the socket only while it is still ours, so a process that took the directory
  // over after us keeps its own.
  const removeSocket = () => {
    if (fs.statSync(socketPath, { throwIfNoEntry: false })?.ino === inode)
      fs.rmSync(socketPath, { force: true });
  };
  process.once('exit', removeSocket);
  let released: Promise<void> | undefined;
  return {
    held: true,
    accept(handler) {
      serve = handler;
      for (const socket of waiting.splice(0)) handler(socket);
    },
    async drain(graceMs) {
      draining = true;
      for (const socket of waiting.splice(0)) socket.destroy();
      const deadline = Date.now() + graceMs;
      while (open.size > 0 && Date.now() < deadline) await sleep(20);
      for (const socket of open) socket.destroy();
    },
    release() {
      released ??= new Promise<void>((resolve) => {
        draining = true;
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
        process.removeListener('exit', removeSocket);
        removeSocket();
      });
      return released;
    },
  };
}
