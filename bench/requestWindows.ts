/**
 * Loaded into a server with `--import` by `npm run bench -- --profile`. Records when each
 * request started and ended, on the monotonic clock a CPU profile counts on, and writes them to
 * `$SESAME_BENCH_REQUEST_DIR/<pid>.json` when the process exits. With one browser logging in
 * (`--concurrency 1`) one request is served at a time, so the profile's samples can be split by
 * the request they fell in: CPU per login step (profileSummary.ts, busyByRequest).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

/** A request: start and end in µs (`process.hrtime.bigint() / 1000n`), and what it asked for. */
export type RequestWindow = [fromUs: number, toUs: number, request: string];

/** `GET /interaction/:id/login/options`: the method and path, each long id (uid, token) as `:id`. */
export function requestName(method: string | undefined, url: string | undefined): string {
  const pathname = (url ?? '/').split('?')[0]!;
  return `${method ?? 'GET'} ${pathname.replace(/\/[\w-]{16,}/g, '/:id')}`;
}

const dir = process.env.SESAME_BENCH_REQUEST_DIR;
if (dir) {
  const windows: RequestWindow[] = [];
  const now = () => Number(process.hrtime.bigint() / 1000n);
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function emitTimed(this: http.Server, event: string, ...args: unknown[]) {
    if (event === 'request') {
      const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
      const from = now();
      const name = requestName(req.method, req.url);
      res.once('finish', () => windows.push([from, now(), name]));
    }
    return emit.apply(this, [event, ...args] as Parameters<typeof emit>);
  } as typeof emit;
  process.once('exit', () =>
    fs.writeFileSync(path.join(dir, `${process.pid}.json`), JSON.stringify(windows)),
  );
}
