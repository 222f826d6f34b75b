import { interactionPolicy, type KoaContextWithOIDC, type Provider } from 'oidc-provider';

/**
 * What the consent prompt says a grant lacks: oidc-provider's checks' details, and
 * `missingResources` of {@link resourceConsentCheck}.
 */
export interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
  missingResources?: string[];
}

/** The APIs (resource identifiers) the request names that its grant does not cover yet. */
function resourcesNotGranted(ctx: KoaContextWithOIDC): string[] {
  const granted = ctx.oidc.grant?.resources ?? {};
  return Object.keys(ctx.oidc.resourceServers ?? {}).filter(
    (identifier) => !Object.hasOwn(granted, identifier),
  );
}

/**
 * A check of the consent prompt: a request naming an API (RFC 8707 `resource`) that the
 * grant does not cover needs the person's consent, and `prompt=none` gets consent_required.
 * oidc-provider's own check (`rs_scopes_missing`) counts only the API's scopes the request
 * asks for: an API asked for with none of them, or one that has none, was never missing, and
 * a third-party app got a token for it with the person's `sub` without anyone asking them.
 * First-party apps pass: their grant is extended to what they ask for (grants.ts).
 */
export function resourceConsentCheck(): interactionPolicy.Check {
  return new interactionPolicy.Check(
    'rs_not_granted',
    'requested resource not granted',
    'consent_required',
    (ctx) => resourcesNotGranted(ctx).length > 0,
    (ctx) => ({ missingResources: resourcesNotGranted(ctx) }),
  );
}

/**
 * The APIs a consent grants, each with the scopes of it the request asks for that the grant
 * lacks (none for an API without scopes, or asked for with none of them).
 */
export function resourcesToConsent(details: ConsentDetails): Map<string, string[]> {
  const resources = new Map<string, string[]>();
  for (const identifier of details.missingResources ?? []) resources.set(identifier, []);
  for (const [identifier, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    resources.set(identifier, scopes);
  }
  return resources;
}

/**
 * A grant keeps an API it covers with no scopes: oidc-provider's `clean()`, before every
 * save, drops a resource whose scope is empty, so consent to such an API was forgotten at
 * once and asked for again at every sign-in (and a first-party grant saved again each time).
 */
export function keepResourcesWithoutScopes(provider: Provider): void {
  type GrantResources = { resources?: Record<string, string> };
  const prototype = provider.Grant.prototype as unknown as { clean(this: GrantResources): void };
  const clean = prototype.clean;
  prototype.clean = function cleanKeepingResourcesWithoutScopes(this: GrantResources) {
    const withoutScopes = Object.keys(this.resources ?? {}).filter((id) => this.resources![id] === '');
    clean.call(this);
    if (withoutScopes.length === 0) return;
    this.resources ??= {};
    for (const identifier of withoutScopes) this.resources[identifier] = '';
  };
}
