import { type Kysely, sql } from 'kysely';

/**
 * What the database held of a browser's cookie values while a sign-in was under way goes
 * (src/oidc/storedIds.ts):
 * - in an interaction's payload, `session.cookie`, the signed-in person's session id, which
 *   is the value of the `_session` cookie: read by nothing, dropped;
 * - at the end of its `returnTo` (`…/auth/<uid>`), the interaction's uid, the value of its
 *   `_interaction` cookies: replaced by `:uid`, which the adapter fills in from the id it is
 *   asked for;
 * - in `webauthn_challenges.binding`, the same uid for a sign-in's or sign-up's passkey
 *   challenge: replaced by the interaction's stored id (SHA-256, as migration 0008).
 * Sign-ins under way go on.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update oidc_models
    set payload = case
      when jsonb_typeof(payload->'returnTo') = 'string' then jsonb_set(
        payload #- '{session,cookie}',
        '{returnTo}',
        to_jsonb(regexp_replace(payload->>'returnTo', '/[^/]*$', '/:uid')))
      else payload #- '{session,cookie}'
    end
    where model = 'Interaction'`.execute(db);
  await sql`
    update webauthn_challenges
    set binding = translate(rtrim(encode(sha256(convert_to(binding, 'UTF8')), 'base64'), '='), '+/', '-_')
    where purpose in ('login', 'signup')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // A uid cannot be had back from its hash: the sign-ins under way start again.
  await sql`
    delete from oidc_models
    where model = 'Interaction' and payload->>'returnTo' like '%/:uid'`.execute(db);
  await sql`delete from webauthn_challenges where purpose in ('login', 'signup')`.execute(db);
}
