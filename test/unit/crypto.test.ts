import { isSealed, openAtRest, openSealed, randomId, sealAtRest } from '../../src/crypto.js';
import type { TenantId } from '../../src/db/queries/passkeyTenants.js';
import { sealContext } from '../../src/sealContext.js';
import { sealUnbound } from '../support/unboundSeal.js';

describe('randomId', () => {
  it('never starts with "-", which a command line would read as an option', () => {
    // One in 64 base64url strings starts with '-': 4,000 draws without the guard all but
    // certainly (1 - (63/64)^4000) include one.
    const ids = Array.from({ length: 4_000 }, () => randomId());
    expect(ids.filter((id) => id.startsWith('-'))).toEqual([]);
    expect(new Set(ids.map((id) => id.length))).toEqual(new Set([22]));
    expect(new Set(ids).size).toBe(ids.length);
    // Still uses the whole alphabet after the first character.
    expect(ids.some((id) => id.slice(1).includes('-'))).toBe(true);
  });
});

describe('openAtRest with KEY_ENCRYPTION_SECRET and KEY_ENCRYPTION_SECRET_PREVIOUS', () => {
  const current = 'c'.repeat(32);
  const previous = 'p'.repeat(32);
  const both = { keyEncryptionSecret: current, keyEncryptionSecretPrevious: previous };
  const row = 'signing_keys:es256-abc';

  it('opens what either secret sealed, and says which did', () => {
    expect(openAtRest(sealAtRest('by current', current, row), both, row)).toBe('by current');
    expect(openAtRest(sealAtRest('by previous', previous, row), both, row)).toBe('by previous');
    expect(openSealed(sealAtRest('x', current, row), both, row)).toEqual({
      plaintext: 'x',
      by: 'current',
      bound: true,
    });
    expect(openSealed(sealAtRest('x', previous, row), both, row)?.by).toBe('previous');
    expect(openAtRest('plain', both, row)).toBe('plain');
  });

  it('refuses a value neither sealed, naming both variables and the row, and neither value', () => {
    const other = sealAtRest('x', 'o'.repeat(32), row);
    expect(openSealed(other, both, row)).toBeUndefined();
    expect(() => openAtRest(other, both, row)).toThrow(
      `${row}: a stored key is encrypted with neither KEY_ENCRYPTION_SECRET nor KEY_ENCRYPTION_SECRET_PREVIOUS`,
    );
    expect(() =>
      openAtRest(sealAtRest('x', previous, row), { ...both, keyEncryptionSecretPrevious: undefined }, row),
    ).toThrow('a stored key is encrypted with another secret than KEY_ENCRYPTION_SECRET');
  });
});

/** The error `run` throws, its name and message; undefined when it throws none. */
function errorOf(run: () => unknown): { name: string; message: string } | undefined {
  try {
    run();
  } catch (error) {
    return { name: (error as Error).name, message: (error as Error).message };
  }
  return undefined;
}

describe('a sealed value is bound to the row it is stored in', () => {
  const secret = 's'.repeat(32);
  const secrets = { keyEncryptionSecret: secret, keyEncryptionSecretPrevious: undefined };
  const mailBody = sealContext.mailBody('2f1c0c9e-4a5b-4c6d-8e7f-0123456789ab', 'text_body');

  it('refuses it in another row, naming both rows and no secret', () => {
    const signingKey = sealAtRest('{"d":"private"}', secret, sealContext.signingKey('es256-a'));
    const elsewhere = [
      sealContext.signingKey('es256-b'),
      sealContext.passkeyTenantKey('tenant-2' as TenantId, 'es256-a'),
      sealContext.appSecret('cookie_keys'),
    ];
    for (const row of elsewhere) {
      // The whole message: the two rows, nothing of the secret or the value.
      const refusal = {
        name: 'SealedElsewhereError',
        message: `${row} holds a value sealed for signing_keys:es256-a: a sealed value opens only where it was written`,
      };
      expect(errorOf(() => openSealed(signingKey, secrets, row))).toEqual(refusal);
      expect(errorOf(() => openAtRest(signingKey, secrets, row))).toEqual(refusal);
    }
    // A mail's body in a signing key's column, and in its own row's other column.
    const body = sealAtRest('hello', secret, mailBody);
    expect(() => openAtRest(body, secrets, sealContext.signingKey('es256-a'))).toThrow(
      `signing_keys:es256-a holds a value sealed for ${mailBody}`,
    );
    const htmlColumn = mailBody.replace(/text_body$/, 'html_body');
    expect(errorOf(() => openAtRest(body, secrets, htmlColumn))?.name).toBe('SealedElsewhereError');
  });

  it('does not open it where its row was written over to match: GCM checks the row, not the label', () => {
    const sealed = sealAtRest(
      '{"d":"private"}',
      secret,
      sealContext.passkeyTenantKey('tenant-1' as TenantId, 'pk-a'),
    );
    const relabelled = sealed.replace('tenant-1', 'tenant-2');
    expect(relabelled).not.toBe(sealed);
    expect(
      openSealed(relabelled, secrets, sealContext.passkeyTenantKey('tenant-2' as TenantId, 'pk-a')),
    ).toBeUndefined();
  });

  it('opens a value an older Sesame sealed without a row (enc:v1:) with either secret, and says it is not bound', () => {
    const previous = 'p'.repeat(32);
    const both = { keyEncryptionSecret: secret, keyEncryptionSecretPrevious: previous };
    const row = sealContext.appSecret('cookie_keys');
    expect(openSealed(sealUnbound('["key"]', secret), both, row)).toEqual({
      plaintext: '["key"]',
      by: 'current',
      bound: false,
    });
    expect(openSealed(sealUnbound('["key"]', previous), both, row)).toEqual({
      plaintext: '["key"]',
      by: 'previous',
      bound: false,
    });
    expect(isSealed(sealUnbound('x', secret))).toBe(true);
    expect(openSealed(sealUnbound('x', 'o'.repeat(32)), both, row)).toBeUndefined();
  });
});

describe('the GCM tag of a sealed value', () => {
  const secret = 's'.repeat(32);
  const secrets = { keyEncryptionSecret: secret, keyEncryptionSecretPrevious: undefined };
  const row = sealContext.signingKey('es256-a');

  /** The envelope with its last `bytes` bytes cut off: of an empty value, they are the tag's. */
  const cutShort = (envelope: string, bytes: number) => {
    const at = envelope.lastIndexOf(':') + 1;
    const raw = Buffer.from(envelope.slice(at), 'base64url');
    return envelope.slice(0, at) + raw.subarray(0, raw.length - bytes).toString('base64url');
  };

  it('is refused cut short, though what is left of it matches (GCM checks only as many bytes as it is given)', () => {
    for (const envelope of [sealAtRest('', secret, row), sealUnbound('', secret)]) {
      expect(openAtRest(envelope, secrets, row)).toBe('');
      for (const bytes of [4, 8, 12]) {
        expect(() => openSealed(cutShort(envelope, bytes), secrets, row)).toThrow(
          `${row}: the sealed value is cut short: it has no whole 16-byte tag`,
        );
      }
    }
  });
});
