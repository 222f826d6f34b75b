import type Router from '@koa/router';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import { AUDIT_LOG_EVENTS } from '../../passkeyApi/auditLog.js';
import { HANKO_TITLES } from '../../passkeyApi/errors.js';
import {
  finishMfaLogin,
  finishMfaRegistration,
  startMfaLogin,
  startMfaRegistration,
} from '../../passkeyApi/mfa.js';
import { mfaLoginInitializeSchema } from '../../passkeyApi/mfaTransactionSchemas.js';
import { registrationInitializeSchema } from '../../passkeyApi/schemas.js';
import { authenticationResponseSchema, parseBody, registrationResponseSchema } from '../schemas.js';
import type { Services } from '../services.js';
import { type AuditState, auditedAs, parseHankoBody, subjectOf } from './passkeyApiKit.js';

type Middleware = (ctx: Context, next: Next) => Promise<void>;

/** What the passkey API router shares with the route groups it mounts. */
export interface PasskeyApiRouteKit {
  tenantOf(ctx: Context): StoredTenant;
  requireApiKey: Middleware;
  jsonBody: Middleware;
}

/**
 * `@github/webauthn-json`, which Hanko's example frontends use, sends JSON `null` for a
 * missing `userHandle` or `authenticatorAttachment`; Hanko's verifier reads null as absent.
 */
export function acceptWebauthnJsonNulls(ctx: Context): void {
  const body = ctx.request.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object' || Array.isArray(body)) return;
  if (body.authenticatorAttachment === null) delete body.authenticatorAttachment;
  const response = body.response as Record<string, unknown> | undefined;
  if (response && typeof response === 'object' && response.userHandle === null) delete response.userHandle;
}

/**
 * A finalize call that answers `{ token }` for an assertion: body as webauthn-json sends it,
 * parsed, and the token kept out of caches; the token's user (and `trans`, the transaction)
 * goes in the audit log entry.
 */
export function assertionFinalizer(
  tenantOf: PasskeyApiRouteKit['tenantOf'],
  finish: (tenant: StoredTenant, response: AuthenticationResponseJSON) => Promise<string>,
): Middleware {
  return async function finalizeAssertion(ctx: Context) {
    acceptWebauthnJsonNulls(ctx);
    const response = parseBody(ctx, authenticationResponseSchema);
    ctx.set('Cache-Control', 'no-store');
    const token = await finish(tenantOf(ctx), response);
    const state = ctx.state as AuditState;
    state.auditActor = subjectOf(token);
    const { trans } = decodeJwt(token);
    if (typeof trans === 'string') state.auditTransaction = trans;
    ctx.body = { token };
  };
}

/**
 * Hanko's MFA calls (`/mfa/registration/*`, `/mfa/login/*`), all behind the API key as in
 * Hanko: the app's backend registers and checks a security key as a second factor.
 */
export function mountMfaRoutes(
  router: Router,
  { config, db }: Pick<Services, 'config' | 'db'>,
  { tenantOf, requireApiKey, jsonBody }: PasskeyApiRouteKit,
): void {
  router.post(
    '/mfa/registration/initialize',
    requireApiKey,
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.mfaRegistrationInit),
    async function initializeMfaRegistration(ctx: Context) {
      const body = parseHankoBody(ctx, registrationInitializeSchema, HANKO_TITLES.invalid);
      (ctx.state as AuditState).auditActor = body.user_id;
      const publicKey = await startMfaRegistration(db, tenantOf(ctx), {
        userId: body.user_id,
        username: body.username,
        displayName: body.display_name,
        icon: body.icon,
      });
      ctx.body = { publicKey };
    },
  );

  router.post(
    '/mfa/registration/finalize',
    requireApiKey,
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.mfaRegistrationFinal),
    async function finalizeMfaRegistration(ctx: Context) {
      acceptWebauthnJsonNulls(ctx);
      const response = parseBody(ctx, registrationResponseSchema);
      ctx.set('Cache-Control', 'no-store');
      const token = await finishMfaRegistration(db, config, tenantOf(ctx), response);
      (ctx.state as AuditState).auditActor = subjectOf(token);
      ctx.body = { token };
    },
  );

  router.post(
    '/mfa/login/initialize',
    requireApiKey,
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.mfaAuthenticationInit),
    async function initializeMfaLogin(ctx: Context) {
      const { user_id } = parseHankoBody(ctx, mfaLoginInitializeSchema, HANKO_TITLES.invalid);
      (ctx.state as AuditState).auditActor = user_id;
      ctx.body = { publicKey: await startMfaLogin(db, tenantOf(ctx), user_id) };
    },
  );

  router.post(
    '/mfa/login/finalize',
    requireApiKey,
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.mfaAuthenticationFinal),
    assertionFinalizer(tenantOf, (tenant, response) => finishMfaLogin(db, config, tenant, response)),
  );
}
