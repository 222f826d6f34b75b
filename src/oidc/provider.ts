import type { JWK } from 'jose';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { CLAIMS_BY_SCOPE, CUSTOM_CLAIMS, createFindAccount } from '../accounts/claims.js';
import type { Config } from '../config.js';
import { secretMatchesHash } from '../crypto.js';
import type { Db } from '../db/connect.js';
import type { GroupedUpserts } from '../db/groupedUpserts.js';
import { renderView } from '../http/views.js';
import type { Logger } from '../logger.js';
import { grantTypeLabel, tokenGrants } from '../metrics.js';
import { accountClientMetadata } from './accountClient.js';
import { createAdapter } from './adapter.js';
import type { ClientAuthBackoff } from './clientAuthBackoff.js';
import { redirectUriAllowed } from './clients.js';
import { createLoadExistingGrant } from './grants.js';
import { interactionPolicyWithGroupAccess } from './groupAccess.js';
import type { RowCaches } from './rowCaches.js';
import { TTL } from './ttl.js';

export interface ProviderDeps {
  config: Config;
  db: Db;
  log: Logger;
  jwks: { keys: JWK[] };
  cookieKeys: string[];
  caches: RowCaches;
  /** Shared by every provider instance the app builds, so one queue orders all writes. */
  writes: GroupedUpserts;
  /** Refuses a client whose authentication keeps failing; none when rate limiting is off. */
  clientAuthBackoff?: ClientAuthBackoff;
}

function renderPage(
  ctx: KoaContextWithOIDC,
  name: string,
  data: Record<string, unknown> & { title: string },
) {
  ctx.type = 'html';
  ctx.body = renderView(name, data);
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
 * Admin-set claims (users' and groups') have names no configuration can list in advance, so
 * oidc-provider's scope filter would drop them. findAccount hands them over under a symbol
 * only when the scope includes `profile`; here they join what the filter kept, in the ID
 * token and in userinfo alike. A standard claim of the same name always wins (none can
 * exist: such names are refused when set, see accounts/customClaims.ts).
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

/** Builds the oidc-provider instance with Sesame's storage, keys, policies and pages. */
export function createProvider({
  config,
  db,
  log,
  jwks,
  cookieKeys,
  caches,
  writes,
  clientAuthBackoff,
}: ProviderDeps): Provider {
  const configuration: Configuration = {
    adapter: createAdapter(db, caches, writes),
    findAccount: createFindAccount(db, caches),
    clients: [accountClientMetadata(config)],
    jwks,
    cookies: {
      keys: cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure: config.secureCookies },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure: config.secureCookies },
    },
    claims: CLAIMS_BY_SCOPE as unknown as Configuration['claims'],
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    // ID tokens carry the scope's claims (email, name) as well as userinfo does.
    conformIdTokenClaims: false,
    responseTypes: ['code', 'none'],
    pkce: { required: () => true },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256', 'RS256'],
      userinfoSigningAlgValues: ['ES256', 'RS256'],
      introspectionSigningAlgValues: ['ES256', 'RS256'],
      authorizationSigningAlgValues: ['ES256', 'RS256'],
      requestObjectSigningAlgValues: ['ES256', 'RS256'],
      clientAuthSigningAlgValues: ['ES256', 'RS256'],
    },
    extraClientMetadata: { properties: ['first_party'] },
    ttl: { ...TTL },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: interactionPolicyWithGroupAccess(db),
    },
    loadExistingGrant: createLoadExistingGrant(db),
    clientBasedCORS(_ctx, origin, client) {
      return isClientOrigin(origin, client.redirectUris ?? []);
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // A client may introspect its own tokens; confidential clients may introspect any
        // (resource servers registered as clients check tokens issued to apps).
        async allowedPolicy(ctx, client, token) {
          return client.clientAuthMethod !== 'none' || token.clientId === ctx.oidc.client?.clientId;
        },
      },
      revocation: {
        enabled: true,
        async allowedPolicy(_ctx, client, token) {
          return token.clientId === client.clientId;
        },
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          renderPage(ctx, 'logout', { title: 'Sign out', form, clientName: ctx.oidc.client?.clientName });
        },
        async postLogoutSuccessSource(ctx) {
          renderPage(ctx, 'logged-out', { title: 'Signed out', clientName: ctx.oidc.client?.clientName });
        },
      },
    },
    async renderError(ctx, out) {
      renderPage(ctx, 'error', {
        title: 'Something went wrong',
        heading:
          out.error === 'invalid_request' || out.error === 'invalid_client'
            ? 'This sign-in link is not valid'
            : 'Something went wrong',
        message: out.error_description ?? out.error,
      });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  // The forwarded headers the provider reads are Sesame's own (src/http/middleware/issuerOrigin.ts):
  // the issuer's host and protocol, and the client address read under TRUST_PROXY.
  provider.proxy = true;

  // Stored client secrets are SHA-256 hashes (see crypto.ts); compare what the client presents against the hash.
  // A client locked out by too many failures is refused like a wrong secret (invalid_client).
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(actual: string) {
    if (clientAuthBackoff && !(await clientAuthBackoff.allows(this.clientId))) return false;
    const matches = secretMatchesHash(actual, this.clientSecret);
    if (!matches) await clientAuthBackoff?.failed(this.clientId);
    return matches;
  };

  // Any port only for loopback IP literals, never for `localhost` (RFC 8252 §7.3, §8.3).
  provider.Client.prototype.redirectUriAllowed = function allowRedirectUri(uri: string) {
    return redirectUriAllowed(uri, this.redirectUris ?? [], this.applicationType);
  };
  provider.Client.prototype.postLogoutRedirectUriAllowed = function allowPostLogoutUri(uri: string) {
    return redirectUriAllowed(uri, this.postLogoutRedirectUris ?? [], this.applicationType);
  };

  releaseCustomClaims(provider);

  provider.on('server_error', (_ctx, error) => log.error('oidc server error', { error: error.message }));
  provider.on('grant.success', (ctx) =>
    tokenGrants.inc({ grant_type: grantTypeLabel(ctx.oidc.params?.grant_type), result: 'success' }),
  );
  provider.on('grant.error', (ctx) =>
    tokenGrants.inc({ grant_type: grantTypeLabel(ctx.oidc.params?.grant_type), result: 'error' }),
  );
  return provider;
}
