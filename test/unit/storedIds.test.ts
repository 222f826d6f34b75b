import { createHash } from 'node:crypto';
import { payloadAsSaved, payloadToStore, storedId, storedJson } from '../../src/oidc/storedIds.js';

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

describe('sealed fields', () => {
  const returnTo = 'https://id.example.com/auth/interaction-uid';
  const switching = (jti: string) => ({
    jti,
    uid: 'session-uid',
    accountId: 'account-a',
    state: { secret: 'xsrf', clientId: 'app', postLogoutRedirectUri: returnTo },
  });

  it("keeps a session's sign-out way back sealed with its id, and opens it when read by that id", () => {
    const payload = switching('session-id');
    const copy = structuredClone(payload);

    const json = storedJson('Session', 'session-id', payload);

    expect(payload).toEqual(copy);
    expect(json).not.toContain('interaction-uid');
    expect(json).not.toContain('session-id');
    expect(JSON.parse(json).state).toMatchObject({ secret: 'xsrf', clientId: 'app' });
    expect(payloadAsSaved('Session', 'session-id', JSON.parse(json))).toEqual(copy);
  });

  it('does not open with another id', () => {
    const json = storedJson('Session', 'session-id', switching('session-id'));
    expect(() => payloadAsSaved('Session', 'other-session-id', JSON.parse(json))).toThrow();
  });

  it('stores a sealed value passed through unopened as it is, still opened by the next read by id', () => {
    const stored = JSON.parse(storedJson('Session', 'session-id', switching('session-id')));
    // As a session found by its uid holds it: sealed, without its id.
    const again = JSON.parse(storedJson('Session', 'session-id', { ...stored, jti: 'session-id' }));
    expect(again.state.postLogoutRedirectUri).toBe(stored.state.postLogoutRedirectUri);
    expect(payloadAsSaved('Session', 'session-id', again).state).toEqual(switching('x').state);
  });

  it('leaves a session without a sign-out under way as the provider has it', () => {
    const payload = { jti: 'session-id', uid: 'session-uid', accountId: 'account-a', state: { secret: 'x' } };
    expect(JSON.parse(storedJson('Session', 'session-id', payload))).toEqual({
      uid: 'session-uid',
      accountId: 'account-a',
      state: { secret: 'x' },
    });
    expect(payload.jti).toBe('session-id');
  });

  it("keeps an interaction's pushed request id sealed with the interaction's id", () => {
    const payload = {
      jti: 'uid-3',
      returnTo: 'https://id.example.com/auth/uid-3',
      parJti: 'pushed-request-id',
    };
    const stored = payloadToStore('Interaction', 'uid-3', payload);
    expect(JSON.stringify(stored)).not.toContain('pushed-request-id');
    expect(payloadToStore('Interaction', 'uid-3', { ...stored, jti: 'uid-3' }).parJti).toBe(stored.parJti);
    expect(payloadAsSaved('Interaction', 'uid-3', { ...stored }).parJti).toBe('pushed-request-id');
  });
});
