import { randomSecret } from '../crypto.js';
import type { ChallengeWithRow, ModelPayload } from '../db/queries/oidcModels.js';
import { interactionBinding } from './storedIds.js';

/** How long after it was stored an interaction's next step may read it from memory. */
const SERVED_FROM_MEMORY_MS = 60_000;

/** An interaction this process has just stored: at the login prompt with its page's challenge, or with its result. */
export interface FreshSignIn {
  /** The stored payload as JSON: every read parses its own copy. */
  json: string;
  /** At the login prompt (else with a result). */
  atLogin: boolean;
  /** At the login prompt: the challenge stored beside it, until its page's first view here takes it. */
  challenge?: ChallengeWithRow | undefined;
  /** Servable once its statement has committed, and until this time. */
  ready: boolean;
  untilMs: number;
}

const promptOf = (payload: ModelPayload) => (payload.prompt as { name?: unknown } | undefined)?.name;

/**
 * Interactions this process has just stored, for the one read of each that follows at once:
 *
 * - **At the login prompt** (the authorization request's): with the challenge of its login
 *   page's passkey autofill, stored in the same statement as the interaction
 *   (groupedUpserts.ts). The page's first view on this instance reads both from here
 *   (interaction.ts), where it read the interaction back and stored a challenge. Then, until
 *   that challenge expires, the sign-in's verify step may take the interaction from here, and
 *   its statement records the sign-in only if the stored interaction is still exactly this one
 *   (credentials.ts, useCheckedInMemory).
 * - **With its result** (a sign-in's, or a consent's): the return to the authorization
 *   (`GET /auth/:uid`) on this instance reads it from here, and its statement, which deletes
 *   the interaction and stores the session, grant and code, then runs only if the stored
 *   interaction is still exactly this one (adapter.ts): both, or neither.
 *
 * Each entry serves one read of each kind, for a minute (a sign-in's, until the login
 * challenge's end), and is forgotten as soon as this process writes or deletes the interaction
 * again. Another instance may have changed the interaction since; what a stale entry can then
 * give is a login page (the sign-in it starts is refused where
 * every sign-in is checked, by the statement that reads the interaction and takes its
 * challenge, challengeOnRead.ts), or a return whose statement stores nothing, and which sends
 * the browser to load it again, reading the interaction as stored (provider.ts). Any other read, on any instance,
 * reads the database as before.
 */
export class FreshSignIns {
  readonly #entries = new Map<string, FreshSignIn>();

  /** @param maxEntries beyond this many the oldest goes (an interaction's JSON each, ~1–2 kB). */
  constructor(readonly maxEntries = 1_000) {}

  /**
   * What the interaction the provider is saving may be read as from memory once its
   * statement has committed ({@link ready}): one at the login prompt, saved outside a
   * request's held writes (`withChallenge`), with a new challenge bound to it for that
   * statement to store; one with a result, as it is. Any earlier entry of the interaction is
   * forgotten.
   */
  begin(
    uid: string,
    json: string,
    payload: ModelPayload,
    { withChallenge, challengeExpiresAt }: { withChallenge: boolean; challengeExpiresAt: Date },
  ): FreshSignIn | undefined {
    this.forget(uid);
    const now = Date.now();
    let entry: FreshSignIn;
    if (payload.result !== undefined) {
      entry = { json, atLogin: false, ready: false, untilMs: now + SERVED_FROM_MEMORY_MS };
    } else if (withChallenge && promptOf(payload) === 'login') {
      entry = {
        json,
        atLogin: true,
        challenge: {
          challenge: randomSecret(),
          purpose: 'login',
          binding: interactionBinding(uid),
          expiresAt: challengeExpiresAt,
        },
        ready: false,
        untilMs: Math.min(now + SERVED_FROM_MEMORY_MS, challengeExpiresAt.getTime()),
      };
    } else {
      return undefined;
    }
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(uid, entry);
    return entry;
  }

  /** The interaction (and its challenge) have committed: the entry may serve its read, unless a later write replaced it. */
  ready(uid: string, entry: FreshSignIn): void {
    if (this.#entries.get(uid) === entry) entry.ready = true;
  }

  /** This process changed or deleted the interaction (or could not store it): nothing is read from memory. */
  forget(uid: string): void {
    this.#entries.delete(uid);
  }

  /**
   * The interaction at the login prompt (the caller's own copy) and its challenge, once: for
   * its login page's first view. The interaction stays for the sign-in ({@link takeAtLogin})
   * until the challenge's end.
   */
  take(uid: string): { payload: ModelPayload; challenge: string } | undefined {
    const entry = this.#servable(uid);
    const challenge = entry?.challenge;
    if (!challenge) return undefined;
    entry.challenge = undefined;
    entry.untilMs = challenge.expiresAt.getTime();
    return { payload: JSON.parse(entry.json) as ModelPayload, challenge: challenge.challenge };
  }

  /**
   * The interaction at the login prompt, once, for its sign-in: its payload (the caller's own
   * copy) and its JSON as stored, which the sign-in's statement requires the stored
   * interaction still to be.
   */
  takeAtLogin(uid: string): { payload: ModelPayload; json: string } | undefined {
    const entry = this.#servable(uid);
    if (!entry?.atLogin) return undefined;
    this.#entries.delete(uid);
    return { payload: JSON.parse(entry.json) as ModelPayload, json: entry.json };
  }

  /**
   * The interaction with its result, once, for the return to the authorization: its payload
   * (the caller's own copy) and its JSON as stored, which the return's statement requires
   * the stored interaction still to be.
   */
  takeFinished(uid: string): { payload: ModelPayload; json: string } | undefined {
    const entry = this.#servable(uid);
    if (!entry || entry.atLogin) return undefined;
    this.#entries.delete(uid);
    return { payload: JSON.parse(entry.json) as ModelPayload, json: entry.json };
  }

  #servable(uid: string): FreshSignIn | undefined {
    const entry = this.#entries.get(uid);
    if (!entry?.ready) return undefined;
    if (entry.untilMs > Date.now()) return entry;
    this.#entries.delete(uid);
    return undefined;
  }

  get size(): number {
    return this.#entries.size;
  }
}
