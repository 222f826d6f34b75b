import type { Browser } from 'playwright-core';
import { describeBrowser } from '../support/chromium.js';
import {
  closeBrowser,
  launchBrowser,
  processStat,
  runningProcessesOf,
} from '../support/chromiumLifecycle.js';

/** How long each close step waits here: short, so a hung close costs the test a second. */
const BOUND_MS = 1_000;

/** Stops (SIGSTOP) the processes, as a machine too busy to run them would, for the close that follows. */
function freeze(pids: number[]) {
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
}

describeBrowser('closing the test Chromium when its close hangs', () => {
  let browser: Browser | undefined;
  let started: number[] = [];

  afterEach(() => {
    // Whatever a failed test left: nothing of this browser may outlive it.
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
  });

  async function closeAndWatch() {
    const lines: string[] = [];
    const began = Date.now();
    await closeBrowser(browser, { ms: BOUND_MS, log: (line) => lines.push(line) });
    return { lines, tookMs: Date.now() - began };
  }

  it('closes a browser that answers, with its contexts, and logs nothing', async () => {
    browser = await launchBrowser();
    await browser.newContext();
    await browser.newContext();
    started = runningProcessesOf(browser);
    expect(started.length).toBeGreaterThan(1);

    const { lines } = await closeAndWatch();
    expect(lines).toEqual([]);
    expect(browser.isConnected()).toBe(false);
    expect(runningProcessesOf(browser)).toEqual([]);
  });

  it('kills a browser that does not answer, with every process it started, once its close has had its bound', async () => {
    browser = await launchBrowser();
    await browser.newContext();
    started = runningProcessesOf(browser);
    const [chromium] = started.filter((pid) => processStat(pid)?.group === pid);
    freeze([chromium!]);

    const { lines, tookMs } = await closeAndWatch();
    expect(lines).toEqual([
      'teardown: context 1 close did not finish in 1 s',
      'teardown: browser close did not finish in 1 s',
    ]);
    expect(tookMs).toBeLessThan(4 * BOUND_MS);
    expect(runningProcessesOf(browser)).toEqual([]);
  });

  it('kills the crash handlers that hold the browser’s output, which keep playwright-core’s close waiting after the browser has gone', async () => {
    browser = await launchBrowser();
    started = runningProcessesOf(browser);
    // Crashpad's handlers: in process groups of their own, holding the browser's stderr.
    const crashHandlers = started.filter((pid) => !started.includes(processStat(pid)!.group));
    expect(crashHandlers.length).toBeGreaterThan(0);
    freeze(crashHandlers);

    const { lines, tookMs } = await closeAndWatch();
    expect(lines).toEqual(['teardown: browser close did not finish in 1 s']);
    expect(tookMs).toBeLessThan(4 * BOUND_MS);
    expect(runningProcessesOf(browser)).toEqual([]);
  });
});
