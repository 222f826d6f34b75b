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
 * What a sign-in's passkey challenges are bound to (webauthn_challenges.binding): its
 * interaction's stored id, not its uid, which is the value of its cookies.
 */
export function interactionBinding(uid: string): string {
  return storedId('Interaction', uid);
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
 * (second)"). An interaction's is that of {@link payloadToStore}.
 */
export function storedJson(model: string, id: string, payload: AdapterPayload): string {
  // An interaction's is a copy without its browser values (rarer than tokens and sessions).
  if (model === 'Interaction') return JSON.stringify(payloadToStore(model, id, payload));
  if (KEPT_AS_IS.has(model) || payload.jti !== id) return JSON.stringify(payload);
  payload.jti = undefined;
  try {
    return JSON.stringify(payload);
  } finally {
    payload.jti = id;
  }
}

/**
 * The payload to store: without the value itself (oidc-provider's `jti` is the id), and for an
 * interaction without the browser values it holds besides (see {@link interactionToStore}).
 */
export function payloadToStore(model: string, id: string, payload: AdapterPayload): AdapterPayload {
  if (KEPT_AS_IS.has(model)) return payload;
  const { jti, ...rest } = payload;
  const stored = jti === id ? rest : payload;
  return model === 'Interaction' ? interactionToStore(id, stored) : stored;
}

/** What an interaction's `returnTo` holds in place of its uid when stored. */
const UID_IN_RETURN_TO = '/:uid';

/**
 * An interaction's payload without the two copies of browser cookie values oidc-provider
 * puts in it (lib/models/interaction.js, lib/actions/authorization/interactions.js):
 * - `session.cookie`, the id of the signed-in person's session, which is the value of the
 *   `_session` cookie: with the cookie key it signed that browser in anywhere. Nothing reads
 *   it back (the provider checks an interaction against its session by `session.uid` and
 *   `accountId`), so it is not stored at all.
 * - the uid in `returnTo` (`…/auth/<uid>`), the value of the `_interaction` and
 *   `_interaction_resume` cookies: stored as `…/auth/:uid` and put back from the id.
 * A new object; `payload`, which may be the provider's own, is left as it is.
 */
function interactionToStore(id: string, payload: AdapterPayload): AdapterPayload {
  const { session, returnTo } = payload as { session?: Record<string, unknown>; returnTo?: unknown };
  const stored: AdapterPayload = { ...payload };
  if (session && 'cookie' in session) {
    const { cookie: _cookie, ...rest } = session;
    stored.session = rest;
  }
  if (typeof returnTo === 'string' && returnTo.endsWith(`/${id}`)) {
    stored.returnTo = `${returnTo.slice(0, -id.length - 1)}${UID_IN_RETURN_TO}`;
  }
  return stored;
}

/**
 * The payload as oidc-provider saved it: `jti` back from the id the provider looked it up by
 * (and an interaction's uid in its `returnTo`), set on `stored`, which must be the caller's
 * own (as the database and the model cache give).
 */
export function payloadAsSaved(model: string, id: string, stored: AdapterPayload): AdapterPayload {
  if (KEPT_AS_IS.has(model)) return stored;
  stored.jti = id;
  if (
    model === 'Interaction' &&
    typeof stored.returnTo === 'string' &&
    stored.returnTo.endsWith(UID_IN_RETURN_TO)
  ) {
    stored.returnTo = `${stored.returnTo.slice(0, -UID_IN_RETURN_TO.length)}/${id}`;
  }
  return stored;
}
