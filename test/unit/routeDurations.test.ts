import { Histogram, Registry, type RegistryContentType } from 'prom-client';
import { httpDuration, RouteDurations } from '../../src/metrics.js';

/** What prom-client's own Histogram printed for the latency metric before RouteDurations replaced it. */
function promClientHistogram(registry: Registry<RegistryContentType>) {
  return new Histogram({
    name: httpDuration.name,
    help: httpDuration.help,
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
}

// On a bound (le is inclusive), between bounds, past the last, and several routes.
const OBSERVATIONS: Array<[string, number]> = [
  ['/token', 0.0004],
  ['/token', 0.005],
  ['/token', 0.0051],
  ['/token', 2.5],
  ['/auth/:uid', 0.3],
  ['/auth/:uid', 7],
  ['unmatched', 5],
  ['/interaction/:uid/login/verify', 0.01],
];

describe('the request latency histogram (RouteDurations)', () => {
  it.each([
    ['Prometheus', Registry.PROMETHEUS_CONTENT_TYPE],
    ['OpenMetrics', Registry.OPENMETRICS_CONTENT_TYPE],
  ] as const)('prints in %s text exactly what prom-client’s Histogram printed', async (_, contentType) => {
    const theirs = new Registry<RegistryContentType>();
    theirs.setContentType(contentType);
    const histogram = promClientHistogram(theirs);
    const ours = new Registry<RegistryContentType>();
    ours.setContentType(contentType);
    const durations = new RouteDurations();
    ours.registerMetric(durations as never);
    for (const [route, seconds] of OBSERVATIONS) {
      histogram.observe({ route }, seconds);
      durations.observe(route, seconds);
    }
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('sesame_http_request_duration_seconds_bucket{le="0.005",route="/token"} 2');
    expect(text).toContain('sesame_http_request_duration_seconds_count{route="/auth/:uid"} 2');
  });

  it('starts again from nothing when reset, as the registry resets its metrics', async () => {
    const registry = new Registry();
    const durations = new RouteDurations();
    registry.registerMetric(durations as never);
    durations.observe('/token', 0.001);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('route="/token"');
  });
});
