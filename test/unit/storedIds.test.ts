import { createHash } from 'node:crypto';
import { storedId } from '../../src/oidc/storedIds.js';

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
