import { jest } from '@jest/globals';
import { FreshSignIns } from '../../src/oidc/freshSignIns.js';

/**
 * The interactions a process has just stored at the login prompt (freshSignIns.ts): each
 * serves one view of its login page, once stored, for a minute, unless written again.
 */
describe('FreshSignIns', () => {
  const inFiveMinutes = () => new Date(Date.now() + 300_000);
  const atLogin = { prompt: { name: 'login' }, params: { client_id: 'app' } };

  afterEach(() => jest.restoreAllMocks());

  it('gives an interaction at the login prompt a new challenge bound to it, served once after it is stored', () => {
    const fresh = new FreshSignIns();
    const entry = fresh.begin('uid-1', JSON.stringify(atLogin), atLogin, inFiveMinutes())!;
    expect(entry.challenge).toMatchObject({ purpose: 'login', binding: 'uid-1' });
    expect(entry.challenge.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(
      fresh.begin('uid-2', JSON.stringify(atLogin), atLogin, inFiveMinutes())!.challenge.challenge,
    ).not.toBe(entry.challenge.challenge);

    // Not before its statement has committed.
    expect(fresh.take('uid-1')).toBeUndefined();
    fresh.ready('uid-1', entry);
    const taken = fresh.take('uid-1')!;
    expect(taken).toEqual({ payload: atLogin, challenge: entry.challenge.challenge });
    expect(taken.payload).not.toBe(atLogin);
    expect(fresh.take('uid-1')).toBeUndefined();
  });

  it('keeps nothing for another prompt or an interaction with a result', () => {
    const fresh = new FreshSignIns();
    const consent = { prompt: { name: 'consent' } };
    const done = { ...atLogin, result: { login: { accountId: 'a' } } };
    expect(fresh.begin('c', JSON.stringify(consent), consent, inFiveMinutes())).toBeUndefined();
    expect(fresh.begin('d', JSON.stringify(done), done, inFiveMinutes())).toBeUndefined();
    expect(fresh.size).toBe(0);
  });

  it('serves nothing once the interaction is written again, forgotten, or a minute old', () => {
    const fresh = new FreshSignIns();
    const first = fresh.begin('u', JSON.stringify(atLogin), atLogin, inFiveMinutes())!;
    const second = fresh.begin('u', JSON.stringify(atLogin), atLogin, inFiveMinutes())!;
    // The first write's commit does not make the second's entry servable, nor its own.
    fresh.ready('u', first);
    expect(fresh.take('u')).toBeUndefined();
    fresh.ready('u', second);
    fresh.forget('u');
    expect(fresh.take('u')).toBeUndefined();

    const old = fresh.begin('o', JSON.stringify(atLogin), atLogin, inFiveMinutes())!;
    fresh.ready('o', old);
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now + 60_001);
    expect(fresh.take('o')).toBeUndefined();
  });

  it('serves nothing past the challenge expiry, and keeps at most maxEntries', () => {
    const fresh = new FreshSignIns(2);
    const soon = fresh.begin('s', JSON.stringify(atLogin), atLogin, new Date(Date.now() + 1_000))!;
    fresh.ready('s', soon);
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now + 1_001);
    expect(fresh.take('s')).toBeUndefined();
    jest.restoreAllMocks();

    for (const uid of ['a', 'b', 'c'])
      fresh.ready(uid, fresh.begin(uid, JSON.stringify(atLogin), atLogin, inFiveMinutes())!);
    expect(fresh.size).toBe(2);
    expect(fresh.take('a')).toBeUndefined();
    expect(fresh.take('b')).toBeDefined();
    expect(fresh.take('c')).toBeDefined();
  });
});
