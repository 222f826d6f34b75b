import providerRequests from 'oidc-provider/lib/helpers/als.js';
import type { InteractionChallenge } from '../db/queries/oidcModels.js';

/** A challenge waiting for the read of the interaction it is bound to; `stored` tells what became of it. */
export interface Rider {
  challenge: InteractionChallenge;
  stored: boolean;
}

/** The rider of each request that has one, by the request's context in the provider's AsyncLocalStorage. */
const riders = new WeakMap<object, Rider>();

/**
 * Runs `work` (which reads the interaction through the provider) so that the read of the
 * interaction `challenge.binding` stores the challenge in the same statement, if that
 * interaction is found waiting at `challenge.prompt` (oidcModels.ts). A sign-in's options
 * step needed a statement for each before. Only a read of that very interaction carries it:
 * a browser whose interaction cookie names another reads that one as usual, and its request
 * is refused (the uid in the path must be the cookie's) with nothing stored.
 * @returns the work's answer, and whether the challenge was stored.
 */
export async function storeChallengeWithRead<T>(
  challenge: InteractionChallenge,
  work: () => Promise<T>,
): Promise<{ value: T; stored: boolean }> {
  const request = providerRequests.getStore();
  if (!request || typeof request !== 'object')
    throw new Error('storeChallengeWithRead runs within a request');
  const rider: Rider = { challenge, stored: false };
  riders.set(request, rider);
  try {
    return { value: await work(), stored: rider.stored };
  } finally {
    riders.delete(request);
  }
}

/**
 * The challenge to store with the read of interaction `uid` in this request, taken: a second
 * read (the provider reads the interaction once, but nothing relies on that) reads plainly.
 * The reader sets `stored` to what its statement did.
 */
export function challengeRidingOn(uid: string): Rider | undefined {
  const request = providerRequests.getStore();
  const rider = request && typeof request === 'object' ? riders.get(request) : undefined;
  if (!rider || rider.challenge.binding !== uid) return undefined;
  riders.delete(request as object);
  return rider;
}
