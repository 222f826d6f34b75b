import providerRequests from 'oidc-provider/lib/helpers/als.js';
import type { Db } from '../db/connect.js';
import { credentialsQueries, type InteractionTake, type TakenChallenge } from '../db/queries/credentials.js';
import { type InteractionChallenge, type ModelPayload, oidcModelsQueries } from '../db/queries/oidcModels.js';

/**
 * A challenge's statement waiting for the read of the interaction it is bound to: `read` runs
 * in its place the one statement that reads the interaction (by its stored id) and does the
 * challenge's part, and keeps what that part did.
 */
interface Rider {
  binding: string;
  read(db: Db, storedId: string): Promise<ModelPayload | undefined>;
}

/** The rider of each request that has one, by the request's context in the provider's AsyncLocalStorage. */
const riders = new WeakMap<object, Rider>();

async function withRider<T>(rider: Rider, work: () => Promise<T>): Promise<T> {
  const request = providerRequests.getStore();
  if (!request || typeof request !== 'object')
    throw new Error('a challenge rides on a read within a request');
  riders.set(request, rider);
  try {
    return await work();
  } finally {
    riders.delete(request);
  }
}

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
  let stored = false;
  const value = await withRider(
    {
      binding: challenge.binding,
      read: async (db, storedId) => {
        const found = await oidcModelsQueries.findInteractionStoringChallenge(db, storedId, challenge);
        stored = found.stored;
        return found.payload;
      },
    },
    work,
  );
  return { value, stored };
}

/**
 * Runs `work` (which reads the interaction through the provider) so that the read of the
 * interaction `take.binding` takes the challenge out in the same statement, with the passkey
 * and its owner (credentials.ts), if that interaction is found waiting at `take.prompt`. A
 * sign-in's verify step needed a statement for each before. As with {@link storeChallengeWithRead},
 * a read of any other interaction leaves the challenge where it is.
 * @returns the work's answer, and `taken` when the read carried the take: what it took
 * (undefined: no such challenge to take), as credentialsQueries.takeChallengeAndFind answers.
 */
export async function takeChallengeWithRead<T>(
  take: InteractionTake,
  work: () => Promise<T>,
): Promise<{ value: T; taken?: { result: TakenChallenge | undefined } }> {
  let taken: { result: TakenChallenge | undefined } | undefined;
  const value = await withRider(
    {
      binding: take.binding,
      read: async (db, storedId) => {
        const found = await credentialsQueries.findInteractionTakingChallenge(db, storedId, take);
        taken = { result: found.taken };
        return found.payload;
      },
    },
    work,
  );
  return taken ? { value, taken } : { value };
}

/**
 * Runs `work` (which reads the interaction through the provider) so that its read of the
 * interaction `binding` is answered with `payload` (the caller's own copy) instead of a
 * statement: its login page's first view on the instance that stored it with its challenge
 * (freshSignIns.ts). As with {@link storeChallengeWithRead}, a read of any other interaction
 * is plain.
 */
export function readFromMemory<T>(
  binding: string,
  payload: ModelPayload,
  work: () => Promise<T>,
): Promise<T> {
  return withRider({ binding, read: () => Promise.resolve(payload) }, work);
}

/**
 * The read of the interaction of stored id `storedId` in this request, if a challenge rides
 * on it (bound to that id, storedIds.ts interactionBinding); taken, so a second read (the
 * provider reads the interaction once, but nothing relies on that) is plain.
 */
export function riderOnRead(storedId: string): Rider | undefined {
  const request = providerRequests.getStore();
  const rider = request && typeof request === 'object' ? riders.get(request) : undefined;
  if (!rider || rider.binding !== storedId) return undefined;
  riders.delete(request as object);
  return rider;
}
