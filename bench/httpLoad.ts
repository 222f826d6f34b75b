/** Fixed-concurrency HTTP load with autocannon (in the orchestrating process, never the server's). */
import autocannon from 'autocannon';

/** The bare baseline's one static client (bare.ts registers it; run.ts loads it). */
export const BARE_CLIENT = { client_id: 'bare-bench', client_secret: 'bare-bench-secret-0123456789abcdef' };

/** The bare baseline's client for the logins (authorization code with PKCE, no consent). */
export const BARE_LOGIN_CLIENT = {
  client_id: 'bare-bench-app',
  client_secret: 'bare-bench-app-secret-0123456789abcdef',
  redirect_uris: ['http://127.0.0.1:8999/callback'],
};

export interface HttpLoadResult {
  /** Successful (2xx) responses per second over the measured window. */
  perSecond: number;
  /** How long the window was: autocannon ends a run at its next whole second. */
  seconds: number;
  ok: number;
  failed: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  statusCodes: Record<string, number>;
}

export interface HttpLoad {
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

/** Warms up for `warmupSeconds` (discarded), then measures for `seconds`. */
export async function measureHttp(
  base: string | string[],
  load: HttpLoad,
  seconds: number,
  warmupSeconds: number,
  connections = 10,
): Promise<HttpLoadResult> {
  const options = {
    // Several bases: autocannon spreads the connections over them.
    url: Array.isArray(base) ? base.map((b) => b + load.path) : base + load.path,
    connections,
    method: load.method ?? 'GET',
    ...(load.headers && { headers: load.headers }),
    ...(load.body !== undefined && { body: load.body }),
  };
  if (warmupSeconds > 0) await autocannon({ ...options, duration: warmupSeconds });
  const result = await autocannon({ ...options, duration: seconds });
  return {
    perSecond: Math.round(result['2xx'] / result.duration),
    seconds: result.duration,
    ok: result['2xx'],
    failed: result.non2xx + result.errors + result.timeouts,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
    },
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count])),
  };
}

/**
 * The token, introspection, discovery and JWKS workload, the same for Sesame and the bare
 * baseline. Introspection asks about `accessToken`, one of the client's own tokens.
 */
export function protocolLoads(client: { client_id: string; client_secret: string }, accessToken: string) {
  const basic = Buffer.from(
    `${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`,
  ).toString('base64');
  return {
    clientCredentials: {
      path: '/token',
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    },
    introspection: {
      path: '/token/introspection',
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(accessToken)}`,
    },
    discovery: { path: '/.well-known/openid-configuration' },
    jwks: { path: '/jwks' },
  } satisfies Record<string, HttpLoad>;
}
