import { createHash } from 'node:crypto';
import { payloadAsSaved, payloadToStore, storedId } from '../../src/oidc/storedIds.js';

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

describe('storedId', () => {
  it('is the SHA-256 of a bearer value and the value itself for grants, clients and device codes', () => {
    expect(storedId('AccessToken', 'token-a')).toBe(sha256('token-a'));
    expect(storedId('Grant', 'grant-a')).toBe('grant-a');
    expect(storedId('Client', 'client-a')).toBe('client-a');
    expect(storedId('DeviceCode', 'device-a')).toBe('device-a');
  });

  it('hashes each value of one turn of the event loop by itself, however they alternate', () => {
    const values = ['token-a', 'token-b', 'token-a', 'token-a', 'token-c', 'token-b'];
    expect(values.map((value) => storedId('AccessToken', value))).toEqual(values.map(sha256));
  });

  it('hashes a value again in a later turn', async () => {
    expect(storedId('RefreshToken', 'token-d')).toBe(sha256('token-d'));
    await Promise.resolve();
    expect(storedId('ClientCredentials', 'token-e')).toBe(sha256('token-e'));
    expect(storedId('ClientCredentials', 'token-d')).toBe(sha256('token-d'));
  });
});

describe('payloadToStore', () => {
  it("keeps no cookie value of the browser in an interaction, leaves the provider's payload alone, and puts the uid back", () => {
    const uid = 'interaction-uid';
    const payload = {
      jti: uid,
      returnTo: `https://id.example.com/auth/${uid}`,
      session: { accountId: 'account', uid: 'session-uid', cookie: 'session-cookie' },
      prompt: { name: 'consent', reasons: [], details: {} },
    };
    const copy = structuredClone(payload);

    const stored = payloadToStore('Interaction', uid, payload);

    expect(payload).toEqual(copy);
    expect(JSON.stringify(stored)).not.toContain('session-cookie');
    expect(JSON.stringify(stored)).not.toContain(uid);
    const { cookie: _cookie, ...session } = copy.session;
    expect(payloadAsSaved('Interaction', uid, structuredClone(stored))).toEqual({ ...copy, session });
  });

  it('keeps the returnTo of a device approval whole too', () => {
    const returnTo = 'https://id.example.com/device/uid-2';
    const stored = payloadToStore('Interaction', 'uid-2', { jti: 'uid-2', returnTo });
    expect(stored.returnTo).not.toContain('uid-2');
    expect(payloadAsSaved('Interaction', 'uid-2', { ...stored }).returnTo).toBe(returnTo);
  });
});
