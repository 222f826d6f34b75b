import type Router from '@koa/router';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { Context } from 'koa';
import { errors, type InteractionResults } from 'oidc-provider';
import { z } from 'zod';
import { resendWelcomeMail } from '../../accounts/emailVerification.js';
import { createAccountWithPasskey, emailTaken } from '../../accounts/signup.js';
import { blockingClones } from '../../accounts/suspectedClone.js';
import { credentialsQueries } from '../../db/queries/credentials.js';
import type { StoreCondition } from '../../db/queries/oidcModels.js';
import { usersQueries } from '../../db/queries/users.js';
import type { User } from '../../db/schema.js';
import type { Translator } from '../../i18n/catalog.js';
import { countResult, signIns, signUps } from '../../metrics.js';
import { ACCOUNT_CLIENT_ID } from '../../oidc/accountClient.js';
import { readFromMemory, storeChallengeWithRead, takeChallengeWithRead } from '../../oidc/challengeOnRead.js';
import {
  expiredSignInWords,
  wayBackFromExpiredSignIn,
  wayBackFromFinishedSignIn,
} from '../../oidc/expiredSignIn.js';
import { saveGrantIf } from '../../oidc/grantSaves.js';
import { consentGrantId } from '../../oidc/grants.js';
import { NO_ACCESS_PROMPT, VERIFY_EMAIL_PROMPT } from '../../oidc/groupAccess.js';
import { storeWritesIf } from '../../oidc/heldWrites.js';
import { loginResult, settleLoginInteraction } from '../../oidc/loginResult.js';
import { type ConsentDetails, resourcesToConsent } from '../../oidc/resourceConsent.js';
import { interactionBinding } from '../../oidc/storedIds.js';
import { addressKey } from '../../text.js';
import {
  checkAssertion,
  checkPasskeyAssertion,
  checkTakenAssertion,
  passkeyAmr,
  passkeyRequestOptions,
} from '../../webauthn/authentication.js';
import { challengeExpiresAt, challengeNamedIn } from '../../webauthn/challenge.js';
import { verificationFailed } from '../../webauthn/errors.js';
import { relyingPartyFor } from '../../webauthn/policy.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../webauthn/registration.js';
import { conflict, HttpError, notFound } from '../errors.js';
import { parseBodies } from '../middleware/bodies.js';
import { wantsJson } from '../middleware/errors.js';
import { localeOf, rememberLanguageChoice } from '../middleware/language.js';
import {
  keyedRateLimit,
  rateLimitKey,
  SIGNUP_ATTEMPTS_PER_ADDRESS_AND_IP,
  SIGNUP_ATTEMPTS_PER_IP,
  WELCOME_RESENDS_PER_ADDRESS,
} from '../middleware/rateLimit.js';
import { allowImagesFrom } from '../middleware/securityHeaders.js';
import { sesameRouter } from '../router.js';
import {
  authenticationResponseSchema,
  displayNameSchema,
  emailSchema,
  parseBody,
  registrationResponseSchema,
} from '../schemas.js';
import type { Services } from '../services.js';
import { pageText, sendPage, sendSlottedPage } from '../views.js';
import { describeConsent } from './scopeDescriptions.js';

/** The interaction model instance the provider hands out (its class is not exported). */
type Interaction = Awaited<ReturnType<Services['provider']['interactionDetails']>>;

const signupStartSchema = z.object({ email: emailSchema, name: displayNameSchema.optional() });
const consentSchema = z.object({ decision: z.enum(['allow', 'deny']), _csrf: z.string() });

/** What stands for the app on a sign-in's pages: its own name, or the catalog's words for none. */
type ClientNameKind = 'own' | 'theApplication' | 'yourAccount';

/** Raised when the interaction cookie is missing or the interaction has expired. */
const interactionExpired = () =>
  new HttpError(
    400,
    'interaction_expired',
    'This sign-in has expired or was already completed. Go back to the app you came from and sign in again.',
  ).localized('errors.interactionExpired');

/**
 * The OIDC login step: sign-in with a passkey, sign-up with a new passkey, and consent.
 * Each ceremony's challenge is bound to the interaction uid, which the provider in turn
 * binds to this browser by its interaction cookie.
 */
export function interactionRoutes({
  config,
  db,
  log,
  provider,
  csrf,
  rateLimit,
  hits,
  caches,
}: Services): Router {
  const router = sesameRouter({ prefix: '/interaction/:uid' }, parseBodies(), csrf.protect());
  const rp = relyingPartyFor(config);
  const signupOpen = config.signup !== 'invite';
  const limited = config.rateLimitPerMinute > 0;
  const countSignupOfAddressFromIp = keyedRateLimit(SIGNUP_ATTEMPTS_PER_ADDRESS_AND_IP, hits, limited);
  const countSignupFromIp = keyedRateLimit(SIGNUP_ATTEMPTS_PER_IP, hits, limited);
  const countResend = keyedRateLimit(WELCOME_RESENDS_PER_ADDRESS, hits, limited);

  async function loadInteraction(ctx: Context) {
    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== ctx.params.uid) throw interactionExpired();
      // The app's ui_locales outranks the browser's languages on every page and message of the sign-in.
      ctx.state.locale = localeOf(ctx, config, { uiLocales: details.params.ui_locales });
      return details;
    } catch (error) {
      // Only an interaction the provider cannot find for this browser (no cookie, expired,
      // ended) is an expired sign-in. Anything else is what it is: a database that cannot
      // answer was told as "expired" and never logged, and so was a read refusing odd input.
      if (error instanceof errors.SessionNotFound) throw await expiredSignIn(ctx);
      throw error;
    }
  }

  /**
   * An expired or finished sign-in's error, whose page links back to its app while Sesame knows
   * which, or, a device's sign-in's, to /device for a new code (expiredSignIn.ts).
   */
  async function expiredSignIn(ctx: Context): Promise<HttpError> {
    const expired = interactionExpired();
    // A script (the passkey button) reloads the page, which then shows the way back.
    if (wantsJson(ctx)) return expired;
    // A finished sign-in's app is in this browser's cookie; an expired one's in its row, kept a while.
    const uid = String(ctx.params.uid);
    const way =
      (await wayBackFromFinishedSignIn(ctx, config, provider, uid)) ??
      (await wayBackFromExpiredSignIn(db, provider, uid));
    const { messageKey, back } = expiredSignInWords(way, pageText(ctx).t);
    expired.localized(messageKey).back = back;
    return expired;
  }

  /**
   * Whether the interaction still waits at the login prompt for a sign-in or sign-up: once one
   * finished, its result is stored and the prompt is still `login` until the browser returns
   * to the authorization. A second sign-up there made a second account, and the result named it.
   * Sign-ups that read it at once are settled where the account is created (signUpWithPasskey).
   */
  const waitsForLogin = (interaction: Interaction) =>
    interaction.prompt.name === 'login' && interaction.result === undefined;

  /**
   * The app a sign-in is for, as its pages name it: its name, else "the application", or
   * "your account" for the account page's own sign-in. `nameKind` says which, for sentences
   * that cannot take the stand-in as they take a name (one that begins with it, the sign-up's).
   */
  async function clientFor(ctx: Context, clientId: unknown) {
    const client = typeof clientId === 'string' ? await provider.Client.find(clientId) : undefined;
    const own = clientId === ACCOUNT_CLIENT_ID ? undefined : client?.clientName;
    const nameKind: ClientNameKind = own
      ? 'own'
      : clientId === ACCOUNT_CLIENT_ID
        ? 'yourAccount'
        : 'theApplication';
    return {
      name: own || pageText(ctx).t(`common.${nameKind}`),
      nameKind,
      logo: client?.logoUri as string | undefined,
    };
  }

  /**
   * The account of the provider session this sign-in runs in, if any; its stored language
   * then comes after the app's ui_locales and before the browser's.
   */
  async function sessionAccount(ctx: Context, interaction: Interaction) {
    const account = interaction.session && (await usersQueries.findById(db, interaction.session.accountId));
    if (account?.locale) {
      ctx.state.locale = localeOf(ctx, config, {
        uiLocales: interaction.params.ui_locales,
        stored: account.locale,
      });
    }
    return account;
  }

  /**
   * Records the sign-in on the interaction this request already loaded and tells the page
   * where to go next. It is what provider.interactionResult does (without merging earlier
   * submissions), minus reading the interaction again: one round trip less per sign-in.
   */
  async function finishLogin(
    ctx: Context,
    interaction: Interaction,
    account: Pick<User, 'id' | 'locale' | 'signup_locale'>,
    result: InteractionResults,
    passkeyUse?: StoreCondition,
  ) {
    if (!(await finishLoginIf(ctx, interaction, account, result, passkeyUse))) throw verificationFailed();
  }

  /**
   * {@link finishLogin}, answering false (nothing stored, nothing sent) where the passkey's
   * use could not be recorded: the sign-in's statement stores the passkey's use and the
   * sign-in together, so a sign-in is saved only with its passkey's counter moved on, and an
   * assertion that lost the race to a newer one saves nothing.
   */
  async function finishLoginIf(
    ctx: Context,
    interaction: Interaction,
    account: Pick<User, 'id' | 'locale' | 'signup_locale'>,
    result: InteractionResults,
    passkeyUse?: StoreCondition,
  ): Promise<boolean> {
    interaction.result = result;
    const save = () => interaction.save(interaction.exp - Math.floor(Date.now() / 1000)).then(() => {});
    if (!passkeyUse) await save();
    else if (!(await storeWritesIf(db, passkeyUse, save))) return false;
    // This browser now speaks the language this person chose, or none if they chose none
    // (someone else may have signed in here before).
    rememberLanguageChoice(ctx, account.locale, config);
    // The language of this sign-in's page is the one mails sent outside the person's requests
    // use when they chose none (mailLocale): written only when it changed, rarely.
    const spoken = ctx.state.locale;
    if (spoken && account.signup_locale !== spoken)
      await usersQueries.recordSignInLocale(db, account.id, spoken);
    ctx.body = { redirect: interaction.returnTo };
    return true;
  }

  /**
   * Options for a discoverable (usernameless) sign-in: the authenticator offers every passkey
   * it holds for this RP. The challenge is stored by the statement that reads the request's
   * interaction, only if it is the one in the path and waits at the login prompt
   * (challengeOnRead.ts).
   */
  async function signInOptions(ctx: Context) {
    const options = await passkeyRequestOptions(rp, []);
    const { value: interaction, stored } = await storeChallengeWithRead(
      {
        prompt: 'login',
        challenge: options.challenge,
        purpose: 'login',
        binding: interactionBinding(ctx.params.uid!),
        expiresAt: challengeExpiresAt(),
      },
      () => loadInteraction(ctx),
    );
    return { interaction, options: interaction.prompt.name === 'login' && stored ? options : undefined };
  }

  /**
   * {@link signInOptions} for the login page: its first view on the instance that stored the
   * interaction comes from memory with the challenge stored beside it (freshSignIns.ts),
   * without a statement; any other view reads the interaction and stores a new challenge.
   */
  async function pageSignInOptions(ctx: Context) {
    const fresh = caches.freshSignIns.take(ctx.params.uid!);
    if (!fresh) return signInOptions(ctx);
    const options = await passkeyRequestOptions(rp, [], undefined, fresh.challenge);
    const interaction = await readFromMemory(interactionBinding(ctx.params.uid!), fresh.payload, () =>
      loadInteraction(ctx),
    );
    return { interaction, options: interaction.prompt.name === 'login' ? options : undefined };
  }

  // Rate limited as the options step is: a view of the login page stores a challenge.
  router.get('/', rateLimit, async (ctx) => {
    // The login page comes with the options of its passkey autofill, so the browser can offer
    // the person's passkeys without a request of its own first (src/client/login.ts).
    const { interaction, options } = await pageSignInOptions(ctx);
    const account = await sessionAccount(ctx, interaction);
    const client = await clientFor(ctx, interaction.params.client_id);
    const uid = interaction.uid;
    const text = pageText(ctx);
    // Every interaction page holds a CSRF token, and a challenge or the signed-in account's
    // email: no cache may keep it for a later view.
    ctx.set('Cache-Control', 'no-store');
    if (interaction.prompt.name === 'login') {
      // The page's words are the same for every sign-in at this app in this language: rendered once (views.ts).
      const perRequest = {
        uid,
        csrf: csrf.token(ctx),
        ...(options && { passkeyOptions: JSON.stringify(options) }),
      };
      sendSlottedPage(
        ctx,
        'login',
        {
          title: text.t('login.title'),
          script: 'login',
          client,
          signupOpen,
          selfRecovery: config.selfRecovery,
        },
        perRequest,
      );
      return;
    }
    if (interaction.prompt.name === 'consent') {
      // The person sees which account they would share: a shared computer may hold someone else's session.
      if (!account) throw interactionExpired();
      sendPage(ctx, 'consent', {
        title: text.t('consent.title'),
        csrf: csrf.token(ctx),
        uid,
        client: { ...client, logo: allowImagesFrom(ctx, client.logo) },
        account: { email: account.email },
        scopes: await describeConsent(db, interaction, text),
      });
      return;
    }
    if (interaction.prompt.name === VERIFY_EMAIL_PROMPT) {
      await renderVerifyEmail(ctx, interaction, false);
      return;
    }
    if (interaction.prompt.name === NO_ACCESS_PROMPT) {
      if (!account) throw interactionExpired();
      // 403: the person is who they say, and this app is not theirs to use.
      ctx.status = 403;
      sendPage(ctx, 'no-access', {
        title: text.t('noAccess.title', { client: client.name }),
        csrf: csrf.token(ctx),
        uid,
        client,
        account: { email: account.email },
      });
      return;
    }
    throw new HttpError(400, 'unsupported_prompt', 'This sign-in step is not supported.').localized(
      'errors.unsupportedPrompt',
    );
  });

  router.get('/signup', async (ctx) => {
    if (!signupOpen) throw signupClosed();
    const interaction = await loadInteraction(ctx);
    const client = await clientFor(ctx, interaction.params.client_id);
    sendPage(ctx, 'signup', {
      title: pageText(ctx).t('signup.title'),
      csrf: csrf.token(ctx),
      script: 'signup',
      uid: interaction.uid,
      client,
    });
  });

  router.post('/login/options', rateLimit, async (ctx) => {
    const { interaction, options } = await signInOptions(ctx);
    if (!options || !waitsForLogin(interaction)) throw interactionExpired();
    ctx.body = options;
  });

  router.post('/login/verify', rateLimit, (ctx) => countResult(signIns, () => signInWithPasskey(ctx)));
  async function signInWithPasskey(ctx: Context) {
    const response = parseBody(ctx, authenticationResponseSchema);
    const challenge = challengeNamedIn(response.response.clientDataJSON);
    const binding = { purpose: 'login', binding: interactionBinding(ctx.params.uid!) };
    if (challenge !== undefined && (await signInFromMemory(ctx, response, challenge))) return;
    // The challenge is taken (with the passkey and its owner) by the statement that reads the
    // interaction, only if it is this one and waits at the login prompt (challengeOnRead.ts).
    // Client data that names no challenge takes nothing: the interaction is read on its own,
    // and its refusals come first, as for every request.
    const { value: interaction, taken } =
      challenge === undefined
        ? { value: await loadInteraction(ctx), taken: undefined }
        : await takeChallengeWithRead(
            { prompt: 'login', challenge, ...binding, credentialId: response.id },
            () => loadInteraction(ctx),
          );
    if (interaction.prompt.name !== 'login') throw interactionExpired();
    const { user, credential, use } = await blockingClones({ db, config, log, caches }, () =>
      taken
        ? checkTakenAssertion(rp, response, taken.result)
        : checkPasskeyAssertion(db, rp, response, binding),
    );
    // After the assertion's own checks, so a replayed one is still told as one.
    if (!waitsForLogin(interaction)) throw interactionExpired();
    await finishLogin(ctx, interaction, user, loginResult(user.id, passkeyAmr()), use);
    caches.passkeys.remember(credential);
    log.info('passkey sign-in', { user: user.id, credential: credential.id.slice(0, 12) });
  }

  /**
   * A sign-in checked against what this process holds, for one statement where the usual way
   * needs two: the interaction as it stored it at the login prompt (freshSignIns.ts), the
   * passkey as it last signed in here (knownPasskeys.ts), its owner from the users cache.
   * The assertion is checked as {@link checkTakenAssertion} checks it (checkAssertion), then
   * one statement takes the challenge, records the passkey's use and saves the sign-in, only
   * if the challenge is this interaction's, live and unused, and the interaction, the passkey
   * and its owner are still as checked (credentials.ts, useCheckedInMemory).
   * @returns false where anything was missing, differed, or refused: nothing was stored, and
   * the caller signs in the usual way, which gives every refusal its usual answer.
   */
  async function signInFromMemory(
    ctx: Context,
    response: AuthenticationResponseJSON,
    challenge: string,
  ): Promise<boolean> {
    const known = caches.passkeys.get(response.id);
    const user = known && caches.users.peek(known.userId);
    if (!known || !user || user.disabled_at) return false;
    const uid = ctx.params.uid!;
    const stored = caches.freshSignIns.takeAtLogin(uid);
    if (!stored) return false;
    const interactionId = interactionBinding(uid);
    let checked: { newCounter: number; backedUp: boolean; interaction: Interaction };
    try {
      const { newCounter, backedUp } = await checkAssertion(
        rp,
        response,
        challenge,
        { ...known, suspectedCloneAt: null },
        true,
      );
      const interaction = await readFromMemory(interactionId, stored.payload, () => loadInteraction(ctx));
      checked = { newCounter, backedUp, interaction };
    } catch {
      // A refusal (a counter that did not rise past the one seen here among them): the usual
      // way, with the passkey as stored, answers it.
      caches.passkeys.forget(known.id);
      return false;
    }
    const { newCounter, backedUp, interaction } = checked;
    if (!waitsForLogin(interaction)) return false;
    const use = credentialsQueries.useCheckedInMemory({
      credentialId: known.id,
      counter: newCounter,
      backupState: backedUp,
      challenge,
      interactionId,
      interactionJson: stored.json,
      userId: known.userId,
      publicKey: known.publicKey,
    });
    if (!(await finishLoginIf(ctx, interaction, user, loginResult(user.id, passkeyAmr()), use))) {
      caches.passkeys.forget(known.id);
      return false;
    }
    caches.passkeys.remember({ ...known, counter: newCounter, suspectedCloneAt: null });
    log.info('passkey sign-in', { user: user.id, credential: known.id.slice(0, 12) });
    return true;
  }

  router.post('/signup/options', rateLimit, async (ctx) => {
    if (!signupOpen) throw signupClosed();
    const body = parseBody(ctx, signupStartSchema);
    const requester = rateLimitKey(ctx.ip);
    const address = addressKey(body.email);
    await countSignupFromIp(ctx, requester);
    await countSignupOfAddressFromIp(ctx, `${requester} ${address}`);
    const interaction = await loadInteraction(ctx);
    if (!waitsForLogin(interaction)) throw interactionExpired();
    if (await emailTaken(db, body.email)) throw accountExists(pageText(ctx));
    ctx.body = await startPasskeyRegistration(
      db,
      rp,
      { userId: crypto.randomUUID(), email: body.email, displayName: body.name ?? body.email },
      { purpose: 'signup', binding: interactionBinding(interaction.uid), data: { name: body.name ?? null } },
    );
  });

  router.post('/signup/verify', rateLimit, (ctx) => countResult(signUps, () => signUpWithPasskey(ctx)));
  async function signUpWithPasskey(ctx: Context) {
    if (!signupOpen) throw signupClosed();
    const response = parseBody(ctx, registrationResponseSchema);
    const interaction = await loadInteraction(ctx);
    if (!waitsForLogin(interaction)) throw interactionExpired();
    const verified = await verifyPasskeyRegistration(db, rp, response, {
      purpose: 'signup',
      binding: interactionBinding(interaction.uid),
    });
    const { challenge } = verified;
    const result = loginResult(challenge.userId!, passkeyAmr());
    const user = await createAccountWithPasskey(
      db,
      config,
      {
        userId: challenge.userId!,
        email: String(challenge.data.email),
        name: (challenge.data.name as string | null) ?? null,
        credential: verified.credential,
        locale: ctx.state.locale,
      },
      // The account exists only with its sign-up recorded on the interaction: of sign-ups
      // racing on one interaction (each read it without a result), one creates an account.
      async (trx) => {
        if (!(await settleLoginInteraction(trx, interaction.uid, result))) throw signUpFinishedMeanwhile();
      },
    );
    if (!user) throw accountExists(pageText(ctx));
    log.info('account created', { user: user.id });
    await finishLogin(ctx, interaction, user, result);
  }

  /** SIGNUP=open-verified: the page of a signed-in person whose address is not verified yet. */
  async function renderVerifyEmail(ctx: Context, interaction: Interaction, sent: boolean) {
    const account = interaction.session && (await usersQueries.findById(db, interaction.session.accountId));
    if (!account) throw interactionExpired();
    ctx.status = 403;
    sendPage(ctx, 'verify-email', {
      title: pageText(ctx).t('verifyEmail.title'),
      csrf: csrf.token(ctx),
      uid: interaction.uid,
      client: await clientFor(ctx, interaction.params.client_id),
      account: { email: account.email },
      sent,
    });
    return account;
  }

  router.post('/verify-email/resend', async (ctx) => {
    const interaction = await loadInteraction(ctx);
    if (interaction.prompt.name !== VERIFY_EMAIL_PROMPT || !interaction.session) throw interactionExpired();
    const account = await usersQueries.findById(db, interaction.session.accountId);
    if (!account) throw interactionExpired();
    await countResend(ctx, addressKey(account.email));
    await resendWelcomeMail(db, config, account, ctx.state.locale);
    await renderVerifyEmail(ctx, interaction, true);
  });

  router.post('/consent', async (ctx) => {
    const body = parseBody(ctx, consentSchema);
    const interaction = await loadInteraction(ctx);
    if (interaction.prompt.name !== 'consent' || !interaction.session) throw interactionExpired();
    if (body.decision === 'deny') {
      await provider.interactionFinished(
        ctx.req,
        ctx.res,
        { error: 'access_denied', error_description: 'The person declined to share their account' },
        { mergeWithLastSubmission: false },
      );
      ctx.respond = false;
      return;
    }
    const details = interaction.prompt.details as ConsentDetails;
    const extended = interaction.grantId;
    const grant = extended
      ? await provider.Grant.find(extended)
      : new provider.Grant({
          accountId: interaction.session.accountId,
          clientId: String(interaction.params.client_id),
        });
    if (!grant) return askForConsentAgain(ctx);
    if (!extended) {
      const id = consentGrantId(interaction);
      if (id) grant.jti = id;
    }
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    // Each API the page named, with no scopes when it has none or none were asked for: the
    // grant then covers it, and the next request for it needs no consent.
    for (const [identifier, scopes] of resourcesToConsent(details)) {
      grant.addResourceScope(identifier, scopes.join(' '));
    }
    // The grant this page extends is changed only while it is stored (a new one is stored as
    // is): revoked since the page was shown, it stays revoked. So is the new grant an earlier
    // Allow on this page stored (its result names it), if the person revoked the app since.
    const storedBefore = !extended && interaction.result?.consent?.grantId === grant.jti;
    if (!extended && !storedBefore) await grant.save();
    else if (!(await saveGrantIf(grant, { live: true }))) return askForConsentAgain(ctx);
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { consent: { grantId: grant.jti } },
      { mergeWithLastSubmission: true },
    );
    ctx.respond = false;
  });

  /**
   * The consent page extended a grant that is gone: the person revoked the app (account page)
   * while it was shown, or the app's session ended. The page asked only for what that grant
   * lacked, so its Allow cannot stand for the rest: the sign-in goes back to the authorization,
   * which finds no grant and shows the consent page again, for everything the app asks, as
   * the next sign-in after a revoke does.
   */
  async function askForConsentAgain(ctx: Context) {
    await provider.interactionFinished(ctx.req, ctx.res, {}, { mergeWithLastSubmission: true });
    ctx.respond = false;
  }

  // A POST with the page's CSRF token: a link elsewhere cannot cancel someone's sign-in.
  router.post('/abort', async (ctx) => {
    const interaction = await loadInteraction(ctx);
    const description =
      interaction.prompt.name === NO_ACCESS_PROMPT
        ? 'The person is not in a group allowed to use this app'
        : interaction.prompt.name === VERIFY_EMAIL_PROMPT
          ? 'The person has not verified their email address yet'
          : 'The person cancelled the sign-in';
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { error: 'access_denied', error_description: description },
      { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
  });

  return router;
}

/** The sign-up's email has an account: `text` words the field's message in the person's language. */
const accountExists = (text: Translator) =>
  conflict(
    'An account with this email already exists. Sign in with its passkey instead, or ask an administrator for a recovery link.',
    { fields: { email: text.t('validation.emailTaken') } },
  ).localized('errors.accountExists');

/** Another sign-up on this sign-in finished first (the same page sent twice, or several at once). */
const signUpFinishedMeanwhile = () =>
  conflict(
    'This sign-in already created an account, so this one was not created. Go back to the app you came from and sign in again.',
  ).localized('errors.signUpFinishedMeanwhile');

const signupClosed = () =>
  notFound('Sign-up is by invitation only. Ask an administrator for a link.').localized(
    'errors.signupClosed',
  );
