import type { JWK } from 'jose';
import type { Context, Next } from 'koa';
import Provider, { type Configuration, errors, type KoaContextWithOIDC } from 'oidc-provider';
import providerRequests from 'oidc-provider/lib/helpers/als.js';
import providerInternals from 'oidc-provider/lib/helpers/weak_cache.js';
import { CLAIMS_BY_SCOPE, CUSTOM_CLAIMS, createFindAccount } from '../accounts/claims.js';
import type { Config } from '../config.js';
import { cookieNames } from '../cookieNames.js';
import { secretMatchesHash } from '../crypto.js';
import type { Db } from '../db/connect.js';
import type { GroupedUpserts } from '../db/groupedUpserts.js';
import { backchannelDeliveriesQueries } from '../db/queries/backchannelDeliveries.js';
import { clientsQueries } from '../db/queries/clients.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { usersQueries } from '../db/queries/users.js';
import type { CookieSigner } from '../http/cookieSigner.js';
import { localeOf, type PageLanguageConfig } from '../http/middleware/language.js';
import { pageText, sendPage } from '../http/views.js';
import { SUPPORTED_LOCALES } from '../i18n/locales.js';
import { localeFromUiLocales } from '../i18n/negotiate.js';
import type { Logger } from '../logger.js';
import { grantTypeLabel, tokenGrants } from '../metrics.js';
import { accountClientMetadata, shownClientName, signOutConfirmed } from './accountClient.js';
import { createAdapter } from './adapter.js';
import {
  replaceAccountSwitchSignOut,
  sendFormPostAnswersAsPages,
  sendSessionlessSignOutAsPage,
} from './autoSubmitPages.js';
import { wakeBackchannelOutboxes } from './backchannelOutbox.js';
import { type ClientAuthBackoff, StoredSecrets } from './clientAuthBackoff.js';
import { leavePersonScopesOutForClients, PERSON_SCOPES } from './clientCredentials.js';
import { DEVICE_CODE_GRANT, redirectUriAllowed } from './clients.js';
import {
  deviceFlowPages,
  isDeviceApproval,
  isDeviceOnlyApp,
  keepDeviceApprovals,
  keepDeviceFormTokens,
  leaveBrowserSessionAsItWas,
  takeCodesFromLinks,
} from './deviceFlow.js';
import { throttleDevicePolling } from './devicePolling.js';
import { rememberFinishedSignIn } from './expiredSignIn.js';
import { createLoadExistingGrant } from './grants.js';
import { interactionPolicyWithGroupAccess } from './groupAccess.js';
import { ConditionNotMet, holdWritesDuring, storeConsumptionWithTokens } from './heldWrites.js';
import {
  createIntrospectionPolicy,
  describeJwtAccessTokens,
  nameGrantAndSessionInJwt,
} from './introspection.js';
import { answerLateStep } from './latePages.js';
import { lastPathSegment } from './providerPaths.js';
import { logRedirectUriMismatches } from './redirectUriMismatch.js';
import { keepResourcesWithoutScopes } from './resourceConsent.js';
import { createGetResourceServerInfo } from './resourceServers.js';
import { restateError, restateProviderErrors } from './restatedErrors.js';
import { aroundProviderRoute } from './routeSteps.js';
import type { RowCaches } from './rowCaches.js';
import { storedId } from './storedIds.js';
import { refreshTokenTtl, sessionTtl, TTL } from './ttl.js';

/** How clients authenticate: public clients with none, confidential ones with their secret. */
const CLIENT_AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post'] as const;

/** Discovery's path, where the provider's document is amended (listAppResponseTypes). */
const DISCOVERY_PATH = '/.well-known/openid-configuration';

export interface ProviderDeps {
  config: Config;
  db: Db;
  log: Logger;
  jwks: { keys: JWK[] };
  cookieSigner: CookieSigner;
  caches: RowCaches;
  /** Shared by every provider instance the app builds, so one queue orders all writes. */
  writes: GroupedUpserts;
  /** Refuses a client whose authentication keeps failing; none when rate limiting is off. */
  clientAuthBackoff?: ClientAuthBackoff;
}

/**
 * The language of the provider's own pages: the request's `ui_locales` (end-session takes
 * one too), then the signed-in person's choice, then Accept-Language and DEFAULT_LOCALE.
 */
async function choosePageLocale(
  ctx: KoaContextWithOIDC,
  db: Db,
  config: PageLanguageConfig,
  signedIn: boolean,
  uiLocales: unknown = ctx.oidc?.params?.ui_locales,
) {
  const accountId = signedIn ? ctx.oidc?.session?.accountId : undefined;
  const account = accountId ? await usersQueries.findById(db, accountId) : undefined;
  ctx.state.locale = localeOf(ctx, config, { uiLocales, stored: account?.locale });
  return pageText(ctx);
}

/** The provider's own cookies, named as all of Sesame's are (cookieNames.ts). */
function providerCookieNames(config: Config): NonNullable<Configuration['cookies']>['names'] {
  const { session, interaction, resume } = cookieNames(config);
  return { session, interaction, resume };
}

/**
 * The signed-out page speaks the end-session request's ui_locales, as its confirmation did:
 * the confirmation form says the language it was shown in (views/logout.eta), and the
 * provider's redirect to the signed-out page, which takes only `client_id`, is given it here.
 */
function carryLogoutLanguage(provider: Provider): void {
  async function addLanguage(ctx: KoaContextWithOIDC, next: Next) {
    await next();
    const language = localeFromUiLocales(ctx.oidc?.body?.ui_locales);
    const location = ctx.response.get('location');
    if (!language || ctx.status !== 303 || !location.startsWith(ctx.oidc.urlFor('end_session_success')))
      return;
    const success = new URL(location);
    success.searchParams.set('ui_locales', language);
    ctx.set('Location', success.href);
  }
  aroundProviderRoute(provider, 'POST', '/session/end/confirm', (ctx, next) =>
    addLanguage(ctx as KoaContextWithOIDC, next),
  );
}

/**
 * Browser apps (public clients) may call the token and userinfo endpoints from the origin
 * of one of their redirect URIs. Only http(s) origins count: a custom-scheme redirect URI
 * (a native app's `com.example.app:/callback`) has the opaque origin "null", which is also
 * what sandboxed iframes, data: URLs and some redirects send, so `Origin: null` would let
 * any such page read the answers.
 */
export function isClientOrigin(origin: string, redirectUris: readonly string[]): boolean {
  if (!/^https?:\/\//.test(origin)) return false;
  return redirectUris.some((uri) => {
    const url = URL.parse(uri);
    return (url?.protocol === 'https:' || url?.protocol === 'http:') && url.origin === origin;
  });
}

/**
 * RFC 9700 §4.14.2: a public client's refresh token is not bound to a sender, so it rotates
 * on every use; presenting a rotated one again revokes the whole grant (oidc-provider does
 * that for a consumed refresh token, and the adapter for the loser of a race). A confidential
 * client authenticates each refresh, so its token rotates only late in its life, as the
 * provider does by default.
 */
function rotateRefreshToken(ctx: KoaContextWithOIDC): boolean {
  const { RefreshToken: refreshToken, Client: client } = ctx.oidc.entities;
  if (!refreshToken || !client) return false;
  if (client.clientAuthMethod === 'none' && !refreshToken.isSenderConstrained()) return true;
  return refreshToken.ttlPercentagePassed() >= 70;
}

/**
 * oidc-provider's outgoing requests. Sesame's configuration makes none of its own now: the
 * back-channel logout POST, to a URI an admin registered, is queued and sent by the outbox
 * (src/oidc/backchannelOutbox.ts, same rules: private networks allowed, no redirects
 * followed); this stays for any the provider might make (there is no dynamic client
 * registration, no request_uri or jwks_uri fetching). Apps of a self-hosted Sesame often live
 * on a private network (http://127.0.0.1, 10.x, a compose service), which the provider's
 * default dispatcher refuses as server-side request forgery; an admin's registration is
 * trusted instead. The provider's timeout and `redirect: 'manual'` stay.
 */
async function fetchToRegisteredUri(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const { dispatcher: _ssrfGuard, ...rest } = (init ?? {}) as RequestInit & { dispatcher?: unknown };
  return globalThis.fetch(input, rest);
}

/**
 * Admin-set claims (users' and groups') have names no configuration can list in advance, so
 * oidc-provider's scope filter would drop them. findAccount hands them over under a symbol
 * only when the scope includes `profile`; here they join what the filter kept, in the ID
 * token and in userinfo alike. A standard claim of the same name always wins (none can
 * exist: such names are refused when set, see accounts/customClaims.ts). `custom` is a plain
 * object without a name of Object.prototype's (mergeCustomClaims leaves such stored names
 * out): the provider merges only objects whose `constructor` is Object.
 */
function releaseCustomClaims(provider: Provider): void {
  type ClaimsMask = { available: Record<PropertyKey, unknown>; result(): Promise<Record<string, unknown>> };
  const prototype = (provider as unknown as { Claims: { prototype: ClaimsMask } }).Claims.prototype;
  const filtered = prototype.result;
  prototype.result = async function resultWithCustomClaims(this: ClaimsMask) {
    const claims = await filtered.call(this);
    const custom = this.available[CUSTOM_CLAIMS] as Record<string, unknown> | undefined;
    return custom ? { ...custom, ...claims } : claims;
  };
}

/**
 * On RP-initiated logout the provider calls `client.backchannelLogout(sub, sid)` for every
 * app of the session (lib/actions/end_session.js) and posts the token once. Here the token
 * is signed the same way and queued in the outbox instead, in the logout request, so it is
 * retried like every other sign-out's (src/oidc/backchannelOutbox.ts). It names the session
 * that signed out (its `sid`), which the provider would name only for an app that requires
 * one (no app does: adapter.ts, clientMetadata).
 */
function queueBackchannelLogouts(provider: Provider, db: Db): void {
  type LogoutClient = InstanceType<Provider['Client']> & { backchannelLogoutUri?: string };
  const prototype = provider.Client.prototype as unknown as {
    backchannelLogout(this: LogoutClient, sub: string, sid: string | undefined): Promise<void>;
  };
  prototype.backchannelLogout = async function queueBackchannelLogout(this: LogoutClient, sub, sid) {
    await backchannelDeliveriesQueries.enqueue(db, [
      { clientId: this.clientId, uri: this.backchannelLogoutUri!, sub, sid: sid ?? null },
    ]);
    wakeBackchannelOutboxes();
  };
}

type ProviderClient = NonNullable<Awaited<ReturnType<Provider['Client']['find']>>>;

/**
 * oidc-provider finds the Client instance of a stored client by hashing the JSON of its
 * metadata, on every request that names the client (2–3 % of an introspection's CPU, and its
 * garbage). The client cache hands out one metadata object until the client's row changes,
 * so the instance built from that object is kept beside it: a changed client is a new object,
 * built anew. Clients the cache does not hold (the account client, a cache not live) take the
 * provider's own way.
 */
function keepClientInstances(provider: Provider, clients: RowCaches['clients']): void {
  const { Client } = provider;
  const find = Client.find.bind(Client);
  const built = new WeakMap<object, ProviderClient>();
  Client.find = async function findClient(id: string) {
    const metadata = typeof id === 'string' ? clients.peek(id) : undefined;
    const known = metadata && built.get(metadata);
    if (known) return known;
    const client = await find(id);
    if (metadata && client) built.set(metadata, client);
    return client;
  };
}

/** Builds the oidc-provider instance with Sesame's storage, keys, policies and pages. */
export function createProvider({
  config,
  db,
  log,
  jwks,
  cookieSigner,
  caches,
  writes,
  clientAuthBackoff,
}: ProviderDeps): Provider {
  const configuration: Configuration = {
    adapter: createAdapter(db, caches, writes),
    findAccount: createFindAccount(db, caches),
    clients: [accountClientMetadata(config)],
    // OpenID Connect Core §3.1.2.1 requires redirect_uri in every authorization request, and
    // the URI is matched exactly against the registered ones; the provider's default let a
    // client with one registered URI leave it out.
    allowOmittingSingleRegisteredRedirectUri: false,
    jwks,
    cookies: {
      keys: cookieSigner,
      names: providerCookieNames(config),
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure: config.secureCookies },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure: config.secureCookies },
    },
    claims: CLAIMS_BY_SCOPE as unknown as Configuration['claims'],
    scopes: [...PERSON_SCOPES],
    // ID tokens carry the scope's claims (email, name) as well as userinfo does.
    conformIdTokenClaims: false,
    // `none` is for Sesame's own account pages alone (accountClient.ts); discovery leaves it out.
    responseTypes: ['code', 'none'],
    pkce: { required: () => true },
    clientAuthMethods: [...CLIENT_AUTH_METHODS],
    // What the provider does not list itself. Every endpoint that authenticates clients
    // (token, introspection, revocation) takes each of the methods, the secret in the header or
    // the body alike, whichever a confidential client was registered with.
    discovery: {
      ui_locales_supported: [...SUPPORTED_LOCALES],
      introspection_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
      revocation_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256', 'RS256'],
      userinfoSigningAlgValues: ['ES256', 'RS256'],
      introspectionSigningAlgValues: ['ES256', 'RS256'],
      authorizationSigningAlgValues: ['ES256', 'RS256'],
      requestObjectSigningAlgValues: ['ES256', 'RS256'],
      clientAuthSigningAlgValues: ['ES256', 'RS256'],
    },
    extraClientMetadata: { properties: ['first_party', 'introspect_tokens'] },
    ttl: { ...TTL, Session: sessionTtl, RefreshToken: refreshTokenTtl },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: interactionPolicyWithGroupAccess(db, caches.groups, caches.users, {
        requireVerifiedEmail: config.signup === 'open-verified',
      }),
    },
    loadExistingGrant: createLoadExistingGrant(db, caches.groups),
    rotateRefreshToken,
    fetch: fetchToRegisteredUri,
    // What a browser sign-in issues without offline_access ends with that browser session (the
    // provider's default). A device's sign-in is not the browser's that approved it: signing
    // out on the phone leaves the TV signed in. Bound to the session, a device code could also
    // be polled in the moment between its approval and the session's save, and be refused.
    async expiresWithSession(_ctx, code) {
      return code.kind !== 'DeviceCode' && !code.scopes.has('offline_access');
    },
    clientBasedCORS(_ctx, origin, client) {
      return isClientOrigin(origin, client.redirectUris ?? []);
    },
    // A person's JWT access token names its grant, and the browser session it ends with:
    // introspection ends it with them.
    formats: { customizers: { jwt: nameGrantAndSessionInJwt } },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: createIntrospectionPolicy(caches),
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client revokes only its own tokens, and another client's is refused
        // with an error that says so (unauthorized_client, as Keycloak answers). The provider
        // answers a `false` here with a silent 200, which told the client the token was gone.
        // An unknown token is still a 200: the provider finds none before asking here.
        async allowedPolicy(_ctx, client, token) {
          if (token.clientId !== client.clientId)
            throw new errors.UnauthorizedClient(
              'the token was not issued to this client, which may revoke only its own',
            );
          return true;
        },
      },
      userinfo: { enabled: true },
      // RFC 9126, on by default in oidc-provider 9; a client registered with
      // require_pushed_authorization_requests must use it (its plain /auth requests are refused).
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      // RFC 8707: `resource=<a registered API>` gets a JWT access token for it (RFC 9068);
      // without a resource, access tokens stay opaque and serve userinfo as before.
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: createGetResourceServerInfo(db, caches),
        // The API named at authorization is what the code's access token is for, whether or
        // not the token request repeats `resource` (RFC 8707 §2.2 lets it be omitted).
        async useGrantedResource() {
          return true;
        },
      },
      // OpenID Connect Back-Channel Logout 1.0: on sign-out, every app of the session that
      // registered a backchannel_logout_uri gets a signed logout token.
      backchannelLogout: { enabled: true },
      // RFC 8628, for clients registered with the device_code grant type; ISSUER/device is the person's page.
      deviceFlow: {
        enabled: true,
        ...deviceFlowPages(
          (ctx, uiLocales) => choosePageLocale(ctx, db, config, true, uiLocales),
          {
            db,
            models: caches.models,
          },
          config,
        ),
      },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          const text = await choosePageLocale(ctx, db, config, true);
          sendPage(ctx, 'logout', {
            title: text.t('logout.title'),
            form,
            clientName: shownClientName(ctx.oidc.client),
            // From the account page's Sign out (accountSession.ts), the page submits itself.
            script: signOutConfirmed(ctx, config) ? 'logout' : undefined,
            uiLocale: localeFromUiLocales(ctx.oidc.params?.ui_locales),
          });
        },
        async postLogoutSuccessSource(ctx) {
          // The provider reads only client_id here: the language carryLogoutLanguage added is read as sent.
          const text = await choosePageLocale(ctx, db, config, false, ctx.query.ui_locales);
          sendPage(ctx, 'logged-out', {
            title: text.t('logout.doneTitle'),
            clientName: shownClientName(ctx.oidc.client),
          });
        },
      },
    },
    async renderError(ctx, out, error) {
      restateError(out);
      const text = await choosePageLocale(ctx, db, config, false);
      if (await answerLateStep(ctx, db, text, error, cookieNames(config).session)) return;
      sendPage(ctx, 'error', {
        title: text.t('error.heading'),
        heading: text.t(
          out.error === 'invalid_request' || out.error === 'invalid_client'
            ? 'error.invalidSignInLink'
            : 'error.heading',
        ),
        // The provider's own words, in English: they name the protocol problem for the app's developer.
        message: out.error_description ?? out.error,
      });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  // The forwarded headers the provider reads are Sesame's own (src/http/middleware/issuerOrigin.ts):
  // the issuer's host and protocol, and the client address read under TRUST_PROXY.
  provider.proxy = true;

  // A secret the client held in memory refuses is compared with the stored one too
  // (clientAuthBackoff.ts, StoredSecrets): one rotated on another instance works here at once.
  // The one before a rotation may pass here until the notice arrives.
  const storedSecrets = new StoredSecrets(
    async (clientId) => (await clientsQueries.find(db, clientId))?.secret_hash ?? undefined,
  );
  const matchesStoredSecret = async (clientId: string, hash: string | undefined, actual: string) => {
    const stored = await storedSecrets.hashOf(clientId);
    if (!stored || stored === hash || !secretMatchesHash(actual, stored)) return false;
    // A match is taken against the hash stored now, not one read up to a second ago: that may
    // be the secret a rotation since replaced, which the client held here already refuses.
    if ((await storedSecrets.read(clientId)) !== stored) return false;
    caches.clients.invalidate(clientId);
    return true;
  };

  // Stored client secrets are SHA-256 hashes (see crypto.ts); compare what the client presents against the hash.
  // A wrong one is counted against the request's address (clientAuthBackoff.ts); the right
  // one is accepted from any address.
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(actual: string) {
    const held = () => secretMatchesHash(actual, this.clientSecret);
    const stored = () => matchesStoredSecret(this.clientId, this.clientSecret, actual);
    if (!clientAuthBackoff) return held() || stored();
    const address = (providerRequests.getStore() as Context | undefined)?.ip ?? '';
    return clientAuthBackoff.authenticate(this.clientId, address, held, stored);
  };

  // The device page's error handler (a bad or stale /device/:uid) gives the visitor's session
  // a new anti-forgery secret and then persists it, which the provider only allows for a
  // session already stored: a first visit ended in a 500. Such a session is saved like a new one.
  const persist = provider.Session.prototype.persist;
  provider.Session.prototype.persist = function persistSession(this: InstanceType<typeof provider.Session>) {
    return typeof this.exp === 'number' ? persist.call(this) : this.save(sessionTtl(undefined, this));
  };

  // A device's approval in a browser session leaves the session's entry for the app as it
  // was (deviceFlow.ts), whichever way the provider saves it; its grant is the device's own.
  const save = provider.Session.prototype.save;
  provider.Session.prototype.save = function saveSession(
    this: InstanceType<typeof provider.Session>,
    ...args: Parameters<typeof save>
  ) {
    leaveBrowserSessionAsItWas(this);
    return save.apply(this, args);
  };
  keepDeviceApprovals(provider.Grant);
  keepDeviceFormTokens(provider.Session);

  keepClientInstances(provider, caches.clients);

  // Any port only for loopback IP literals, never for `localhost` (RFC 8252 §7.3, §8.3).
  provider.Client.prototype.redirectUriAllowed = function allowRedirectUri(uri: string) {
    return redirectUriAllowed(uri, this.redirectUris ?? [], this.applicationType);
  };
  provider.Client.prototype.postLogoutRedirectUriAllowed = function allowPostLogoutUri(uri: string) {
    return redirectUriAllowed(uri, this.postLogoutRedirectUris ?? [], this.applicationType);
  };
  // A redirect URI added on another instance is known here once its notice arrives, which the
  // first sign-in through it can beat (a preview deployment that registers its address and at
  // once signs in): it was refused as not registered. An authorization request whose
  // redirect_uri the client held in memory does not allow reads the client anew; the
  // provider's own check then decides on the stored one.
  aroundProviderRoute(provider, 'GET', '/auth', function readClientAnewForUnknownRedirectUri(ctx, next) {
    const { client_id: clientId, redirect_uri: uri } = ctx.query;
    const held = typeof clientId === 'string' ? caches.clients.peek(clientId) : undefined;
    const registered = held?.redirect_uris as string[] | undefined;
    if (
      typeof uri === 'string' &&
      registered &&
      !redirectUriAllowed(uri, registered, held!.application_type as 'native' | 'web' | undefined)
    )
      caches.clients.invalidate(clientId as string);
    return next();
  });
  // Discovery says backchannel_logout_session_supported, so every ID token names the session
  // it was issued in (Back-Channel Logout 1.0 §2.1), as do the codes and tokens it comes
  // from; the provider names it only for apps registered for back-channel logout. A device's
  // sign-in is in no session (leaveBrowserSessionAsItWas, deviceFlow.ts): a device's tokens
  // name none, where they named the approving browser's, which the device outlives, so the
  // browser's sign-out (a logout token with its sid) ends the app's browser sign-in only,
  // also for an app that signs people in both ways. Only such an app asks which route this is.
  provider.Client.prototype.includeSid = function includeSid() {
    if (!this.grantTypeAllowed(DEVICE_CODE_GRANT)) return true;
    if (isDeviceOnlyApp(this)) return false;
    return !isDeviceApproval(providerRequests.getStore() as KoaContextWithOIDC | undefined);
  };

  // Discovery says which response types an app may use: `code`. The provider lists every
  // configured one, `none` too, which only Sesame's account pages use and no app can register.
  // Its document is rendered once and kept (publicMetadata.ts), so this runs rarely.
  aroundProviderRoute(provider, 'GET', DISCOVERY_PATH, (ctx, next) => withoutResponseType(ctx, next, 'none'));

  // Pages in the language of the request, from ui_locales, the remembered choice and the browser's.
  const requestText = (ctx: KoaContextWithOIDC, uiLocales = ctx.oidc?.params?.ui_locales) =>
    choosePageLocale(ctx, db, config, false, uiLocales);
  // Before restateProviderErrors, which wraps the form_post answer this sets.
  sendFormPostAnswersAsPages(provider, requestText);
  sendSessionlessSignOutAsPage(provider, requestText);
  takeCodesFromLinks(provider);
  restateProviderErrors(provider);
  logRedirectUriMismatches(provider, log);
  releaseCustomClaims(provider);
  queueBackchannelLogouts(provider, db);
  carryLogoutLanguage(provider);
  keepResourcesWithoutScopes(provider);
  describeJwtAccessTokens(provider, db, caches);

  // A sign-in's return to the authorization (`GET /auth/:uid`) deletes the interaction and
  // saves a grant, a code and a session: held and stored in one statement (heldWrites.ts),
  // only if that statement deletes the interaction this request read (adapter.ts). When it
  // does not, nothing of the return happened, and the browser keeps its cookies as they were.
  // When the interaction is gone (the same return loaded twice at once, on any instance, or
  // the sign-in ended elsewhere), the answer is the provider's to an interaction it cannot
  // find, a 400. When it is still stored, it was read from this instance's memory and changed
  // elsewhere since (a consent submitted again on another instance, say): the
  // browser is sent to load the return again, which reads it as stored and signs in.
  // A return that went through tells the sign-in's pages, by a cookie, which app it was for
  // (expiredSignIn.ts): found gone after it, they link back to the app.
  const renderError = configuration.renderError!;
  aroundProviderRoute(provider, 'GET', '/auth/:uid', holdAndStoreWrites);
  redeemCodesInOneStatement(provider);
  throttleDevicePolling(provider, db);
  leavePersonScopesOutForClients(provider);
  /** Whether the interaction a return (`/auth/:uid`) resumes is still stored. */
  async function interactionStored(path: string): Promise<boolean> {
    const uid = lastPathSegment(path);
    return (await oidcModelsQueries.find(db, 'Interaction', storedId('Interaction', uid))) !== undefined;
  }
  async function holdAndStoreWrites(ctx: Context, next: Next) {
    try {
      await holdWritesDuring(ctx, db, next);
      // Another person signed in where someone was: the provider's sign-out form comes first.
      await replaceAccountSwitchSignOut(ctx as KoaContextWithOIDC, requestText);
      rememberFinishedSignIn(ctx as KoaContextWithOIDC, config);
    } catch (error) {
      const notMet = error instanceof ConditionNotMet;
      const gone = notMet && !(await interactionStored(ctx.path));
      ctx.remove('Location');
      ctx.remove('Set-Cookie');
      if (notMet && !gone) {
        ctx.status = 303;
        ctx.redirect(ctx.originalUrl);
        return;
      }
      if (!gone) provider.emit('server_error', ctx, error);
      ctx.status = gone ? 400 : 500;
      await renderError(
        ctx as KoaContextWithOIDC,
        gone
          ? { error: 'invalid_request', error_description: 'interaction session not found' }
          : { error: 'server_error', error_description: 'oops! something went wrong' },
        gone ? new errors.SessionNotFound('interaction session not found') : (error as Error),
      );
    }
  }

  provider.on('server_error', (_ctx, error) => {
    // A request that lost a race to store its sign-in's writes (heldWrites.ts): answered 400.
    if (error instanceof ConditionNotMet) return;
    log.error('oidc server error', { error: error.message });
  });
  provider.on('backchannel.error', (_ctx, error, client) =>
    log.warn('back-channel logout not queued', { client: client.clientId, error: error.message }),
  );
  provider.on('grant.success', (ctx) =>
    tokenGrants.inc({ grant_type: grantTypeLabel(ctx.oidc.params?.grant_type), result: 'success' }),
  );
  provider.on('grant.error', (ctx, error: Error & { error?: string; error_detail?: string }) => {
    const grantType = grantTypeLabel(ctx.oidc.params?.grant_type);
    tokenGrants.inc({ grant_type: grantType, result: 'error' });
    // The detail the client is not told (which check refused it), for an operator tracing a failure.
    log.debug('token request refused', {
      grant_type: grantType,
      error: error.error,
      detail: error.error_detail,
    });
  });
  return provider;
}

/** Takes `responseType` out of the discovery document the provider answers with. */
async function withoutResponseType(ctx: Context, next: Next, responseType: string) {
  await next();
  const document = ctx.body as { response_types_supported?: unknown } | undefined;
  if (Array.isArray(document?.response_types_supported))
    document.response_types_supported = document.response_types_supported.filter(
      (type) => type !== responseType,
    );
}

/**
 * A code redeemed at the token endpoint is consumed by the statement that stores the tokens
 * it gives (heldWrites.ts, storeConsumptionWithTokens): the provider's own handler of the
 * grant runs inside, and the statement runs once it has prepared the response. When another
 * request used the code first, the handler's answer becomes the provider's answer to a replay
 * (`invalid_grant`), its own error handling rendering it, as when the consumption failed where
 * it used to run; nothing the handler issued was stored, and the grant is revoked.
 */
function redeemCodesInOneStatement(provider: Provider) {
  const handlers = providerInternals(provider).grantTypeHandlers;
  const redeem = handlers.get('authorization_code');
  if (!redeem) return;
  handlers.set('authorization_code', async function redeemInOneStatement(ctx) {
    if ((await storeConsumptionWithTokens(ctx, () => redeem(ctx))) === 'replayed') {
      throw new errors.InvalidGrant('grant already used');
    }
  });
}
