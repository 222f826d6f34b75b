/**
 * The login load generator, run as its own process (forked by run.ts) so its CPU is not
 * the server's. `setup` signs up the users whose passkeys it holds; `run` drives complete
 * logins from `concurrency` browsers for a while and answers with per-step latencies.
 */
import { BenchUser, type FlowTarget, LOGIN_STEPS, type LoginStep, StepError } from './loginFlow.js';
import { type Latency, latency } from './stats.js';

export type WorkerRequest =
  | { type: 'setup'; target: FlowTarget; users: number; runId: string }
  | { type: 'run'; concurrency: number; warmupMs: number; durationMs: number };

export interface LoginRunResult {
  /** Logins that started after the warm-up and completed. */
  logins: number;
  /** Every login that completed, warm-up included: what the server stored. */
  allLogins: number;
  seconds: number;
  loginsPerSecond: number;
  errors: Record<string, number>;
  steps: Record<LoginStep | 'login', Latency>;
}

export type WorkerReply =
  | { type: 'ready'; users: number; setupMs: number }
  | { type: 'result'; result: LoginRunResult }
  | { type: 'failed'; error: string };

let users: BenchUser[] = [];

async function setup(target: FlowTarget, count: number, runId: string) {
  const started = performance.now();
  users = Array.from({ length: count }, (_, i) => new BenchUser(target, `bench-${runId}-${i}@example.com`));
  // A few at a time: sign-up is setup, not the measurement.
  for (let i = 0; i < users.length; i += 4) await Promise.all(users.slice(i, i + 4).map((u) => u.signUp()));
  return performance.now() - started;
}

/**
 * Each browser loop owns its own users (loop i takes users i, i + concurrency, ...), so no
 * two assertions of one passkey are ever in flight: the server would rightly refuse the
 * one whose signature counter lost the race.
 */
async function run(concurrency: number, warmupMs: number, durationMs: number): Promise<LoginRunResult> {
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
  };
}

function reply(message: WorkerReply) {
  process.send!(message);
}

process.on('message', (message: WorkerRequest) => {
  const work =
    message.type === 'setup'
      ? setup(message.target, message.users, message.runId).then((setupMs) =>
          reply({ type: 'ready', users: users.length, setupMs: Math.round(setupMs) }),
        )
      : run(message.concurrency, message.warmupMs, message.durationMs).then((result) =>
          reply({ type: 'result', result }),
        );
  work.catch((error: Error) => reply({ type: 'failed', error: error.message }));
});
