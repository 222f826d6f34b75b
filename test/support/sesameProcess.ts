import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../../src/paths.js';
import { freePort, type TestApp } from './testApp.js';

/**
 * The built server and the `sesame` command as separate processes, the way an operator
 * runs them: `node dist/src/main.js` and `node bin/sesame.js`. `npm test` builds dist/ first.
 */

/**
 * A child's environment: only what Node needs plus the given variables. Nothing leaks in
 * from the test run (its DATABASE_URL above all), so each test says which database it uses.
 */
export function childEnv(vars: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SYSTEMROOT']) {
    if (process.env[key] !== undefined) base[key] = process.env[key];
  }
  return { ...base, ...vars };
}

/** How a process ended and what it printed. */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Non-empty lines of a stream's text. */
export const linesOf = (text: string) => text.split('\n').filter((line) => line.trim() !== '');

function collect(child: ChildProcess) {
  const out = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out.stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    out.stderr += chunk;
  });
  const exited = new Promise<ProcessResult>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, ...out }));
  });
  return { out, exited };
}

/**
 * Whether this machine lets a test start a process in a PID namespace of its own (as root,
 * with util-linux's `unshare`): a second container on the same volume, in small.
 */
export const canUnsharePid =
  spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' }).status === 0;

/**
 * Runs `node bin/sesame.js <args>` to the end; with `inNewPidNamespace`, under
 * `unshare --pid --fork --mount-proc`, where it sees no process of ours and its own pid is 1.
 */
export async function runCli(
  args: string[],
  vars: Record<string, string | undefined>,
  timeoutMs = 20_000,
  options: { inNewPidNamespace?: boolean } = {},
): Promise<ProcessResult> {
  const command = [process.execPath, path.join(ROOT, 'bin', 'sesame.js'), ...args];
  if (options.inNewPidNamespace) command.unshift('unshare', '--pid', '--fork', '--mount-proc');
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: childEnv(vars),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { exited } = collect(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A `sesame` process that runs one command after another (see {@link startCliSession}). */
export interface CliSession {
  /** Runs `sesame <args>` to its end: its exit code and what it printed. */
  run(args: string[]): Promise<ProcessResult>;
  close(): Promise<void>;
}

/**
 * Starts one process (test/support/cliSession.mjs) that runs the built CLI's commands in turn,
 * each parsed afresh from its own argv with its own output and exit code, and each opening
 * and closing the database as `node bin/sesame.js` does: for tests of what many commands
 * print and change. Node and the CLI's imports load once, not once per command. Tests that
 * a real `sesame` process works use {@link runCli}.
 */
export async function startCliSession(vars: Record<string, string | undefined>): Promise<CliSession> {
  const child = spawn(process.execPath, [path.join(ROOT, 'test', 'support', 'cliSession.mjs')], {
    cwd: ROOT,
    env: childEnv(vars),
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const { out } = collect(child);
  // 'exit', not 'close': a child whose IPC channel the parent disconnected emits no 'close'.
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let pending: { resolve(result: ProcessResult): void; reject(error: Error): void } | undefined;
  child.on('message', (result: Omit<ProcessResult, 'signal'>) => {
    pending?.resolve({ ...result, signal: null });
    pending = undefined;
  });
  child.once('exit', (code, signal) => {
    pending?.reject(new Error(`the sesame session ended (${code ?? signal}): ${out.stderr}`));
    pending = undefined;
  });
  let queue: Promise<unknown> = Promise.resolve();
  return {
    run(args) {
      const result = queue.then(
        () =>
          new Promise<ProcessResult>((resolve, reject) => {
            pending = { resolve, reject };
            child.send({ args });
          }),
      );
      queue = result.catch(() => {});
      return result;
    },
    async close() {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}

/** Each test server's CLI session, started at its first command and closed when the server stops. */
const sessions = new WeakMap<TestApp, Promise<CliSession>>();

/**
 * Runs `sesame <args>` on a test server's database beside the running server, as an operator
 * would on the server's machine: on the embedded database the command works through the
 * server, which holds the data directory. The commands of one server run in one
 * {@link startCliSession} (Node and the CLI's imports load once, ~0.7 s per command saved),
 * one at a time, each opening the database afresh; tests that a real `sesame` process works
 * use {@link runCli}.
 */
export async function runCliOn(sesame: TestApp, args: string[]): Promise<ProcessResult> {
  let session = sessions.get(sesame);
  if (!session) {
    const started = startCliSession(sesame.env);
    session = started;
    sessions.set(sesame, started);
    sesame.onStop(async () => (await started).close());
  }
  return (await session).run(args);
}

/** Runs a `--json` command with {@link runCliOn} and returns the one JSON value it printed; throws if it failed. */
export async function cliJsonOn<T = Record<string, unknown>>(sesame: TestApp, args: string[]): Promise<T> {
  const result = await runCliOn(sesame, [...args, '--json']);
  if (result.code !== 0 || result.stderr !== '') {
    throw new Error(`sesame ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  }
  return JSON.parse(result.stdout) as T;
}

/** {@link runServerExpectingExit} in a PID namespace of its own (see {@link canUnsharePid}). */
export function runServerInNewPidNamespace(vars: Record<string, string | undefined>): Promise<ProcessResult> {
  return runServerExpectingExit(vars, 60_000, { inNewPidNamespace: true });
}

/** A server process started by a test. */
export interface SesameProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly baseUrl: string;
  /** Milliseconds from spawn until discovery answered. */
  readonly readyAfterMs: number;
  /** What it has written to stderr (its log) so far. */
  stderr(): string;
  /** Sends a signal and waits for the process to end. */
  stop(signal?: NodeJS.Signals): Promise<ProcessResult>;
}

/** Runs `node dist/src/main.js` to the end: for starts that must fail. */
export async function runServerExpectingExit(
  vars: Record<string, string | undefined>,
  timeoutMs = 20_000,
  options: { inNewPidNamespace?: boolean } = {},
): Promise<ProcessResult> {
  const command = [process.execPath, path.join(ROOT, 'dist', 'src', 'main.js')];
  if (options.inNewPidNamespace) command.unshift('unshare', '--pid', '--fork', '--mount-proc');
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: childEnv(vars),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { exited } = collect(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Spawns the built server on a free port with `vars` (ISSUER and PORT are filled in), without
 * waiting for it: what it has printed so far is in `out`, and `exited` settles when it ends.
 */
export async function spawnSesameProcess(vars: Record<string, string | undefined>) {
  const port = await freePort();
  const baseUrl = `http://localhost:${port}`;
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'src', 'main.js')], {
    cwd: ROOT,
    env: childEnv({ ISSUER: baseUrl, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', ...vars }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, port, baseUrl, ...collect(child) };
}

/**
 * Starts the built server on a free port with `vars` (ISSUER and PORT are filled in) and
 * waits until its discovery document answers. Rejects with its log if it exits or does not
 * answer within `timeoutMs`.
 */
export async function startSesameProcess(
  vars: Record<string, string | undefined>,
  timeoutMs = 20_000,
): Promise<SesameProcess> {
  const started = performance.now();
  const { child, port, baseUrl, out, exited } = await spawnSesameProcess(vars);
  let ended: ProcessResult | undefined;
  void exited.then((result) => {
    ended = result;
  });

  const deadline = started + timeoutMs;
  for (;;) {
    if (ended) throw new Error(`the server exited (code ${ended.code}) before answering:\n${ended.stderr}`);
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`the server did not answer within ${timeoutMs} ms:\n${out.stderr}`);
    }
    try {
      const response = await fetch(`${baseUrl}/.well-known/openid-configuration`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const readyAfterMs = performance.now() - started;

  return {
    child,
    port,
    baseUrl,
    readyAfterMs,
    stderr: () => out.stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!ended) child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      try {
        return await exited;
      } finally {
        clearTimeout(killer);
      }
    },
  };
}
