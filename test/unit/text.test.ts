import {
  addressKey,
  hasNoControlCharacters,
  isPlainEmailAddress,
  isVisibleText,
  normalizeEmail,
  printable,
} from '../../src/text.js';

describe('names', () => {
  it.each([
    ['Ada Lovelace', true],
    ['José Ñúñez', true],
    ['李小龍', true],
    ['Ada 👩‍💻', true],
    ['Ada\u001b[31m', false],
    ['Ada\u0007', false],
    ['Ada\tL', false],
    ['Ada\nL', false],
    ['Ada\u0000', false],
    ['Ada\u009b31m', false],
    ['Ada\u202etxt.exe', false],
    ['Ada\u2066x\u2069', false],
  ])('%j has no control character: %s', (name, ok) => {
    expect(hasNoControlCharacters(name)).toBe(ok);
  });

  it.each([
    ['Ada', true],
    ['عائشة', true],
    ['देवनागरी', true],
    ['ไทย', true],
    ['李小龍', true],
    ['한글', true],
    ['\u1100\u1161', true], // a Hangul syllable as separate jamo
    ['👨‍👩‍👧', true],
    ['🇫🇷', true],
    ['1\ufe0f\u20e3', true], // a keycap
    ['e\u0301', true],
    ['\u0378', true], // unassigned, drawn as a box
    [' \u00a0\t', false],
    ['\u200b\u2060\u00ad', false],
    ['\u115f\u1160\u3164\uffa0', false], // Hangul fillers
    ['\u2800', false],
    ['\u0301', false],
    // Unassigned but reserved to draw as nothing (Default_Ignorable_Code_Point).
    ['\u2065', false],
    ['\ufff0\ufff8', false],
    ['\u{e0000}\u{e0002}\u{e0080}\u{e0fff}', false],
    ['\u034f\u180b\ufe0f', false],
  ])('%j shows something: %s', (name, shown) => {
    expect(isVisibleText(name)).toBe(shown);
  });

  it('prints control characters as their \\u escapes, newlines kept only when asked', () => {
    expect(printable('a\u001b]0;x\u0007b\r\nc')).toBe('a\\u001b]0;x\\u0007b\\u000d\\u000ac');
    expect(printable('line one\nline\u001b two', true)).toBe('line one\nline\\u001b two');
    expect(printable('plain é 李')).toBe('plain é 李');
    // A bidirectional override would show the rest of a table row reversed.
    expect(printable('https://api.example/\u202eNIMDA \u2066x\u2069')).toBe(
      'https://api.example/\\u202eNIMDA \\u2066x\\u2069',
    );
  });
});

describe('email addresses', () => {
  it.each([
    'ada@example.com',
    "o'brien+tag@example.com",
    'josé@bücher.example',
    'a.b.c@sub.example.co.uk',
    'x@xn--bcher-kva.example',
    '{a}|b=c?d@x-y.example',
    `${'a'.repeat(64)}@${'b'.repeat(63)}.example`,
  ])('takes %s', (email) => {
    expect(isPlainEmailAddress(normalizeEmail(email))).toBe(true);
  });

  it.each([
    'ceo<attacker@evil.example>',
    '"ceo" <attacker@evil.example>',
    'a@evil.example,b@corp.example',
    'a@evil.example;b@corp.example',
    '"a"b@corp.example',
    'a(comment)@corp.example',
    'a b@corp.example',
    'a@corp.example.',
    'a@corp..example',
    '.a@corp.example',
    'a.@corp.example',
    'a..b@corp.example',
    'a@-corp.example',
    'a@corp-.example',
    'a@example',
    '@example.com',
    'a@',
    'a\u001b@corp.example',
    `${'a'.repeat(250)}@x.example`,
    // What a mail server refuses with a 501 for good: a local part over 64 octets, a label
    // over 63 (in its ASCII form), a domain over 253.
    `${'a'.repeat(65)}@example.com`,
    `${'é'.repeat(33)}@example.com`,
    `b@${'c'.repeat(64)}.com`,
    `b@${'ü'.repeat(60)}.com`,
    `a@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(60)}.com`,
  ])('refuses %j', (email) => {
    expect(isPlainEmailAddress(normalizeEmail(email))).toBe(false);
  });

  it('keeps an address trimmed and in NFKC: full-width letters and a decomposed é are the usual ones', () => {
    expect(normalizeEmail('  ｗｉｄｅ@example.com ')).toBe('wide@example.com');
    expect(normalizeEmail('jose\u0301@example.com')).toBe('josé@example.com');
  });

  it('counts every spelling the database lowercases alike as one address, and more rather than fewer', () => {
    expect(
      new Set(
        ['alice@example.com', 'ALICE@Example.COM', 'alİce@example.com', 'ａｌｉｃｅ@example.com'].map(
          addressKey,
        ),
      ).size,
    ).toBe(1);
    expect(addressKey('ΣΟΦΙΑΣ@x.gr')).toBe(addressKey('σοφιας@x.gr'));
    expect(addressKey('bob@example.com')).not.toBe(addressKey('alice@example.com'));
  });
});
