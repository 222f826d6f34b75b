// `npm run fuzz -- --runs 10000 [--seed 42] [--routes REGEX]`: the route fuzz suite
// (test/fuzz) with more cases than `npm test`'s 25 per route (CI runs 200), another seed, or
// fewer routes.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { runs: { type: 'string' }, seed: { type: 'string' }, routes: { type: 'string' } },
});
const env = { ...process.env };
if (values.runs) env.FUZZ_RUNS = values.runs;
if (values.seed) env.FUZZ_SEED = values.seed;
if (values.routes) env.FUZZ_ROUTES = values.routes;

const steps = [
  ['node', ['scripts/build.mjs']],
  ['node', ['--experimental-vm-modules', 'node_modules/jest/bin/jest.js', 'test/fuzz']],
];
for (const [command, args] of steps) {
  const { status } = spawnSync(command, args, { stdio: 'inherit', env });
  if (status !== 0) process.exit(status ?? 1);
}
