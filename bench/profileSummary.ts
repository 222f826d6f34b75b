/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self
 * time, and self time per package (or Sesame's own code, Node internals, GC, idle).
 * Usage: node dist/bench/profileSummary.js <file.cpuprofile> [top]
 */
import fs from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds on the monotonic clock (`process.hrtime`), as `timeDeltas` count on from it. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A stretch of the monotonic clock, in microseconds (`process.hrtime.bigint() / 1000n`). */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  functions: Array<{ selfMs: number; percentOfBusy: number; name: string; where: string }>;
  packages: Array<{ selfMs: number; percentOfBusy: number; package: string }>;
}

/** Which bucket a script belongs to: an npm package, Sesame's code, or Node itself. */
function packageOf(url: string, name: string): string {
  if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') return name;
  if (!url) return '(native)';
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (match) return match[1]!;
  if (url.startsWith('node:')) return 'node';
  // Transpiled (dist/src/) or, mapped back from the bundle, the TypeScript source (src/).
  if (url.includes('/src/')) return 'sesame';
  return url.replace(/^file:\/\//, '');
}

/** Where a function is: its script from node_modules/, dist/ or src/ on, and its line. */
const whereOf = (url: string, lineNumber: number) =>
  url ? `${url.replace(/^.*?(node_modules\/|dist\/|src\/)/, '$1')}:${lineNumber + 1}` : '';

/** A bundled script's source map (`<file>.map`, read once) and its lines; null for a script without one. */
interface Bundled {
  map: SourceMap;
  lines: string[];
}
const bundles = new Map<string, Bundled | null>();

function bundledOf(url: string): Bundled | null {
  let bundled = bundles.get(url);
  if (bundled === undefined) {
    const file = url.startsWith('file:') ? fileURLToPath(url) : undefined;
    bundled =
      file && fs.existsSync(`${file}.map`)
        ? {
            map: new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8'))),
            lines: fs.readFileSync(file, 'utf8').split('\n'),
          }
        : null;
    bundles.set(url, bundled);
  }
  return bundled;
}

type SourceEntry = { originalSource?: string; originalLine?: number; name?: string };

/**
 * The function as it was written. The server runs as one bundled file (dist/src/main.js,
 * scripts/build.mjs): its functions are mapped back through main.js.map to their package or
 * Sesame source, and to the name esbuild changed to keep the bundle's top-level names apart
 * (`respond` → `respond4`), so they are named as the bare provider's, which runs the
 * packages' own files, and counted under their package.
 */
function sourceOf(callFrame: ProfileNode['callFrame']): { name: string; url: string; lineNumber: number } {
  const { functionName: name, url, lineNumber, columnNumber = 0 } = callFrame;
  const bundled = url ? bundledOf(url) : null;
  const entry = bundled?.map.findEntry(lineNumber, columnNumber) as SourceEntry | undefined;
  if (!bundled || !entry?.originalSource || entry.originalLine === undefined)
    return { name, url, lineNumber };
  const original = path.resolve(path.dirname(fileURLToPath(url)), entry.originalSource);
  return {
    name: nameAsWritten(bundled, name, lineNumber, columnNumber),
    url: pathToFileURL(original).href,
    lineNumber: entry.originalLine,
  };
}

/** A renamed function's own name: the source map names the identifier where it is declared, next to its start. */
function nameAsWritten(
  { map, lines }: Bundled,
  name: string,
  lineNumber: number,
  columnNumber: number,
): string {
  if (!/\d$/.test(name)) return name;
  // V8 places a function just after its name; a class, at its keyword before it.
  const line = lines[lineNumber] ?? '';
  const before = line.lastIndexOf(name, columnNumber);
  const at = before >= 0 && columnNumber - before <= 100 ? before : line.indexOf(name, columnNumber);
  if (at < 0 || Math.abs(at - columnNumber) > 100) return name;
  const written = (map.findEntry(lineNumber, at) as SourceEntry).name;
  return written && name.startsWith(written) ? written : name;
}

const ms = (us: number) => Math.round(us / 100) / 10;

const readProfile = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;

/** Self time in µs of each profile node: of every sample, or of those inside `window`. */
function selfTimeByNode(profile: CpuProfile, window?: ProfileWindow): Map<number, number> {
  const self = new Map<number, number>();
  let at = profile.startTime;
  for (const [i, id] of profile.samples.entries()) {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    self.set(id, (self.get(id) ?? 0) + us);
  }
  return self;
}

/** A node's function as the summaries name it, with its script's URL. */
function functionOf(node: ProfileNode) {
  const { name, url, lineNumber } = sourceOf(node.callFrame);
  return { name: name || '(anonymous)', where: whereOf(url, lineNumber), url };
}

export function summariseProfile(file: string, top = 25): ProfileSummary {
  const profile = readProfile(file);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = selfTimeByNode(profile);

  const functions = new Map<string, { us: number; name: string; where: string }>();
  const packages = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const { name, where, url } = functionOf(byId.get(id)!);
    totalUs += us;
    if (name === '(idle)') idleUs += us;
    const key = `${name}@${where}`;
    const entry = functions.get(key) ?? { us: 0, name, where };
    entry.us += us;
    functions.set(key, entry);
    const pkg = packageOf(url, name);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const percent = (us: number) => Math.round((us / Math.max(busyUs, 1)) * 1000) / 10;
  return {
    totalMs: ms(totalUs),
    busyMs: ms(busyUs),
    functions: [...functions.values()]
      .filter((f) => f.name !== '(idle)')
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ selfMs: ms(f.us), percentOfBusy: percent(f.us), name: f.name, where: f.where })),
    packages: [...packages]
      .filter(([pkg]) => pkg !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([pkg, us]) => ({ selfMs: ms(us), percentOfBusy: percent(us), package: pkg })),
  };
}

/** Self time in µs by function (`name  where`), of the samples inside `window` only. */
export function selfTimeByFunction(file: string, window: ProfileWindow): Map<string, number> {
  const profile = readProfile(file);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  for (const [id, us] of selfTimeByNode(profile, window)) {
    const { name, where } = functionOf(byId.get(id)!);
    if (name === '(idle)') continue;
    const key = `${name}  ${where}`;
    self.set(key, (self.get(key) ?? 0) + us);
  }
  return self;
}

/**
 * Busy µs per request by what it asked for (bench/requestWindows.ts): each sample inside
 * `within` is charged to the request whose window holds it. Only meaningful when one request
 * is served at a time (one browser): requests that overlap cannot be told apart.
 */
export function busyByRequest(
  file: string,
  requests: ReadonlyArray<readonly [number, number, string]>,
  within: ProfileWindow,
): Map<string, { requests: number; busyUs: number }> {
  const profile = readProfile(file);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const windows = requests.filter(([from, to]) => from >= within.fromUs && to <= within.toUs);
  windows.sort((a, b) => a[0] - b[0]);
  const byRequest = new Map<string, { requests: number; busyUs: number }>();
  for (const [, , name] of windows) {
    const entry = byRequest.get(name) ?? { requests: 0, busyUs: 0 };
    entry.requests += 1;
    byRequest.set(name, entry);
  }
  let at = profile.startTime;
  let next = 0;
  for (const [i, id] of profile.samples.entries()) {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    while (next < windows.length && windows[next]![1] < at) next++;
    const request = windows[next];
    if (!request || request[0] > at || functionOf(byId.get(id)!).name === '(idle)') continue;
    byRequest.get(request[2])!.busyUs += us;
  }
  return byRequest;
}

/** A sampling heap profile (`HeapProfiler.stopSampling`): a tree of call frames and the samples taken in each. */
interface HeapProfile {
  head: HeapProfileNode;
  samples: Array<{ size: number; nodeId: number }>;
}
interface HeapProfileNode extends ProfileNode {
  children: HeapProfileNode[];
}

/**
 * Bytes allocated by function (`name  where`, as {@link selfTimeByFunction} names them) in a
 * sampling heap profile written by bench/heapSampler.ts, collected objects included.
 */
export function allocatedByFunction(file: string): Map<string, number> {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as HeapProfile;
  const bytesByNode = new Map<number, number>();
  for (const { size, nodeId } of profile.samples)
    bytesByNode.set(nodeId, (bytesByNode.get(nodeId) ?? 0) + size);
  const bytes = new Map<string, number>();
  const pending = [profile.head];
  for (let node = pending.pop(); node; node = pending.pop()) {
    pending.push(...node.children);
    const size = bytesByNode.get(node.id);
    if (!size) continue;
    const { name, where } = functionOf(node);
    const key = `${name}  ${where}`;
    bytes.set(key, (bytes.get(key) ?? 0) + size);
  }
  return bytes;
}

/**
 * Two profiles of the same work side by side, per operation: Sesame's and the bare
 * provider's, each divided by the operations it served in its window. The functions where
 * Sesame spends the most more come first. By default the figures are µs of self time from CPU
 * profiles (both profilers sample the same way, so what the profiler costs falls on both; the
 * busy totals are larger than without it); `unit` names another measure, such as bytes
 * allocated from {@link allocatedByFunction}.
 */
export function formatBeside(
  sesame: { self: Map<string, number>; operations: number },
  bare: { self: Map<string, number>; operations: number },
  top = 30,
  unit = 'busy µs',
): string {
  const perOp = (us: number | undefined, ops: number) => (us ?? 0) / Math.max(ops, 1);
  const sum = (self: Map<string, number>) => [...self.values()].reduce((a, b) => a + b, 0);
  const rows = [...new Set([...sesame.self.keys(), ...bare.self.keys()])].map((key) => {
    const a = perOp(sesame.self.get(key), sesame.operations);
    const b = perOp(bare.self.get(key), bare.operations);
    return { key, a, b };
  });
  rows.sort((x, y) => y.a - y.b - (x.a - x.b));
  const fmt = (n: number) => n.toFixed(1).padStart(8);
  const lines = [
    `${unit} per operation: sesame ${perOp(sum(sesame.self), sesame.operations).toFixed(0)}, bare ${perOp(sum(bare.self), bare.operations).toFixed(0)}`,
    `${'more'.padStart(8)}${'sesame'.padStart(8)}${'bare'.padStart(8)}  function`,
  ];
  for (const { key, a, b } of rows.slice(0, top)) lines.push(`${fmt(a - b)}${fmt(a)}${fmt(b)}  ${key}`);
  return lines.join('\n');
}

/** The summary as plain text, for the terminal. */
export function formatSummary(summary: ProfileSummary): string {
  const lines = [`busy ${summary.busyMs} ms of ${summary.totalMs} ms sampled`, '', 'self time by package:'];
  for (const p of summary.packages) lines.push(`  ${String(p.percentOfBusy).padStart(5)}%  ${p.package}`);
  lines.push('', 'top functions by self time:');
  for (const f of summary.functions) {
    lines.push(`  ${String(f.percentOfBusy).padStart(5)}%  ${f.name}  ${f.where}`);
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist/bench/profileSummary.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${formatSummary(summariseProfile(file, Number(top ?? 25)))}\n`);
}
