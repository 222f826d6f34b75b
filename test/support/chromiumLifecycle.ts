/**
 * Starting and stopping the test Chromium. Its close is bounded and, when it hangs, Chromium
 * is killed with every process it started, so no browser test file waits on a browser that
 * will not go.
 */
import fs from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { CLOSE_STEP_MS, closeWithin, type TeardownLog, toStderr } from './boundedClose.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.js';

/** What a launched Chromium leaves running when its close hangs, and how to find it. */
interface ChromiumProcesses {
  /** The browser process, leader of the process group playwright-core starts it in. */
  pid: number;
  /** Its stderr as /proc names it (`socket:[inode]`); every process it starts inherits it. */
  stderr: string | undefined;
}

const launchedProcesses = new WeakMap<Browser, ChromiumProcesses>();

/** Starts headless Chromium. Close it in afterAll with {@link closeBrowser}. */
export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    headless: true,
  });
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = await cdp.send('SystemInfo.getProcessInfo');
  await cdp.detach();
  const pid = processInfo.find((info) => info.type === 'browser')?.id;
  if (pid !== undefined) launchedProcesses.set(browser, { pid, stderr: procLink(`/proc/${pid}/fd/2`) });
  return browser;
}

/**
 * Closes every context of the browser (side by side), then the browser, each step bounded
 * ({@link closeWithin}). A browser whose close does not finish is killed with every process
 * it started, so that none lingers and playwright-core's close can end.
 */
export async function closeBrowser(
  browser: Browser | undefined,
  options: { ms?: number; log?: TeardownLog } = {},
): Promise<void> {
  if (!browser) return;
  await Promise.all(
    browser
      .contexts()
      .map((context, i) => closeWithin(`context ${i + 1} close`, () => context.close(), options)),
  );
  const closing = browser.close();
  const processes = launchedProcesses.get(browser);
  if (await closeWithin('browser close', () => closing, options)) {
    // playwright-core's close ends once the browser process has gone; its renderers and
    // utility processes may still be exiting then (seen once in CI: one still running).
    if (processes) await outlive(processes, options);
    return;
  }
  if (!processes) return;
  killChromium(processes);
  await closeWithin(`browser close after killing Chromium (pid ${processes.pid})`, () => closing, options);
}

/**
 * Waits, bounded, for the processes left by a browser whose close finished to exit; those
 * still running at the bound are killed and named in one line, so none outlives the test.
 */
async function outlive(
  processes: ChromiumProcesses,
  { ms = CLOSE_STEP_MS, log = toStderr }: { ms?: number; log?: TeardownLog },
): Promise<void> {
  const until = Date.now() + ms;
  let left = runningProcesses(processes);
  while (left.length > 0 && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    left = runningProcesses(processes);
  }
  if (left.length === 0) return;
  killChromium(processes);
  log(
    `teardown: ${left.length} Chromium process(es) still running ${ms / 1000} s after the browser closed; killed`,
  );
}

/**
 * The processes of a browser from {@link launchBrowser} that are running now: its process
 * group (browser, renderers, GPU and utility processes) and every process still holding its
 * stderr. The latter are Crashpad's handlers: Chromium starts them in process groups of their
 * own, re-parented to init, with its stdout and stderr, and playwright-core's close waits
 * until the browser's output pipes close, so one handler that is slow to exit keeps the close
 * pending after the browser has gone. Empty for a browser launched otherwise.
 */
export function runningProcessesOf(browser: Browser): number[] {
  const launched = launchedProcesses.get(browser);
  return launched ? runningProcesses(launched) : [];
}

function runningProcesses({ pid, stderr }: ChromiumProcesses): number[] {
  if (!fs.existsSync('/proc')) return [];
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      const stat = processStat(entry);
      if (!stat || stat.state === 'Z') return false; // a zombie has exited: only its parent's wait is left
      return stat.group === pid || (stderr !== undefined && procLink(`/proc/${entry}/fd/2`) === stderr);
    })
    .map(Number);
}

function killChromium(processes: ChromiumProcesses): void {
  const kill = (target: number) => {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  kill(-processes.pid);
  for (const pid of runningProcesses(processes)) kill(pid);
}

/** A process's state and process group, from /proc/PID/stat (after the command name, which may hold spaces). */
export function processStat(pid: number | string): { state: string; group: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: state!, group: Number(group) };
  } catch {
    return undefined;
  }
}

function procLink(path: string): string | undefined {
  try {
    return fs.readlinkSync(path);
  } catch {
    return undefined; // no /proc (not Linux), or the process has gone
  }
}
