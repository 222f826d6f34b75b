import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';

/**
 * Sesame's Prometheus metrics, one registry per process (`GET /metrics`). Every label has a
 * bounded set of values fixed in code — a result, an error code, a grant type Sesame
 * supports, a route template — never a raw path or anything a caller chooses, so a client
 * cannot grow the series without bound. Incrementing a counter is a map lookup: cheap
 * enough for the token and sign-in hot paths.
 */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });

export const signIns = new Counter({
  name: 'sesame_sign_ins_total',
  help: 'Passkey sign-ins to OIDC interactions, by result',
  labelNames: ['result'] as const,
  registers: [metricsRegistry],
});

export const signUps = new Counter({
  name: 'sesame_sign_ups_total',
  help: 'Accounts created with a passkey from the sign-in page, by result',
  labelNames: ['result'] as const,
  registers: [metricsRegistry],
});

export const ceremonyFailures = new Counter({
  name: 'sesame_passkey_ceremony_failures_total',
  help: 'Passkey registrations and assertions refused, by reason (the error code)',
  labelNames: ['reason'] as const,
  registers: [metricsRegistry],
});

export const tokenGrants = new Counter({
  name: 'sesame_token_grants_total',
  help: 'Token endpoint requests, by grant type and result',
  labelNames: ['grant_type', 'result'] as const,
  registers: [metricsRegistry],
});

export const backchannelDeliveries = new Counter({
  name: 'sesame_backchannel_logout_deliveries_total',
  help: 'Back-channel logout token posts to apps, by result (delivered, retry, given_up)',
  labelNames: ['result'] as const,
  registers: [metricsRegistry],
});

export const mailDeliveries = new Counter({
  name: 'sesame_mail_deliveries_total',
  help: 'Mails handed to the SMTP server, by template and result (sent, retry, given_up; link_gone: not sent, its one-time link could no longer be used)',
  labelNames: ['template', 'result'] as const,
  registers: [metricsRegistry],
});

/** The latency histogram's upper bounds, in seconds (and `+Inf`). */
const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

/** One route's series: observations per bucket (not cumulative; the last is past every bound), their sum and count. */
interface RouteSeries {
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * Every request's latency by route template, read like prom-client's Histogram (the same
 * series, buckets and text), observed without it. prom-client's timer and `observe` took
 * 3–5 µs of every request (two `process.hrtime` arrays, a labels object merged into another,
 * its label checks, a hash string, a bucket looked up by a number turned into a string
 * twice; bench/README.md, 2026-12-07); this is a Map lookup and a few additions.
 */
export class RouteDurations {
  readonly name = 'sesame_http_request_duration_seconds';
  readonly help = 'Time to answer an HTTP request, by route template';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  #series = new Map<string, RouteSeries>();

  /** Counts one request of `route` (a template: never a path a caller chose) that took `seconds`. */
  observe(route: string, seconds: number): void {
    let series = this.#series.get(route);
    if (!series) {
      series = { buckets: new Float64Array(HTTP_DURATION_BUCKETS.length + 1), sum: 0, count: 0 };
      this.#series.set(route, series);
    }
    let bucket = 0;
    while (bucket < HTTP_DURATION_BUCKETS.length && seconds > HTTP_DURATION_BUCKETS[bucket]!) bucket += 1;
    series.buckets[bucket]! += 1;
    series.sum += seconds;
    series.count += 1;
  }

  /** The series as prom-client's Histogram gives them (its `get`), for the registry to print. */
  async get() {
    const name = this.name;
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const [route, series] of this.#series) {
      let cumulative = 0;
      HTTP_DURATION_BUCKETS.forEach((le, i) => {
        cumulative += series.buckets[i]!;
        values.push({ labels: { le, route }, value: cumulative, metricName: `${name}_bucket` });
      });
      values.push(
        { labels: { le: '+Inf', route }, value: series.count, metricName: `${name}_bucket` },
        { labels: { route }, value: series.sum, metricName: `${name}_sum` },
        { labels: { route }, value: series.count, metricName: `${name}_count` },
      );
    }
    return { name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#series.clear();
  }
}

export const httpDuration = new RouteDurations();
metricsRegistry.registerMetric(httpDuration as unknown as Metric);

/**
 * Set where the row caches go live and dark (rowCache.ts): 0 while change notices may be
 * lost, when every request reads its rows from the database (correct, but slower), until the
 * listener is heard again. Neither /healthz nor /readyz fails for it, so this is what to alert on.
 */
export const rowChangeListenerUp = new Gauge({
  name: 'sesame_row_change_listener_up',
  help: 'Whether row change notifications arrive (1) and rows are cached, or may be lost (0) and every row is read from the database',
  registers: [metricsRegistry],
});

/** What a pg Pool reports about its connections. */
export interface PoolStats {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** Pools of this process's open Postgres databases (the embedded database has none). */
const pools = new Set<PoolStats>();

new Gauge({
  name: 'sesame_db_pool_connections_in_use',
  help: 'Postgres connections checked out of the pool',
  registers: [metricsRegistry],
  collect() {
    let inUse = 0;
    for (const pool of pools) inUse += pool.totalCount - pool.idleCount;
    this.set(inUse);
  },
});

new Gauge({
  name: 'sesame_db_pool_waiting',
  help: 'Queries waiting for a Postgres connection',
  registers: [metricsRegistry],
  collect() {
    let waiting = 0;
    for (const pool of pools) waiting += pool.waitingCount;
    this.set(waiting);
  },
});

/** Reports a Postgres pool in the pool gauges until the returned function is called. */
export function watchPool(pool: PoolStats): () => void {
  pools.add(pool);
  return () => pools.delete(pool);
}

/** Grant types Sesame enables; anything else a client sends is counted as `other`. */
const GRANT_TYPES = new Set([
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code',
]);

/** The grant type label for a token request's `grant_type` parameter. */
export function grantTypeLabel(value: unknown): string {
  return typeof value === 'string' && GRANT_TYPES.has(value) ? value : 'other';
}

/** Runs a ceremony step and counts its result (`success` or `failure`) on `counter`. */
export async function countResult<T>(counter: Counter<'result'>, run: () => Promise<T>): Promise<T> {
  try {
    const value = await run();
    counter.inc({ result: 'success' });
    return value;
  } catch (error) {
    counter.inc({ result: 'failure' });
    throw error;
  }
}
