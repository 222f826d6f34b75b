import type Router from '@koa/router';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import { AUDIT_LOG_EVENTS } from '../../passkeyApi/auditLog.js';
import { HANKO_TITLES, registrationRefusal } from '../../passkeyApi/errors.js';
import {
  finishMfaLogin,
  finishMfaRegistration,
  startMfaLogin,
  startMfaRegistration,
} from '../../passkeyApi/mfa.js';
import { mfaLoginInitializeSchema } from '../../passkeyApi/mfaTransactionSchemas.js';
import {
  registrationInitializeSchema,
  tenantAuthenticationResponseSchema,
  tenantRegistrationResponseSchema,
} from '../../passkeyApi/schemas.js';
import type { Services } from '../services.js';
import { type AuditState, auditedAs, parseHankoBody, subjectOf } from './passkeyApiKit.js';

type Middleware = (ctx: Context, next: Next) => Promise<void>;

/** What the passkey API router shares with the route groups it mounts. */
export interface PasskeyApiRouteKit {
  tenantOf(ctx: Context): StoredTenant;
  requireApiKey: Middleware;
  jsonBody: Middleware;
  /** The body of a `finalize` call: JSON whatever its Content-Type, as Hanko reads it. */
  jsonBodyOfAnyType: Middleware;
}

/**
 * A finalize call that answers `{ token }` for an assertion: body as webauthn-json sends it
 * (its JSON nulls read as absent), parsed — a body that is no assertion refused with
 * `unparsable`, Hanko's title for it at that call — and the token kept out of caches; the
 * token's user (and `trans`, the transaction) goes in the audit log entry.
 */
export function assertionFinalizer(
  tenantOf: PasskeyApiRouteKit['tenantOf'],
  unparsable: string,
  finish: (tenant: StoredTenant, response: AuthenticationResponseJSON) => Promise<string>,
): Middleware {
  return async function finalizeAssertion(ctx: Context) {
    const response = parseHankoBody(ctx, tenantAuthenticationResponseSchema, unparsable);
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
  { config, db, log }: Pick<Services, 'config' | 'db' | 'log'>,
  { tenantOf, requireApiKey, jsonBody, jsonBodyOfAnyType }: PasskeyApiRouteKit,
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
    jsonBodyOfAnyType,
    auditedAs(db, AUDIT_LOG_EVENTS.mfaRegistrationFinal),
    async function finalizeMfaRegistration(ctx: Context) {
      const response = parseHankoBody(
        ctx,
        tenantRegistrationResponseSchema,
        HANKO_TITLES.unparsableCreationResponse,
      );
      ctx.set('Cache-Control', 'no-store');
      let token: string;
      try {
        token = await finishMfaRegistration(db, config, tenantOf(ctx), response);
      } catch (caught) {
        throw await registrationRefusal(caught, tenantOf(ctx), response);
      }
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
    jsonBodyOfAnyType,
    auditedAs(db, AUDIT_LOG_EVENTS.mfaAuthenticationFinal),
    assertionFinalizer(tenantOf, HANKO_TITLES.unparsableLogin, (tenant, response) =>
      finishMfaLogin(db, config, log, tenant, response),
    ),
  );
}
