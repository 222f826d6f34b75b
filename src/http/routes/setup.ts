import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import {
  findUsableSetupLink,
  redeemSetupLink,
  redeemSetupLinkWithAccount,
  SetupLinkError,
  setupChallengeBinding,
  setupSignInBinding,
} from '../../accounts/setupLink.js';
import { blockingClones } from '../../accounts/suspectedClone.js';
import { usersQueries } from '../../db/queries/users.js';
import {
  checkPasskeyAssertion,
  passkeyAmr,
  startPasskeyAuthentication,
} from '../../webauthn/authentication.js';
import { relyingPartyFor } from '../../webauthn/policy.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../webauthn/registration.js';
import { parseBodies } from '../middleware/bodies.js';
import { renderProblemPages } from '../middleware/errors.js';
import { startProviderSession } from '../providerSession.js';
import { sesameRouter } from '../router.js';
import {
  authenticationResponseSchema,
  displayNameSchema,
  emailSchema,
  parseBody,
  registrationResponseSchema,
} from '../schemas.js';
import type { Services } from '../services.js';
import { pageText, sendPage } from '../views.js';

const optionsSchema = z.object({ email: emailSchema, name: displayNameSchema.optional() });

/**
 * The first-run page at /setup/<token> (the link each start logs while no administrator
 * exists): Email, Name and "Create a passkey" make the first administrator, who is then
 * signed in and sent to /admin. The owner of an existing account instead signs in with its
 * passkey ("Sign in with a passkey", /setup/<token>/sign-in/…), and that account becomes the
 * first administrator. The token is a bearer secret, looked up by its hash and used up only
 * in the transaction that makes the administrator (see redeemSetupLink,
 * redeemSetupLinkWithAccount).
 */
export function setupRoutes(services: Services): Router {
  const { config, db, log, provider, csrf, rateLimit, brand } = services;
  const rp = relyingPartyFor(config);

  // Every request names a token: the limit also bounds how fast anyone can probe for one.
  const router = sesameRouter(
    { prefix: '/setup/:token' },
    renderProblemPages(SetupLinkError, (error, ctx) =>
      error.problem === 'admin_exists'
        ? { backUrl: '/admin', backLabel: pageText(ctx).t('error.toAdmin') }
        : undefined,
    ),
    rateLimit,
    parseBodies(),
    csrf.protect(),
  );

  router.get('/', async (ctx) => {
    const link = await findUsableSetupLink(db, ctx.params.token!);
    sendPage(ctx, 'setup', {
      title: pageText(ctx).t('setup.title'),
      csrf: csrf.token(ctx),
      script: 'link',
      expiresAt: link.expires_at.toISOString(),
      // The name the pages show (BRAND_NAME, or an admin's), like every other page.
      rpName: (await brand.current()).name,
    });
  });

  router.post('/options', async (ctx) => {
    const body = parseBody(ctx, optionsSchema);
    const link = await findUsableSetupLink(db, ctx.params.token!);
    // Said before the passkey prompt rather than after it; redeemSetupLink checks again.
    if (await usersQueries.findByEmail(db, body.email)) throw new SetupLinkError('account_exists');
    const name = body.name ?? null;
    ctx.body = await startPasskeyRegistration(
      db,
      rp,
      { userId: crypto.randomUUID(), email: body.email, displayName: name ?? body.email },
      { ...setupChallengeBinding(link), data: { email: body.email, name } },
    );
  });

  router.post('/verify', async (ctx) => {
    const response = parseBody(ctx, registrationResponseSchema);
    const token = ctx.params.token!;
    const link = await findUsableSetupLink(db, token);
    const registration = await verifyPasskeyRegistration(db, rp, response, setupChallengeBinding(link));
    const user = await redeemSetupLink(db, config, token, registration, ctx.state.locale);
    log.info('first administrator created', { user: user.id });
    await signInAsAdministrator(ctx, user.id);
  });

  // An existing account's owner proves it with one of its passkeys: a discoverable request,
  // bound to this link, under a purpose of its own (setupSignInBinding).
  router.post('/sign-in/options', async (ctx) => {
    const link = await findUsableSetupLink(db, ctx.params.token!);
    ctx.body = await startPasskeyAuthentication(db, rp, setupSignInBinding(link));
  });

  router.post('/sign-in/verify', async (ctx) => {
    const response = parseBody(ctx, authenticationResponseSchema);
    const token = ctx.params.token!;
    const link = await findUsableSetupLink(db, token);
    // Takes the challenge (single use) and checks the assertion; the passkey's use is recorded
    // in the transaction that uses the link, so a refusal there records nothing.
    const assertion = await blockingClones(services, () =>
      checkPasskeyAssertion(db, rp, response, setupSignInBinding(link)),
    );
    const user = await redeemSetupLinkWithAccount(db, config, log, token, assertion);
    services.caches.users.invalidate(user.id);
    log.info('existing account made the first administrator', { user: user.id });
    await signInAsAdministrator(ctx, user.id);
  });

  /** Signs the browser in as the new administrator, and sends the page's script to /admin. */
  async function signInAsAdministrator(ctx: Context, accountId: string): Promise<void> {
    await startProviderSession(ctx, provider, config, { accountId, amr: passkeyAmr() });
    ctx.body = { redirect: '/admin' };
  }

  return router;
}
