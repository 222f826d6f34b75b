import { openAtRest, openSealed, randomId, sealAtRest } from '../../src/crypto.js';

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

  it('opens what either secret sealed, and says which did', () => {
    expect(openAtRest(sealAtRest('by current', current), both)).toBe('by current');
    expect(openAtRest(sealAtRest('by previous', previous), both)).toBe('by previous');
    expect(openSealed(sealAtRest('x', current), both)?.by).toBe('current');
    expect(openSealed(sealAtRest('x', previous), both)?.by).toBe('previous');
    expect(openAtRest('plain', both)).toBe('plain');
  });

  it('refuses a value neither sealed, naming both variables and neither value', () => {
    const other = sealAtRest('x', 'o'.repeat(32));
    expect(openSealed(other, both)).toBeUndefined();
    expect(() => openAtRest(other, both)).toThrow(
      'a stored key is encrypted with neither KEY_ENCRYPTION_SECRET nor KEY_ENCRYPTION_SECRET_PREVIOUS',
    );
    expect(() =>
      openAtRest(sealAtRest('x', previous), { ...both, keyEncryptionSecretPrevious: undefined }),
    ).toThrow('a stored key is encrypted with another secret than KEY_ENCRYPTION_SECRET');
  });
});
