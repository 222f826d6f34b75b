import { setTimeout as sleep } from 'node:timers/promises';
import { usersQueries } from '../../src/db/queries/users.js';
import { browserScenario } from '../support/browserScenario.js';
import { describeBrowser } from '../support/chromium.js';
import { linkIn } from '../support/mailServer.js';

describeBrowser('"Lost your passkey?" in Chromium, with a real SMTP server', () => {
  const scenario = browserScenario({
    // No step of a passkey flow on this machine takes seconds; a stuck one should fail fast.
    stepTimeout: 8_000,
    env: { MAIL_FROM: 'Notes sign-in <signin@notes.test>' },
    mail: true,
    app: true,
  });

  it('follows a mailed link to a new passkey on a new device, which then signs in to the app', async () => {
    // Margaret signs up on her laptop, which she then loses.
    const laptop = await scenario.device();
    await laptop.page.goto(scenario.app.loginUrl);
    await laptop.page.getByRole('link', { name: 'Create an account' }).click();
    await laptop.page.getByLabel('Email').fill('margaret@example.com');
    await laptop.page.getByRole('button', { name: 'Create account' }).click();
    await scenario.reachApp(laptop.page);
    const sub = scenario.app.lastSignIn!.claims.sub;
    // She confirms her address from the welcome mail: the account is hers, not a stranger's.
    const [welcome] = await scenario.mail.waitFor('margaret@example.com');
    await laptop.page.goto(/https?:\/\/\S+\/verify\/[A-Za-z0-9_-]{43}/.exec(welcome!.text)![0]);
    await laptop.page.getByRole('heading', { name: 'Email address confirmed' }).waitFor();

    // On a new phone, with no passkey, she asks for a link.
    const phone = await scenario.device();
    const { page } = phone;
    await page.goto(scenario.app.loginUrl);
    await page.getByRole('link', { name: 'Lost your passkey?' }).click();
    // A mistyped address comes back refused, with the keyboard in the field to correct it.
    const email = page.getByLabel('Email');
    await email.fill('margaret@');
    await page.getByRole('button', { name: 'Send me a link' }).click();
    await page.getByText('Enter a valid email address').waitFor();
    expect(await email.evaluate((field) => field === document.activeElement)).toBe(true);
    await email.fill('margaret@example.com');
    await page.getByRole('button', { name: 'Send me a link' }).click();
    await page.getByRole('heading', { name: 'Check your mail' }).waitFor();
    await page.screenshot({ path: '/tmp/sesame-recover-sent.png' });

    // Her sign-up earlier brought a welcome mail; the recovery link is the second.
    const received = (await scenario.mail.waitFor('margaret@example.com', 2)).at(-1);
    expect(received!.subject).toBe('Add a passkey to your Sesame account');
    await page.goto(linkIn(received!));
    // The lost laptop's passkey goes with the link's use unless she unchecks the box.
    expect(await page.getByRole('checkbox', { name: 'Remove my other passkeys' }).isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    await page.waitForURL(`${scenario.sesame.baseUrl}/account`);
    await page.getByText('You have 1 passkey.').waitFor();

    // The new passkey signs her in to the app (prompt=login: a sign-in, not the session the link made).
    // The virtual authenticator answers the page's autofill request at once, as her pick would.
    await page.goto(`${scenario.app.loginUrl}?prompt=login`);
    await scenario.reachApp(page);
    expect(scenario.app.lastSignIn!.claims.sub).toBe(sub);
    expect(scenario.app.lastSignIn!.claims.email).toBe('margaret@example.com');
    // The mailed link worked once.
    await page.goto(linkIn(received!));
    await page.getByRole('heading', { name: 'This link was already used' }).waitFor();
  });

  it('sends one link for one press of "Send me a link": reloading the answer, or coming Back to it, sends none, with or without JavaScript', async () => {
    for (const javaScriptEnabled of [true, false]) {
      const email = `reload-${javaScriptEnabled ? 'script' : 'plain'}@example.com`;
      await usersQueries.insert(scenario.sesame.db, { email, name: null });
      const { page } = await scenario.device({ javaScriptEnabled });
      await page.goto(`${scenario.sesame.baseUrl}/recover`);
      await page.getByLabel('Email').fill(email);
      await page.getByRole('button', { name: 'Send me a link' }).click();
      const answer = page.getByRole('heading', { name: 'Check your mail' });
      await answer.waitFor();
      const [mailed] = await scenario.mail.waitFor(email, 1);

      // The person reloads the answer, opens the link, and comes Back to the answer.
      await page.reload();
      await answer.waitFor();
      expect(await page.getByRole('status').textContent()).toContain(email);
      await page.goto(linkIn(mailed!));
      await page.getByRole('button', { name: 'Create a passkey' }).waitFor();
      await page.goBack();
      await answer.waitFor();

      // Nothing more was mailed, and the one link mailed still works.
      await sleep(1_000);
      expect(scenario.mail.to(email)).toHaveLength(1);
      await page.goto(linkIn(mailed!));
      await page.getByRole('button', { name: 'Create a passkey' }).waitFor();
    }
  });
});
