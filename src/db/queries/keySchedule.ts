import { sql } from 'kysely';

/**
 * The schedule of a table of signing keys (signing_keys, passkey_tenant_keys): a key signs
 * from `activates_at` until `retired_at`, and stays published for a grace after that. The
 * database clock decides what is due, so servers whose clocks differ still agree on which key
 * signs and which are published.
 */
export const signsNow = sql<boolean>`activates_at <= now() and (retired_at is null or retired_at > now())`;

/** The instant `graceSeconds` ago: a key retired after it is still published, one retired before it is not. */
export const graceStart = (graceSeconds: number) => sql<Date>`now() - make_interval(secs => ${graceSeconds})`;
