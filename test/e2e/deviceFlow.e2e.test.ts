import * as oidc from 'openid-client';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { browserScenario } from '../support/browserScenario.js';
import { describeBrowser } from '../support/chromium.js';

describeBrowser('a TV signs in while a person approves in Chromium (device authorization grant)', () => {
  // The scenario checks after the test that every page, the provider's self-submitting code
  // form too, ran under the strict CSP.
  const scenario = browserScenario({ stepTimeout: 10_000 });

  it('opens verification_uri_complete, checks the code, signs up with a passkey, allows, and the TV gets tokens', async () => {
    const { sesame } = scenario;
    const { client } = await createClient(
      sesame.db,
      { name: 'Living Room TV', public: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    // The TV: openid-client, as a real device app would use it.
    const tv = await oidc.discovery(new URL(sesame.baseUrl), client.client_id, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks],
    });
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid email profile' });
    const tokens = oidc.pollDeviceAuthorizationGrant(tv, { ...started, interval: 0.5 });

    // The person: scans the QR code the TV shows, i.e. opens the complete URI.
    const { page } = await scenario.device();
    await page.goto(started.verification_uri_complete!);
    await page.getByRole('heading', { name: 'Sign in to Living Room TV?' }).waitFor();
    expect(await page.getByLabel('Code').textContent()).toBe(started.user_code);
    await page.screenshot({ path: '/tmp/sesame-device-confirm.png', fullPage: true });
    await page.getByRole('button', { name: 'Continue' }).click();

    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill('viewer@example.com');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.getByRole('heading', { name: 'Your device is signed in' }).waitFor();

    const answer = await tokens;
    expect(answer.claims()).toMatchObject({ email: 'viewer@example.com', aud: client.client_id });
  });
});
