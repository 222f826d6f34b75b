import type { InteractionResults } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { storedId } from './storedIds.js';

/** What a sign-in or sign-up records on its interaction: who signed in, how (RFC 8176 `amr`), and that this browser stays signed in. */
export function loginResult(accountId: string, amr: string[]): InteractionResults {
  return { login: { accountId, amr, remember: true } };
}

/**
 * Records `result` on the stored interaction `uid`, only while it waits at the login prompt
 * with no result yet; called in a transaction, the interaction stays locked until it ends, so
 * of several at once exactly one records anything (oidcModels.ts, settleLoginInteraction).
 * @returns whether it recorded it.
 */
export function settleLoginInteraction(db: Db, uid: string, result: InteractionResults): Promise<boolean> {
  return oidcModelsQueries.settleLoginInteraction(db, storedId('Interaction', uid), JSON.stringify(result));
}
