import { createLocalJWKSet, type JWTPayload, jwtVerify } from 'jose';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import providerRequests from 'oidc-provider/lib/helpers/als.js';
import providerInternals from 'oidc-provider/lib/helpers/weak_cache.js';
import type { Db } from '../db/connect.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { SIGNING_ALGS } from './keys.js';
import { broughtIn, cachedUser } from './newerThanCache.js';
import { isRevoked } from './revocation.js';
import { aroundProviderRoute } from './routeSteps.js';
import type { RowCaches } from './rowCaches.js';

type ProviderClient = NonNullable<Awaited<ReturnType<Provider['Client']['find']>>>;
type Caches = Pick<RowCaches, 'clients' | 'groups' | 'users'>;

/** What introspection needs to know of a token to decide who may see it. */
interface TokenHolder {
  /** The provider's model name (`RefreshToken`, `AccessToken`, ...); a JWT access token has none. */
  kind?: unknown;
  clientId?: unknown;
  accountId?: unknown;
}

/**
 * Whether the client a token was issued to is still registered. Deleting a client deletes
 * its tokens (clients.ts, deleteClient), but a token request already past client
 * authentication stores its token after that: a client_credentials token has no grant whose
 * absence would end it, and it introspected active for its whole hour. Userinfo already
 * refuses a token whose client is gone (the provider's loadAccessTokenClient). The client
 * introspecting its own token was just authenticated; any other is in the client cache
 * unless it is gone, so a live token costs one lookup in memory and no statement.
 */
function tokenClientExists(
  provider: Provider,
  clients: RowCaches['clients'],
  introspecting: ProviderClient,
  clientId: unknown,
): boolean | Promise<boolean> {
  if (clientId === introspecting.clientId) return true;
  if (typeof clientId !== 'string') return false;
  if (clients.peek(clientId)) return true;
  return provider.Client.find(clientId).then((found) => found !== undefined);
}

/**
 * Whether `client` may be told about `token` (features.introspection.allowedPolicy). A client
 * may introspect its own tokens. Another client's access token only a client marked as a
 * token checker may (`introspect_tokens`: an API registered as a client to check the tokens
 * apps send it; never a public one): RFC 7662 §4 leaves to the server which resources may ask
 * about which tokens, and any confidential client could, so any registered app, a third
 * party's too, learnt of another app's token whose person it is, in which session, with what
 * scope. Migration 0038 marked the confidential clients registered before. No other client's
 * refresh token either way: it is presented only at the token endpoint, by its own client, so
 * no resource server has a use for it, and describing it told the checker whose sign-in it
 * holds, in which session, with what scope. A token of someone no longer in a group its client
 * admits is inactive, as userinfo and the token endpoint already treat it (a disabled or
 * deleted account's tokens are never found at all: adapter.ts). The group cache answers
 * without a statement.
 */
export function createIntrospectionPolicy(caches: Caches) {
  return async function allowedPolicy(ctx: KoaContextWithOIDC, client: ProviderClient, token: TokenHolder) {
    if (token.clientId !== client.clientId) {
      // Extra client metadata keeps its snake_case name on the Client instance (provider.ts).
      if (client.clientAuthMethod === 'none' || client.introspect_tokens !== true) return false;
      if (token.kind === 'RefreshToken') return false;
    }
    const clientExists = tokenClientExists(ctx.oidc.provider, caches.clients, client, token.clientId);
    if (clientExists !== true && !(await clientExists)) return false;
    const { accountId, clientId } = token;
    return typeof accountId !== 'string' || typeof clientId !== 'string'
      ? true
      : caches.groups.mayUseClient(clientId, accountId);
  };
}

/**
 * The claim a person's JWT access token names its grant by: the consent it was issued under,
 * one browser session's or one device's (RFC 9068 §2.2 lets a token carry claims of its
 * own). A grant id is no credential (storedIds.ts); the app and its API see it in the token.
 */
export const GRANT_ID_CLAIM = 'grant_id';

/**
 * The claim a JWT access token that ends with its browser session (issued without
 * offline_access: `expiresWithSession`) names that session by: its uid, which is no
 * credential either (storedIds.ts, adapter.ts findByUid): requests are bound to a session by
 * its cookie, and a uid alone opens nothing.
 */
export const SESSION_UID_CLAIM = 'session_uid';

/**
 * oidc-provider's `formats.customizers.jwt`: a person's JWT access token names its grant
 * ({@link GRANT_ID_CLAIM}), so introspection ends it with that grant alone, and, when it ends
 * with its browser session, that session ({@link SESSION_UID_CLAIM}), as the provider ends an
 * opaque one. A client_credentials token has neither.
 */
export function nameGrantAndSessionInJwt(
  _ctx: unknown,
  token: object,
  jwt: { payload: Record<string, unknown> },
): void {
  const { grantId, expiresWithSession, sessionUid } = token as {
    grantId?: unknown;
    expiresWithSession?: unknown;
    sessionUid?: unknown;
  };
  if (typeof grantId === 'string') jwt.payload[GRANT_ID_CLAIM] = grantId;
  if (expiresWithSession === true && typeof sessionUid === 'string')
    jwt.payload[SESSION_UID_CLAIM] = sessionUid;
}

/** RFC 7662 §2.2: what is said of a token the server will not describe. */
const INACTIVE = { active: false } as const;

/**
 * Introspection of the JWT access tokens Sesame issues for registered APIs (RFC 9068).
 * oidc-provider refuses any JWT at its introspection endpoint with `unsupported_token_type`,
 * which RFC 7662 does not foresee there: a resource server that introspects every token it
 * is given got an error instead of an answer. That refusal is answered here instead, after
 * the provider authenticated the client; an opaque token never reaches this but for one
 * status check. A JWT is described (`active: true` with its claims) when Sesame's keys
 * signed it as an access token (`typ: at+jwt`, this issuer), it has not expired, the caller
 * may see it (the same policy as opaque tokens: createIntrospectionPolicy), and nothing
 * revoked since stands against it: a person's token ends with their account's revocations
 * (disable, delete, a recovery, an email owner's takeover, a cloned passkey's block:
 * revocation.ts) and with the grant it names
 * ({@link GRANT_ID_CLAIM}): the app's Revoke on the account page ends its browsers' tokens
 * while a device of the app, under a grant of its own, stays signed in. A token that ends with
 * its browser session ({@link SESSION_UID_CLAIM}) ends when that session does or holds another
 * grant for the app, as the provider ends an opaque one (its checkSessionBinding): "Sign out
 * everywhere" and the app's sign-out keep a grant that holds offline_access for its refresh
 * tokens. A token issued before tokens named their grant ends with the last grant the person
 * gave its app; one issued before they named their session, with its grant. Anything else is
 * inactive.
 */
export function describeJwtAccessTokens(provider: Provider, db: Db, caches: Caches): void {
  const allowedPolicy = createIntrospectionPolicy(caches);
  // The provider's published keys, current and retired alike: a token signed before a rotation
  // verifies until it expires. The provider is rebuilt when the keys change (liveProvider.ts).
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;

  async function verified(token: string): Promise<JWTPayload | undefined> {
    keys ??= createLocalJWKSet(providerInternals(provider).jwks);
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: provider.issuer,
        typ: 'at+jwt',
        algorithms: [...SIGNING_ALGS],
        requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'aud'],
      });
      return payload;
    } catch {
      return undefined;
    }
  }

  /**
   * Whether the person's revocations since the token was issued leave it standing: the grant
   * it names is live (the grant cache answers most), or, for a token that names none, any
   * grant the person gave its app; and the session it names, if any, is the person's and
   * still holds that grant for the app (the session cache answers most).
   */
  async function accountStillAllows(
    token: JWTPayload,
    accountId: string,
    clientId: string,
  ): Promise<boolean> {
    const user = await cachedUser(caches.users, db, accountId);
    if (!user || user.disabled_at || isRevoked('AccessToken', { iat: token.iat }, user)) return false;
    const grantId = token[GRANT_ID_CLAIM];
    if (grantId === undefined)
      return (await oidcModelsQueries.latestGrantOf(db, accountId, clientId)) !== undefined;
    if (typeof grantId !== 'string') return false;
    const grant = await provider.Grant.find(grantId);
    if (grant?.accountId !== accountId || grant.clientId !== clientId) return false;
    const sessionUid = token[SESSION_UID_CLAIM];
    if (sessionUid === undefined) return true;
    if (typeof sessionUid !== 'string') return false;
    const session = await provider.Session.findByUid(sessionUid);
    return session?.accountId === accountId && session.grantIdFor(clientId) === grantId;
  }

  async function describe(ctx: KoaContextWithOIDC, token: string): Promise<Record<string, unknown>> {
    const payload = await verified(token);
    if (typeof payload?.client_id !== 'string' || typeof payload.sub !== 'string') return INACTIVE;
    // Stored nowhere, a JWT is never in memory: one just issued elsewhere may be newer than the
    // account, its groups, grant and session held here (newerThanCache.ts).
    broughtIn('AccessToken', payload);
    const clientId = payload.client_id;
    // A client_credentials token's subject is its client (RFC 9068 §2.2); any other is a person's.
    const accountId = payload.sub === clientId ? undefined : payload.sub;
    if (!(await allowedPolicy(ctx, ctx.oidc.client!, { clientId, accountId }))) return INACTIVE;
    if (accountId && !(await accountStillAllows(payload, accountId, clientId))) return INACTIVE;
    const cnf = payload.cnf as { jkt?: unknown } | undefined;
    return { ...payload, active: true, token_type: cnf?.jkt ? 'DPoP' : 'Bearer' };
  }

  aroundProviderRoute(
    provider,
    'POST',
    '/token/introspection',
    async function introspectJwt(ctx: Context, next: Next) {
      await next();
      if (
        ctx.status !== 400 ||
        (ctx.body as { error?: unknown } | undefined)?.error !== 'unsupported_token_type'
      )
        return;
      const oidc = (ctx as KoaContextWithOIDC).oidc;
      const token = oidc.params?.token;
      if (!oidc.client || typeof token !== 'string') return;
      // Past the provider's handling, and so outside its request context: back in it, the
      // session, grant and account are read as the provider's own lookups would (newerThanCache.ts).
      ctx.body = await providerRequests.run(ctx, () => describe(ctx as KoaContextWithOIDC, token));
      ctx.status = 200;
    },
  );
}
