import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { closeWithin, SESAME_STOP_MS } from '../support/boundedClose.js';
import { describeBrowser, newPasskeyContext, watchPageProblems } from '../support/chromium.js';
import { closeBrowser, launchBrowser } from '../support/chromiumLifecycle.js';
import { type RpServer, startRpServer } from '../support/rpServer.js';
import { linesOf, runCli, type SesameProcess, startSesameProcess } from '../support/sesameProcess.js';
import { onPostgres } from '../support/testDatabase.js';

/** No step of a passkey flow takes seconds; a stuck one should fail fast. */
const STEP_TIMEOUT = 15_000;
/** A first start initialises the embedded database; a loaded CI machine gets room for that. */
const START_TIMEOUT = 90_000;
const CLI_TIMEOUT = 60_000;

// The whole first run of a new operator, as the README tells it, on a fresh embedded data
// directory: the server is started once and never restarted.
(onPostgres ? describe.skip : describeBrowser)(
  'the first run, end to end: setup link, admin passkey, a client registered beside the running server, an app signs a person in',
  () => {
    let dataDir: string;
    let sesame: SesameProcess;
    let browser: Browser;
    let app: RpServer | undefined;
    const problems: string[][] = [];

    beforeAll(async () => {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-first-'));
      fs.rmdirSync(dataDir); // Sesame creates it, as on a machine that never ran it.
      [sesame, browser] = await Promise.all([
        startSesameProcess({ DATA_DIR: dataDir, RATE_LIMIT_PER_MINUTE: '0' }, START_TIMEOUT),
        launchBrowser(),
      ]);
    }, START_TIMEOUT + 10_000);

    afterAll(async () => {
      await closeBrowser(browser);
      await closeWithin('app close', () => app?.close());
      await closeWithin('Sesame stop', () => sesame?.stop(), { ms: SESAME_STOP_MS });
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    async function device(): Promise<Page> {
      const passkeys = await newPasskeyContext(browser);
      passkeys.page.setDefaultTimeout(STEP_TIMEOUT);
      problems.push(watchPageProblems(passkeys.page));
      return passkeys.page;
    }

    /** The operator's CLI, with the server's own settings, while the server runs. */
    const sesameCli = (args: string[]) =>
      runCli(args, { DATA_DIR: dataDir, ISSUER: sesame.baseUrl, PORT: String(sesame.port) }, CLI_TIMEOUT);

    it('goes from an empty data directory to a person signed in to an app, with no restart', async () => {
      // 1. The log names the setup link (JSON lines only).
      const entries = linesOf(sesame.stderr()).map((line) => JSON.parse(line) as Record<string, string>);
      const announced = entries.find((e) => e.msg === 'no administrator yet: open this link to create one');
      expect(announced?.setup_url).toMatch(new RegExp(`^${sesame.baseUrl}/setup/[A-Za-z0-9_-]{43}$`));

      // 2. The operator makes the first administrator with a passkey and lands on /admin.
      const admin = await device();
      await admin.goto(announced!.setup_url!);
      await admin.getByLabel('Email').fill('operator@example.com');
      await admin.getByLabel('Name').fill('Olive Operator');
      await admin.getByRole('button', { name: 'Create a passkey' }).click();
      await admin.waitForURL((url) => url.pathname.startsWith('/admin'));
      await admin.getByRole('heading', { name: 'Clients' }).waitFor();

      // 3. An app is registered with the CLI while the server keeps running.
      let registered: { client_id: string; client_secret: string } | undefined;
      app = await startRpServer(sesame.baseUrl, async ({ redirectUri }) => {
        const result = await sesameCli([
          'clients',
          'create',
          '--name',
          'Notes',
          '--redirect-uri',
          redirectUri,
          '--json',
        ]);
        expect(result).toMatchObject({ code: 0, stderr: '' });
        registered = JSON.parse(result.stdout);
        return registered!;
      });
      expect(registered?.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const listed = await sesameCli(['clients', 'list', '--json']);
      expect(JSON.parse(listed.stdout)).toEqual([
        expect.objectContaining({ client_id: registered!.client_id }),
      ]);

      // 4. A new person signs up with a passkey through the app, consents, and the app
      // verifies the ID token and reads userinfo.
      const person = await device();
      await person.goto(app.loginUrl);
      await person.getByRole('link', { name: 'Create an account' }).click();
      await person.getByLabel('Email').fill('pat@example.com');
      await person.getByLabel('Name').fill('Pat Person');
      await person.getByRole('button', { name: 'Create account' }).click();
      await person.getByRole('button', { name: 'Allow' }).click();
      await person.waitForURL((url) => url.href.startsWith(app!.redirectUri));
      const signIn = app.lastSignIn!;
      expect(signIn.claims).toMatchObject({
        iss: sesame.baseUrl,
        aud: registered!.client_id,
        email: 'pat@example.com',
      });
      expect(signIn.userinfo).toMatchObject({
        sub: signIn.claims.sub,
        email: 'pat@example.com',
        name: 'Pat Person',
      });

      // The server ran the whole time: one start, never restarted.
      expect(sesame.child.exitCode).toBeNull();
      expect(linesOf(sesame.stderr()).filter((l) => l.includes('"msg":"Sesame is listening"'))).toHaveLength(
        1,
      );
      expect(problems.flat()).toEqual([]);
    }, 240_000);
  },
);
