import providerRequests from 'oidc-provider/lib/helpers/als.js';

/**
 * What a grant's save may store, beyond the provider's upsert: `live`, only a change of the
 * stored grant while it is live (it was loaded earlier); `copyOf`, a new grant only while the
 * grant whose consent it copies is live and not revoked (CONSENT_REVOKED).
 */
export type GrantSaveGuard = { live: true } | { copyOf: string };

interface GuardedSave {
  guard: GrantSaveGuard;
  /** Whether the adapter took it for the grant's write. */
  taken?: boolean;
  /** Set by the adapter once it has run the guarded write. */
  stored?: boolean;
}

/**
 * The guarded save under way in each request that has one, by the request's context in the
 * provider's AsyncLocalStorage (as heldWrites.ts keeps its writes). Not a storage of its own:
 * on Node 20 every storage that has run once adds a property to each promise made anywhere
 * from then on, for the life of the process (bench/README.md, "2026-12-07, 07:40").
 */
const guardedSaves = new WeakMap<object, GuardedSave>();

/**
 * Saves `grant` with the provider's own `save` (so its clean-up, expiry and events are the
 * provider's), but stored by the adapter only as `guard` allows, in one statement with its
 * check: a Revoke of the app (account page) that ran since the grant, or the consent it
 * copies, was read wins, and nothing it ended is stored again.
 * @returns whether it was stored; when not, the sign-in must not go on under this grant.
 */
export async function saveGrantIf(
  grant: { save(): Promise<unknown> },
  guard: GrantSaveGuard,
): Promise<boolean> {
  const request = providerRequests.getStore();
  if (!request || typeof request !== 'object' || guardedSaves.has(request)) {
    throw new Error('a guarded grant save runs within a request, one at a time');
  }
  const save: GuardedSave = { guard };
  guardedSaves.set(request, save);
  try {
    await grant.save();
  } finally {
    guardedSaves.delete(request);
  }
  if (save.stored === undefined) throw new Error('the adapter did not store the grant through its guard');
  return save.stored;
}

/** For the adapter: the guard of the grant save under way, taken once (a later write in it is unguarded). */
export function takeGrantSaveGuard(): GuardedSave | undefined {
  const request = providerRequests.getStore();
  const save = request && typeof request === 'object' ? guardedSaves.get(request) : undefined;
  if (!save || save.taken) return undefined;
  save.taken = true;
  return save;
}
