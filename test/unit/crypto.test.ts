import { randomId } from '../../src/crypto.js';

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
