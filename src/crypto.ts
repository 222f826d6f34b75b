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
  if (typeof presented !== 'string' || !storedHash) return false;
  const actual = hash('sha256', presented, 'buffer');
  const expected = Buffer.from(storedHash, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

const ENVELOPE = 'enc:v1:';

function keyFrom(secret: string): Buffer {
  return hash('sha256', `sesame key encryption\0${secret}`, 'buffer');
}

/** Whether a stored value is an envelope of {@link sealAtRest} (else it is plain text). */
export function isSealed(stored: string): boolean {
  return stored.startsWith(ENVELOPE);
}

/** Encrypts a value at rest with AES-256-GCM when a key-encryption secret is configured. */
export function sealAtRest(plaintext: string, secret: string | undefined): string {
  if (!secret) return plaintext;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFrom(secret), iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ENVELOPE + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/**
 * The secrets stored values are opened with: KEY_ENCRYPTION_SECRET, which also seals, and
 * while the keys are re-sealed under it, the secret it replaces (KEY_ENCRYPTION_SECRET_PREVIOUS).
 */
export interface AtRestSecrets {
  readonly keyEncryptionSecret: string | undefined;
  readonly keyEncryptionSecretPrevious: string | undefined;
}

function decrypt(stored: string, secret: string): string {
  const raw = Buffer.from(stored.slice(ENVELOPE.length), 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', keyFrom(secret), raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
}

/**
 * Opens an envelope of {@link sealAtRest} with the current secret, else the previous one,
 * and says which did; undefined when neither does (or neither is set).
 */
export function openSealed(
  stored: string,
  secrets: AtRestSecrets,
): { plaintext: string; by: 'current' | 'previous' } | undefined {
  const tries = [
    { by: 'current', secret: secrets.keyEncryptionSecret },
    { by: 'previous', secret: secrets.keyEncryptionSecretPrevious },
  ] as const;
  for (const { by, secret } of tries) {
    if (!secret) continue;
    try {
      return { plaintext: decrypt(stored, secret), by };
    } catch {
      // Sealed with another secret (GCM's tag does not match): try the next one.
    }
  }
  return undefined;
}

/**
 * Reverses {@link sealAtRest} with either secret (see {@link AtRestSecrets}); a value stored
 * before encryption was turned on reads as it is.
 */
export function openAtRest(stored: string, secrets: AtRestSecrets): string {
  if (!isSealed(stored)) return stored;
  if (!secrets.keyEncryptionSecret) {
    throw new Error('a stored key is encrypted: set KEY_ENCRYPTION_SECRET to read it');
  }
  const opened = openSealed(stored, secrets);
  if (!opened) {
    throw new Error(
      secrets.keyEncryptionSecretPrevious
        ? 'a stored key is encrypted with neither KEY_ENCRYPTION_SECRET nor KEY_ENCRYPTION_SECRET_PREVIOUS'
        : 'a stored key is encrypted with another secret than KEY_ENCRYPTION_SECRET',
    );
  }
  return opened.plaintext;
}
