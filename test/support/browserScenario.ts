/**
 * What a browser test file shares, set up once per file: one Sesame, one Chromium, and, when
 * asked for, a relying-party app and an SMTP server. Each device is a fresh browser context
 * (cheap) with a passkey authenticator of its own; a new Sesame is not cheap (a database copy
 * and its start), so one serves the whole file. Call {@link browserScenario} inside the file's
 * `describeBrowser` block: it registers the hooks, and every test ends by checking that no
 * page reported a CSP violation or a script error.
 */
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { createClient } from '../../src/oidc/clients.js';
import { closeWithin, SESAME_STOP_MS } from './boundedClose.js';
import {
  newPasskeyContext,
  type PasskeyContext,
  type PasskeyRequest,
  recordPasskeyRequests,
  watchPageProblems,
} from './chromium.js';
import { closeBrowser, launchBrowser } from './chromiumLifecycle.js';
import { type MailServer, startMailServer, TEST_MAIL_TIMING } from './mailServer.js';
import { type RegisterClient, type RpServer, startRpServer } from './rpServer.js';
import { startTestApp, type TestApp } from './testApp.js';

export interface BrowserScenarioOptions {
  /** No step of a flow takes seconds: a page waits this long at most for what a test expects. */
  stepTimeout: number;
  /** Sesame's settings, as the environment would give them. */
  env?: Record<string, string>;
  /** A real SMTP server Sesame mails through (SMTP_URL), with short mail retries. */
  mail?: boolean;
  /**
   * A relying-party app (rpServer.ts), registered as the confidential client "Notes" unless
   * `register` registers it otherwise; `scope` is what it asks for.
   */
  app?:
    | boolean
    | {
        scope?: string;
        register?: (sesame: TestApp, urls: Parameters<RegisterClient>[0]) => ReturnType<RegisterClient>;
      };
}

/** A browser profile of its own with a platform passkey authenticator; `requests` are the passkey requests its page made. */
export interface Device extends PasskeyContext {
  requests: PasskeyRequest[];
}

export interface BrowserScenario {
  readonly sesame: TestApp;
  readonly browser: Browser;
  /** The app, when the options asked for one. */
  readonly app: RpServer;
  /** The SMTP server, when the options asked for one. */
  readonly mail: MailServer;
  /** A new device; `contextOptions` set e.g. its Accept-Language. */
  device(contextOptions?: BrowserContextOptions): Promise<Device>;
  /** Follows the flow to the app's callback, pressing Allow if this browser session has not consented yet. */
  reachApp(page: Page): Promise<void>;
}

/** Registers the file's hooks and returns the scenario; its parts are there from the first test on. */
export function browserScenario(options: BrowserScenarioOptions): BrowserScenario {
  const parts: { sesame?: TestApp; browser?: Browser; app?: RpServer; mail?: MailServer } = {};
  const problems: string[][] = [];
  const part = <K extends keyof typeof parts>(name: K) => {
    const value = parts[name];
    if (!value) throw new Error(`this browser scenario has no ${name}`);
    return value as NonNullable<(typeof parts)[K]>;
  };

  beforeAll(async () => {
    if (options.mail) parts.mail = await startMailServer();
    const env = { ...(parts.mail && { SMTP_URL: parts.mail.url }), ...options.env };
    [parts.sesame, parts.browser] = await Promise.all([
      startTestApp(env, parts.mail ? { mailTiming: TEST_MAIL_TIMING } : {}),
      launchBrowser(),
    ]);
    if (options.app) {
      const { scope, register } = options.app === true ? {} : options.app;
      const sesame = parts.sesame;
      parts.app = await startRpServer(
        sesame.baseUrl,
        (urls) => (register ? register(sesame, urls) : registerNotes(sesame, urls)),
        { scope },
      );
    }
  });

  afterAll(async () => {
    await closeBrowser(parts.browser);
    await closeWithin('app close', () => parts.app?.close());
    await closeWithin('Sesame stop', () => parts.sesame?.stop(), { ms: SESAME_STOP_MS });
    await closeWithin('mail server stop', () => parts.mail?.stop());
  });

  afterEach(() => {
    // Every page ran under Sesame's strict CSP without a violation or an uncaught script error.
    expect(problems.flat()).toEqual([]);
  });

  return {
    get sesame() {
      return part('sesame');
    },
    get browser() {
      return part('browser');
    },
    get app() {
      return part('app');
    },
    get mail() {
      return part('mail');
    },
    async device(contextOptions) {
      const passkeys = await newPasskeyContext(part('browser'), contextOptions);
      passkeys.page.setDefaultTimeout(options.stepTimeout);
      problems.push(watchPageProblems(passkeys.page));
      const requests = await recordPasskeyRequests(passkeys.page);
      return { ...passkeys, requests };
    },
    async reachApp(page) {
      const atApp = (url: URL) => url.href.startsWith(part('app').redirectUri);
      const allow = page.getByRole('button', { name: 'Allow' });
      await Promise.race([page.waitForURL(atApp), allow.waitFor()]);
      if (!atApp(new URL(page.url()))) {
        await allow.click();
        await page.waitForURL(atApp);
      }
    },
  };
}

/** The app as the confidential client "Notes", with its callback and its page after sign-out. */
async function registerNotes(sesame: TestApp, urls: Parameters<RegisterClient>[0]) {
  const { client, client_secret } = await createClient(
    sesame.db,
    {
      name: 'Notes',
      redirect_uris: [urls.redirectUri],
      post_logout_redirect_uris: [urls.postLogoutRedirectUri],
    },
    'test',
  );
  return { client_id: client.client_id, client_secret };
}
