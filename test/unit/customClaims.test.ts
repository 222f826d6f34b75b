import {
  checkClaimKey,
  mergeCustomClaims,
  parseClaimValue,
  withClaim,
  withoutClaim,
} from '../../src/accounts/customClaims.js';

describe('custom claims', () => {
  it.each([
    'sub',
    'iss',
    'aud',
    'exp',
    'iat',
    'nbf',
    'jti',
    'auth_time',
    'nonce',
    'acr',
    'amr',
    'azp',
    'sid',
  ])('refuses the registered name %s with one line naming the rule', (key) => {
    expect(() => checkClaimKey(key)).toThrow(`${key} is a registered OIDC claim or one Sesame issues itself`);
  });

  it.each([
    'at_hash',
    'c_hash',
    'email',
    'email_verified',
    'name',
    'groups',
    'phone_number',
    'address',
    'locale',
  ])('refuses %s, a claim Sesame or OIDC defines', (key) => {
    expect(() => checkClaimKey(key)).toThrow(/registered OIDC claim/);
  });

  it('refuses empty, overlong and odd names', () => {
    expect(() => checkClaimKey('')).toThrow('a claim name is required');
    expect(() => checkClaimKey('a'.repeat(65))).toThrow('at most 64 characters');
    expect(() => checkClaimKey('1st')).toThrow(/starts with a letter/);
    expect(() => checkClaimKey('a b')).toThrow(/starts with a letter/);
    expect(() => checkClaimKey('https://example.com/role')).toThrow(/starts with a letter/);
    expect(() => checkClaimKey('tenant.role:x-y_z')).not.toThrow();
  });

  it('bounds a value, the number of claims and their total size', () => {
    expect(() => withClaim({}, 'big', 'x'.repeat(2047))).toThrow('at most 2048 bytes');
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
    expect(() => withClaim(fifty, 'one_more', 1)).toThrow('at most 50 claims');
    expect(withClaim(fifty, 'k0', 'replaced').k0).toBe('replaced');
    const large = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`k${i}`, 'x'.repeat(2000)]));
    expect(() => withClaim(large, 'k4', 'x'.repeat(2000))).toThrow('at most 8192 bytes');
  });

  it('reads VALUE as JSON, else as the text itself', () => {
    expect(parseClaimValue('42')).toBe(42);
    expect(parseClaimValue('true')).toBe(true);
    expect(parseClaimValue('["a","b"]')).toEqual(['a', 'b']);
    expect(parseClaimValue('{"a":1}')).toEqual({ a: 1 });
    expect(parseClaimValue('Finance')).toBe('Finance');
    expect(parseClaimValue('')).toBe('');
  });

  it("lets the user's value win over a group's, and the first group by name win between groups", () => {
    expect(
      mergeCustomClaims({ level: 'user' }, [
        { level: 'a', a: 1 },
        { level: 'b', b: 2 },
      ]),
    ).toEqual({
      level: 'user',
      a: 1,
      b: 2,
    });
    expect(mergeCustomClaims({}, [{ level: 'a' }, { level: 'b' }])).toEqual({ level: 'a' });
    // A name stored before it became reserved is never released.
    expect(mergeCustomClaims({ email: 'x@evil.example' }, [])).toEqual({});
    expect(withoutClaim({ a: 1, b: 2 }, 'a')).toEqual({ b: 2 });
  });
});
