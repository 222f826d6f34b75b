/**
 * Teardown steps that cannot hang a test file. A browser or server that never finishes
 * closing would otherwise run the `afterAll` hook into Jest's timeout and fail a file whose
 * tests all passed, and leave every later step (servers, databases) undone.
 */

/** How long one close step may take: closing a context, a browser or a test server takes well under a second. */
export const CLOSE_STEP_MS = 5_000;

/**
 * How long a test Sesame may take to stop: in process it gives requests in flight 10 s
 * (src/app.ts) before it cuts them; a server process is killed 15 s after SIGTERM (sesameProcess.ts).
 */
export const SESAME_STOP_MS = 20_000;

/** Where a step that did not finish is reported: one line on stderr, beside Jest's output. */
export type TeardownLog = (line: string) => void;

const LATE = Symbol('late');

/** The default {@link TeardownLog}. */
export const toStderr: TeardownLog = (line) => process.stderr.write(`${line}\n`);

/**
 * Runs one teardown step and waits for it `ms` at most. A step that does not finish in time,
 * or fails, is logged in one line naming it (`teardown: browser close did not finish in 5 s`)
 * and left behind, so the steps after it still run. Resolves to whether the step finished.
 */
export async function closeWithin(
  step: string,
  close: () => unknown,
  { ms = CLOSE_STEP_MS, log = toStderr }: { ms?: number; log?: TeardownLog } = {},
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof LATE>((resolve) => {
    timer = setTimeout(() => resolve(LATE), ms);
    timer.unref();
  });
  // Promise.race handles a rejection that comes after the bound: a step left behind that
  // fails later is no unhandled rejection.
  const closing = Promise.resolve().then(close);
  try {
    const outcome = await Promise.race([closing, late]);
    if (outcome !== LATE) return true;
    log(`teardown: ${step} did not finish in ${ms / 1000} s`);
  } catch (error) {
    log(`teardown: ${step} failed: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return false;
}
