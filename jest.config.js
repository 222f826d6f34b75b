import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDefaultEsmPreset } from 'ts-jest';

const preset = createDefaultEsmPreset({ tsconfig: 'tsconfig.json' });

/** Jest's transform cache stays where it was (on disk, kept between runs). */
const cacheDirectory = path.join(os.tmpdir(), 'jest-sesame');

/**
 * The run's temporary files go to memory when the machine has room there: TMPDIR is set to a
 * directory of this run's own on /dev/shm (tmpfs), which the workers, the servers and CLI
 * processes tests start, and Chromium inherit; globalTeardown.mjs removes it. Each test app
 * copies the embedded database's template, ~1,200 files, and creating and deleting them on
 * ext4 took discovery.test.ts alone 3.9–5.3 s of system time, against 1.2–1.3 s on /dev/shm.
 * 2 GB free is asked for: a container's /dev/shm is often 64 MB, and then /tmp is used as
 * before. SESAME_TEST_TMPDIR is set only here, for the teardown (and so that the config,
 * loaded twice, makes one directory).
 */
const MEMORY_TMP_PREFIX = '/dev/shm/sesame-tests-';
const MEMORY_TMP_NEEDED_BYTES = 2 * 1024 ** 3;
function memoryTmpFree() {
  try {
    const stats = fs.statfsSync(path.dirname(MEMORY_TMP_PREFIX));
    return stats.bavail * stats.bsize;
  } catch {
    return 0;
  }
}
if (!process.env.SESAME_TEST_TMPDIR && memoryTmpFree() >= MEMORY_TMP_NEEDED_BYTES) {
  process.env.SESAME_TEST_TMPDIR = fs.mkdtempSync(MEMORY_TMP_PREFIX);
  process.env.TMPDIR = process.env.SESAME_TEST_TMPDIR;
}

/** @type {import('jest').Config} */
export default {
  ...preset,
  cacheDirectory,
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  globalSetup: '<rootDir>/test/support/globalSetup.mjs',
  globalTeardown: '<rootDir>/test/support/globalTeardown.mjs',
  setupFiles: ['<rootDir>/test/support/quietRuntimeWarning.ts'],
  // Generous: a test or hook that starts Sesame boots PGlite, seconds on a loaded 2-core machine.
  testTimeout: 60_000,
  // Three workers on two cores: a test often waits on a browser, a child process or a
  // notice, and a third worker fills those waits. A worker is replaced once its heap passes
  // 250 MB after a file: a worker's heap grows by 10–30 MB with every file it runs, because
  // Node 20 never frees a vm.SourceTextModule, which is what Jest runs each file's modules as
  // (nodejs/node#59118, jestjs/jest#9959). A heap snapshot after four files run in band held
  // every file's Koa apps, reached from the realm's cleanup queue through each file's
  // ModuleWrap. Without the limit a worker reached ~850 MB by the end, its collections slowed,
  // and at the end of the run it was still exiting after Jest's 500 ms ("A worker process has
  // failed to exit gracefully"; with a 400 MB limit it still did once, behind PgBouncer). A
  // PGlite run uses ~13 workers in all for its 91 files. PGlite suite, 2026-12-04: 451 s with
  // 2 workers, 385–401 s with 3, 354 s with 3 and a 400 MB limit, 347 s with 250 MB.
  // Where the time goes (2026-12-06, whole suite, warm transform cache): 590 s user + 61 s
  // system CPU, of which the test files' own 489 s in the workers and 147 s in their child
  // processes (Chromium, sesame commands and servers). Three workers keep both cores busy (18
  // integration files: 113 s of CPU in 59 s on a quiet machine), so the run is bound by CPU,
  // ~5.5 min at best on 2 cores. An integration file's fixed cost is ~1 s of CPU (its modules,
  // its first PGlite); the rest is its own work: in a profile of 12 such files PGlite took 37 %
  // (statements and starts about half each), garbage collection 13 %, module loading 6 %.
  // Tried and not kept, no CPU saved: 4 workers, --max-semi-space-size=32, --liftoff-only, and
  // PGlite's compiled WebAssembly and data bundle shared by a worker's files (~0.1 s a file:
  // a file's first start still compiles PGlite's JavaScript in its own module registry).
  maxWorkers: 3,
  workerIdleMemoryLimit: '250MB',
  reporters: ['default', '<rootDir>/test/support/summaryReporter.mjs'],
};
