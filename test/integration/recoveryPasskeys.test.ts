import { createOneTimeLink, SELF_SERVICE_ACTOR } from '../../src/accounts/oneTimeLinks.js';
import { issueRecoveryLink } from '../../src/admin/users.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { asPage } from '../support/browser.js';
import { startAppWithMail } from '../support/mailServer.js';
import { Person } from '../support/oidcFlow.js';
import { linkPath, onboard, rowCounts, untilLinkMailed, useLink } from '../support/oneTimeLinkFlow.js';
import type { TestApp } from '../support/testApp.js';

/**
 * A recovery link's "Remove my other passkeys": the lost device's passkey would otherwise sign
 * straight back in after the recovery ended its sign-ins.
 */
describe('"Remove my other passkeys" on a recovery link', () => {
  let withMail: Awaited<ReturnType<typeof startAppWithMail>>;
  let sesame: TestApp;

  beforeAll(async () => {
    withMail = await startAppWithMail();
    sesame = withMail.sesame;
  });

  afterAll(() => withMail?.stop());

  const CHECKED_BOX =
    /<label class="choice"><input type="checkbox" id="remove-others" name="removeOtherPasskeys" aria-describedby="remove-others-hint" checked> Remove my other passkeys<\/label>/;

  /** The link "Lost your passkey?" mails (as requestSelfRecovery issues it), once its mail went. */
  async function selfServiceLink(email: string): Promise<string> {
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email,
      purpose: 'recovery',
      actor: SELF_SERVICE_ACTOR,
      selfService: true,
    });
    await untilLinkMailed(sesame.db, url);
    return url;
  }

  /** Whether `person`'s passkey signs in to the account page in a fresh browser. */
  async function signsIn(person: Person): Promise<boolean> {
    const fresh = person.inNewBrowser();
    const loginPage = asPage(await fresh.browser.follow('/account'));
    try {
      await fresh.browser.follow(await fresh.signIn(loginPage));
    } catch {
      return false;
    }
    return (await fresh.browser.request('/account')).status === 200;
  }

  /**
   * Uses the recovery link `url` on a new device with the box as given; returns the person
   * there (signed in), how many passkeys the account page shows them, and the notice mailed
   * to `email` (after the invite and the link).
   */
  async function recoverOnNewDevice(url: string, email: string, removeOtherPasskeys: boolean) {
    const newDevice = new Person(sesame.baseUrl);
    expect((await useLink(newDevice, url, undefined, { removeOtherPasskeys })).status).toBe(200);
    const account = await newDevice.browser.request('/account');
    const shown = /You have (\d+) passkeys?\./.exec(account.text)?.[1];
    const notice = (await withMail.mail.waitFor(email, 3))[2]!;
    return { newDevice, shown: Number(shown), notice };
  }

  const passkeysOf = async (userId: string) =>
    (await sesame.db.selectFrom('credentials').select('id').where('user_id', '=', userId).execute()).map(
      (row) => row.id,
    );

  it("offers the box, checked, on a self-service and an admin's recovery link; never on a new account's invite or a takeover", async () => {
    await onboard(sesame, 'offered@example.com');
    const open = async (url: string) =>
      (await new Person(sesame.baseUrl).browser.request(linkPath(url))).text;

    const selfService = await open(await selfServiceLink('offered@example.com'));
    expect(selfService).toMatch(CHECKED_BOX);
    expect(selfService).toContain('<p id="remove-others-hint" class="hint">');
    const adminIssued = await issueRecoveryLink(sesame.db, sesame.config, 'offered@example.com', 'cli:test');
    expect(await open(adminIssued!.url)).toMatch(CHECKED_BOX);

    // A new account's invite has no passkeys to remove; an account nobody proved the address
    // of loses every passkey anyway, and its page says so.
    await usersQueries.insert(sesame.db, { email: 'unproven@example.com', name: null });
    for (const [email, says] of [
      ['brand-new@example.com', 'Set up your account'],
      ['unproven@example.com', 'the passkeys it has now will be removed'],
    ] as const) {
      const { url } = await createOneTimeLink(sesame.db, sesame.config, { email, actor: 'cli:test' });
      const page = await open(url);
      expect(page).toContain(says);
      expect(page).not.toContain('removeOtherPasskeys');
    }
  });

  it('removes the lost passkey with the box on: it signs in no more, the new one does, and the notice and audit say one went', async () => {
    const { person: lostDevice, userId } = await onboard(sesame, 'lost-phone@example.com');
    const [lostPasskey] = await passkeysOf(userId);
    const url = await selfServiceLink('lost-phone@example.com');

    const { newDevice, shown, notice } = await recoverOnNewDevice(url, 'lost-phone@example.com', true);

    const left = await passkeysOf(userId);
    expect(left).toHaveLength(1);
    expect(left).not.toContain(lostPasskey);
    expect(await signsIn(lostDevice)).toBe(false);
    expect(await signsIn(newDevice)).toBe(true);
    expect(shown).toBe(1);
    expect(notice.subject).toBe('A recovery link was used on your Acme account');
    expect(notice.text).toContain(
      '1 other passkey of the account was removed at the same time and can no longer sign in.',
    );
    const used = await sesame.db
      .selectFrom('audit_events')
      .select('details')
      .where('target', '=', userId)
      .where('action', '=', 'link.recovery.use')
      .executeTakeFirstOrThrow();
    expect(used.details).toMatchObject({ removed_passkeys: [lostPasskey] });
  });

  it("keeps the other passkeys with the box off, on an admin's recovery link: both sign in, and the notice says to remove a lost one", async () => {
    const { person: oldDevice, userId } = await onboard(sesame, 'kept@example.com');
    const [oldPasskey] = await passkeysOf(userId);
    const { url } = (await issueRecoveryLink(sesame.db, sesame.config, userId, 'cli:test'))!;
    await untilLinkMailed(sesame.db, url);

    const { newDevice, shown, notice } = await recoverOnNewDevice(url, 'kept@example.com', false);

    expect(await passkeysOf(userId)).toHaveLength(2);
    expect(await passkeysOf(userId)).toContain(oldPasskey);
    expect(await signsIn(oldDevice)).toBe(true);
    expect(await signsIn(newDevice)).toBe(true);
    expect(shown).toBe(2);
    expect(notice.text).toContain('1 other passkey still signs in to your account');
  });

  it('refuses a removeOtherPasskeys that is not true or false with a 400, and changes nothing', async () => {
    const { person: lostDevice, userId } = await onboard(sesame, 'odd-choice@example.com');
    const url = await selfServiceLink('odd-choice@example.com');
    const path = linkPath(url);
    const newDevice = new Person(sesame.baseUrl);
    const csrf = (await newDevice.browser.request(path)).csrf();
    const options = await newDevice.browser.postJson(`${path}/options`, csrf, {});
    const credential = await newDevice.authenticator.createCredential(
      options.json(),
      newDevice.browser.origin,
    );
    const before = await rowCounts(sesame.db);

    for (const removeOtherPasskeys of ['on', 'true', 1, null, {}]) {
      const verify = await newDevice.browser.postJson(`${path}/verify`, csrf, {
        ...credential,
        removeOtherPasskeys,
      });
      expect([removeOtherPasskeys, verify.status]).toEqual([removeOtherPasskeys, 400]);
    }
    expect(await rowCounts(sesame.db)).toEqual(before);
    expect(await passkeysOf(userId)).toHaveLength(1);
    expect(await signsIn(lostDevice)).toBe(true);
    // Without the CSRF token the choice is refused too.
    const noToken = await newDevice.browser.request(`${path}/verify`, {
      json: { ...credential, removeOtherPasskeys: true },
      headers: { accept: 'application/json' },
    });
    expect(noToken.status).toBe(403);
    expect(await passkeysOf(userId)).toHaveLength(1);

    // The link still works with a proper choice.
    const verify = await newDevice.browser.postJson(`${path}/verify`, csrf, {
      ...credential,
      removeOtherPasskeys: true,
    });
    expect(verify.status).toBe(200);
    expect(await passkeysOf(userId)).toEqual([credential.id]);
  });
});
