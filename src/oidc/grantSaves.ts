import { AsyncLocalStorage } from 'node:async_hooks';

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

const guardedSaves = new AsyncLocalStorage<GuardedSave>();

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
  const save: GuardedSave = { guard };
  await guardedSaves.run(save, () => grant.save());
  if (save.stored === undefined) throw new Error('the adapter did not store the grant through its guard');
  return save.stored;
}

/** For the adapter: the guard of the grant save under way, taken once (a later write in it is unguarded). */
export function takeGrantSaveGuard(): GuardedSave | undefined {
  const save = guardedSaves.getStore();
  if (!save || save.taken) return undefined;
  save.taken = true;
  return save;
}
