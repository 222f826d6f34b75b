import { type Kysely, sql } from 'kysely';

/**
 * `email_verified` now means "someone proved they receive mail at this address": it is set
 * when a one-time link (invite or recovery) is used, and self sign-up leaves it false. Until
 * now nothing set it, so accounts that already used a link are marked here, from the audit
 * events every link use records. Without this, their next recovery link would treat them
 * as unproven and remove their other passkeys.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update users set email_verified = true
    where not email_verified
      and id::text in (
        select target from audit_events
        where action in ('link.invite.use', 'link.recovery.use') and target is not null
      )`.execute(db);
}

/** Nothing to undo: the column stays, and verified accounts stay verified. */
export async function down(): Promise<void> {}
