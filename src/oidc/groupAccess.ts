import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { usersQueries } from '../db/queries/users.js';
import type { RowCache } from '../db/rowCache.js';
import type { User } from '../db/schema.js';
import { ACCOUNT_CLIENT_ID } from './accountClient.js';
import type { GroupCache } from './groupCache.js';
import { resourceConsentCheck } from './resourceConsent.js';
import { signInTooOld } from './ttl.js';

/** The interaction prompt shown, with SIGNUP=open-verified, to a person whose address is not verified yet. */
export const VERIFY_EMAIL_PROMPT = 'verify_email';

/** The interaction prompt shown to a person outside every group a client admits. */
export const NO_ACCESS_PROMPT = 'no_access';

const decisions = new WeakMap<KoaContextWithOIDC, Promise<boolean>>();

/**
 * Whether the signed-in person may use the client of this authorization request (its
 * allowed groups; none means everyone). Asked by loadExistingGrant and by the policy in the
 * same request: one lookup, remembered for the request. True when nobody is signed in yet:
 * the login prompt comes first, and this is asked again when it resumes.
 */
export function mayUseClient(groups: GroupCache, ctx: KoaContextWithOIDC): Promise<boolean> {
  const accountId = ctx.oidc.session?.accountId;
  const clientId = ctx.oidc.client?.clientId;
  if (!accountId || !clientId) return Promise.resolve(true);
  let decision = decisions.get(ctx);
  if (!decision) {
    decision = groups.mayUseClient(clientId, accountId);
    decisions.set(ctx, decision);
  }
  return decision;
}

/**
 * oidc-provider's interaction policy with one prompt between login and consent: a signed-in
 * person outside the client's allowed groups gets the "no access" page, and with
 * `prompt=none` (silent sign-in) the app gets `access_denied` at once. Either way no code is
 * issued and no grant is made, because consent never runs. Consent also asks for each API
 * the request names that the grant does not cover (resourceConsent.ts). A session whose
 * passkey sign-in is older than SIGN_IN_MAX_AGE asks for the passkey again (the login page;
 * `login_required` to a silent sign-in), however recently it was used.
 */
export function interactionPolicyWithGroupAccess(
  db: Db,
  groups: GroupCache,
  users: RowCache<User>,
  options: { requireVerifiedEmail?: boolean } = {},
) {
  const { Prompt, Check, base } = interactionPolicy;
  const policy = base();
  policy.get('login')!.checks.add(
    new Check(
      'sign_in_too_old',
      'the End-User signed in too long ago',
      'login_required',
      // A sign-in this interaction just made is the one it asked for.
      (ctx) => {
        const session = ctx.oidc.session;
        return Boolean(session?.accountId) && !ctx.oidc.result?.login && signInTooOld(session?.loginTs);
      },
    ),
  );
  if (options.requireVerifiedEmail) {
    // SIGNUP=open-verified: an account whose address nobody proved signs in to no app but
    // Sesame's own pages (where the welcome link verifies it) until the link was used.
    policy.add(
      new Prompt(
        { name: VERIFY_EMAIL_PROMPT, requestable: false },
        new Check(
          'email_not_verified',
          'the End-User has not verified their email address yet',
          'access_denied',
          async (ctx) => {
            const accountId = ctx.oidc.session?.accountId;
            if (!accountId || ctx.oidc.client?.clientId === ACCOUNT_CLIENT_ID) return false;
            // Read from the database, where the welcome link (on any instance) verified it,
            // and kept: the account's claims that follow in the tokens of this sign-in are read
            // from memory, which held `email_verified: false` until that link's notice arrived.
            const user = await users.find(accountId, () => usersQueries.findById(db, accountId), true);
            return user !== undefined && !user.email_verified;
          },
        ),
      ),
      policy.findIndex((prompt) => prompt.name === 'consent'),
    );
  }
  const noAccess = new Prompt(
    { name: NO_ACCESS_PROMPT, requestable: false },
    new Check(
      'not_in_allowed_group',
      'the End-User is not in a group allowed to use this client',
      'access_denied',
      async (ctx) => !(await mayUseClient(groups, ctx)),
    ),
  );
  policy.add(
    noAccess,
    policy.findIndex((prompt) => prompt.name === 'consent'),
  );
  policy.get('consent')!.checks.add(resourceConsentCheck());
  return policy;
}
