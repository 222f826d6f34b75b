import { randomBytes } from 'node:crypto';
import type { ChallengeWithRow, ModelPayload } from '../db/queries/oidcModels.js';

/** How long after it was stored an interaction's first view of the login page may come from memory. */
const SERVED_FROM_MEMORY_MS = 60_000;

/** An interaction this process stored at the login prompt, with the sign-in challenge stored beside it. */
export interface FreshSignIn {
  /** The stored payload as JSON: every view parses its own copy. */
  json: string;
  challenge: ChallengeWithRow;
  /** Servable once its statement has committed, and until this time. */
  ready: boolean;
  untilMs: number;
}

/** Whether a payload the provider saves is an interaction that has just reached the login prompt. */
function atLoginPrompt(payload: ModelPayload): boolean {
  const prompt = payload.prompt as { name?: unknown } | undefined;
  return prompt?.name === 'login' && payload.result === undefined;
}

/**
 * Interactions this process has just stored at the login prompt, each with the challenge of
 * its login page's passkey autofill, stored in the same statement as the interaction
 * (groupedUpserts.ts). An authorization request ends in a redirect to the login page, and
 * that page read the interaction back and stored its challenge: one round trip per sign-in.
 * Now the page's first view, on the instance that answered the authorization request, is
 * answered from here (interaction.ts): no statement at all.
 *
 * What this may give is only ever a page. Each entry serves one view, for a minute, and is
 * forgotten as soon as this process writes or deletes the interaction again. Another
 * instance may have moved the interaction on since (a sign-in there): the page then shows
 * a prompt the interaction has left, as a page left open would, and the sign-in it starts
 * is refused where every sign-in is checked, by the statement that reads the interaction and
 * takes its challenge (challengeOnRead.ts). Any other view, on any instance, reads the
 * interaction as before and stores a challenge of its own with that read.
 */
export class FreshSignIns {
  readonly #entries = new Map<string, FreshSignIn>();

  /** @param maxEntries beyond this many the oldest goes (an interaction's JSON each, ~1–2 kB). */
  constructor(readonly maxEntries = 1_000) {}

  /**
   * What to store with an interaction the provider saves outside a request's held writes:
   * for one at the login prompt, a new challenge bound to it, whose entry {@link ready} makes
   * servable once both are committed. Any earlier entry of the interaction is forgotten.
   */
  begin(uid: string, json: string, payload: ModelPayload, expiresAt: Date): FreshSignIn | undefined {
    this.forget(uid);
    if (!atLoginPrompt(payload)) return undefined;
    const entry: FreshSignIn = {
      json,
      challenge: {
        challenge: randomBytes(32).toString('base64url'),
        purpose: 'login',
        binding: uid,
        expiresAt,
      },
      ready: false,
      untilMs: Math.min(Date.now() + SERVED_FROM_MEMORY_MS, expiresAt.getTime()),
    };
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(uid, entry);
    return entry;
  }

  /** The interaction and its challenge have committed: the entry may serve its view, unless a later write replaced it. */
  ready(uid: string, entry: FreshSignIn): void {
    if (this.#entries.get(uid) === entry) entry.ready = true;
  }

  /** This process changed or deleted the interaction (or could not store it): no view comes from memory. */
  forget(uid: string): void {
    this.#entries.delete(uid);
  }

  /** The interaction's payload (the caller's own copy) and its challenge, once: for its login page's first view. */
  take(uid: string): { payload: ModelPayload; challenge: string } | undefined {
    const entry = this.#entries.get(uid);
    if (!entry?.ready) return undefined;
    this.#entries.delete(uid);
    if (entry.untilMs <= Date.now()) return undefined;
    return { payload: JSON.parse(entry.json) as ModelPayload, challenge: entry.challenge.challenge };
  }

  get size(): number {
    return this.#entries.size;
  }
}
