import { createCipheriv, createDecipheriv, hash, hkdfSync, randomBytes } from 'node:crypto';
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
 * (second)"). An interaction's, and a session's with a field to seal, is that of {@link payloadToStore}.
 */
export function storedJson(model: string, id: string, payload: AdapterPayload): string {
  // A copy (rarer than tokens and sessions saves): an interaction without its browser values,
  // a session in the middle of a sign-out with its state sealed.
  if (model === 'Interaction' || (model === 'Session' && sessionStateToSeal(payload))) {
    return JSON.stringify(payloadToStore(model, id, payload));
  }
  if (KEPT_AS_IS.has(model) || payload.jti !== id) return JSON.stringify(payload);
  payload.jti = undefined;
  try {
    return JSON.stringify(payload);
  } finally {
    payload.jti = id;
  }
}

/**
 * The payload to store: without the value itself (oidc-provider's `jti` is the id), for an
 * interaction without the browser values it holds besides (see {@link interactionToStore}),
 * and for a session with its sign-out's way back sealed (see {@link sessionToStore}).
 */
export function payloadToStore(model: string, id: string, payload: AdapterPayload): AdapterPayload {
  if (KEPT_AS_IS.has(model)) return payload;
  const { jti, ...rest } = payload;
  const stored = jti === id ? rest : payload;
  if (model === 'Interaction') return interactionToStore(id, stored);
  if (model === 'Session') return sessionToStore(id, stored);
  return stored;
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
 * And `parJti`, the id of the pushed request it was started by (its `request_uri`), usable
 * until the sign-in ends: sealed with the interaction's id (see {@link sealField}), as the
 * pushed request itself is stored under its hash.
 * A new object; `payload`, which may be the provider's own, is left as it is.
 */
function interactionToStore(id: string, payload: AdapterPayload): AdapterPayload {
  const { session, returnTo, parJti } = payload as {
    session?: Record<string, unknown>;
    returnTo?: unknown;
    parJti?: unknown;
  };
  const stored: AdapterPayload = { ...payload };
  if (typeof parJti === 'string' && !isSealed(parJti)) stored.parJti = sealField(id, 'parJti', parJti);
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
 * A session's `state` whose `postLogoutRedirectUri` is to be sealed, if it has one. oidc-provider
 * sets it when a browser signed in as one person signs in as another
 * (lib/actions/authorization/resume.js): the URL of the sign-in's return, `…/auth/<uid>`, whose
 * uid is the value of its `_interaction_resume` cookie, and with the cookie key that return
 * finished the other person's sign-in in any browser until the sign-out page was submitted. An
 * app's sign-out (lib/actions/end_session.js) sets it to the app's URL, sealed too: one rule.
 */
function sessionStateToSeal(payload: AdapterPayload): Record<string, unknown> | undefined {
  const state = payload.state as Record<string, unknown> | undefined;
  const uri = state?.postLogoutRedirectUri;
  return typeof uri === 'string' && !isSealed(uri) ? state : undefined;
}

/** A new object with the session's sign-out way back sealed with its id; `payload` is left as it is. */
function sessionToStore(id: string, payload: AdapterPayload): AdapterPayload {
  const state = sessionStateToSeal(payload);
  if (!state) return payload;
  const postLogoutRedirectUri = sealField(id, 'postLogoutRedirectUri', state.postLogoutRedirectUri as string);
  return { ...payload, state: { ...state, postLogoutRedirectUri } };
}

/**
 * The payload as oidc-provider saved it: `jti` back from the id the provider looked it up by
 * (and an interaction's uid in its `returnTo`, its sealed fields opened), set on `stored`,
 * which must be the caller's own (as the database and the model cache give).
 */
export function payloadAsSaved(model: string, id: string, stored: AdapterPayload): AdapterPayload {
  if (KEPT_AS_IS.has(model)) return stored;
  stored.jti = id;
  if (model === 'Interaction') {
    if (typeof stored.returnTo === 'string' && stored.returnTo.endsWith(UID_IN_RETURN_TO)) {
      stored.returnTo = `${stored.returnTo.slice(0, -UID_IN_RETURN_TO.length)}/${id}`;
    }
    if (typeof stored.parJti === 'string' && isSealed(stored.parJti)) {
      stored.parJti = openField(id, 'parJti', stored.parJti);
    }
  } else if (model === 'Session') {
    const state = stored.state as Record<string, unknown> | undefined;
    const uri = state?.postLogoutRedirectUri;
    if (typeof uri === 'string' && isSealed(uri)) {
      state!.postLogoutRedirectUri = openField(id, 'postLogoutRedirectUri', uri);
    }
  }
  return stored;
}

/**
 * A sealed field: `sealed:v1:` and base64url of IV (12 bytes), GCM tag (16) and ciphertext,
 * AES-256-GCM under a key derived (HKDF-SHA256) from the id of the instance that holds it. The
 * id is stored only as its hash, so the database alone does not open it; the provider, which
 * looks the instance up by its id, reads it as it saved it. A session looked up by its uid
 * (the provider then reads only its account and grants) keeps it sealed, and a sealed value
 * stored again as it is stays sealed with the same id: it is never sealed twice.
 */
const SEALED = 'sealed:v1:';
const SEAL_SALT = 'sesame sealed field v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

function isSealed(value: string): boolean {
  return value.startsWith(SEALED);
}

/** The key of field `field` of the instance `id`: one key per instance and field. */
function fieldKey(id: string, field: string): Buffer {
  return Buffer.from(hkdfSync('sha256', id, SEAL_SALT, field, 32));
}

function sealField(id: string, field: string, value: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', fieldKey(id, field), iv);
  const sealed = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return `${SEALED}${Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url')}`;
}

/** The value of a sealed field; throws when it was not sealed with this id (a row not as stored). */
function openField(id: string, field: string, value: string): string {
  const bytes = Buffer.from(value.slice(SEALED.length), 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', fieldKey(id, field), bytes.subarray(0, IV_BYTES), {
    authTagLength: TAG_BYTES,
  });
  decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
    'utf8',
  );
}
