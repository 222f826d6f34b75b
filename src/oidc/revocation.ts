import type { AdapterPayload } from 'oidc-provider';
import type { User } from '../db/schema.js';

/**
 * A browser sign-in in progress or done: revoked by "sign out everywhere" as well as by the
 * account-wide revocations. A code is the last step of a browser sign-in, so it ends with it.
 */
const SIGN_IN_MODELS = new Set(['Session', 'Interaction', 'AuthorizationCode']);

/** What an app holds: revoked by disable, delete, a recovery, an email owner's takeover and a cloned passkey's block only. */
const ISSUED_MODELS = new Set([
  'Grant',
  'AccessToken',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** Whether instances of this model belong to an account whose revocations apply to them. */
export function isAccountBound(model: string): boolean {
  return SIGN_IN_MODELS.has(model) || ISSUED_MODELS.has(model);
}

interface Stored {
  accountId?: unknown;
  iat?: unknown;
  loginTs?: unknown;
  authTime?: unknown;
  result?: { login?: { accountId?: unknown } };
  session?: { accountId?: unknown };
}

/** The account a stored instance belongs to, if any (an interaction's once someone signed in). */
export function accountOf(model: string, payload: AdapterPayload): string | undefined {
  const stored = payload as Stored;
  const accountId =
    model === 'Interaction'
      ? (stored.result?.login?.accountId ?? stored.session?.accountId)
      : stored.accountId;
  return typeof accountId === 'string' ? accountId : undefined;
}

/**
 * When the sign-in an instance descends from happened, in whole seconds: a session's login,
 * a code's or refresh token's `authTime`, else when it was issued. An interaction counts
 * from its start, which is before any passkey was proved in it.
 */
function startedAt(model: string, payload: AdapterPayload): number | undefined {
  const stored = payload as Stored;
  const time =
    model === 'Session'
      ? stored.loginTs
      : model === 'Interaction'
        ? stored.iat
        : (stored.authTime ?? stored.iat);
  return typeof time === 'number' ? time : undefined;
}

/**
 * Whether a stored instance of an account was revoked: its account is gone, or it started
 * at or before the account's last revocation of its kind. Revocation deletes the rows too,
 * but a request that loaded them before saves them again when it ends (the provider saves
 * its session after every request); this check makes such a save harmless.
 *
 * Times are whole seconds (oidc-provider's `loginTs`, `iat`), so the revoking side waits
 * until the next second before it answers (see untilAfterRevocation): whatever starts after
 * a revocation has a later second than it, and whatever started in that second counts as
 * revoked.
 */
export function isRevoked(model: string, payload: AdapterPayload, user: User | undefined): boolean {
  if (!user) return true;
  const started = startedAt(model, payload) ?? 0;
  const revokedAt = (instant: Date | null) =>
    instant !== null && started <= Math.floor(instant.getTime() / 1000);
  if (revokedAt(user.tokens_revoked_at)) return true;
  return SIGN_IN_MODELS.has(model) && revokedAt(user.sessions_ended_at);
}
