import type { Client, KoaContextWithOIDC, RefreshToken } from 'oidc-provider';
import { refreshTokenTtl, SIGN_IN_MAX_AGE, sessionTtl, TTL } from '../../src/oidc/ttl.js';

const now = () => Math.floor(Date.now() / 1000);

describe('lifetimes', () => {
  /** A refresh that replaced a token with `remainingTTL` seconds left, by `client`. */
  const rotatedBy = (client: Partial<Client>, remainingTTL = 1000) =>
    refreshTokenTtl(
      { oidc: { entities: { RotatedRefreshToken: { remainingTTL } } } } as unknown as KoaContextWithOIDC,
      { isSenderConstrained: () => false } as unknown as RefreshToken,
      client as Client,
    );

  it("gives a browser app's rotated refresh token what was left of the one it replaces, and others 30 days", () => {
    const browserApp = {
      applicationType: 'web',
      clientAuthMethod: 'none',
      redirectUris: ['https://app.example/cb'],
    };
    expect(rotatedBy(browserApp as Partial<Client>)).toBe(1000);
    // A public app that signs in only with the device grant has no redirect URI: no browser app.
    const deviceApp = { applicationType: 'web', clientAuthMethod: 'none', redirectUris: [] };
    expect(rotatedBy(deviceApp as Partial<Client>)).toBe(TTL.RefreshToken);
    const confidential = {
      applicationType: 'web',
      clientAuthMethod: 'client_secret_basic',
      redirectUris: ['https://app.example/cb'],
    };
    expect(rotatedBy(confidential as Partial<Client>)).toBe(TTL.RefreshToken);
    const native = {
      applicationType: 'native',
      clientAuthMethod: 'none',
      redirectUris: ['com.example.app:/cb'],
    };
    expect(rotatedBy(native as Partial<Client>)).toBe(TTL.RefreshToken);
  });

  it('keeps a session an interaction past the 30 days after its sign-in, for a sign-in under way then', () => {
    const loginTs = now() - SIGN_IN_MAX_AGE + 10;
    const kept = sessionTtl(undefined, { accountId: 'a', loginTs });
    expect(Math.abs(kept - (10 + TTL.Interaction))).toBeLessThanOrEqual(1);
    expect(sessionTtl(undefined, { accountId: 'a', loginTs: now() })).toBe(TTL.Session);
    expect(sessionTtl(undefined, { accountId: 'a', loginTs: now() - SIGN_IN_MAX_AGE - 1 })).toBe(
      TTL.Interaction,
    );
  });
});
