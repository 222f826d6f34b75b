/**
 * `npm run bench -- --soak 30m --rate 50`: a steady rate of complete logins for a bounded
 * time against one server, with its memory sampled every minute. The worker keeps the
 * latencies per five-minute window; this side samples RSS (/proc) and the V8 heap (the
 * server's own /metrics) and, at the end, works out growth after the warm-up.
 */
import type { SoakResult, WorkerReply, WorkerRequest } from './loginWorker.js';
import { cpuMs, postgresCpuMeter, rssMb, type ServerChild } from './processes.js';

/** `30m`, `90s`, `1h` or plain seconds, in ms. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`--soak takes a duration such as 30m or 90s, not "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}

export interface MinuteSample {
  minute: number;
  rssMb?: number;
  heapUsedMb?: number;
  heapTotalMb?: number;
  serverCpuPercent: number;
  postgresCpuPercent?: number;
  loadAverage: number;
}

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

/** The V8 heap as the server's Prometheus metrics report it (prom-client's default metrics). */
async function heapOf(server: ServerChild, apiKey: string) {
  try {
    const response = await fetch(`${server.base}/metrics`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    const text = await response.text();
    const metric = (name: string) => {
      const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return match ? mb(Number(match[1])) : undefined;
    };
    return {
      heapUsedMb: metric('nodejs_heap_size_used_bytes'),
      heapTotalMb: metric('nodejs_heap_size_total_bytes'),
    };
  } catch {
    return {};
  }
}

/** Percent growth from the mean of the first three minutes after the warm-up to the mean of the last three. */
function growth(samples: MinuteSample[], key: 'rssMb' | 'heapUsedMb', warmupMinutes: number) {
  const after = samples.filter((s) => s.minute >= warmupMinutes && s[key] !== undefined);
  if (after.length < 2) return undefined;
  const mean = (some: MinuteSample[]) => some.reduce((a, s) => a + s[key]!, 0) / some.length;
  const first = Math.round(mean(after.slice(0, 3)) * 10) / 10;
  const last = mean(after.slice(-3));
  return {
    afterWarmupMb: first,
    endMb: Math.round(last * 10) / 10,
    percent: Math.round(((last - first) / first) * 1000) / 10,
  };
}

export async function soak(options: {
  servers: ServerChild[];
  ask: (request: WorkerRequest) => Promise<WorkerReply>;
  apiKey: string;
  database?: string;
  durationMs: number;
  rate: number;
  warmupMinutes: number;
  load: () => number[];
  log: (message: string) => void;
}) {
  const { servers, durationMs, rate, log } = options;
  const samples: MinuteSample[] = [];
  const began = performance.now();
  let lastCpu = servers.reduce((a, s) => a + cpuMs(s.pid), 0);
  const postgresCpu = options.database ? postgresCpuMeter(options.database) : undefined;
  let lastAt = began;
  const sample = async () => {
    const now = performance.now();
    const cpu = servers.reduce((a, s) => a + cpuMs(s.pid), 0);
    const db = postgresCpu?.();
    const seconds = (now - lastAt) / 1000;
    const heaps = await Promise.all(servers.map((s) => heapOf(s, options.apiKey)));
    const sum = (values: (number | undefined)[]) =>
      values.every((v) => v !== undefined)
        ? Math.round(values.reduce((a, v) => a! + v!, 0)! * 10) / 10
        : undefined;
    const entry: MinuteSample = {
      minute: Math.round((now - began) / 6000) / 10,
      rssMb: sum(servers.map((s) => rssMb(s.pid))),
      heapUsedMb: sum(heaps.map((h) => h.heapUsedMb)),
      heapTotalMb: sum(heaps.map((h) => h.heapTotalMb)),
      serverCpuPercent: Math.round(((cpu - lastCpu) / 10 / seconds) * 10) / 10,
      ...(db !== undefined && { postgresCpuPercent: Math.round((db / 10 / seconds) * 10) / 10 }),
      loadAverage: Math.round(options.load()[0]! * 100) / 100,
    };
    lastCpu = cpu;
    lastAt = now;
    samples.push(entry);
    log(
      `  soak minute ${entry.minute}: RSS ${entry.rssMb} MB, heap ${entry.heapUsedMb}/${entry.heapTotalMb} MB, ` +
        `server CPU ${entry.serverCpuPercent} %, Postgres ${entry.postgresCpuPercent ?? '-'} %, load ${entry.loadAverage}`,
    );
  };
  const timer = setInterval(() => void sample(), 60_000);
  let result: SoakResult;
  try {
    const reply = await options.ask({ type: 'soak', set: 'sesame', rate, durationMs, windowMs: 5 * 60_000 });
    result = (reply as { result: SoakResult }).result;
  } finally {
    clearInterval(timer);
  }
  await sample();
  const stepsP99 = result.windows.map((w) =>
    Object.fromEntries(Object.entries(w.steps).map(([step, figures]) => [step, figures.p99])),
  );
  const worstStepP99 = Math.max(
    ...result.windows.flatMap((w) =>
      Object.entries(w.steps)
        .filter(([step]) => step !== 'login')
        .map(([, f]) => f.p99),
    ),
  );
  return {
    ...result,
    achievedPerSecond: Math.round((result.logins / result.seconds) * 10) / 10,
    errorCount: Object.values(result.errors).reduce((a, b) => a + b, 0),
    worstStepP99,
    p99PerWindow: stepsP99,
    minutes: samples,
    warmupMinutes: options.warmupMinutes,
    growthAfterWarmup: {
      rss: growth(samples, 'rssMb', options.warmupMinutes),
      heapUsed: growth(samples, 'heapUsedMb', options.warmupMinutes),
    },
  };
}
