import { jest } from '@jest/globals';
import type { ModelPayload } from '../../src/db/queries/oidcModels.js';
import { FreshSignIns } from '../../src/oidc/freshSignIns.js';
import { interactionBinding } from '../../src/oidc/storedIds.js';

/**
 * The interactions a process has just stored (freshSignIns.ts): one at the login prompt, with
 * its page's challenge, serves one view of its login page; one with a result serves one
 * return to the authorization. Each once stored, for a minute, unless written again.
 */
describe('FreshSignIns', () => {
  const inFiveMinutes = () => new Date(Date.now() + 300_000);
  const atLogin = { prompt: { name: 'login' }, params: { client_id: 'app' } };
  const signedIn = { ...atLogin, result: { login: { accountId: 'a' } } };
  const begin = (
    fresh: FreshSignIns,
    uid: string,
    payload: ModelPayload,
    { withChallenge = true, challengeExpiresAt = inFiveMinutes() } = {},
  ) => fresh.begin(uid, JSON.stringify(payload), payload, { withChallenge, challengeExpiresAt });

  afterEach(() => jest.restoreAllMocks());

  it('gives an interaction at the login prompt a new challenge bound to it, served once to its page after it is stored', () => {
    const fresh = new FreshSignIns();
    const entry = begin(fresh, 'uid-1', atLogin)!;
    // Bound to its stored id, not its uid (the value of its cookies).
    expect(entry.challenge).toMatchObject({ purpose: 'login', binding: interactionBinding('uid-1') });
    expect(entry.challenge!.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(begin(fresh, 'uid-2', atLogin)!.challenge!.challenge).not.toBe(entry.challenge!.challenge);

    // Not before its statement has committed.
    expect(fresh.take('uid-1')).toBeUndefined();
    fresh.ready('uid-1', entry);
    // Not to a return to the authorization: it has no result.
    expect(fresh.takeFinished('uid-1')).toBeUndefined();
    const { challenge } = entry.challenge!;
    const taken = fresh.take('uid-1')!;
    expect(taken).toEqual({ payload: atLogin, challenge });
    expect(taken.payload).not.toBe(atLogin);
    expect(fresh.take('uid-1')).toBeUndefined();
  });

  it("keeps an interaction at the login prompt for its sign-in, once, until its page's challenge ends", () => {
    const fresh = new FreshSignIns();
    const expiresAt = new Date(Date.now() + 300_000);
    const viewed = begin(fresh, 'v', atLogin, { challengeExpiresAt: expiresAt })!;
    expect(fresh.takeAtLogin('v')).toBeUndefined();
    fresh.ready('v', viewed);
    fresh.take('v');
    // Past the page's minute, within the challenge's five.
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now + 299_000);
    expect(fresh.takeFinished('v')).toBeUndefined();
    const taken = fresh.takeAtLogin('v')!;
    expect(taken).toEqual({ payload: atLogin, json: JSON.stringify(atLogin) });
    expect(fresh.takeAtLogin('v')).toBeUndefined();
    jest.restoreAllMocks();

    // Before its page was viewed here too (the page came from another instance); then the page gets nothing.
    fresh.ready('n', begin(fresh, 'n', atLogin)!);
    expect(fresh.takeAtLogin('n')?.json).toBe(JSON.stringify(atLogin));
    expect(fresh.take('n')).toBeUndefined();

    // Not past the challenge's end, nor once the interaction was written again or forgotten.
    fresh.ready('e', begin(fresh, 'e', atLogin, { challengeExpiresAt: expiresAt })!);
    fresh.take('e');
    jest.spyOn(Date, 'now').mockReturnValue(expiresAt.getTime() + 1);
    expect(fresh.takeAtLogin('e')).toBeUndefined();
    jest.restoreAllMocks();
    fresh.ready('w', begin(fresh, 'w', atLogin)!);
    fresh.take('w');
    fresh.ready('w', begin(fresh, 'w', signedIn, { withChallenge: false })!);
    expect(fresh.takeAtLogin('w')).toBeUndefined();
    expect(fresh.takeFinished('w')?.payload).toEqual(signedIn);
    fresh.ready('f', begin(fresh, 'f', atLogin)!);
    fresh.forget('f');
    expect(fresh.takeAtLogin('f')).toBeUndefined();
    // An interaction with its result is no sign-in's.
    fresh.ready('r', begin(fresh, 'r', signedIn, { withChallenge: false })!);
    expect(fresh.takeAtLogin('r')).toBeUndefined();
  });

  it('keeps an interaction with its result, without a challenge, for one return to the authorization', () => {
    const fresh = new FreshSignIns();
    const entry = begin(fresh, 'done', signedIn, { withChallenge: false })!;
    expect(entry.challenge).toBeUndefined();
    expect(fresh.takeFinished('done')).toBeUndefined();
    fresh.ready('done', entry);
    expect(fresh.take('done')).toBeUndefined();
    expect(fresh.takeFinished('done')).toEqual({ payload: signedIn, json: JSON.stringify(signedIn) });
    expect(fresh.takeFinished('done')).toBeUndefined();
  });

  it('keeps nothing for another prompt, nor a challenge for a login prompt among held writes', () => {
    const fresh = new FreshSignIns();
    const consent = { prompt: { name: 'consent' } };
    expect(begin(fresh, 'c', consent)).toBeUndefined();
    expect(begin(fresh, 'h', atLogin, { withChallenge: false })).toBeUndefined();
    expect(fresh.size).toBe(0);
  });

  it('serves nothing once the interaction is written again, forgotten, or a minute old', () => {
    const fresh = new FreshSignIns();
    const first = begin(fresh, 'u', atLogin)!;
    const second = begin(fresh, 'u', atLogin)!;
    // The first write's commit does not make the second's entry servable, nor its own.
    fresh.ready('u', first);
    expect(fresh.take('u')).toBeUndefined();
    fresh.ready('u', second);
    fresh.forget('u');
    expect(fresh.take('u')).toBeUndefined();
    // A write with the result replaces the entry at the login prompt.
    fresh.ready('r', begin(fresh, 'r', atLogin)!);
    fresh.ready('r', begin(fresh, 'r', signedIn, { withChallenge: false })!);
    expect(fresh.take('r')).toBeUndefined();
    expect(fresh.takeFinished('r')?.payload).toEqual(signedIn);

    fresh.ready('o', begin(fresh, 'o', atLogin)!);
    fresh.ready('f', begin(fresh, 'f', signedIn)!);
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now + 60_001);
    expect(fresh.take('o')).toBeUndefined();
    expect(fresh.takeFinished('f')).toBeUndefined();
  });

  it('serves no page past the challenge expiry, and keeps at most maxEntries', () => {
    const fresh = new FreshSignIns(2);
    fresh.ready('s', begin(fresh, 's', atLogin, { challengeExpiresAt: new Date(Date.now() + 1_000) })!);
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now + 1_001);
    expect(fresh.take('s')).toBeUndefined();
    jest.restoreAllMocks();

    for (const uid of ['a', 'b', 'c']) fresh.ready(uid, begin(fresh, uid, atLogin)!);
    expect(fresh.size).toBe(2);
    expect(fresh.take('a')).toBeUndefined();
    expect(fresh.take('b')).toBeDefined();
    expect(fresh.take('c')).toBeDefined();
  });
});
