import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import providerInternals from 'oidc-provider/lib/helpers/weak_cache.js';

/** An error as the provider answers it: in JSON, on its error page, or in a redirect to the app. */
export interface ProviderErrorOut {
  error?: unknown;
  error_description?: unknown;
}

/**
 * The provider's words when a client uses a grant type it is not registered for, at the token
 * endpoint ("requested grant type ...") and at the device authorization endpoint ("<grant
 * type> ..."). It calls that `invalid_request`; RFC 6749 §5.2 and RFC 8628 §3.1 call it
 * `unauthorized_client`.
 */
const GRANT_TYPE_NOT_ALLOWED = /^\S+(?: grant type)? is not allowed for this client$/;

/**
 * Every client Sesame registers has `require_auth_time` (adapter.ts), and the provider's
 * refusal of a request without `openid` names that setting, which no admin can see or change.
 */
const OPENID_SCOPE_GATE = 'openid scope must be requested for clients with require_auth_time';
export const OPENID_SCOPE_REQUIRED =
  'Sesame requires the openid scope in every authorization request (the device flow too)';

/** Rewrites, in place, a provider error that Sesame words differently (see above); leaves any other. */
export function restateError(out: ProviderErrorOut): void {
  if (out.error !== 'invalid_request' || typeof out.error_description !== 'string') return;
  if (GRANT_TYPE_NOT_ALLOWED.test(out.error_description)) out.error = 'unauthorized_client';
  else if (out.error_description === OPENID_SCOPE_GATE) out.error_description = OPENID_SCOPE_REQUIRED;
}

/** The response modes an authorization error is sent back to the app in (discovery's response_modes_supported). */
const RESPONSE_MODES = ['query', 'fragment', 'form_post'] as const;

/**
 * Restates the provider's errors (restateError) wherever it answers them, other than its error
 * page (renderError in provider.ts does that): the JSON of the token, device and pushed
 * authorization endpoints, and the redirect that takes an authorization error back to the app.
 */
export function restateProviderErrors(provider: Provider): void {
  // The JSON errors of the token, device authorization and PAR endpoints: the provider's error
  // handler sets the answer's body, then emits the endpoint's error event, at once. Restated
  // there before it is sent, with no middleware that every token request would pass through.
  const restateJsonError = (ctx: Context) => {
    if (ctx.body && typeof ctx.body === 'object') restateError(ctx.body as ProviderErrorOut);
  };
  provider.on('grant.error', restateJsonError);
  provider.on('device_authorization.error', restateJsonError);
  provider.on('pushed_authorization_request.error', restateJsonError);
  const { responseModes } = providerInternals(provider);
  for (const mode of RESPONSE_MODES) {
    const respond = responseModes.get(mode);
    if (!respond) continue;
    responseModes.set(mode, function restateRedirectedError(ctx, redirectUri, payload) {
      restateError(payload);
      return respond(ctx, redirectUri, payload);
    });
  }
}
