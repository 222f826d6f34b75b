import {
  checkClaimKey,
  mergeCustomClaims,
  parseClaimValue,
  unreleasedClaimNames,
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
    'sub_jwk',
    'verified_claims',
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

  it.each(['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', 'toLocaleString'])(
    'refuses %s, a name every JavaScript object has',
    (key) => {
      expect(() => checkClaimKey(key)).toThrow(
        `${key} is the name of a property every JavaScript object has`,
      );
    },
  );

  it('refuses null and numbers that would not read back the same, naming the way to keep them', () => {
    expect(() => withClaim({}, 'gone', null)).toThrow('cannot be null; unset the claim');
    // The refusal names the number as typed, not as a double rounded it.
    expect(() => withClaim({}, 'account', parseClaimValue('12345678901234567890'))).toThrow(
      /^12345678901234567890 cannot be kept exactly as a number .* quote it to keep it as a string/,
    );
    expect(() => withClaim({}, 'big', parseClaimValue('1e400'))).toThrow(/^1e400 cannot be kept exactly/);
    expect(() => withClaim({}, 'nested', parseClaimValue('{"a":[1,-1e400]}'))).toThrow(/^-1e400 cannot/);
    // A decimal with more digits than a double keeps was stored rounded.
    expect(() => withClaim({}, 'fraction', parseClaimValue('0.12345678901234567890123'))).toThrow(
      /^0.12345678901234567890123 cannot be kept exactly/,
    );
    expect(() =>
      withClaim({}, 'nested', parseClaimValue('{"n":"1e400","x":[0.1234567890123456789]}')),
    ).toThrow(/^0.1234567890123456789 cannot/);
    // Numbers a double keeps, however written, and digits inside strings, pass.
    for (const typed of [
      '0.1',
      '1.50',
      '-0.000123',
      '123456789012345',
      '9007199254740991',
      '2.5e3',
      '2.5E-3',
    ])
      expect(withClaim({}, 'n', parseClaimValue(typed)).n).toBe(Number(typed));
    expect(withClaim({}, 's', parseClaimValue('{"id":"0.12345678901234567890123"}')).s).toEqual({
      id: '0.12345678901234567890123',
    });
    expect(() => withClaim({}, 'api', Number.POSITIVE_INFINITY)).toThrow(/Infinity cannot be kept exactly/);
    expect(withClaim({}, 'account', parseClaimValue('"12345678901234567890"')).account).toBe(
      '12345678901234567890',
    );
    expect(withClaim({}, 'max', Number.MAX_SAFE_INTEGER).max).toBe(Number.MAX_SAFE_INTEGER);
    expect(withClaim({}, 'ratio', 0.1).ratio).toBe(0.1);
    expect(withClaim({}, 'optional', { a: null }).optional).toEqual({ a: null });
  });

  it('bounds a value, the number of claims and their total size', () => {
    expect(() => withClaim({}, 'big', 'x'.repeat(2047))).toThrow('at most 2048 bytes');
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
    expect(() => withClaim(fifty, 'one_more', 1)).toThrow('at most 50 claims');
    expect(withClaim(fifty, 'k0', 'replaced').k0).toBe('replaced');
    const large = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`k${i}`, 'x'.repeat(2000)]));
    expect(() => withClaim(large, 'k4', 'x'.repeat(2000))).toThrow('at most 8192 bytes');
  });

  it('releases no stored number that reads back rounded (stored before such numbers were refused)', () => {
    // jsonb keeps 12345678901234567890 exactly; read into a double (as pg reads jsonb) it is another number.
    const stored = (json: string) => JSON.parse(json) as Record<string, unknown>;
    expect(
      mergeCustomClaims({}, [stored('{"account":12345678901234567890,"team":"a","ratio":0.5}')]),
    ).toEqual({
      team: 'a',
      ratio: 0.5,
    });
    expect(
      unreleasedClaimNames(stored('{"account":12345678901234567890,"deep":{"n":[1e400]},"ok":1}')),
    ).toEqual(['account', 'deep']);
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
    // Nor one named like a property of every object, nor a null (OIDC Core §5.3.2 omits it).
    const stored = JSON.parse('{"__proto__":{"x":1},"constructor":"x","toString":"y","kept":1,"empty":null}');
    const released = mergeCustomClaims(stored, [{ valueOf: 1, team: 'a' }]);
    expect(released).toEqual({ kept: 1, team: 'a' });
    expect(Object.getPrototypeOf(released)).toBe(Object.prototype);
    expect(released.constructor).toBe(Object);
    expect(withoutClaim({ a: 1, b: 2 }, 'a')).toEqual({ b: 2 });
  });
});
