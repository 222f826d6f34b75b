import { createCipheriv, hash, randomBytes } from 'node:crypto';

/**
 * A value sealed as Sesame sealed it before values were bound to their rows: `enc:v1:` and
 * base64url(iv | tag | ciphertext), AES-256-GCM without associated data. Written out here, not
 * taken from src, so the tests hold what an older Sesame left in the database.
 */
export function sealUnbound(plaintext: string, secret: string): string {
  const key = hash('sha256', `sesame key encryption\0${secret}`, 'buffer');
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `enc:v1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
}
