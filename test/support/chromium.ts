/**
 * Real-browser tests: Debian's Chromium driven by playwright-core, with passkeys held by
 * Chromium's virtual WebAuthn authenticator (Chrome DevTools Protocol, WebAuthn domain).
 * WebAuthn needs a secure context, so Sesame must be served as http://localhost:<port>.
 */
import fs from 'node:fs';
import type { Browser, BrowserContext, BrowserContextOptions, CDPSession, Page } from 'playwright-core';

/** Where the Debian package installs Chromium; CHROMIUM_PATH points elsewhere. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags for a quiet, headless Chromium in a container: no sandbox (no user namespaces), no background traffic. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM_PATH);
}

let skipNoticePrinted = false;

/**
 * `describe` when Chromium is installed. Without it, the block is skipped with a notice on
 * stderr; under CI (CI set) a missing browser is an error, so browser tests never vanish silently.
 */
export function describeBrowser(name: string, fn: () => void): void {
  if (chromiumAvailable()) {
    describe(name, fn);
    return;
  }
  if (process.env.CI) {
    throw new Error(`browser tests cannot run: Chromium not found at ${CHROMIUM_PATH} (CI is set)`);
  }
  if (!skipNoticePrinted) {
    skipNoticePrinted = true;
    process.stderr.write(`\nbrowser tests skipped: Chromium not found at ${CHROMIUM_PATH}\n\n`);
  }
  describe.skip(name, fn);
}

/** A browser profile of its own, with one page and a platform passkey authenticator attached to it. */
export interface PasskeyContext {
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
}

/**
 * A fresh context (no cookies) whose page has a virtual authenticator like a phone's or
 * laptop's built-in one: CTAP2, internal transport, discoverable credentials, user
 * verification that succeeds, and presence confirmed without a prompt.
 */
export async function newPasskeyContext(
  browser: Browser,
  options: BrowserContextOptions = {},
): Promise<PasskeyContext> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { context, page, cdp, authenticatorId };
}

/**
 * Copies every credential (with its private key) from one virtual authenticator to another,
 * as a synced passkey appears on a second device. Returns how many were copied.
 */
export async function copyCredentials(
  fromCdp: CDPSession,
  fromAuthenticatorId: string,
  toCdp: CDPSession,
  toAuthenticatorId: string,
): Promise<number> {
  const { credentials } = await fromCdp.send('WebAuthn.getCredentials', {
    authenticatorId: fromAuthenticatorId,
  });
  for (const credential of credentials) {
    await toCdp.send('WebAuthn.addCredential', { authenticatorId: toAuthenticatorId, credential });
  }
  return credentials.length;
}

/**
 * Collects Content-Security-Policy violations and uncaught errors a page reports, so a test
 * can assert there were none: Chromium logs each blocked script, style or connection.
 */
export function watchPageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) problems.push(`CSP: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return problems;
}

/** One navigator.credentials.get() call a page made: modal ("optional") or autofill ("conditional"), and how it ended. */
export interface PasskeyRequest {
  mediation: string;
  /** "pending", "resolved", or the DOMException name it failed with (e.g. "AbortError"). */
  outcome: string;
  /** The page it was made on. */
  url: string;
}

declare global {
  interface Window {
    /** The current document's passkey requests (see {@link recordPasskeyRequests}). */
    __passkeyRequests?: PasskeyRequest[];
  }
}

/**
 * Records every passkey request the page makes, so a test can tell autofill from the
 * button's modal request and see one abort the other. The returned array lives in the test
 * and keeps every request across navigations; `window.__passkeyRequests` holds the current
 * document's. The hook is installed and reports through the DevTools protocol, so the
 * page's CSP does not apply to it. Call before navigating.
 */
export async function recordPasskeyRequests(page: Page): Promise<PasskeyRequest[]> {
  const requests: PasskeyRequest[] = [];
  const byId = new Map<string, PasskeyRequest>();
  await page.exposeFunction(
    '__sesamePasskeyRequest',
    (id: string, url: string, mediation: string, outcome: string) => {
      const known = byId.get(id);
      if (known) known.outcome = outcome;
      else {
        const request = { mediation, outcome, url };
        byId.set(id, request);
        requests.push(request);
      }
    },
  );
  await page.addInitScript(() => {
    const report = (window as unknown as { __sesamePasskeyRequest: (...args: string[]) => Promise<void> })
      .__sesamePasskeyRequest;
    const inDocument: PasskeyRequest[] = [];
    window.__passkeyRequests = inDocument;
    const get = navigator.credentials.get.bind(navigator.credentials);
    navigator.credentials.get = (options?: CredentialRequestOptions) => {
      const id = crypto.randomUUID();
      const request = { mediation: options?.mediation ?? 'optional', outcome: 'pending', url: location.href };
      inDocument.push(request);
      const settle = (outcome: string) => {
        request.outcome = outcome;
        void report(id, request.url, request.mediation, outcome);
      };
      void report(id, request.url, request.mediation, 'pending');
      return get(options).then(
        (credential) => {
          settle('resolved');
          return credential;
        },
        (error: Error) => {
          settle(error.name);
          throw error;
        },
      );
    };
  });
  return requests;
}

/** The passkey requests the page's current document has made so far. */
export function passkeyRequests(page: Page): Promise<PasskeyRequest[]> {
  return page.evaluate(() => window.__passkeyRequests ?? []);
}

/**
 * Waits until the page's current document has made `count` passkey requests with this
 * mediation; or, given the array {@link recordPasskeyRequests} returned, until `condition`
 * holds for it (polling, up to `timeoutMs`).
 */
export async function waitForPasskeyRequests(
  page: Page,
  mediation: 'conditional' | 'optional',
  count?: number,
): Promise<void>;
export async function waitForPasskeyRequests(
  requests: PasskeyRequest[],
  condition: (requests: PasskeyRequest[]) => boolean,
  timeoutMs?: number,
): Promise<void>;
export async function waitForPasskeyRequests(
  target: Page | PasskeyRequest[],
  what: 'conditional' | 'optional' | ((requests: PasskeyRequest[]) => boolean),
  countOrTimeout?: number,
): Promise<void> {
  if (!Array.isArray(target)) {
    await target.waitForFunction(
      ([m, n]) => (window.__passkeyRequests ?? []).filter((r) => r.mediation === m).length >= n,
      [what as string, countOrTimeout ?? 1] as const,
    );
    return;
  }
  const condition = what as (requests: PasskeyRequest[]) => boolean;
  const deadline = Date.now() + (countOrTimeout ?? 8_000);
  while (!condition(target)) {
    if (Date.now() > deadline) {
      throw new Error(`passkey requests did not reach the expected state: ${JSON.stringify(target)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Turns the virtual authenticator's automatic presence on or off. Off, a passkey autofill
 * request waits, as it does until a person picks a passkey from the list; a request started
 * while it is off keeps waiting even after it is turned on again.
 */
/**
 * Opens a sign-in page whose passkey autofill request waits, as it does until a person picks
 * from the list, then turns automatic presence back on so the modal request that follows is
 * answered. Chrome hands a request to the virtual authenticator a moment after the page made
 * it, and one handed over once presence is back on is answered at once: the page then signs
 * in by autofill, which is not what the caller wants to test. Such an attempt is noticed and
 * the page opened again at `retryUrl` (which must show the sign-in step again, e.g. with
 * `prompt=login`); `requests`, if given, is emptied before each attempt.
 */
export async function openWithAutofillWaiting(
  passkeys: PasskeyContext,
  url: string,
  { retryUrl = url, requests }: { retryUrl?: string; requests?: PasskeyRequest[] } = {},
): Promise<void> {
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  for (let attempt = 1; attempt <= 3; attempt++) {
    if (requests) requests.length = 0;
    await setAutomaticPresence(passkeys, false);
    await passkeys.page.goto(attempt === 1 ? url : retryUrl);
    await waitForPasskeyRequests(passkeys.page, 'conditional');
    await pause(300);
    await setAutomaticPresence(passkeys, true);
    await pause(300);
    const waiting = await passkeyRequests(passkeys.page).then(
      (inDocument) => inDocument.length === 1 && inDocument[0]?.outcome === 'pending',
      () => false, // the page navigated away: autofill signed in
    );
    if (waiting) return;
  }
  throw new Error('the autofill request never stayed waiting: Chrome answered it each time');
}

export async function setAutomaticPresence(passkeys: PasskeyContext, enabled: boolean): Promise<void> {
  await passkeys.cdp.send('WebAuthn.setAutomaticPresenceSimulation', {
    authenticatorId: passkeys.authenticatorId,
    enabled,
  });
}
