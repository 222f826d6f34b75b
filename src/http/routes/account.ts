import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { z } from 'zod';
import {
  listConnectedApps,
  revokeConnectedApp,
  revokeDeviceSignIn,
  signOutEverywhere,
} from '../../accounts/connectedApps.js';
import { resendWelcomeMail } from '../../accounts/emailVerification.js';
import {
  addPasskey,
  assertDeletable,
  assertRoomForPasskey,
  deletePasskey,
  listPasskeys,
  PASSKEY_NAME_MAX,
  recordStepUp,
  renamePasskey,
} from '../../accounts/passkeys.js';
import { updateProfileLocale, updateProfileName } from '../../accounts/profile.js';
import { maySignInAfterRevocation } from '../../accounts/revocation.js';
import { blockingClones } from '../../accounts/suspectedClone.js';
import { translatorFor } from '../../i18n/catalog.js';
import { type Locale, SUPPORTED_LOCALES } from '../../i18n/locales.js';
import { sendSecurityNotice } from '../../mail/notices.js';
import { addressKey, isVisibleText } from '../../text.js';
import { startPasskeyAuthentication, verifyPasskeyAssertion } from '../../webauthn/authentication.js';
import { challengeInvalid } from '../../webauthn/errors.js';
import { relyingPartyFor } from '../../webauthn/policy.js';
import {
  startPasskeyRegistration,
  userHandleFor,
  verifyPasskeyRegistration,
} from '../../webauthn/registration.js';
import { badRequest, conflict, HttpError } from '../errors.js';
import { parseBodies } from '../middleware/bodies.js';
import { wantsJson } from '../middleware/errors.js';
import { rememberLanguageChoice } from '../middleware/language.js';
import {
  ACCOUNT_CHANGES_PER_ACCOUNT,
  keyedRateLimit,
  WELCOME_RESENDS_PER_ADDRESS,
} from '../middleware/rateLimit.js';
import { requireSignIn, requireStepUp, type SignedIn } from '../middleware/session.js';
import { startProviderSession } from '../providerSession.js';
import { sesameRouter } from '../router.js';
import {
  authenticationResponseSchema,
  displayNameSchema,
  noControlCharacters,
  parseBody,
  registrationResponseSchema,
} from '../schemas.js';
import type { Services } from '../services.js';
import { pageText, sendPage } from '../views.js';
import { describeScopes } from './scopeDescriptions.js';

// The messages are catalog keys (locales/*.json, `validation`): see src/http/schemas.ts.
// An empty name removes it, as sign-up takes none: pages and tokens then use the address.
const profileSchema = z.object({ name: displayNameSchema });
const renameSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, { message: 'validation.passkeyNameEmpty' })
    .max(PASSKEY_NAME_MAX, { message: 'validation.passkeyNameTooLong' })
    .refine(...noControlCharacters)
    // Zero-width characters alone name nothing: a blank row on the account page and "()" in the notice mail.
    .refine(isVisibleText, { message: 'validation.passkeyNameEmpty' }),
});
/** The account page's language choice: a supported code, or empty for "as my browser asks". */
const localeSchema = z.object({
  locale: z.enum(['', ...SUPPORTED_LOCALES], { message: 'validation.languageChoice' }),
});

/** The languages the picker offers, each named in its own language (the catalogs' `languageName`). */
const LANGUAGES = SUPPORTED_LOCALES.map((code) => ({ code, name: translatorFor(code).t('languageName') }));

// Credential ids are base64url (WebAuthn L3 §5.1: at most 1023 bytes); client ids are ours.
const CREDENTIAL_ID = /^[A-Za-z0-9_-]{1,1366}$/;
const CLIENT_ID = /^[A-Za-z0-9._~-]{1,200}$/;
/** A grant's id: the provider's (nanoid) or a consent page's (a SHA-256, base64url). */
const GRANT_ID = /^[A-Za-z0-9_-]{1,100}$/;

/** Step-up and add-passkey ceremonies are bound to the provider session they run in. */
const STEP_UP = 'step-up';
const ADD_PASSKEY = 'account-passkey';

function signedIn(ctx: Context): SignedIn {
  return ctx.state.signedIn!;
}

function param(ctx: Context, name: string, shape: RegExp): string {
  const value = ctx.params[name];
  if (typeof value !== 'string' || !shape.test(value)) {
    throw badRequest(`Malformed ${name}`).localized('errors.malformedRequest');
  }
  return value;
}

/** The language the person picked; null for "as my browser asks". */
function parseLocaleChoice(ctx: Context): Locale | null {
  try {
    const { locale } = parseBody(ctx, localeSchema);
    return locale === '' ? null : locale;
  } catch (error) {
    throw error instanceof HttpError ? error.localized('errors.unknownLanguage') : error;
  }
}

/** A script gets JSON; a plain form post goes back to the account page (303: see other). */
function respond(ctx: Context, json: Record<string, unknown>, redirect = '/account') {
  if (wantsJson(ctx)) {
    ctx.body = json;
    return;
  }
  ctx.status = 303;
  ctx.redirect(redirect);
}

/**
 * A plain form post of the account page (Revoke, Send a confirmation link, Save language,
 * Sign out everywhere) that is refused replaces the page with an error page; one sent from a
 * tab left open while another tab changed the account (the app already revoked, the address
 * already confirmed) is the usual case. That page links back to the account, which the
 * person would otherwise have to find by typing its address.
 */
async function backToAccount(ctx: Context, next: Next) {
  try {
    await next();
  } catch (error) {
    if (error instanceof HttpError && error.status < 500 && ctx.method === 'POST' && !wantsJson(ctx)) {
      error.back ??= { url: '/account', label: pageText(ctx).t('emailVerified.backLabel') };
    }
    throw error;
  }
}

/**
 * The account page: profile, passkeys (add with step-up, rename, delete with step-up),
 * connected apps, and signing out everywhere. Every change is CSRF-protected.
 */
export function accountRoutes({
  config,
  db,
  log,
  provider,
  csrf,
  rateLimit,
  hits,
  caches,
}: Services): Router {
  const router = sesameRouter({}, backToAccount);
  const rp = relyingPartyFor(config);
  const signIn = requireSignIn(provider, db, config);
  const body = [parseBodies(), csrf.protect()];
  // Counted with the sign-in's "Send the link again" (SIGNUP=open-verified): one limit per address.
  const countResend = keyedRateLimit(WELCOME_RESENDS_PER_ADDRESS, hits, config.rateLimitPerMinute > 0);
  // A change is counted against the client IP first (`rateLimit`), then, once signed in and
  // past the CSRF check (a forged post from another site must not use up the person's
  // changes), against the account, whichever addresses it posts from. What protects the
  // account (a passkey's deletion, an app's or device's revocation) is counted per IP only,
  // and signing out everywhere not at all: someone holding a stolen sign-in could otherwise
  // use up the account's count and keep its owner from throwing them out.
  const countChange = keyedRateLimit(ACCOUNT_CHANGES_PER_ACCOUNT, hits, config.rateLimitPerMinute > 0);
  const change = [
    rateLimit,
    signIn,
    ...body,
    async (ctx: Context, next: Next) => {
      await countChange(ctx, signedIn(ctx).user.id);
      await next();
    },
  ];
  const protection = [rateLimit, signIn, ...body];

  // Signing out from /account ends at `/`: the account page is Sesame's home page.
  router.get('/', (ctx) => ctx.redirect('/account'));

  router.get('/account', signIn, async (ctx) => {
    const { user } = signedIn(ctx);
    const [passkeys, apps] = await Promise.all([listPasskeys(db, user.id), listConnectedApps(db, user.id)]);
    const text = pageText(ctx);
    sendPage(ctx, 'account', {
      title: text.t('account.title'),
      csrf: csrf.token(ctx),
      script: 'account',
      user,
      rpId: config.rpId,
      userHandle: Buffer.from(userHandleFor(user.id)).toString('base64url'),
      passkeys,
      // What each app may do, in the words the consent page asked with.
      apps: apps.map((app) => ({
        ...app,
        permissions: describeScopes(app.scopes.length > 0 ? app.scopes : ['openid'], text),
        // The app's browser entry says that its devices, listed below it, stay signed in.
        hasDevices: !app.device && apps.some((other) => other.device && other.clientId === app.clientId),
      })),
      nameMax: PASSKEY_NAME_MAX,
      languages: LANGUAGES,
      mail: config.mail !== undefined,
      verificationSent: ctx.query.verification === 'sent' && !user.email_verified,
    });
  });

  // A new link to confirm the address, for one whose welcome link expired or never came: only
  // to the signed-in account's own address, which the link then verifies in this browser.
  router.post('/account/verify-email', rateLimit, signIn, ...body, async (ctx) => {
    const { user } = signedIn(ctx);
    if (user.email_verified) {
      throw conflict('Your email address is already confirmed').localized('account.alreadyConfirmed');
    }
    if (!config.mail) {
      throw new HttpError(409, 'mail_not_configured', 'This server sends no mail').localized(
        'account.verificationNoMail',
      );
    }
    await countResend(ctx, addressKey(user.email));
    await resendWelcomeMail(db, config, user, ctx.state.locale);
    respond(ctx, { sent: true, email: user.email }, '/account?verification=sent');
  });

  // A plain form post (the page works without script); the next page is in the chosen language.
  router.post('/account/language', ...change, async (ctx) => {
    const user = await updateProfileLocale(db, signedIn(ctx).user.id, parseLocaleChoice(ctx));
    caches.users.invalidate(user.id);
    rememberLanguageChoice(ctx, user.locale, config);
    respond(ctx, { locale: user.locale });
  });

  router.post('/account/profile', ...change, async (ctx) => {
    const { name } = parseBody(ctx, profileSchema);
    const user = await updateProfileName(db, signedIn(ctx).user.id, name);
    caches.users.invalidate(user.id);
    respond(ctx, { name: user.name, email: user.email });
  });

  router.post('/account/step-up/options', rateLimit, signIn, ...body, async (ctx) => {
    const { user, sessionUid } = signedIn(ctx);
    ctx.body = await startPasskeyAuthentication(db, rp, {
      purpose: STEP_UP,
      binding: sessionUid,
      userId: user.id,
    });
  });

  router.post('/account/step-up/verify', rateLimit, signIn, ...body, async (ctx) => {
    const response = parseBody(ctx, authenticationResponseSchema);
    const { user, sessionUid } = signedIn(ctx);
    // The challenge names this user, so the verifier accepts only one of their own passkeys.
    const verified = await blockingClones({ db, config, log, caches }, () =>
      verifyPasskeyAssertion(db, rp, response, { purpose: STEP_UP, binding: sessionUid }),
    );
    if (verified.user.id !== user.id) throw challengeInvalid();
    await recordStepUp(db, sessionUid, user.id);
    ctx.body = { ok: true };
  });

  // Whether this session's step-up still counts: pages whose forms need one ask first
  // (200, or 403 step_up_required), so a plain form post is never refused halfway.
  router.post('/account/step-up/status', signIn, ...body, requireStepUp(db), (ctx) => {
    ctx.body = { ok: true };
  });

  router.post('/account/passkeys/options', rateLimit, signIn, ...body, requireStepUp(db), async (ctx) => {
    const { user, sessionUid } = signedIn(ctx);
    await assertRoomForPasskey(db, user.id);
    ctx.body = await startPasskeyRegistration(
      db,
      rp,
      { userId: user.id, email: user.email, displayName: user.name ?? user.email },
      { purpose: ADD_PASSKEY, binding: sessionUid },
    );
  });

  router.post('/account/passkeys/verify', rateLimit, signIn, ...body, requireStepUp(db), async (ctx) => {
    const response = parseBody(ctx, registrationResponseSchema);
    const { user, sessionUid, loginTs } = signedIn(ctx);
    const registration = await verifyPasskeyRegistration(db, rp, response, {
      purpose: ADD_PASSKEY,
      binding: sessionUid,
    });
    if (registration.challenge.userId !== user.id) throw challengeInvalid();
    const passkey = await addPasskey(
      db,
      { userId: user.id, sessionUid, loginTs },
      registration,
      ctx.state.locale ?? config.defaultLocale,
    );
    log.info('passkey added', { user: user.id, credential: passkey.id.slice(0, 12) });
    await sendSecurityNotice(db, config, log, user, 'passkey_added', {
      passkeyName: passkey.name,
      locale: ctx.state.locale,
    });
    ctx.body = { passkey };
  });

  router.post('/account/passkeys/:id/rename', ...change, async (ctx) => {
    const id = param(ctx, 'id', CREDENTIAL_ID);
    const { name } = parseBody(ctx, renameSchema);
    await renamePasskey(db, signedIn(ctx).user.id, id, name);
    respond(ctx, { id, name });
  });

  router.post('/account/passkeys/:id/delete', ...protection, async (ctx) => {
    const id = param(ctx, 'id', CREDENTIAL_ID);
    const { user, sessionUid, loginTs, amr } = signedIn(ctx);
    // Refuse the last passkey before asking for a step-up that could not help; the step-up
    // and the sign-in are checked where the passkey is deleted, under the account row.
    await assertDeletable(db, user.id, id);
    const { remaining, name, signInsEndedAt } = await deletePasskey(
      db,
      { userId: user.id, sessionUid, loginTs },
      id,
    );
    // Every sign-in of the account ended with the passkey; this browser proved a passkey in
    // its step-up (step-ups do not record which) and is signed in again, in a later second
    // than the revocation, unless the account was revoked again or disabled meanwhile.
    caches.models.forgetAll();
    if (await maySignInAfterRevocation(db, user.id, signInsEndedAt)) {
      await startProviderSession(ctx, provider, config, { accountId: user.id, amr: amr ?? [] });
    }
    log.info('passkey deleted', { user: user.id, credential: id.slice(0, 12) });
    await sendSecurityNotice(db, config, log, user, 'passkey_removed', {
      passkeyName: name,
      locale: ctx.state.locale,
    });
    // The page's "You have N passkeys." in its language, for the script to put in place.
    ctx.body = { remaining, count: pageText(ctx).t('account.passkeyCount', { count: remaining.length }) };
  });

  router.post('/account/apps/:clientId/revoke', ...protection, async (ctx) => {
    const clientId = param(ctx, 'clientId', CLIENT_ID);
    await revokeConnectedApp(db, signedIn(ctx).user.id, clientId);
    // The app's tokens and grant stop working here at once; other instances hear the notices.
    caches.models.forgetAll();
    respond(ctx, { revoked: clientId });
  });

  // One device's sign-in to an app (RFC 8628), listed on its own: the app's others stay.
  router.post('/account/apps/:clientId/devices/:grantId/revoke', ...protection, async (ctx) => {
    const clientId = param(ctx, 'clientId', CLIENT_ID);
    await revokeDeviceSignIn(db, signedIn(ctx).user.id, clientId, param(ctx, 'grantId', GRANT_ID));
    caches.models.forgetAll();
    respond(ctx, { revoked: clientId, device: true });
  });

  router.post('/account/sign-out-everywhere', signIn, ...body, async (ctx) => {
    const { user } = signedIn(ctx);
    const ended = await signOutEverywhere(db, user.id, { loginTs: signedIn(ctx).loginTs });
    caches.models.forgetAll();
    log.info('signed out everywhere', { user: user.id, sessions: ended });
    respond(ctx, { redirect: '/' }, '/');
  });

  return router;
}
