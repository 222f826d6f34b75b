import type Router from '@koa/router';
import { z } from 'zod';
import {
  findUsableSetupLink,
  redeemSetupLink,
  SetupLinkError,
  setupChallengeBinding,
} from '../../accounts/setupLink.js';
import { usersQueries } from '../../db/queries/users.js';
import { passkeyAmr } from '../../webauthn/authentication.js';
import { relyingPartyFor } from '../../webauthn/policy.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../webauthn/registration.js';
import { parseBodies } from '../middleware/bodies.js';
import { renderProblemPages } from '../middleware/errors.js';
import { startProviderSession } from '../providerSession.js';
import { sesameRouter } from '../router.js';
import { displayNameSchema, emailSchema, parseBody, registrationResponseSchema } from '../schemas.js';
import type { Services } from '../services.js';
import { pageText, sendPage } from '../views.js';

const optionsSchema = z.object({ email: emailSchema, name: displayNameSchema.optional() });

/**
 * The first-run page at /setup/<token> (the link each start logs while no administrator
 * exists): Email, Name and "Create a passkey" make the first administrator, who is then
 * signed in and sent to /admin. The token is a bearer secret, looked up by its hash and
 * used up only in the transaction that creates the administrator (see redeemSetupLink).
 */
export function setupRoutes({ config, db, log, provider, csrf, rateLimit, brand }: Services): Router {
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
    await startProviderSession(ctx, provider, config, {
      accountId: user.id,
      amr: passkeyAmr(),
    });
    ctx.body = { redirect: '/admin' };
  });

  return router;
}
