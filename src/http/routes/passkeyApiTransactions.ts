import type Router from '@koa/router';
import type { Context } from 'koa';
import { AUDIT_LOG_EVENTS } from '../../passkeyApi/auditLog.js';
import { HANKO_TITLES, hankoError } from '../../passkeyApi/errors.js';
import { transactionInitializeSchema } from '../../passkeyApi/mfaTransactionSchemas.js';
import { registrationInitializeSchema } from '../../passkeyApi/schemas.js';
import { finishTransaction, listTransactions, startTransaction } from '../../passkeyApi/transactions.js';
import type { Services } from '../services.js';
import { type AuditState, auditedAs, parseHankoBody } from './passkeyApiKit.js';
import { assertionFinalizer, type PasskeyApiRouteKit } from './passkeyApiMfa.js';

/** A user id in the path: one no user can have (WebAuthn's 64-byte handle) is refused, as Hanko refuses a malformed one. */
function userIdParam(ctx: Context): string {
  const parsed = registrationInitializeSchema.shape.user_id.safeParse(ctx.params.userId);
  if (!parsed.success)
    throw hankoError(400, HANKO_TITLES.invalidUserId, `user_id: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/**
 * Hanko's transaction calls, all behind the API key as in Hanko: the app's backend asks its
 * user to sign a payment or an action with a passkey, and gets a token naming it (`trans`).
 */
export function mountTransactionRoutes(
  router: Router,
  { config, db, log }: Pick<Services, 'config' | 'db' | 'log'>,
  { tenantOf, requireApiKey, jsonBody, jsonBodyOfAnyType }: PasskeyApiRouteKit,
): void {
  router.post(
    '/transaction/initialize',
    requireApiKey,
    jsonBody,
    auditedAs(db, AUDIT_LOG_EVENTS.transactionInit),
    async function initializeTransaction(ctx: Context) {
      const body = parseHankoBody(ctx, transactionInitializeSchema, HANKO_TITLES.invalid);
      const state = ctx.state as AuditState;
      state.auditActor = body.user_id;
      state.auditTransaction = body.transaction_id;
      ctx.body = {
        publicKey: await startTransaction(db, tenantOf(ctx), {
          userId: body.user_id,
          identifier: body.transaction_id,
          data: body.transaction_data,
        }),
      };
    },
  );

  router.post(
    '/transaction/finalize',
    requireApiKey,
    jsonBodyOfAnyType,
    auditedAs(db, AUDIT_LOG_EVENTS.transactionFinal),
    assertionFinalizer(tenantOf, HANKO_TITLES.unparsableTransaction, (tenant, response) =>
      finishTransaction(db, config, log, tenant, response),
    ),
  );

  router.get('/transaction/:userId', requireApiKey, async function listUserTransactions(ctx: Context) {
    ctx.body = await listTransactions(db, tenantOf(ctx).id, userIdParam(ctx));
  });
}
