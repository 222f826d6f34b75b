import { createCipheriv, createDecipheriv, hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A random secret of 256 bits, base64url: client secrets, API keys, one-time link tokens, passkey challenges. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** A random identifier that is not a secret (client ids and the like). */
export function randomId(bytes = 16): string {
  const id = randomBytes(bytes).toString('base64url');
  // Ids are typed on command lines (`sesame clients update ID`): one starting with '-' would
  // be read as an option. Drawing again keeps the others equally likely.
  return id.startsWith('-') ? randomId(bytes) : id;
}

/**
 * SHA-256 of a generated secret, hex. A slow password hash adds nothing against guessing a
 * random 256-bit value and would cost every token request (see DESIGN.md, "Secrets at rest").
 * One-shot `crypto.hash`: a Hash object and a hex round trip cost 5.7–7.2 µs of every client
 * authentication against 3.6–5.8 µs (bench/README.md, 2026-12-03 12:55).
 */
export function sha256Hex(value: string): string {
  return hash('sha256', value, 'hex');
}

/** Compares a presented secret with a stored SHA-256 hash in constant time. */
export function secretMatchesHash(presented: unknown, storedHash: string | null | undefined): boolean {
  return secretMatchesAnyHash(presented, [storedHash]);
}

/**
 * Whether a presented secret is any of these stored SHA-256 hashes (a key and the one it
 * replaced): hashed once, compared with each in constant time, every one compared.
 */
export function secretMatchesAnyHash(
  presented: unknown,
  storedHashes: readonly (string | null | undefined)[],
): boolean {
  if (typeof presented !== 'string' || !storedHashes.some(Boolean)) return false;
  const actual = hash('sha256', presented, 'buffer');
  let matches = false;
  for (const storedHash of storedHashes) {
    if (!storedHash) continue;
    const expected = Buffer.from(storedHash, 'hex');
    if (actual.length === expected.length && timingSafeEqual(actual, expected)) matches = true;
  }
  return matches;
}

/**
 * The envelope before values were bound to their rows: `enc:v1:` and base64url(iv | tag |
 * ciphertext), without associated data, so it opened in any row. Still read (what an older
 * Sesame wrote); `sesame keys reseal` and the start write it anew as {@link ENVELOPE}.
 */
const UNBOUND_ENVELOPE = 'enc:v1:';
/**
 * `enc:v2:<context>:` and base64url(iv | tag | ciphertext), the context (the row the value is
 * stored in, see sealContext) given to GCM as associated data. The context is written in the
 * clear only to say where a value that was moved came from: the one checked is always the
 * row's own.
 */
const ENVELOPE = 'enc:v2:';
const IV_BYTES = 12;
/** GCM's full tag (NIST SP 800-38D §5.2.1.2): a shorter one is refused, never checked as far as it goes. */
const TAG_BYTES = 16;

function keyFrom(secret: string): Buffer {
  return hash('sha256', `sesame key encryption\0${secret}`, 'buffer');
}

/** Whether a stored value is an envelope of {@link sealAtRest} (else it is plain text). */
export function isSealed(stored: string): boolean {
  return stored.startsWith(ENVELOPE) || stored.startsWith(UNBOUND_ENVELOPE);
}

/**
 * Encrypts a value at rest with AES-256-GCM when a key-encryption secret is configured,
 * bound to `context`, the row it is stored in (see sealContext): it opens there only.
 */
export function sealAtRest(plaintext: string, secret: string | undefined, context: string): string {
  if (!secret) return plaintext;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyFrom(secret), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${ENVELOPE}${context}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
}

/**
 * The secrets stored values are opened with: KEY_ENCRYPTION_SECRET, which also seals, and
 * while the keys are re-sealed under it, the secret it replaces (KEY_ENCRYPTION_SECRET_PREVIOUS).
 */
export interface AtRestSecrets {
  readonly keyEncryptionSecret: string | undefined;
  readonly keyEncryptionSecretPrevious: string | undefined;
}

/** A sealed value found in another row than the one it was sealed for: it was copied or moved there. */
export class SealedElsewhereError extends Error {
  override name = 'SealedElsewhereError';
  constructor(context: string, sealedFor: string) {
    super(`${context} holds a value sealed for ${sealedFor}: a sealed value opens only where it was written`);
  }
}

/**
 * An envelope taken apart: what GCM decrypts, and the associated data it checks (none for the
 * unbound one). Throws, naming the row, for one sealed for another row and one too short to
 * hold a whole tag.
 */
function parseEnvelope(stored: string, context: string): { sealed: Buffer; aad: string | undefined } {
  let envelope: { sealed: Buffer; aad: string | undefined };
  if (stored.startsWith(UNBOUND_ENVELOPE)) {
    envelope = { sealed: Buffer.from(stored.slice(UNBOUND_ENVELOPE.length), 'base64url'), aad: undefined };
  } else {
    const colon = stored.lastIndexOf(':');
    const sealedFor = stored.slice(ENVELOPE.length, colon);
    if (sealedFor !== context) throw new SealedElsewhereError(context, sealedFor);
    envelope = { sealed: Buffer.from(stored.slice(colon + 1), 'base64url'), aad: context };
  }
  if (envelope.sealed.length < IV_BYTES + TAG_BYTES) {
    throw new Error(`${context}: the sealed value is cut short: it has no whole ${TAG_BYTES}-byte tag`);
  }
  return envelope;
}

function decrypt({ sealed, aad }: { sealed: Buffer; aad: string | undefined }, secret: string): string {
  const decipher = createDecipheriv('aes-256-gcm', keyFrom(secret), sealed.subarray(0, IV_BYTES), {
    authTagLength: TAG_BYTES,
  });
  if (aad !== undefined) decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
    'utf8',
  );
}

/**
 * Opens an envelope of {@link sealAtRest} stored at `context` with the current secret, else
 * the previous one, and says which did and whether it was bound to its row (false: written by
 * a Sesame before that, to be sealed anew); undefined when neither secret opens it (or neither
 * is set).
 * @throws SealedElsewhereError when it was sealed for another row; an Error when it is cut short.
 */
export function openSealed(
  stored: string,
  secrets: AtRestSecrets,
  context: string,
): { plaintext: string; by: 'current' | 'previous'; bound: boolean } | undefined {
  const envelope = parseEnvelope(stored, context);
  const tries = [
    { by: 'current', secret: secrets.keyEncryptionSecret },
    { by: 'previous', secret: secrets.keyEncryptionSecretPrevious },
  ] as const;
  for (const { by, secret } of tries) {
    if (!secret) continue;
    try {
      return { plaintext: decrypt(envelope, secret), by, bound: envelope.aad !== undefined };
    } catch {
      // Sealed with another secret (GCM's tag does not match), or altered: try the next one.
    }
  }
  return undefined;
}

/**
 * Reverses {@link sealAtRest} for the row `context` with either secret (see
 * {@link AtRestSecrets}); a value stored before encryption was turned on reads as it is.
 * @throws naming the row, never a secret: when the value does not open, or was sealed for another row.
 */
export function openAtRest(stored: string, secrets: AtRestSecrets, context: string): string {
  if (!isSealed(stored)) return stored;
  if (!secrets.keyEncryptionSecret) {
    throw new Error(`${context}: a stored key is encrypted: set KEY_ENCRYPTION_SECRET to read it`);
  }
  const opened = openSealed(stored, secrets, context);
  if (!opened) {
    throw new Error(
      secrets.keyEncryptionSecretPrevious
        ? `${context}: a stored key is encrypted with neither KEY_ENCRYPTION_SECRET nor KEY_ENCRYPTION_SECRET_PREVIOUS`
        : `${context}: a stored key is encrypted with another secret than KEY_ENCRYPTION_SECRET`,
    );
  }
  return opened.plaintext;
}
