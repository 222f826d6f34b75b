import { createHash, randomBytes } from 'node:crypto';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { passkeyTenantCredentialsQueries } from '../db/queries/passkeyTenantCredentials.js';
import type { StoredTenant } from '../db/queries/passkeyTenants.js';
import {
  passkeyTenantTransactionsQueries,
  type TenantTransaction,
} from '../db/queries/passkeyTenantTransactions.js';
import { passkeyTenantUsersQueries } from '../db/queries/passkeyTenantUsers.js';
import type { Logger } from '../logger.js';
import { storeChallenge } from '../webauthn/challenge.js';
import { verifyTenantAssertion } from './ceremonies.js';
import { HANKO_TITLES, hankoError, noSuitableCredentials } from './errors.js';
import { signPasskeyToken } from './jwt.js';
import { refusedAsLogin } from './mfa.js';
import { tenantChallengeBinding } from './tenants.js';

const PURPOSE = 'pk-trans';

/** Random bytes in a transaction challenge, as many as go-webauthn (Hanko's verifier) uses. */
const CHALLENGE_RANDOM_BYTES = 32;

/** A transaction as `GET transaction/{user_id}` lists it (Hanko's TransactionDto). */
export interface TransactionJson {
  id: string;
  identifier: string;
  /** The transaction data as JSON text. */
  data: string;
  created_at: string;
  updated_at: string;
}

function transactionJson(t: TenantTransaction): TransactionJson {
  return {
    id: t.id,
    identifier: t.identifier,
    data: t.data,
    created_at: new Date(t.created_at).toISOString(),
    updated_at: new Date(t.updated_at).toISOString(),
  };
}

const escapeForGo = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * The transaction data as JSON text the way Hanko's Go server writes it (`json.Marshal` of
 * the decoded value): object keys sorted by their UTF-8 bytes, `<`, `>`, `&`, U+2028 and
 * U+2029 escaped. The challenge commits to this text, so an app can recompute it. The walk
 * keeps its own stack, so data nested as deep as the schema lets through (thousands of
 * levels) cannot overflow the call stack.
 */
export function transactionDataJson(value: unknown): string {
  const written: string[] = [];
  // Text to write and values to serialise, the next one last.
  const pending: Array<{ text: string } | { value: unknown }> = [{ value }];
  while (pending.length > 0) {
    const next = pending.pop()!;
    if ('text' in next) {
      written.push(next.text);
      continue;
    }
    const current = next.value;
    if (Array.isArray(current)) {
      pending.push({ text: ']' });
      for (let i = current.length - 1; i >= 0; i--) {
        pending.push({ value: current[i] });
        if (i > 0) pending.push({ text: ',' });
      }
      pending.push({ text: '[' });
    } else if (current !== null && typeof current === 'object') {
      const keys = Object.keys(current).sort(byUtf8Bytes);
      pending.push({ text: '}' });
      for (let i = keys.length - 1; i >= 0; i--) {
        pending.push({ value: (current as Record<string, unknown>)[keys[i]!] });
        pending.push({ text: `${goScalarJson(keys[i])}:` });
        if (i > 0) pending.push({ text: ',' });
      }
      pending.push({ text: '{' });
    } else {
      written.push(goScalarJson(current));
    }
  }
  return written.join('');
}

/**
 * Go sorts map keys by their UTF-8 bytes (code point order); JavaScript's default sort
 * compares UTF-16 units, which puts a key beyond U+FFFF (an emoji) before one in
 * U+E000–U+FFFF (a fullwidth sign), and so would commit to another text than Hanko's.
 */
const byUtf8Bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * A string, number, boolean or null as Go writes it: JSON with `<`, `>`, `&`, U+2028 and
 * U+2029 escaped, and a negative zero as `-0` (strconv keeps its sign; JSON.stringify drops it).
 */
function goScalarJson(value: unknown): string {
  if (Object.is(value, -0)) return '-0';
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, escapeForGo);
}

/**
 * Hanko's transaction challenge: random bytes followed by SHA-256(transaction id ‖ data
 * JSON), so the passkey's signature over the challenge also covers what was approved.
 */
export function transactionChallenge(identifier: string, dataJson: string): Uint8Array<ArrayBuffer> {
  const digest = createHash('sha256').update(identifier, 'utf8').update(dataJson, 'utf8').digest();
  return Uint8Array.from(Buffer.concat([randomBytes(CHALLENGE_RANDOM_BYTES), digest]));
}

/** What an app asks its user to sign. */
export interface TransactionRequest {
  userId: string;
  identifier: string;
  data: unknown;
}

/**
 * Records a transaction and returns request options whose challenge commits to it. In
 * Hanko's order: unknown user 404, an identifier the tenant already used 409, a user
 * without passkeys 400. Only passkeys sign transactions, never second factors.
 */
export async function startTransaction(
  db: Db,
  tenant: StoredTenant,
  request: TransactionRequest,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const dataJson = transactionDataJson(request.data);
  return db.transaction().execute(async (trx) => {
    if (!(await passkeyTenantUsersQueries.find(trx, tenant.id, request.userId))) {
      throw hankoError(404, HANKO_TITLES.transactionUserNotFound);
    }
    // Hanko's words (services/transaction_service.go), as every passkey API refusal has.
    const transactionExists = () => hankoError(409, 'transaction already exists');
    if (await passkeyTenantTransactionsQueries.findByIdentifier(trx, tenant.id, request.identifier)) {
      throw transactionExists();
    }
    const passkeys = (
      await passkeyTenantCredentialsQueries.listForUser(trx, tenant.id, request.userId)
    ).filter((c) => !c.isMfa);
    if (passkeys.length === 0) throw noSuitableCredentials();
    const options = await generateAuthenticationOptions({
      rpID: tenant.rpId,
      challenge: transactionChallenge(request.identifier, dataJson),
      // The tenant's passkey settings, as Hanko's transactions use its WebAuthn config.
      timeout: tenant.settings.webauthn.timeoutMs,
      userVerification: tenant.settings.webauthn.userVerification,
      // Transports left out, as Hanko does (see startMfaLogin).
      allowCredentials: passkeys.map((c) => ({ id: c.id })),
    });
    const recorded = await passkeyTenantTransactionsQueries.insert(trx, {
      tenant_id: tenant.id,
      user_id: request.userId,
      identifier: request.identifier,
      data: dataJson,
    });
    // A concurrent request with the same identifier won the unique constraint.
    if (!recorded) throw transactionExists();
    await storeChallenge(trx, {
      challenge: options.challenge,
      purpose: PURPOSE,
      binding: tenantChallengeBinding(tenant.id),
      userId: null,
      data: { userId: request.userId, transactionId: request.identifier },
    });
    return options;
  });
}

/**
 * Verifies the signed transaction (WebAuthn L3 §7.2, user verification as for a passkey
 * login: required unless the tenant's settings say otherwise): the challenge is this tenant's transaction challenge and unused, the
 * passkey is the user's and not a second factor. Returns a token whose `trans` claim is the
 * transaction id. Failures answer 401 in Hanko's words, as in Hanko.
 */
export async function finishTransaction(
  db: Db,
  config: Pick<Config, 'issuer' | 'keyEncryptionSecret' | 'keyEncryptionSecretPrevious'>,
  log: Pick<Logger, 'warn'>,
  tenant: StoredTenant,
  response: AuthenticationResponseJSON,
): Promise<string> {
  return refusedAsLogin(async () => {
    const { credential, data } = await verifyTenantAssertion(db, log, tenant, response, {
      purpose: PURPOSE,
      settings: 'webauthn',
      accepts: (c, { userId, transactionId }) =>
        typeof transactionId === 'string' && !c.isMfa && c.userId === userId,
      discoverable: () => false,
    });
    return signPasskeyToken(db, config, tenant, {
      userId: credential.userId,
      credentialId: credential.id,
      transactionId: data.transactionId as string,
    });
  });
}

/** The user's transactions, oldest first; none for a user the tenant does not know. */
export async function listTransactions(db: Db, tenantId: string, userId: string): Promise<TransactionJson[]> {
  const transactions = await passkeyTenantTransactionsQueries.listForUser(db, tenantId, userId);
  return transactions.map(transactionJson);
}
