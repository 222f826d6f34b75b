import { randomSecret, sha256Hex } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { type AdminFormBinding, adminFormTokensQueries } from '../db/queries/adminFormTokens.js';

/**
 * How long a form that mints a secret may be sent after its page was shown: enough to fill
 * in a client's redirect URIs at leisure, short enough that a page left open overnight is
 * shown again before it acts.
 */
export const ADMIN_FORM_TOKEN_TTL_SECONDS = 60 * 60;

/** Days a token is kept after it expired, so a reload the next day still hears that the work was done. */
export const SPENT_ADMIN_FORM_TOKENS_KEPT_DAYS = 1;

/** What a token looks like ({@link randomSecret}); anything else is not looked up. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export type { AdminFormBinding };

/** What came of a form sent with a single-use token. */
export type FormSubmission<T> =
  | { outcome: 'done'; value: T }
  /** The token was spent before: the work was done once, by an earlier send of this form. */
  | { outcome: 'repeated' }
  /** No such token for this session and action, or it expired: nothing was done. */
  | { outcome: 'stale' };

/**
 * A new single-use token for a form whose POST mints a secret once, bound to the admin's
 * session and to what the form does. Only its SHA-256 is stored.
 */
export async function issueFormToken(db: Db, binding: AdminFormBinding): Promise<string> {
  const token = randomSecret();
  const expiresAt = new Date(Date.now() + ADMIN_FORM_TOKEN_TTL_SECONDS * 1000);
  await adminFormTokensQueries.insert(db, sha256Hex(token), binding, expiresAt);
  return token;
}

/**
 * Does the form's `work` once per token: the token is spent in the same transaction, so a
 * reload, a double click or a resubmitted page does nothing more, on any instance, and work
 * that throws (a validation error) leaves the token usable for the corrected form.
 */
export async function submitFormOnce<T>(
  db: Db,
  token: unknown,
  binding: AdminFormBinding,
  work: (trx: Db) => Promise<T>,
): Promise<FormSubmission<T>> {
  if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return { outcome: 'stale' };
  const tokenHash = sha256Hex(token);
  const done = await db.transaction().execute(async (trx) => {
    if (!(await adminFormTokensQueries.spend(trx, tokenHash, binding))) return undefined;
    return { value: await work(trx) };
  });
  if (done) return { outcome: 'done', value: done.value };
  return (await adminFormTokensQueries.wasSpent(db, tokenHash, binding))
    ? { outcome: 'repeated' }
    : { outcome: 'stale' };
}
