/**
 * The login load generator, run as its own process (forked by run.ts) so its CPU is not
 * the server's. `setup` signs up the users whose passkeys it holds, as a named set (one per
 * server: Sesame's and the bare provider's); `run` drives complete logins of one set from
 * `concurrency` browsers for a while and answers with per-step latencies.
 */
import { BenchUser, type FlowTarget, LOGIN_STEPS, type LoginStep, StepError } from './loginFlow.js';
import { type Latency, latency } from './stats.js';

export type WorkerRequest =
  | { type: 'setup'; set: string; target: FlowTarget; users: number; runId: string }
  | {
      type: 'run';
      set: string;
      concurrency: number;
      warmupMs: number;
      durationMs: number;
      bases?: string[];
      /** Answer with every measured duration too (`samples`), for run.ts to pool several runs. */
      keepSamples?: boolean;
    }
  | { type: 'soak'; set: string; rate: number; durationMs: number; windowMs: number };

export interface LoginRunResult {
  /** Logins that started after the warm-up and completed. */
  logins: number;
  /** Every login that completed, warm-up included: what the server stored. */
  allLogins: number;
  seconds: number;
  loginsPerSecond: number;
  errors: Record<string, number>;
  steps: Record<LoginStep | 'login', Latency>;
  /** With `keepSamples`: the measured durations in ms behind `steps`. */
  samples?: Record<LoginStep | 'login', number[]>;
}

/** One window of a soak: logins started in it, their errors and per-step latencies. */
export interface SoakWindow {
  fromMinute: number;
  logins: number;
  loginsPerSecond: number;
  /** Scheduled logins that found every browser busy (the server fell behind the rate). */
  behind: number;
  errors: Record<string, number>;
  steps: Record<LoginStep | 'login', Latency>;
}

export interface SoakResult {
  rate: number;
  seconds: number;
  logins: number;
  behind: number;
  errors: Record<string, number>;
  windows: SoakWindow[];
}

export type WorkerReply =
  | { type: 'ready'; users: number; setupMs: number }
  | { type: 'result'; result: LoginRunResult }
  | { type: 'soaked'; result: SoakResult }
  | { type: 'failed'; error: string };

/** The signed-up users of each set, by the set's name. */
const userSets = new Map<string, BenchUser[]>();

function usersOf(set: string): BenchUser[] {
  const users = userSets.get(set);
  if (!users) throw new Error(`no users were signed up as set ${set}`);
  return users;
}

async function setup(set: string, target: FlowTarget, count: number, runId: string) {
  const started = performance.now();
  const users = Array.from(
    { length: count },
    (_, i) => new BenchUser(target, `bench-${runId}-${i}@example.com`),
  );
  // A few at a time: sign-up is setup, not the measurement.
  for (let i = 0; i < users.length; i += 4) await Promise.all(users.slice(i, i + 4).map((u) => u.signUp()));
  userSets.set(set, users);
  return performance.now() - started;
}

/**
 * Each browser loop owns its own users (loop i takes users i, i + concurrency, ...), so no
 * two assertions of one passkey are ever in flight: the server would rightly refuse the
 * one whose signature counter lost the race.
 */
async function run({
  set,
  concurrency,
  warmupMs,
  durationMs,
  bases,
  keepSamples,
}: Extract<WorkerRequest, { type: 'run' }>): Promise<LoginRunResult> {
  const users = usersOf(set);
  for (const user of users) user.target = { ...user.target, bases };
  if (users.length < concurrency)
    throw new Error(`${users.length} users cannot feed ${concurrency} browsers`);
  const samples = Object.fromEntries([...LOGIN_STEPS, 'login'].map((s) => [s, [] as number[]])) as Record<
    LoginStep | 'login',
    number[]
  >;
  const errors: Record<string, number> = {};
  let logins = 0;
  let allLogins = 0;
  const record = (step: LoginStep, ms: number) => samples[step].push(ms);
  const ignore = () => {};
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;

  const loop = async (index: number) => {
    const mine = users.filter((_, i) => i % concurrency === index);
    for (let n = 0; performance.now() < end; n++) {
      const began = performance.now();
      // A login counts when it starts after the warm-up; it may finish after the end.
      const counted = began >= measureFrom;
      try {
        await mine[n % mine.length]!.logIn(counted ? record : ignore);
        allLogins++;
        if (counted) {
          samples.login.push(performance.now() - began);
          logins++;
        }
      } catch (error) {
        const key = error instanceof StepError ? `${error.step}:${error.status}` : (error as Error).message;
        if (counted) errors[key] = (errors[key] ?? 0) + 1;
        // Keep a broken server from turning the loop into a busy spin.
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)));
  const seconds = (performance.now() - measureFrom) / 1000;
  return {
    logins,
    allLogins,
    seconds: Math.round(seconds * 100) / 100,
    loginsPerSecond: Math.round((logins / seconds) * 10) / 10,
    errors,
    steps: Object.fromEntries(
      Object.entries(samples).map(([k, v]) => [k, latency(v)]),
    ) as LoginRunResult['steps'],
    ...(keepSamples && { samples }),
  };
}

/**
 * Starts one login every 1/rate seconds for `durationMs` (an open loop: a slow server does
 * not slow the schedule down), each from a browser whose user has no login in flight. When
 * every user is busy the login is counted as `behind` instead. Latencies and errors are kept
 * per window of `windowMs`, by the time the login started.
 */
async function soak(set: string, rate: number, durationMs: number, windowMs: number): Promise<SoakResult> {
  const free = [...usersOf(set)];
  const windowCount = Math.ceil(durationMs / windowMs);
  const windows = Array.from({ length: windowCount }, () => ({
    logins: 0,
    behind: 0,
    errors: {} as Record<string, number>,
    samples: Object.fromEntries([...LOGIN_STEPS, 'login'].map((s) => [s, [] as number[]])) as Record<
      LoginStep | 'login',
      number[]
    >,
  }));
  const inFlight = new Set<Promise<void>>();
  const start = performance.now();
  const interval = 1000 / rate;
  for (let n = 0; ; n++) {
    const due = start + n * interval;
    if (due - start >= durationMs) break;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const window = windows[Math.min(windowCount - 1, Math.floor((due - start) / windowMs))]!;
    const user = free.shift();
    if (!user) {
      window.behind++;
      continue;
    }
    const began = performance.now();
    const login = user
      .logIn((step, ms) => window.samples[step].push(ms))
      .then(
        () => {
          window.samples.login.push(performance.now() - began);
          window.logins++;
        },
        (error: Error) => {
          const key = error instanceof StepError ? `${error.step}:${error.status}` : error.message;
          window.errors[key] = (window.errors[key] ?? 0) + 1;
        },
      )
      .finally(() => {
        free.push(user);
        inFlight.delete(login);
      });
    inFlight.add(login);
  }
  await Promise.all(inFlight);
  const errors: Record<string, number> = {};
  for (const w of windows) for (const [k, v] of Object.entries(w.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    rate,
    seconds: Math.round((performance.now() - start) / 10) / 100,
    logins: windows.reduce((a, w) => a + w.logins, 0),
    behind: windows.reduce((a, w) => a + w.behind, 0),
    errors,
    windows: windows.map((w, i) => ({
      fromMinute: (i * windowMs) / 60_000,
      logins: w.logins,
      loginsPerSecond:
        Math.round((w.logins / (Math.min(windowMs, durationMs - i * windowMs) / 1000)) * 10) / 10,
      behind: w.behind,
      errors: w.errors,
      steps: Object.fromEntries(
        Object.entries(w.samples).map(([k, v]) => [k, latency(v)]),
      ) as SoakWindow['steps'],
    })),
  };
}

function reply(message: WorkerReply) {
  process.send!(message);
}

process.on('message', (message: WorkerRequest) => {
  const work =
    message.type === 'setup'
      ? setup(message.set, message.target, message.users, message.runId).then((setupMs) =>
          reply({ type: 'ready', users: message.users, setupMs: Math.round(setupMs) }),
        )
      : message.type === 'soak'
        ? soak(message.set, message.rate, message.durationMs, message.windowMs).then((result) =>
            reply({ type: 'soaked', result }),
          )
        : run(message).then((result) => reply({ type: 'result', result }));
  work.catch((error: Error) => reply({ type: 'failed', error: error.message }));
});
