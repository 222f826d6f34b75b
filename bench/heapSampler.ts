/**
 * Loaded into a server with `--import` by `npm run bench -- --heap-profile`. Each SIGUSR2
 * starts a sampling heap profile, and the next one stops it and writes it to
 * `$SESAME_BENCH_HEAP_DIR/<pid>-<n>.heapprofile`: the bench brackets each measured window so.
 *
 * The profile keeps what the garbage collector has already taken
 * (`includeObjectsCollectedByMajorGC`/`MinorGC`), so it counts every allocation, not only what
 * is still alive at the end: bytes allocated per request, by the function that allocated them.
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';

const dir = process.env.SESAME_BENCH_HEAP_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
    );
  let sampling = false;
  let written = 0;
  // One toggle at a time: a signal that arrives while the last one is being handled waits for it.
  let toggling = Promise.resolve();
  process.on('SIGUSR2', () => {
    toggling = toggling.then(async () => {
      if (!sampling) {
        sampling = true;
        await post('HeapProfiler.enable');
        await post('HeapProfiler.startSampling', {
          samplingInterval: 1024,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        });
        return;
      }
      sampling = false;
      const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
      written += 1;
      const file = path.join(dir, `${process.pid}-${written}.heapprofile`);
      // Written under another name first, so the bench never reads half a file.
      fs.writeFileSync(`${file}.part`, JSON.stringify(profile));
      fs.renameSync(`${file}.part`, file);
    });
  });
}
