/**
 * `npm run bench [-- --quick] [-- --sessions 100000] [-- --profile] [-- --concurrency N]`
 *
 * Starts Sesame in its own process on a fresh database (PGlite, or Postgres when
 * DATABASE_URL is set), signs users up with software passkeys, drives complete logins from
 * a separate load process, then measures client_credentials tokens, introspection,
 * discovery and JWKS with autocannon. A bare oidc-provider gets the same logins and loads,
 * in rounds that alternate with Sesame's. Writes bench/results/<date>-<db>-<quick|full>.json
 * and prints one summary line.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type BenchDatabase,
  createBenchDatabase,
  insertSessions,
  rowsPerTable,
  snapshotStorage,
  writesPer,
} from './database.js';
import {
  BARE_CLIENT,
  BARE_LOGIN_CLIENT,
  type HttpLoadResult,
  measureHttp,
  protocolLoads,
} from './httpLoad.js';
import { type FlowTarget, LOGIN_STEPS, type LoginStep } from './loginFlow.js';
import type { LoginRunResult, WorkerReply, WorkerRequest } from './loginWorker.js';
import {
  allocatedMb,
  cpuMs,
  freePort,
  mainThreadMs,
  postgresCpuMeter,
  ROOT,
  rssMb,
  type ServerChild,
  sesameCli,
  startBare,
  startSesame,
} from './processes.js';
import {
  allocatedByFunction,
  busyByRequest,
  formatBeside,
  formatSummary,
  type ProfileWindow,
  selfTimeByFunction,
  summariseProfile,
} from './profileSummary.js';
import type { RequestWindow } from './requestWindows.js';
import { parseDuration, soak } from './soak.js';
import { latency } from './stats.js';

interface Options {
  quick: boolean;
  concurrency: number;
  sessions: number;
  profile: boolean;
  /**
   * --heap-profile: the token server, the login server and the bare provider run
   * bench/heapSampler.ts, and each measured window is sampled: bytes allocated per operation by
   * function, Sesame's beside the bare provider's. The sampler costs CPU: such a run's rates and
   * CPU figures are not comparable with others.
   */
  heapProfile: boolean;
  /** --soak <duration>: logins at a steady --rate for that long, instead of the usual phases. */
  soakMs: number;
  rate: number;
  /** --instances N: also logins and protocol load on N servers over one database, round-robin. */
  instances: number;
  /**
   * --rate-limits: rate limiting on, as by default, counting every limited request and failed
   * client authentication in Postgres, with a limit (1,000,000 a minute) the one address the
   * load comes from never reaches. Without it the limits are off (RATE_LIMIT_PER_MINUTE=0).
   */
  rateLimits: boolean;
}

function parseOptions(argv: string[]): Options {
  const value = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  return {
    quick,
    concurrency: Number(value('--concurrency') ?? 8),
    sessions: Number(value('--sessions') ?? 0),
    profile: argv.includes('--profile'),
    heapProfile: argv.includes('--heap-profile'),
    soakMs: value('--soak') ? parseDuration(value('--soak')!) : 0,
    rate: Number(value('--rate') ?? 50),
    instances: Number(value('--instances') ?? 1),
    rateLimits: argv.includes('--rate-limits'),
  };
}

/**
 * Seconds of warm-up and measurement per phase: --quick stays under a minute, a full run near
 * three. A protocol load's seconds are measured in `rounds` that alternate Sesame and bare.
 */
const PLAN = {
  quick: {
    loginWarmup: 2,
    login: 8,
    httpWarmup: 2,
    token: 4,
    introspection: 3,
    discovery: 2,
    jwks: 2,
    rounds: 2,
  },
  full: {
    loginWarmup: 5,
    login: 30,
    httpWarmup: 3,
    token: 15,
    introspection: 10,
    discovery: 8,
    jwks: 8,
    rounds: 4,
  },
};

/** A later round of logins (loginsBeside) starts with this long for its browsers to get going again, unmeasured. */
const LOGIN_ROUND_RESTART_MS = 500;

const REDIRECT_URI = 'http://127.0.0.1:8999/callback';

/** The load average as `uptime` prints it: 1, 5 and 15 minutes. Other work on the machine skews every figure. */
const load = () => os.loadavg().map((n) => Math.round(n * 100) / 100);

const began = performance.now();
/** The requests of a login (bench/loginFlow.ts) by the names requestWindows.ts gives them. */
const LOGIN_REQUESTS: Record<string, LoginStep> = {
  'GET /auth': 'authorize',
  'GET /interaction/:id': 'login_page',
  'POST /interaction/:id/login/verify': 'verify',
  'GET /auth/:id': 'resume',
  'POST /token': 'token',
  'GET /me': 'userinfo',
};

const log = (message: string) =>
  process.stderr.write(`bench ${((performance.now() - began) / 1000).toFixed(1).padStart(5)}s: ${message}\n`);

/** The login load process and a typed request/answer over its IPC channel. */
function startLoginWorker() {
  const child = fork(path.join(ROOT, 'dist', 'bench', 'loginWorker.js'), { stdio: 'inherit' });
  const ask = (request: WorkerRequest) =>
    new Promise<WorkerReply>((resolve, reject) => {
      child.once('message', (reply: WorkerReply) =>
        reply.type === 'failed' ? reject(new Error(`login worker: ${reply.error}`)) : resolve(reply),
      );
      child.send(request);
    });
  return { ask, stop: () => child.kill() };
}

/** Samples the server's RSS every 250 ms while `work` runs; returns the peak with the work's answer. */
async function withPeakRss<T>(
  pids: number | number[],
  work: Promise<T>,
): Promise<{ value: T; peakMb: number }> {
  const all = Array.isArray(pids) ? pids : [pids];
  const total = () => Math.round(all.reduce((sum, pid) => sum + (rssMb(pid) ?? 0), 0) * 10) / 10;
  let peakMb = total();
  const timer = setInterval(() => {
    peakMb = Math.max(peakMb, total());
  }, 250);
  try {
    return { value: await work, peakMb };
  } finally {
    clearInterval(timer);
  }
}

/**
 * From now until the returned function is called with the number of operations done: the
 * servers' CPU ms and heap allocated per operation, and on Postgres its backends' CPU ms.
 */
function perOperationMeter(pids: number | number[], database: string | undefined) {
  const all = Array.isArray(pids) ? pids : [pids];
  const serverMs = () => all.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const allocated = () => all.reduce((sum, pid) => sum + allocatedMb(pid), 0);
  const mainThreads = () =>
    all.reduce(
      (sum, pid) => {
        const { runMs, waitMs } = mainThreadMs(pid);
        return { runMs: sum.runMs + runMs, waitMs: sum.waitMs + waitMs };
      },
      { runMs: 0, waitMs: 0 },
    );
  const server = serverMs();
  const heap = allocated();
  const main = mainThreads();
  const postgresCpu = database ? postgresCpuMeter(database) : undefined;
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return (operations: number) => {
    const { runMs, waitMs } = mainThreads();
    return {
      serverCpuMsPerOp: round((serverMs() - server) / Math.max(operations, 1)),
      // The event loop's thread: on a CPU, and runnable but waiting for one (mainThreadMs).
      mainThreadMsPerOp: round((runMs - main.runMs) / Math.max(operations, 1)),
      runQueueMsPerOp: round((waitMs - main.waitMs) / Math.max(operations, 1)),
      // Heap allocated per operation (--trace-gc): steady where CPU time is not, on a shared machine.
      allocatedKbPerOp: Math.round(((allocated() - heap) * 1024 * 10) / Math.max(operations, 1)) / 10,
      ...(postgresCpu && { postgresCpuMsPerOp: round(postgresCpu() / Math.max(operations, 1)) }),
    };
  };
}

/** What {@link perOperationMeter} measures: CPU and allocation per operation. */
type OperationCost = ReturnType<ReturnType<typeof perOperationMeter>>;

/** The cost per operation over several measured windows, each weighted by its operations. */
function costOverWindows(windows: { operations: number; cost: OperationCost }[]): OperationCost {
  const operations = windows.reduce((sum, w) => sum + w.operations, 0);
  const perOp = (pick: (cost: OperationCost) => number | undefined) =>
    Math.round(
      (windows.reduce((sum, w) => sum + (pick(w.cost) ?? 0) * w.operations, 0) / Math.max(operations, 1)) *
        1000,
    ) / 1000;
  return {
    serverCpuMsPerOp: perOp((c) => c.serverCpuMsPerOp),
    mainThreadMsPerOp: perOp((c) => c.mainThreadMsPerOp),
    runQueueMsPerOp: perOp((c) => c.runQueueMsPerOp),
    allocatedKbPerOp: Math.round(perOp((c) => c.allocatedKbPerOp) * 10) / 10,
    ...(windows[0]?.cost.postgresCpuMsPerOp !== undefined && {
      postgresCpuMsPerOp: perOp((c) => c.postgresCpuMsPerOp),
    }),
  };
}

/** One measured window of a load: autocannon's figures with the servers' cost per request. */
type MeasuredWindow = HttpLoadResult & OperationCost;
type ProtocolResult = MeasuredWindow & { load: number[] };
/** A load measured in alternating rounds ({@link protocolBeside}), with each round's rate. */
type RoundsResult = ProtocolResult & { perSecondByRound: number[] };

/**
 * Brackets measured windows with bench/heapSampler.ts's SIGUSR2 toggles (`--heap-profile`):
 * the first starts sampling in the server, the second writes the profile, which `end` waits for.
 */
class HeapWindows {
  /** The profile of each window, by `<pid>:<name>`. */
  readonly files = new Map<string, string>();
  readonly #written = new Map<number, number>();

  constructor(readonly dir: string) {}

  begin(pid: number): void {
    process.kill(pid, 'SIGUSR2');
  }

  async end(pid: number, name: string): Promise<void> {
    process.kill(pid, 'SIGUSR2');
    const n = (this.#written.get(pid) ?? 0) + 1;
    this.#written.set(pid, n);
    const file = path.join(this.dir, `${pid}-${n}.heapprofile`);
    const deadline = performance.now() + 60_000;
    while (!fs.existsSync(file)) {
      if (performance.now() > deadline) throw new Error(`no heap profile from ${pid} within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.files.set(`${pid}:${name}`, file);
  }

  /** Bytes allocated by function in the window `name` of server `pid`. */
  allocated(pid: number, name: string): Map<string, number> | undefined {
    const file = this.files.get(`${pid}:${name}`);
    return file ? allocatedByFunction(file) : undefined;
  }
}

/** Now on the monotonic clock that CPU profiles count time on, in µs. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** The four protocol loads in the order they run, with the seconds each is measured for. */
const protocolPlan = (plan: typeof PLAN.quick) =>
  [
    ['clientCredentials', plan.token],
    ['introspection', plan.introspection],
    ['discovery', plan.discovery],
    ['jwks', plan.jwks],
  ] as const;

/** One client_credentials token of `client`'s: introspection asks about one of the client's own tokens. */
async function issueToken(
  base: string,
  client: { client_id: string; client_secret: string },
): Promise<string> {
  const issued = await fetch(`${base}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  return ((await issued.json()) as { access_token: string }).access_token;
}

/** The four protocol loads on several Sesame servers at once (`--instances`), each warmed up and then measured. */
async function instancesProtocolPhase(
  servers: ServerChild[],
  client: { client_id: string; client_secret: string },
  plan: typeof PLAN.quick,
  database?: string,
) {
  const bases = servers.map((s) => s.base);
  const loads = protocolLoads(client, await issueToken(servers[0]!.base, client));
  const results: Record<string, ProtocolResult> = {};
  for (const [name, seconds] of protocolPlan(plan)) {
    await measureHttp(bases, loads[name], plan.httpWarmup, 0);
    const cpu = perOperationMeter(
      servers.map((s) => s.pid),
      database,
    );
    const result = await measureHttp(bases, loads[name], seconds, 0);
    results[name] = { ...result, ...cpu(result.ok), load: load() };
    log(
      `  ${name}: ${result.perSecond}/s (p99 ${result.latencyMs.p99} ms, ${result.failed} failed, ` +
        `${results[name].serverCpuMsPerOp} ms server CPU, ${results[name].allocatedKbPerOp} kB allocated each)`,
    );
  }
  return results;
}

/** A server measured beside another in {@link protocolBeside}, with what its loads need. */
interface ProtocolSide {
  /** `sesame` or `bare`, for the log. */
  name: string;
  server: ServerChild;
  client: { client_id: string; client_secret: string };
  /** Postgres's database, whose backends' CPU is counted too. */
  database?: string;
  /** Gets each load's measured window, first round to last, to cut a CPU profile to it (`--profile`). */
  windows: Record<string, ProfileWindow>;
}

/**
 * The four protocol loads on Sesame and on the bare provider, each load measured in rounds
 * that alternate between the two (the first round Sesame then bare, the next bare then
 * Sesame, ...), so a change in the machine's speed during the run falls on both alike; run one
 * after the other, minutes apart, their ratio moved with whatever else the machine was doing.
 * Each server gets about the plan's seconds in all, in rounds of whole seconds. Per server:
 * the rate over all its rounds, p50 and p90 the median of the rounds', p99 and max the worst
 * round's, CPU and allocation per request over all its rounds, and each round's rate.
 * A side's profile window (`--profile`, `--heap-profile`) runs from its first round to its
 * last: while the other side is measured it is idle, which a CPU profile does not count as busy.
 */
async function protocolBeside(
  sides: ProtocolSide[],
  plan: typeof PLAN.quick,
  heap?: HeapWindows,
): Promise<Record<string, RoundsResult>[]> {
  const loads = await Promise.all(
    sides.map(async (side) => protocolLoads(side.client, await issueToken(side.server.base, side.client))),
  );
  const results = sides.map(() => ({}) as Record<string, RoundsResult>);
  for (const [name, seconds] of protocolPlan(plan)) {
    for (const [i, side] of sides.entries())
      await measureHttp(side.server.base, loads[i]![name], plan.httpWarmup, 0);
    // Whole seconds: autocannon ends a run at its next whole second anyway.
    const roundSeconds = Math.max(1, Math.round(seconds / plan.rounds));
    const rounds = sides.map(() => [] as MeasuredWindow[]);
    for (let round = 0; round < plan.rounds; round++) {
      const order = [...sides.keys()];
      if (round % 2) order.reverse();
      for (const i of order) {
        const side = sides[i]!;
        const cpu = perOperationMeter(side.server.pid, side.database);
        if (round === 0) {
          side.windows[name] = { fromUs: monotonicUs(), toUs: 0 };
          heap?.begin(side.server.pid);
        }
        const result = await measureHttp(side.server.base, loads[i]![name], roundSeconds, 0);
        if (round === plan.rounds - 1) {
          side.windows[name]!.toUs = monotonicUs();
          await heap?.end(side.server.pid, name);
        }
        rounds[i]!.push({ ...result, ...cpu(result.ok) });
      }
    }
    for (const [i, side] of sides.entries()) {
      results[i]![name] = combineRounds(rounds[i]!);
      const result = results[i]![name]!;
      log(
        `  ${side.name} ${name}: ${result.perSecond}/s ` +
          `(rounds ${result.perSecondByRound.join(', ')}; p99 ${result.latencyMs.p99} ms, ${result.failed} failed, ` +
          `${result.serverCpuMsPerOp} ms server CPU, ${result.allocatedKbPerOp} kB allocated each)`,
      );
    }
  }
  return results;
}

/** One server's rounds of one load as one figure (see {@link protocolBeside}). */
function combineRounds(rounds: MeasuredWindow[]): RoundsResult {
  const ok = rounds.reduce((sum, r) => sum + r.ok, 0);
  const seconds = Math.round(rounds.reduce((sum, r) => sum + r.seconds, 0) * 100) / 100;
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
  const statusCodes: Record<string, number> = {};
  for (const r of rounds)
    for (const [code, count] of Object.entries(r.statusCodes))
      statusCodes[code] = (statusCodes[code] ?? 0) + count;
  return {
    perSecond: Math.round(ok / seconds),
    seconds,
    ok,
    failed: rounds.reduce((sum, r) => sum + r.failed, 0),
    latencyMs: {
      p50: median(rounds.map((r) => r.latencyMs.p50)),
      p90: median(rounds.map((r) => r.latencyMs.p90)),
      p99: Math.max(...rounds.map((r) => r.latencyMs.p99)),
      max: Math.max(...rounds.map((r) => r.latencyMs.max)),
    },
    statusCodes,
    ...costOverWindows(rounds.map((r) => ({ operations: r.ok, cost: r }))),
    load: load(),
    perSecondByRound: rounds.map((r) => r.perSecond),
  };
}

/** One window of logins as measured by main's `measureLogins`: the worker's answer, peak RSS, cost per login. */
interface LoginWindow {
  logins: { value: LoginRunResult; peakMb: number };
  cpu?: OperationCost;
}

/**
 * One server's rounds of logins ({@link LoginWindow}s measured with `keepSamples`) as one
 * window: logins and seconds summed, each step's latencies over the durations of every
 * round, the peak RSS of any round, CPU and allocation per login weighted by each round's
 * logins, and each round's rate.
 */
function combineLoginRounds(rounds: LoginWindow[]): {
  logins: { value: LoginRunResult & { perSecondByRound: number[] }; peakMb: number };
  cpu?: LoginWindow['cpu'];
} {
  const runs = rounds.map((r) => r.logins.value);
  const logins = runs.reduce((sum, r) => sum + r.logins, 0);
  const seconds = runs.reduce((sum, r) => sum + r.seconds, 0);
  const errors: Record<string, number> = {};
  const samples: Record<string, number[]> = {};
  for (const r of runs) {
    for (const [key, count] of Object.entries(r.errors)) errors[key] = (errors[key] ?? 0) + count;
    for (const [step, durations] of Object.entries(r.samples ?? {}))
      samples[step] = [...(samples[step] ?? []), ...durations];
  }
  const cpu = rounds.every((r) => r.cpu)
    ? costOverWindows(rounds.map((r) => ({ operations: r.logins.value.logins, cost: r.cpu! })))
    : undefined;
  return {
    logins: {
      value: {
        logins,
        allLogins: runs.reduce((sum, r) => sum + r.allLogins, 0),
        seconds: Math.round(seconds * 100) / 100,
        loginsPerSecond: Math.round((logins / Math.max(seconds, 0.01)) * 10) / 10,
        errors,
        steps: Object.fromEntries(
          Object.entries(samples).map(([step, durations]) => [step, latency(durations)]),
        ) as LoginRunResult['steps'],
        perSecondByRound: runs.map((r) => r.loginsPerSecond),
      },
      peakMb: Math.max(...rounds.map((r) => r.logins.peakMb)),
    },
    cpu,
  };
}

const machine = () => ({ cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version });

/** bench/results/<date>T<hhmm>-<database>-<mode>.json, its folder made. */
function resultFile(startedAt: Date, kind: string, mode: string): string {
  const stamp = startedAt.toISOString().slice(0, 16).replace(':', '');
  const file = path.join(ROOT, 'bench', 'results', `${stamp}-${kind}-${mode}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return file;
}

const ratio = (a: number, b: number) => Math.round((a / Math.max(b, 1)) * 100) / 100;

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const plan = options.quick ? PLAN.quick : PLAN.full;
  const startedAt = new Date();
  const loadAtStart = load();
  const database: BenchDatabase = await createBenchDatabase(process.env.DATABASE_URL);
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: undefined,
    DATA_DIR: undefined,
    ...database.env,
    ISSUER: issuer,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    // The load comes from one address: a limit it reached would measure itself, not Sesame.
    RATE_LIMIT_PER_MINUTE: options.rateLimits ? '1000000' : '0',
  };
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-prof-'));
  const heap = options.heapProfile
    ? new HeapWindows(fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-heap-')))
    : undefined;
  // The bare provider's environment is the bench's own (startBare).
  if (heap) env.SESAME_BENCH_HEAP_DIR = process.env.SESAME_BENCH_HEAP_DIR = heap.dir;
  const preloadArgs = heap ? ['--import', path.join(ROOT, 'dist', 'bench', 'heapSampler.js')] : [];
  // With --profile at one browser, each login server records its requests (bench/requestWindows.ts).
  const requestDir = path.join(profileDir, 'requests');
  const timesRequests = options.profile && options.concurrency === 1;
  if (timesRequests) {
    fs.mkdirSync(requestDir);
    env.SESAME_BENCH_REQUEST_DIR = process.env.SESAME_BENCH_REQUEST_DIR = requestDir;
    preloadArgs.push('--import', path.join(ROOT, 'dist', 'bench', 'requestWindows.js'));
  }
  const serverArgs = [
    ...(options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    ...preloadArgs,
  ];
  const worker = startLoginWorker();
  const servers: ServerChild[] = [];
  const cleanUp = async () => {
    worker.stop();
    for (const server of servers) await server.stop().catch(() => {});
    await database.drop().catch((error: Error) => log(`could not drop the bench database: ${error.message}`));
    if (!options.profile) fs.rmSync(profileDir, { recursive: true, force: true });
    if (heap) fs.rmSync(heap.dir, { recursive: true, force: true });
  };
  // Ctrl-C (or a timeout) still stops the servers and drops the bench database.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
  }
  /**
   * Logins of the user set `set` from `concurrency` browsers: `warmupMs`, then `durationMs`
   * measured, with the servers' peak RSS and CPU per login. `window` gets the measured
   * window's start (unless an earlier round set it) and end, to cut a CPU profile to it
   * (`--profile`). With `--heap-profile`, `heapWindow.begin` starts the server's sampling
   * after the warm-up and `heapWindow.end` writes its profile afterwards.
   */
  const measureLogins = async (
    pid: number | number[],
    {
      set,
      databaseName,
      bases,
      warmupMs = plan.loginWarmup * 1000,
      durationMs = plan.login * 1000,
      keepSamples = false,
      window = { fromUs: Number.POSITIVE_INFINITY, toUs: 0 },
      heapWindow = { begin: true, end: true },
    }: {
      set: string;
      databaseName?: string;
      bases?: string[];
      warmupMs?: number;
      durationMs?: number;
      keepSamples?: boolean;
      window?: ProfileWindow;
      heapWindow?: { begin: boolean; end: boolean };
    },
  ) => {
    let meter: ReturnType<typeof perOperationMeter> | undefined;
    // Heap profiles are taken on one server at a time (not with --instances).
    const sampled = heap && typeof pid === 'number' ? pid : undefined;
    let sampling = false;
    const warm = setTimeout(() => {
      meter = perOperationMeter(pid, databaseName);
      window.fromUs = Math.min(window.fromUs, monotonicUs());
      if (sampled && heapWindow.begin) {
        heap!.begin(sampled);
        sampling = true;
      }
    }, warmupMs);
    const logins = await withPeakRss(
      pid,
      worker
        .ask({ type: 'run', set, concurrency: options.concurrency, warmupMs, durationMs, bases, keepSamples })
        .then((reply) => (reply as { result: LoginRunResult }).result),
    );
    clearTimeout(warm);
    window.toUs = monotonicUs();
    if (sampled && heapWindow.end && (sampling || !heapWindow.begin)) await heap!.end(sampled, 'logins');
    return { logins, cpu: meter?.(logins.value.logins), window } satisfies LoginWindow & {
      window: ProfileWindow;
    };
  };
  /**
   * Logins on Sesame and on the bare provider in rounds that alternate between them, as
   * {@link protocolBeside} measures the protocol loads: each side gets the plan's seconds of
   * logins in `plan.rounds` rounds, Sesame first in odd rounds, bare first in even ones. A
   * side's first round starts with the plan's warm-up, a later one with half a second for its
   * browsers to get going again. Per side: {@link combineLoginRounds}, and a profile window
   * from its first round to its last.
   */
  const loginsBeside = async (sides: { name: string; pid: number; set: string; database?: string }[]) => {
    const roundMs = Math.max(1, Math.round(plan.login / plan.rounds)) * 1000;
    const rounds = sides.map(() => [] as LoginWindow[]);
    const windows = sides.map((): ProfileWindow => ({ fromUs: Number.POSITIVE_INFINITY, toUs: 0 }));
    for (let round = 0; round < plan.rounds; round++) {
      const order = [...sides.keys()];
      if (round % 2) order.reverse();
      for (const i of order) {
        const side = sides[i]!;
        const measured = await measureLogins(side.pid, {
          set: side.set,
          databaseName: side.database,
          warmupMs: round === 0 ? plan.loginWarmup * 1000 : LOGIN_ROUND_RESTART_MS,
          durationMs: roundMs,
          keepSamples: true,
          window: windows[i],
          heapWindow: { begin: round === 0, end: round === plan.rounds - 1 },
        });
        rounds[i]!.push(measured);
      }
    }
    return sides.map((side, i) => {
      const combined = combineLoginRounds(rounds[i]!);
      const { value } = combined.logins;
      log(
        `  ${side.name} logins: ${value.loginsPerSecond}/s (rounds ${value.perSecondByRound.join(', ')}), ` +
          `errors ${JSON.stringify(value.errors)}, ${combined.cpu?.serverCpuMsPerOp} ms server CPU ` +
          `(main thread ${combined.cpu?.mainThreadMsPerOp} ms, and ${combined.cpu?.runQueueMsPerOp} ms waiting for a CPU), ` +
          `${combined.cpu?.allocatedKbPerOp} kB allocated each`,
      );
      return { ...combined, window: windows[i]! };
    });
  };
  const start = async (args: string[] = []) => {
    const server = await startSesame(env, port, args);
    servers.push(server);
    return server;
  };

  try {
    log(`${database.kind}, ${options.quick ? 'quick' : 'full'} run, load ${loadAtStart.join(' ')}`);
    const app = await sesameCli(
      ['clients', 'create', '--name', 'Bench app', '--redirect-uri', REDIRECT_URI, '--first-party'],
      env,
    );
    const service = await sesameCli(
      ['clients', 'create', '--name', 'Bench service', '--grant-type', 'client_credentials'],
      env,
    );

    // Setup: sign-ups on a first server, stopped afterwards so its statistics reach the snapshot.
    const first = await start();
    const target: FlowTarget = {
      base: first.base,
      issuer,
      clientId: app.client_id!,
      clientSecret: app.client_secret!,
      redirectUri: REDIRECT_URI,
    };
    // A soak needs enough users that one is always free when the schedule starts a login.
    const users = options.soakMs ? Math.max(options.rate * 2, 16) : Math.max(options.concurrency * 2, 16);
    // The API key for the soak's heap samples (GET /metrics); made before a server runs, as the clients are.
    const apiKey = options.soakMs
      ? (await sesameCli(['api-keys', 'create', '--name', 'bench soak'], env)).key!
      : undefined;
    const ready = await worker.ask({
      type: 'setup',
      set: 'sesame',
      target,
      users,
      runId: startedAt.getTime().toString(36),
    });
    log(`signed up ${users} users in ${ready.type === 'ready' ? ready.setupMs : '?'} ms`);
    await first.stop();

    if (options.soakMs) {
      const server = await start(serverArgs);
      log(
        `soak: ${options.rate} logins/s for ${options.soakMs / 60_000} min (server up in ${server.startupMs} ms)`,
      );
      const result = await soak({
        servers: [server],
        ask: worker.ask,
        apiKey: apiKey!,
        database: database.name,
        durationMs: options.soakMs,
        rate: options.rate,
        warmupMinutes: Math.min(5, options.soakMs / 60_000 / 3),
        load,
        log,
      });
      await server.stop();
      const tables = await rowsPerTable(database);
      const file = resultFile(startedAt, database.kind, 'soak');
      fs.writeFileSync(
        file,
        `${JSON.stringify(
          {
            date: startedAt.toISOString(),
            database: database.kind,
            mode: 'soak',
            machine: machine(),
            loadAverage: { start: loadAtStart, end: load() },
            options,
            users,
            startupMs: server.startupMs,
            soak: result,
            rowsAtEnd: tables,
            note: 'p99PerWindow[i] is the p99 in ms of each step of the logins started in minutes 5i..5(i+1); expired counts rows past expires_at that the ten-minute sweep has not reached yet',
          },
          null,
          2,
        )}\n`,
      );
      const rss = result.growthAfterWarmup.rss;
      const heap = result.growthAfterWarmup.heapUsed;
      process.stdout.write(
        `sesame soak ${database.kind}: ${result.achievedPerSecond} logins/s of ${options.rate} asked for ${Math.round(result.seconds / 60)} min` +
          ` (${result.logins} logins, ${result.errorCount} errors, ${result.behind} behind schedule, worst step p99 ${result.worstStepP99} ms)` +
          ` | RSS ${rss?.afterWarmupMb}->${rss?.endMb} MB (${rss?.percent} %) | heap ${heap?.afterWarmupMb}->${heap?.endMb} MB (${heap?.percent} %)` +
          ` | oidc_models ${tables.oidc_models?.rows} rows, ${tables.oidc_models?.expired} expired | ${path.relative(ROOT, file)}\n`,
      );
      return;
    }

    // Logins, on Sesame and on the bare provider's in-memory passkey interaction in turn.
    const beforeLogins = await snapshotStorage(database);
    const loginServer = await start(serverArgs);
    const rssIdle = rssMb(loginServer.pid);
    const bareProfileDir = path.join(profileDir, 'bare');
    const bare = await startBare(await freePort(), [
      ...(options.profile ? ['--cpu-prof', `--cpu-prof-dir=${bareProfileDir}`] : []),
      ...preloadArgs,
    ]);
    servers.push(bare);
    await worker.ask({
      type: 'setup',
      set: 'bare',
      target: {
        base: bare.base,
        issuer: bare.base.replace('127.0.0.1', 'localhost'),
        clientId: BARE_LOGIN_CLIENT.client_id,
        clientSecret: BARE_LOGIN_CLIENT.client_secret,
        redirectUri: BARE_LOGIN_CLIENT.redirect_uris[0]!,
      },
      users,
      runId: `${startedAt.getTime().toString(36)}-bare`,
    });
    log(
      `server up in ${loginServer.startupMs} ms (RSS ${rssIdle} MB), the bare provider too; ` +
        `${options.concurrency} browsers logging in, ${plan.rounds} rounds each, alternating`,
    );
    const [loginRun, bareRun] = await loginsBeside([
      { name: 'sesame', pid: loginServer.pid, set: 'sesame', database: database.name },
      { name: 'bare', pid: bare.pid, set: 'bare' },
    ]);
    const { logins, cpu: loginCpuPerLogin, window: loginWindow } = loginRun!;
    const bareLogins = bareRun!;
    const loginLoad = load();
    const rssAfterLogins = rssMb(loginServer.pid);
    await loginServer.stop();
    const afterLogins = await snapshotStorage(database);

    // Optional: the same logins with many more sessions stored.
    let sessions: Record<string, unknown> | undefined;
    if (options.sessions > 0) {
      const inserted = await insertSessions(database, options.sessions);
      const server = await start();
      const idle = rssMb(server.pid);
      const run = await withPeakRss(
        server.pid,
        worker
          .ask({
            type: 'run',
            set: 'sesame',
            concurrency: options.concurrency,
            warmupMs: 2000,
            durationMs: plan.login * 1000,
          })
          .then((reply) => (reply as { result: LoginRunResult }).result),
      );
      sessions = {
        storedSessions: inserted,
        startupMs: server.startupMs,
        rssMb: { idle, peak: run.peakMb, after: rssMb(server.pid) },
        rssGrowthMb: Math.round((run.peakMb - logins.peakMb) * 10) / 10,
        loginsPerSecond: run.value.loginsPerSecond,
        errors: run.value.errors,
        load: load(),
      };
      log(
        `  with ${inserted} more sessions: ${run.value.loginsPerSecond} logins/s, peak RSS ${run.peakMb} MB`,
      );
      await server.stop();
    }

    // Tokens, discovery, JWKS on Sesame and on the bare provider, in turn.
    // Without extra sessions nothing changed the database since the last snapshot.
    const beforeTokens = sessions ? await snapshotStorage(database) : afterLogins;
    const protocolServer = await start(serverArgs);
    log(
      `sesame and the bare oidc-provider (RSS ${rssMb(bare.pid)} MB), alternating: client_credentials, introspection, discovery, jwks`,
    );
    const sesameWindows: Record<string, ProfileWindow> = {};
    const bareWindows: Record<string, ProfileWindow> = {};
    const beside = await protocolBeside(
      [
        {
          name: 'sesame',
          server: protocolServer,
          client: { client_id: service.client_id!, client_secret: service.client_secret! },
          database: database.name,
          windows: sesameWindows,
        },
        { name: 'bare', server: bare, client: BARE_CLIENT, windows: bareWindows },
      ],
      plan,
      heap,
    );
    const sesame = beside[0]!;
    const baseline = beside[1]!;
    const bareRss = rssMb(bare.pid);
    const rssAfterTokens = rssMb(protocolServer.pid);
    await protocolServer.stop();
    // A quick run skips this snapshot: on PGlite each one opens the database again.
    const afterTokens = options.quick ? undefined : await snapshotStorage(database);

    // Optional: the same logins and protocol load on several servers over the one database.
    let instances: Record<string, unknown> | undefined;
    if (options.instances > 1) {
      const group: ServerChild[] = [await start()];
      for (let i = 1; i < options.instances; i++) {
        const extraPort = await freePort();
        const server = await startSesame({ ...env, PORT: String(extraPort) }, extraPort);
        servers.push(server);
        group.push(server);
      }
      const pids = group.map((s) => s.pid);
      const bases = group.map((s) => s.base);
      log(`${group.length} instances: logins, then client_credentials, introspection, discovery, jwks`);
      const run = await measureLogins(pids, { set: 'sesame', databaseName: database.name, bases });
      log(
        `  logins on ${group.length}: ${run.logins.value.loginsPerSecond}/s, errors ${JSON.stringify(run.logins.value.errors)}, ` +
          `${run.cpu?.serverCpuMsPerOp} ms server CPU each`,
      );
      const protocol = await instancesProtocolPhase(
        group,
        { client_id: service.client_id!, client_secret: service.client_secret! },
        plan,
        database.name,
      );
      instances = {
        count: group.length,
        logins: { ...run.logins.value, ...run.cpu, peakRssMb: run.logins.peakMb },
        ...protocol,
        ratioToOneInstance: {
          logins: ratio(run.logins.value.loginsPerSecond * 10, logins.value.loginsPerSecond * 10),
          ...Object.fromEntries(
            Object.keys(protocol).map((k) => [k, ratio(protocol[k]!.perSecond, sesame[k]!.perSecond)]),
          ),
        },
        load: load(),
      };
      for (const server of group) await server.stop();
    }

    await bare.stop();

    const mode = options.quick ? 'quick' : 'full';
    const stepsP99 = Object.entries(logins.value.steps)
      .filter(([step]) => step !== 'login')
      .map(([, figures]) => figures.p99);
    const loginWrites = writesPer(beforeLogins, afterLogins, logins.value.allLogins);
    const results = {
      date: startedAt.toISOString(),
      database: database.kind,
      mode,
      machine: machine(),
      loadAverage: { start: loadAtStart, afterLogins: loginLoad, end: load() },
      options,
      startupMs: {
        firstStart: servers[0]!.startupMs,
        loginServer: loginServer.startupMs,
        tokenServer: protocolServer.startupMs,
      },
      logins: { concurrency: options.concurrency, users, ...logins.value, ...loginCpuPerLogin },
      rssMb: {
        idle: rssIdle,
        peakDuringLogins: logins.peakMb,
        afterLogins: rssAfterLogins,
        afterTokens: rssAfterTokens,
        bareAfterTokens: bareRss,
      },
      writesPerLogin: {
        ...loginWrites,
        note:
          database.kind === 'postgres'
            ? 'inserted/updated/deleted from pg_stat_user_tables, rows from count(*), bytes from pg_total_relation_size; all per login'
            : 'PGlite keeps no write counters across restarts: rows are net new rows (count(*)), bytes are pg_total_relation_size and data directory growth; updates are not counted',
      },
      ...(afterTokens && {
        writesPerClientCredentialsToken: writesPer(beforeTokens, afterTokens, sesame.clientCredentials!.ok),
      }),
      sesame,
      bare: {
        ...baseline,
        logins: { ...bareLogins.logins.value, ...bareLogins.cpu, peakRssMb: bareLogins.logins.peakMb },
      },
      ratioSesameToBare: {
        ...Object.fromEntries(
          Object.keys(sesame).map((k) => [k, ratio(sesame[k]!.perSecond, baseline[k]!.perSecond)]),
        ),
        logins: ratio(logins.value.loginsPerSecond * 10, bareLogins.logins.value.loginsPerSecond * 10),
      } as Record<string, number>,
      ...(sessions && { sessions }),
      ...(instances && { instances }),
    };

    // The measured windows set beside the bare provider's, function by function, by
    // --profile (self time) and --heap-profile (bytes allocated): where Sesame's extra goes.
    const compared = [
      {
        name: 'logins',
        sesamePid: loginServer.pid,
        sesameWindow: loginWindow,
        sesameOps: logins.value.logins,
        bareWindow: bareLogins.window,
        bareOps: bareLogins.logins.value.logins,
      },
      ...(['clientCredentials', 'introspection'] as const).map((name) => ({
        name,
        sesamePid: protocolServer.pid,
        sesameWindow: sesameWindows[name]!,
        sesameOps: sesame[name]!.ok,
        bareWindow: bareWindows[name]!,
        bareOps: baseline[name]!.ok,
      })),
    ];

    if (options.profile) {
      const profiles = fs.readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
      for (const [i, file] of profiles.sort().entries()) {
        const phase = i === 0 ? 'logins' : 'tokens';
        log(
          `profile of the ${phase} server: ${path.join(profileDir, file)}\n${formatSummary(summariseProfile(path.join(profileDir, file), 20))}`,
        );
      }
      const bareProfile = fs.readdirSync(bareProfileDir).find((f) => f.endsWith('.cpuprofile'));
      for (const c of compared) {
        const sesameProfile = profiles.find((f) => f.includes(`.${c.sesamePid}.`));
        if (!sesameProfile || !bareProfile) continue;
        const table = formatBeside(
          {
            self: selfTimeByFunction(path.join(profileDir, sesameProfile), c.sesameWindow),
            operations: c.sesameOps,
          },
          {
            self: selfTimeByFunction(path.join(bareProfileDir, bareProfile), c.bareWindow),
            operations: c.bareOps,
          },
        );
        log(`measured ${c.name}, self time per operation beside the bare provider's:\n${table}`);
      }
      const sesameProfile = profiles.find((f) => f.includes(`.${loginServer.pid}.`));
      if (!timesRequests) {
        log('CPU per login step: run with --profile --concurrency 1 (one request at a time)');
      } else if (sesameProfile && bareProfile) {
        // Each server writes its requests when it exits; the login server already has.
        await bare.stop();
        const requestsOf = (pid: number) =>
          JSON.parse(fs.readFileSync(path.join(requestDir, `${pid}.json`), 'utf8')) as RequestWindow[];
        log(
          `measured logins at one browser, busy µs per request beside the bare provider's:\n${formatSteps(
            busyByRequest(path.join(profileDir, sesameProfile), requestsOf(loginServer.pid), loginWindow),
            busyByRequest(path.join(bareProfileDir, bareProfile), requestsOf(bare.pid), bareLogins.window),
          )}`,
        );
      }
    }

    if (heap) {
      for (const c of compared) {
        const sesameBytes = heap.allocated(c.sesamePid, c.name);
        const bareBytes = heap.allocated(bare.pid, c.name);
        if (!sesameBytes || !bareBytes) continue;
        const table = formatBeside(
          { self: sesameBytes, operations: c.sesameOps },
          { self: bareBytes, operations: c.bareOps },
          30,
          'bytes allocated',
        );
        log(`${c.name}, bytes allocated per operation by function beside the bare provider's:\n${table}`);
      }
    }

    const file = resultFile(startedAt, database.kind, mode);
    fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);

    const r = results.ratioSesameToBare;
    const perLogin = results.writesPerLogin.perOperation;
    process.stdout.write(
      `sesame bench ${database.kind} ${mode}: ${logins.value.loginsPerSecond} logins/s ` +
        `(c=${options.concurrency}, worst step p99 ${Math.max(...stepsP99)} ms, ${Object.values(logins.value.errors).reduce((a, b) => a + b, 0)} errors)` +
        ` = ${r.logins}x bare ${bareLogins.logins.value.loginsPerSecond}/s` +
        ` | client_credentials ${sesame.clientCredentials!.perSecond}/s = ${r.clientCredentials}x bare ${baseline.clientCredentials!.perSecond}/s` +
        ` | introspection ${sesame.introspection!.perSecond}/s = ${r.introspection}x bare ${baseline.introspection!.perSecond}/s` +
        ` | discovery ${sesame.discovery!.perSecond}/s = ${r.discovery}x | jwks ${sesame.jwks!.perSecond}/s = ${r.jwks}x` +
        ` | RSS ${rssIdle}->${logins.peakMb} MB | start ${loginServer.startupMs} ms` +
        ` | per login ${perLogin.inserted ?? perLogin.rows} rows ${perLogin.inserted !== undefined ? 'inserted' : 'net'}, ${Math.round((perLogin.bytes ?? 0) / 100) / 10} kB` +
        ` | load ${loadAtStart[0]}->${results.loadAverage.end[0]} | ${path.relative(ROOT, file)}\n`,
    );
  } finally {
    await cleanUp();
  }
}

await main();

/** Busy µs per request of each login step, Sesame's beside the bare provider's (`--profile --concurrency 1`). */
function formatSteps(
  sesame: Map<string, { requests: number; busyUs: number }>,
  bare: Map<string, { requests: number; busyUs: number }>,
): string {
  const perRequest = (entry: { requests: number; busyUs: number } | undefined) =>
    entry && entry.requests > 0 ? String(Math.round(entry.busyUs / entry.requests)) : '-';
  const order = (request: string) => {
    const step = LOGIN_REQUESTS[request];
    return step ? LOGIN_STEPS.indexOf(step) : LOGIN_STEPS.length;
  };
  const rows = [...sesame]
    .filter(([, entry]) => entry.requests >= 10)
    .sort(([a], [b]) => order(a) - order(b))
    .map(
      ([request, entry]) =>
        `${perRequest(entry).padStart(8)} ${perRequest(bare.get(request)).padStart(8)}  ${(LOGIN_REQUESTS[request] ?? '').padEnd(11)}${request} (${entry.requests})`,
    );
  return ['  sesame     bare  step       request (count)', ...rows].join('\n');
}
