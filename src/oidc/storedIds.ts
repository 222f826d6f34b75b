import { hash } from 'node:crypto';
import type { AdapterPayload } from 'oidc-provider';

/**
 * Grants are the one stored model whose id is never presented as a credential: a grant id
 * names the consent that codes and tokens were issued under (their `grantId`, the
 * `grant_id` column), and the account pages list and revoke grants by it. Every other
 * model's id is a bearer value or as good as one — access and refresh tokens, codes, the
 * session id the browser's cookie holds, interaction and pushed-request ids — and is
 * stored only as its hash.
 *
 * Device codes (RFC 8628) are kept as they are too: the person's side of the flow finds one
 * by the user code they type and then saves it again, and the provider records its value
 * in the interaction it starts for them, so hashing the row's key would not keep the value
 * out of the database. A device code lives ten minutes, is used once and only by the client
 * it was issued to.
 */
const KEPT_AS_IS = new Set(['Grant', 'Client', 'DeviceCode']);

/**
 * The id under which a model instance is stored: the SHA-256 of the value, base64url, so a
 * database dump holds nothing anyone could present (migration 0008). A hash, not a slow
 * password hash: the values are random and ≥ 128 bits, and this runs on every request
 * (one-shot `crypto.hash`: ~6 µs here on a loaded machine, against ~25 µs for createHash).
 */
export function storedId(model: string, id: string): string {
  if (KEPT_AS_IS.has(model)) return id;
  if (id !== hashed.value) {
    // Kept until this turn of the event loop ends: no bearer value outlives its request here.
    if (hashed.value === undefined) queueMicrotask(forgetHashed);
    hashed.value = id;
    hashed.id = hash('sha256', id, 'base64url');
  }
  return hashed.id;
}

/**
 * The last value hashed in this turn of the event loop. Introspection and revocation without
 * a hint look a token up as three models at once, and all three hash the same value.
 */
const hashed: { value?: string; id: string } = { id: '' };

function forgetHashed() {
  hashed.value = undefined;
  hashed.id = '';
}

/**
 * The JSON to store of a payload: without the value itself (oidc-provider's `jti` is the id).
 * The provider's object is left as it was: `jti` is hidden from `JSON.stringify` (which skips
 * an undefined property) for the call only and set back before this returns. A copy without
 * it, made for every save, cost ~4× as much in a loop (bench/README.md, "2026-12-07, speed helper
 * (second)").
 */
export function storedJson(model: string, id: string, payload: AdapterPayload): string {
  if (KEPT_AS_IS.has(model) || payload.jti !== id) return JSON.stringify(payload);
  payload.jti = undefined;
  try {
    return JSON.stringify(payload);
  } finally {
    payload.jti = id;
  }
}

/**
 * The payload as oidc-provider saved it: `jti` back from the id the provider looked it up by,
 * set on `stored`, which must be the caller's own (as the database and the model cache give).
 */
export function payloadAsSaved(model: string, id: string, stored: AdapterPayload): AdapterPayload {
  if (!KEPT_AS_IS.has(model)) stored.jti = id;
  return stored;
}
