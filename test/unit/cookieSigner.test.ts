import Keygrip from 'keygrip';
import { CookieSigner } from '../../src/http/cookieSigner.js';

// Koa and oidc-provider signed their cookies with keygrip until CookieSigner took its place:
// a cookie set by a running Sesame before an upgrade must still read after it.
describe('CookieSigner', () => {
  const keys = ['first key 0123456789', 'second key 9876543210'];
  const data = '_session=Kq3tR2m9x1Yb0P5LzW7cVn4HjE8gUa6Qs-Df_Oi';

  it('signs as keygrip signs, with the first key', () => {
    expect(new CookieSigner(keys).sign(data)).toBe(new Keygrip(keys).sign(data));
    expect(new CookieSigner(keys).sign(data)).not.toBe(new Keygrip([keys[1]!]).sign(data));
  });

  it('verifies what keygrip signed with any of its keys, as if the first made it', () => {
    const signer = new CookieSigner(keys);
    expect(signer.index(data, new Keygrip(keys).sign(data))).toBe(0);
    // Told 1, the cookies package would sign the .sig alone again, as a cookie of the browser session.
    expect(signer.index(data, new Keygrip([keys[1]!]).sign(data))).toBe(0);
    expect(signer.verify(data, new Keygrip([keys[1]!]).sign(data))).toBe(true);
  });

  it('signs with the new first key once its keys are replaced, and verifies only those', () => {
    const signer = new CookieSigner(keys);
    const before = signer.sign(data);
    signer.replace(['third key 5555555555', keys[0]!]);
    expect(signer.sign(data)).toBe(new Keygrip(['third key 5555555555']).sign(data));
    expect(signer.verify(data, before)).toBe(true);
    expect(signer.verify(data, new Keygrip([keys[1]!]).sign(data))).toBe(false);
    signer.replace(['third key 5555555555']);
    expect(signer.verify(data, before)).toBe(false);
    expect(() => signer.replace([])).toThrow(/at least one key/);
    expect(signer.keys).toEqual(['third key 5555555555']);
  });

  it('refuses a signature of other data, of another key, cut short or not a string', () => {
    const signer = new CookieSigner(keys);
    const good = signer.sign(data);
    expect(signer.index(`${data}x`, good)).toBe(-1);
    expect(signer.index(data, new Keygrip(['another key']).sign(data))).toBe(-1);
    expect(signer.index(data, good.slice(0, -1))).toBe(-1);
    expect(signer.index(data, `${good}A`)).toBe(-1);
    expect(signer.index(data, '')).toBe(-1);
    expect(signer.index(data, undefined as unknown as string)).toBe(-1);
    expect(signer.verify(data, good.toUpperCase())).toBe(false);
  });

  it('needs a key', () => {
    expect(() => new CookieSigner([])).toThrow(/at least one key/);
  });
});
