import providerRequests from 'oidc-provider/lib/helpers/als.js';
import { RowCache } from '../../src/db/rowCache.js';
import { ModelCache } from '../../src/oidc/modelCache.js';
import { broughtIn, mustReadFresh } from '../../src/oidc/newerThanCache.js';

/** Runs `work` as within one request the provider serves (its AsyncLocalStorage holds the context). */
const inRequest = <T>(work: () => T): T => providerRequests.run({}, work);
const now = () => Math.floor(Date.now() / 1000);

describe('codes and tokens that make their request read sessions, grants and accounts anew', () => {
  it('a code brought in, whatever its age: each session, grant and account once', () => {
    inRequest(() => {
      broughtIn('AuthorizationCode', { iat: now() - 3_600 });
      expect(mustReadFresh('Session:a')).toBe(true);
      expect(mustReadFresh('Session:a')).toBe(false);
      expect(mustReadFresh('Grant:b')).toBe(true);
      expect(mustReadFresh('User:c')).toBe(true);
    });
    inRequest(() => {
      broughtIn('DeviceCode', { iat: now() - 600 });
      expect(mustReadFresh('Session:a')).toBe(true);
    });
  });

  it('an access or refresh token issued within the bound of a notice (20 s), not an older one', () => {
    inRequest(() => {
      broughtIn('AccessToken', { iat: now() - 5 });
      expect(mustReadFresh('Session:a')).toBe(true);
    });
    inRequest(() => {
      broughtIn('RefreshToken', { iat: now() - 15 });
      expect(mustReadFresh('Grant:a')).toBe(true);
    });
    inRequest(() => {
      broughtIn('AccessToken', { iat: now() - 60 });
      broughtIn('RefreshToken', { iat: now() - 60 });
      broughtIn('AccessToken', {});
      expect(mustReadFresh('Session:a')).toBe(false);
    });
  });

  it('an interaction with its result (a sign-in, sign-up or consent finished elsewhere), not one under way', () => {
    inRequest(() => {
      broughtIn('Interaction', { iat: now() - 600, result: { consent: {} } });
      expect(mustReadFresh('Grant:a')).toBe(true);
    });
    inRequest(() => {
      broughtIn('Interaction', { iat: now() });
      expect(mustReadFresh('Grant:a')).toBe(false);
    });
  });

  it('nothing else, nothing outside a request, and nothing in the next request', () => {
    inRequest(() => {
      broughtIn('Grant', { iat: now() });
      broughtIn('ClientCredentials', { iat: now() });
      broughtIn('AuthorizationCode', undefined);
      expect(mustReadFresh('Session:a')).toBe(false);
    });
    broughtIn('AuthorizationCode', { iat: now() });
    expect(mustReadFresh('Session:a')).toBe(false);
    inRequest(() => broughtIn('AuthorizationCode', { iat: now() }));
    inRequest(() => expect(mustReadFresh('Session:a')).toBe(false));
  });
});

describe('a row read anew', () => {
  it('replaces what the model cache held, and forgets it when it is gone', async () => {
    const models = new ModelCache();
    models.goLive();
    const exp = now() + 600;
    models.remember('Grant', 'g', JSON.stringify({ v: 1, exp }), new Date(exp * 1000), models.generation);
    expect(await models.find('Grant', 'g', async () => ({ v: 2, exp }))).toEqual({ v: 1, exp });
    expect(await models.find('Grant', 'g', async () => ({ v: 2, exp }), true)).toEqual({ v: 2, exp });
    expect(models.cached('Grant', 'g')).toEqual({ v: 2, exp });
    expect(await models.find('Grant', 'g', async () => undefined, true)).toBeUndefined();
    expect(models.cached('Grant', 'g')).toBeUndefined();
  });

  it('replaces what a row cache held, and forgets it when it is gone', async () => {
    const users = new RowCache<{ v: number }>(100);
    users.goLive();
    await users.find('u', async () => ({ v: 1 }));
    expect(await users.find('u', async () => ({ v: 2 }))).toEqual({ v: 1 });
    expect(await users.find('u', async () => ({ v: 2 }), true)).toEqual({ v: 2 });
    expect(users.peek('u')).toEqual({ v: 2 });
    expect(await users.find('u', async () => undefined, true)).toBeUndefined();
    expect(users.peek('u')).toBeUndefined();
  });
});
