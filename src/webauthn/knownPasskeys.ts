import type { StoredCredential } from '../db/queries/credentials.js';

/** What a sign-in checks an assertion with, of a passkey that signed in here before. */
export type KnownPasskey = Readonly<
  Pick<StoredCredential, 'id' | 'userId' | 'publicKey' | 'counter' | 'transports' | 'backupEligible'>
>;

/**
 * Passkeys that signed in on this process, by credential id, so that a sign-in by one of them
 * again can check its assertion before reading anything (interaction.ts, signInFromMemory).
 * Not a row cache, and kept in step by no notice: what a passkey is (its owner, its key,
 * whether it may be backed up) never changes, and what does (its counter, whether it is
 * blocked, whether it still exists, whether its owner is disabled) is checked again by the
 * statement that records the sign-in (credentials.ts, useCheckedInMemory), which stores
 * nothing where any of it differs. The counter kept is only the last this process saw: a
 * sign-in that finds it has not risen takes the usual way, which reads the stored one.
 */
export class KnownPasskeys {
  readonly #entries = new Map<string, KnownPasskey>();

  /** @param maxEntries beyond this many the one that signed in longest ago goes (~300 bytes each). */
  constructor(readonly maxEntries = 10_000) {}

  get(id: string): KnownPasskey | undefined {
    return this.#entries.get(id);
  }

  /** A passkey that just signed in, with its new counter; a blocked one is not kept. */
  remember(credential: KnownPasskey & Pick<StoredCredential, 'suspectedCloneAt'>): void {
    this.#entries.delete(credential.id);
    if (credential.suspectedCloneAt) return;
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    const { id, userId, publicKey, counter, transports, backupEligible } = credential;
    this.#entries.set(id, Object.freeze({ id, userId, publicKey, counter, transports, backupEligible }));
  }

  forget(id: string): void {
    this.#entries.delete(id);
  }

  get size(): number {
    return this.#entries.size;
  }
}
