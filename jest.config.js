import { createDefaultEsmPreset } from 'ts-jest';

const preset = createDefaultEsmPreset({ tsconfig: 'tsconfig.json' });

/** @type {import('jest').Config} */
export default {
  ...preset,
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
  // 250 MB after a file: a worker's heap grows with every file it runs (what keeps each
  // file's objects reachable is not found yet), so a worker reached ~850 MB by the end, its
  // collections slowed, and at the end of the run it was still exiting after Jest's 500 ms
  // ("A worker process has failed to exit gracefully"; with a 400 MB limit it still did once,
  // behind PgBouncer). PGlite suite, 2026-12-04: 451 s with 2 workers, 385–401 s with 3,
  // 354 s with 3 and a 400 MB limit, 347 s with 250 MB.
  maxWorkers: 3,
  workerIdleMemoryLimit: '250MB',
  reporters: ['default', '<rootDir>/test/support/summaryReporter.mjs'],
};
