/** Child processes of the benchmark: Sesame's server, the bare baseline, the CLI; their memory and exit. */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/bench/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

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

/** Resident memory of a process in MB, from /proc/<pid>/status (VmRSS). */
export function rssMb(pid: number): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Math.round(Number(kb) / 102.4) / 10 : undefined;
  } catch {
    return undefined;
  }
}

/** Garbage collections as `--trace-gc` prints them: `Scavenge 45.2 (60.1) -> 41.0 (60.3) MB, …`. */
const GC_LINE = /(?:Scavenge|Mark-Compact|Mark-Sweep)[^\d\n]*([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/gi;

/** MB each server has allocated on its heap so far, read from its `--trace-gc` lines. */
const allocatedByPid = new Map<number, () => number>();

/**
 * Follows a child's `--trace-gc` output (its stdout). What the heap grew by between one
 * collection's end and the next one's start is what the process allocated meanwhile; unlike
 * CPU time it does not move when other work shares the machine.
 */
function followAllocations(child: ChildProcess): void {
  let allocatedMb = 0;
  let heapAfterMb: number | undefined;
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const end = text.lastIndexOf('\n') + 1;
    partial = text.slice(end);
    for (const [, before, after] of text.slice(0, end).matchAll(GC_LINE)) {
      if (heapAfterMb !== undefined) allocatedMb += Math.max(0, Number(before) - heapAfterMb);
      heapAfterMb = Number(after);
    }
  });
  allocatedByPid.set(child.pid!, () => allocatedMb);
}

/** MB the server `pid` has allocated so far (0 for a process not started here). */
export function allocatedMb(pid: number): number {
  return allocatedByPid.get(pid)?.() ?? 0;
}

/** Runs the `sesame` command and returns its one JSON answer. */
export async function sesameCli(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'sesame.js'), ...args, '--json'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`sesame ${args.slice(0, 2).join(' ')} failed: ${err.trim()}`);
  return JSON.parse(out) as Record<string, string>;
}

async function waitFor200(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode} while starting`);
    try {
      const response = await fetch(url);
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no 200 from ${url} within ${timeoutMs} ms`);
}

/** A running server child: where it listens, how long it took to answer, how to stop it. */
export interface ServerChild {
  pid: number;
  base: string;
  startupMs: number;
  stderr(): string;
  stop(): Promise<void>;
}

/** The Node flags `npm start` gives the server (package.json), so the bench runs it the same way. */
function startScriptNodeFlags(): string[] {
  const { scripts } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return String(scripts.start)
    .split(/\s+/)
    .filter((word) => word.startsWith('--'));
}

/**
 * Spawns Sesame as `npm start` runs it (`node <its flags> dist/src/main.js`) and times
 * spawn -> first 200 on /healthz. `nodeArgs` lets the profiler in (`--cpu-prof`).
 */
export async function startSesame(env: NodeJS.ProcessEnv, port: number, nodeArgs: string[] = []) {
  const started = performance.now();
  const args = [
    ...startScriptNodeFlags(),
    '--trace-gc',
    ...nodeArgs,
    path.join(ROOT, 'dist', 'src', 'main.js'),
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  followAllocations(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d).slice(-20_000);
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor200(`${base}/healthz`, child, 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${log.slice(-2000)}`);
  }
  return {
    pid: child.pid!,
    base,
    startupMs: Math.round(performance.now() - started),
    stderr: () => log,
    stop: () => stopChild(child),
  } satisfies ServerChild;
}

/** Starts the bare oidc-provider baseline (dist/bench/bare.js) and waits for its port line; `nodeArgs` lets the profiler in. */
export async function startBare(port: number, nodeArgs: string[] = []): Promise<ServerChild> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    ['--trace-gc', ...nodeArgs, path.join(ROOT, 'dist', 'bench', 'bare.js')],
    {
      cwd: ROOT,
      env: { ...process.env, BARE_PORT: String(port), BARE_ISSUER: `http://localhost:${port}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  followAllocations(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d).slice(-20_000);
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor200(`${base}/.well-known/openid-configuration`, child, 30_000);
  return {
    pid: child.pid!,
    base,
    startupMs: Math.round(performance.now() - started),
    stderr: () => log,
    stop: () => stopChild(child),
  };
}

/** SIGTERM, then SIGKILL after ten seconds; resolves when the child has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(force);
}

const TICK_MS = 10; // USER_HZ is 100 on Linux: /proc/<pid>/stat counts CPU time in 10 ms ticks.

/**
 * CPU time (user + system) a process has used so far, in ms. Unlike wall-clock rates it
 * barely moves when other work shares the machine, so CPU ms per request is the figure to
 * compare between noisy runs.
 */
export function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/**
 * A process's main thread so far (`/proc/<pid>/schedstat`, in ms): `runMs` on a CPU, and
 * `waitMs` runnable but waiting for one (woken, or preempted by another task). The event loop
 * is one thread: with every process of the bench on two cores, the time it waits is time no
 * request of the server moves, though the CPU figures do not show it.
 */
export function mainThreadMs(pid: number): { runMs: number; waitMs: number } {
  try {
    const [run, wait] = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ');
    return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
  } catch {
    return { runMs: 0, waitMs: 0 };
  }
}

/** CPU time of each Postgres backend serving `database` (its process title names it), by pid. */
function postgresBackendsCpuMs(database: string): Map<number, number> {
  const backends = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const title = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (title.startsWith('postgres: ') && title.includes(` ${database} `))
        backends.set(Number(entry), cpuMs(Number(entry)));
    } catch {
      // The process ended while we looked.
    }
  }
  return backends;
}

/**
 * A meter of the CPU time the Postgres backends serving `database` spend. The server's pool
 * closes idle connections and opens new ones, so a plain sum over the backends alive now
 * would lose the CPU of every backend that ended (and go backwards): each reading adds each
 * backend's growth since the last one, and a backend that started since, all of its time.
 * Only what a backend spent between the last reading and its end is lost.
 * @returns a function answering the CPU ms spent since its last call (or the meter's start).
 */
export function postgresCpuMeter(database: string): () => number {
  let last = postgresBackendsCpuMs(database);
  return () => {
    const now = postgresBackendsCpuMs(database);
    let spent = 0;
    for (const [pid, ms] of now) spent += Math.max(0, ms - (last.get(pid) ?? 0));
    last = now;
    return spent;
  };
}
