import type Router from '@koa/router';
import { z } from 'zod';
import {
  findUsableLink,
  LinkError,
  linkChallengeBinding,
  linkPasskeyAccount,
  redeemOneTimeLink,
} from '../../accounts/oneTimeLinks.js';
import { sendSecurityNotice } from '../../mail/notices.js';
import { passkeyAmr } from '../../webauthn/authentication.js';
import { relyingPartyFor } from '../../webauthn/policy.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../webauthn/registration.js';
import { parseBodies } from '../middleware/bodies.js';
import { renderProblemPages } from '../middleware/errors.js';
import { startProviderSession } from '../providerSession.js';
import { sesameRouter } from '../router.js';
import { displayNameSchema, parseBody, registrationResponseSchema } from '../schemas.js';
import type { Services } from '../services.js';
import { pageText, sendPage } from '../views.js';

const optionsSchema = z.object({ name: displayNameSchema.optional() });

// The new passkey, and the page's "Remove my other passkeys" (absent, as from a page without the box: keep them).
const verifySchema = registrationResponseSchema.extend({ removeOtherPasskeys: z.boolean().default(false) });

/** A QR code of the link as an SVG data: URL, so a phone can open it (the CSP allows data: images). */
async function qrDataUrl(url: string): Promise<string> {
  // Loaded with the first link page, not at start.
  const { default: QRCode } = await import('qrcode');
  const svg = await QRCode.toString(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
}

/**
 * One-time links (`sesame users invite`, admin recovery links): the page at /link/<token>
 * registers a passkey for the invited email or the account being recovered, then signs the
 * person in. The token is a bearer secret: it is looked up by its hash, cut out of every log
 * line by the logger (see redactUrl), and used up only in the transaction that stores the
 * new passkey.
 */
export function linkRoutes({ config, db, log, provider, csrf, rateLimit, caches, brand }: Services): Router {
  const rp = relyingPartyFor(config);

  // Every request names a token: the limit also bounds how fast anyone can probe for one.
  const router = sesameRouter(
    { prefix: '/link/:token' },
    renderProblemPages(LinkError, (error, ctx) =>
      error.selfService && config.selfRecovery
        ? { backUrl: '/recover', backLabel: pageText(ctx).t('link.askAgain') }
        : undefined,
    ),
    rateLimit,
    parseBodies(),
    csrf.protect(),
  );

  router.get('/', async (ctx) => {
    const { link, user } = await findUsableLink(db, ctx.params.token!);
    const url = `${config.issuer}/link/${ctx.params.token}`;
    sendPage(ctx, 'link', {
      title: pageText(ctx).t(user ? 'link.recoveryTitle' : 'link.inviteTitle'),
      csrf: csrf.token(ctx),
      script: 'link',
      recovery: Boolean(user),
      // Someone else may hold passkeys for this unproven email: they go when the link is used.
      takeover: Boolean(user && !user.email_verified),
      // A recovery link is used because a device was lost: its passkey goes unless the person
      // keeps it (an admin's link too: someone who still has a passkey adds one on /account).
      offerRemoval: Boolean(user?.email_verified),
      email: user?.email ?? link.email,
      name: user?.name ?? null,
      expiresAt: link.expires_at.toISOString(),
      qr: await qrDataUrl(url),
      // The name the pages show (BRAND_NAME, or an admin's), like every other page.
      rpName: (await brand.current()).name,
    });
  });

  router.post('/options', async (ctx) => {
    const body = parseBody(ctx, optionsSchema);
    const { link, user } = await findUsableLink(db, ctx.params.token!);
    // The name of an account whose email nobody proved yet is not kept (see confirmEmailOwner).
    const name = user?.email_verified ? user.name : (body.name ?? null);
    // Which account the passkey is for: the one named may be gone or proven when it comes back.
    const { userId, data } = linkPasskeyAccount(user);
    ctx.body = await startPasskeyRegistration(
      db,
      rp,
      { userId, email: user?.email ?? link.email, displayName: name ?? user?.email ?? link.email },
      { ...linkChallengeBinding(link), data: { name, ...data } },
    );
  });

  router.post('/verify', async (ctx) => {
    const { removeOtherPasskeys, ...response } = parseBody(ctx, verifySchema);
    const token = ctx.params.token!;
    const { link } = await findUsableLink(db, token);
    const registration = await verifyPasskeyRegistration(db, rp, response, linkChallengeBinding(link));
    const { user, otherPasskeys, signIn, takenOverFrom } = await redeemOneTimeLink(
      db,
      token,
      registration,
      ctx.state.locale ?? config.defaultLocale,
      { removeOtherPasskeys },
    );
    // Seen at once here, without waiting for the change notice (or when notices are lost).
    caches.users.invalidate(user.id);
    if (takenOverFrom) caches.users.invalidate(takenOverFrom);
    log.info('one-time link used', { link: link.id, purpose: link.purpose, user: user.id });
    if (link.purpose === 'recovery') {
      await sendSecurityNotice(db, config, log, user, 'recovery_used', {
        locale: ctx.state.locale,
        otherPasskeys,
      });
    }
    // Not when the account was revoked again or disabled while the link's revocation was waited
    // out: the account page then asks for the new passkey.
    if (signIn) {
      await startProviderSession(ctx, provider, config, {
        accountId: user.id,
        amr: passkeyAmr(),
      });
    }
    // An administrator's invite opens the admin pages, as the setup link does; a recovery goes
    // to the account, where the passkeys it is about are.
    const adminInvite = signIn && link.purpose === 'invite' && link.grant_admin && user.is_admin;
    ctx.body = { redirect: adminInvite ? '/admin' : '/account' };
  });

  return router;
}
