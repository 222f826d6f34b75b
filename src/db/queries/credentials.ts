import { sql } from 'kysely';
import type { Db } from '../connect.js';
import { runSql } from '../rawSql.js';
import type { CredentialRow, User } from '../schema.js';
import { type StoredChallenge, TAKE_CHALLENGE, takeChallengeIf } from './challenges.js';
import {
  interactionAtPrompt,
  liveInteraction,
  type ModelPayload,
  type StoreCondition,
  withConsumed,
} from './oidcModels.js';

/** Whether the passkey's use with counter $2 may be recorded: its counter rises (or is never kept), and it is not blocked. */
const USE_MAY_BE_RECORDED = '(counter < $2 or counter = 0) and suspected_clone_at is null';

/** Records the use of passkey $1 with counter $2 and backup state $3, where `condition` (SQL) holds too. */
const recordUseIf = (
  condition?: string,
) => `update credentials set counter = $2, backup_state = $3, last_used_at = now()
      where id = $1 and ${USE_MAY_BE_RECORDED}${condition ? ` and ${condition}` : ''}
      returning 1 as used`;

const RECORD_USE = recordUseIf();

/**
 * $1–$3 as {@link RECORD_USE}; $4 a sign-in's challenge, $5 its interaction's stored id (the
 * challenge's binding), $6 that interaction's JSON as stored, $7 the passkey's owner, $8 its
 * public key. `passkey` locks the passkey while it is still $7's with key $8, its counter below
 * $2 (or never kept), not blocked, and $7's account not disabled: a use or block of it that
 * commits meanwhile is waited for and its row checked anew. `taken` takes the challenge (login,
 * bound to $5, for no one in particular, live) only then, and only if the interaction is still
 * live and stored exactly as $6; the use is recorded only if the challenge was taken. Either
 * all of it happens or nothing, and the usual way then answers as it would have.
 */
const TAKE_CHALLENGE_FOR_USE = `passkey as materialized (select 1 from credentials c join users u on u.id = c.user_id
      where c.id = $1 and c.user_id = $7 and c.public_key = $8 and ${USE_MAY_BE_RECORDED}
        and u.disabled_at is null
      for update of c),
    taken as (delete from webauthn_challenges
      where challenge = $4 and purpose = 'login' and binding = $5 and user_id is null and expires_at > now()
        and exists (select 1 from (${liveInteraction('$5')}) interaction
          where interaction.consumed_at is null and interaction.payload = $6::jsonb)
        and exists (select 1 from passkey)
      returning 1)`;
const RECORD_USE_IF_TAKEN = recordUseIf('exists (select 1 from taken)');

/** What a sign-in checked from memory (interaction.ts, signInFromMemory) and holds its statement to. */
export interface CheckedInMemory {
  credentialId: string;
  counter: number;
  backupState: boolean;
  challenge: string;
  /** The interaction's stored id, which the challenge is bound to. */
  interactionId: string;
  /** The interaction's JSON as stored. */
  interactionJson: string;
  userId: string;
  publicKey: Uint8Array;
}

/** A stored passkey with its counter as a number. */
export interface StoredCredential {
  id: string;
  userId: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  aaguid: string;
  backupEligible: boolean;
  backupState: boolean;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  /** When a copy of it was detected (migration 0035): a blocked passkey signs in nowhere. */
  suspectedCloneAt: Date | null;
}

function toStored(row: CredentialRow): StoredCredential {
  return {
    id: row.id,
    userId: row.user_id,
    publicKey: row.public_key,
    counter: Number(row.counter),
    transports: row.transports as unknown as string[],
    aaguid: row.aaguid,
    backupEligible: row.backup_eligible,
    backupState: row.backup_state,
    name: row.name,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    suspectedCloneAt: row.suspected_clone_at,
  };
}

/** A credentials row with its owner's columns beside it, as `owner_<column>`. */
type OwnedRow = CredentialRow & { [K in keyof Omit<User, 'id'> as `owner_${K}`]: User[K] };

/** The challenge `taken` with the credential $4 and its owner, or with nulls where there is no such credential. */
const TAKEN_WITH_CREDENTIAL = `select taken.user_id as challenge_user_id, taken.data as challenge_data, c.*,
    u.email as owner_email, u.email_verified as owner_email_verified, u.name as owner_name,
    u.is_admin as owner_is_admin, u.disabled_at as owner_disabled_at,
    u.sessions_ended_at as owner_sessions_ended_at, u.tokens_revoked_at as owner_tokens_revoked_at,
    u.created_at as owner_created_at, u.updated_at as owner_updated_at, u.claims as owner_claims,
    u.locale as owner_locale, u.signup_locale as owner_signup_locale
  from taken left join (credentials c join users u on u.id = c.user_id) on c.id = $4`;

const TAKE_CHALLENGE_AND_FIND = `with taken as (${TAKE_CHALLENGE})
  ${TAKEN_WITH_CREDENTIAL}`;

/**
 * $1–$4 as {@link TAKE_CHALLENGE_AND_FIND}, $5 an interaction's stored id, $6 a prompt: the
 * live interaction (no row when there is none), and beside it what {@link TAKE_CHALLENGE_AND_FIND}
 * answers, taken only if the interaction waits at that prompt (`challenge_taken` null when
 * nothing was). Taking a challenge commits with the flush wait, as every consumption does.
 */
const FIND_INTERACTION_TAKING_CHALLENGE = `with interaction as (${liveInteraction('$5')}
  ), taken as (${takeChallengeIf(`exists (select 1 from interaction where ${interactionAtPrompt('$6')})`)})
  select interaction.payload as interaction_payload, interaction.consumed_at as interaction_consumed_at, found.*
  from interaction left join (select true as challenge_taken, with_credential.* from (${TAKEN_WITH_CREDENTIAL}) with_credential) found on true`;

/** A sign-in's challenge to take with the read of the interaction it is bound to (challengeOnRead.ts). */
export interface InteractionTake {
  /** The prompt the interaction must wait at (`prompt.name`) for the challenge to be taken. */
  prompt: string;
  challenge: string;
  purpose: string;
  binding: string;
  /** The credential the assertion names, found with its owner. */
  credentialId: string;
}

/** A challenge taken out of storage, and the credential the assertion names with its owner, if there is one. */
export interface TakenChallenge {
  challenge: StoredChallenge;
  found?: { credential: StoredCredential; user: User };
}

type TakenRow = {
  challenge_user_id: string | null;
  challenge_data: Record<string, unknown>;
} & Partial<OwnedRow>;

function takenFrom(challenge: Omit<StoredChallenge, 'userId' | 'data'>, row: TakenRow): TakenChallenge {
  const taken: StoredChallenge = { ...challenge, userId: row.challenge_user_id, data: row.challenge_data };
  // No credential of that id: the left join's columns are all null.
  return { challenge: taken, found: row.id ? withOwner(row as OwnedRow) : undefined };
}

function withOwner(row: OwnedRow): { credential: StoredCredential; user: User } {
  return {
    credential: toStored(row),
    user: {
      id: row.user_id,
      email: row.owner_email,
      email_verified: row.owner_email_verified,
      name: row.owner_name,
      is_admin: row.owner_is_admin,
      disabled_at: row.owner_disabled_at,
      sessions_ended_at: row.owner_sessions_ended_at,
      tokens_revoked_at: row.owner_tokens_revoked_at,
      created_at: row.owner_created_at,
      updated_at: row.owner_updated_at,
      locale: row.owner_locale,
      signup_locale: row.owner_signup_locale,
      claims: row.owner_claims,
    },
  };
}

export const credentialsQueries = {
  async insert(
    db: Db,
    c: Omit<StoredCredential, 'createdAt' | 'lastUsedAt' | 'suspectedCloneAt'>,
  ): Promise<void> {
    await db
      .insertInto('credentials')
      .values({
        id: c.id,
        user_id: c.userId,
        public_key: c.publicKey,
        counter: c.counter,
        transports: JSON.stringify(c.transports),
        aaguid: c.aaguid,
        backup_eligible: c.backupEligible,
        backup_state: c.backupState,
        name: c.name,
      })
      .execute();
  },

  async findById(db: Db, id: string): Promise<StoredCredential | undefined> {
    const row = await db.selectFrom('credentials').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toStored(row) : undefined;
  },

  /**
   * A sign-in's two reads in one round trip: takes its challenge out of storage
   * ({@link TAKE_CHALLENGE}) and finds the credential it names with the user it belongs to.
   * Undefined when there was no challenge to take; `found` undefined when there is no such
   * credential (the challenge is used up all the same, as with any failed attempt).
   */
  async takeChallengeAndFind(
    db: Db,
    challenge: { challenge: string; purpose: string; binding: string },
    credentialId: string,
  ): Promise<TakenChallenge | undefined> {
    // Every sign-in runs it: SQL text written once (rawSql.ts).
    const { rows } = await runSql<TakenRow>(db, TAKE_CHALLENGE_AND_FIND, [
      challenge.challenge,
      challenge.purpose,
      challenge.binding,
      credentialId,
    ]);
    const row = rows[0];
    return row && takenFrom(challenge, row);
  },

  /**
   * The live interaction of stored id `interactionId`, and in the same statement the challenge
   * `take` names taken out with its credential and owner ({@link takeChallengeAndFind}), only if
   * that interaction waits at `take.prompt`: a request for an unknown, expired or finished
   * interaction, or one at another prompt, takes nothing. `taken` is undefined when nothing was.
   */
  async findInteractionTakingChallenge(db: Db, interactionId: string, take: InteractionTake) {
    const { rows } = await runSql<
      {
        interaction_payload: ModelPayload;
        interaction_consumed_at: Date | null;
        challenge_taken: boolean | null;
      } & TakenRow
    >(db, FIND_INTERACTION_TAKING_CHALLENGE, [
      take.challenge,
      take.purpose,
      take.binding,
      take.credentialId,
      interactionId,
      take.prompt,
    ]);
    const row = rows[0];
    if (!row) return { payload: undefined, taken: undefined };
    const payload = withConsumed({
      payload: row.interaction_payload,
      consumed_at: row.interaction_consumed_at,
    });
    const { challenge, purpose, binding } = take;
    return {
      payload,
      taken: row.challenge_taken ? takenFrom({ challenge, purpose, binding }, row) : undefined,
    };
  },

  async listForUser(db: Db, userId: string): Promise<StoredCredential[]> {
    const rows = await db
      .selectFrom('credentials')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();
    return rows.map(toStored);
  },

  async countForUser(db: Db, userId: string): Promise<number> {
    const row = await db
      .selectFrom('credentials')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  },

  /**
   * The statement that records a verified assertion. The counter only moves forward: the
   * WHERE clause makes a concurrent older assertion lose instead of rolling the counter back,
   * and then the statement returns no row; so does one of a passkey blocked meanwhile. A sign-in runs it together with saving its
   * interaction (heldWrites.ts, storeWritesIf).
   */
  useOf(id: string, counter: number, backupState: boolean): StoreCondition {
    return { text: RECORD_USE, parameters: [id, counter, backupState] };
  },

  /**
   * {@link credentialsQueries.useOf} for an assertion checked against what this process
   * holds in memory: the challenge is taken in the same statement, and only if the
   * interaction, the passkey and its owner are still as they were checked
   * ({@link TAKE_CHALLENGE_FOR_USE}). When the condition is not met, nothing was stored.
   */
  useCheckedInMemory(c: CheckedInMemory): StoreCondition {
    return {
      before: TAKE_CHALLENGE_FOR_USE,
      text: RECORD_USE_IF_TAKEN,
      parameters: [
        c.credentialId,
        c.counter,
        c.backupState,
        c.challenge,
        c.interactionId,
        c.interactionJson,
        c.userId,
        // pg sends a Buffer as bytea, any other Uint8Array as JSON.
        Buffer.isBuffer(c.publicKey) ? c.publicKey : Buffer.from(c.publicKey),
      ],
    };
  },

  /** Records a verified assertion ({@link credentialsQueries.useOf}); false if it lost to a newer one. */
  async recordUse(db: Db, id: string, counter: number, backupState: boolean): Promise<boolean> {
    const { text, parameters } = credentialsQueries.useOf(id, counter, backupState);
    const { rows } = await runSql(db, text, parameters);
    return rows.length > 0;
  },

  /**
   * Blocks a passkey a copy of which was detected (suspected_clone_at, migration 0035).
   * Returns it as it was before, or undefined when it is gone or was already blocked (a
   * concurrent detection did it first): only one detection records it.
   */
  async blockAsClone(db: Db, id: string): Promise<StoredCredential | undefined> {
    const row = await db
      .updateTable('credentials')
      .set({ suspected_clone_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where('suspected_clone_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    return row ? toStored({ ...row, suspected_clone_at: null }) : undefined;
  },

  async rename(db: Db, userId: string, id: string, name: string): Promise<boolean> {
    const result = await db
      .updateTable('credentials')
      .set({ name })
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  },

  /**
   * Deletes one of the user's passkeys unless it is their last. The CTE locks all of the
   * user's passkeys first, so two concurrent deletes of their last two cannot both pass the
   * count: the second waits, then sees one row left and deletes nothing.
   * @returns the name of the passkey deleted, or undefined when none was.
   */
  async deleteUnlessLast(db: Db, userId: string, id: string): Promise<string | undefined> {
    const { rows } = await sql<{ name: string }>`
      with mine as (select id from credentials where user_id = ${userId} for update)
      delete from credentials
      where id = ${id} and user_id = ${userId} and (select count(*) from mine) > 1
      returning name`.execute(db);
    return rows[0]?.name;
  },

  /** Deletes every passkey of a user; returns the ids that went. */
  async deleteAllForUser(db: Db, userId: string): Promise<string[]> {
    const rows = await db.deleteFrom('credentials').where('user_id', '=', userId).returning('id').execute();
    return rows.map((row) => row.id);
  },

  async delete(db: Db, userId: string, id: string): Promise<boolean> {
    const result = await db
      .deleteFrom('credentials')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  },
};
