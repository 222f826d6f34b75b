import { type RawBuilder, sql } from 'kysely';
import type { Db } from '../connect.js';
import { FLUSH_WAIT_OFF, runSql, runWriteWithoutFlushWait } from '../rawSql.js';

/** One stored oidc-provider model instance: the payload as the provider gave it. */
export type ModelPayload = Record<string, unknown>;

function live(db: Db, model: string) {
  return db
    .selectFrom('oidc_models')
    .select(['payload', 'consumed_at'])
    .where('model', '=', model)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]));
}

/**
 * The provider's hot path — every flow step reads or writes here — runs SQL text written once
 * (rawSql.ts): building these with Kysely's query builder cost ~85 µs of CPU per query
 * (bench/README.md, profile of the login benchmark), compiling `sql` templates still ~50 µs.
 */
const IS_LIVE = '(expires_at is null or expires_at > now())';

/**
 * The payload member of a grant a person gave a device (RFC 8628): when they approved it,
 * in seconds since the epoch. Each approval has a grant of its own, never the one the
 * approving browser session holds for the app (src/oidc/deviceFlow.ts): the account page
 * lists it as that device's sign-in and revokes it alone, the browser's sign-out and the
 * app's "Revoke" leave it, and "Sign out everywhere" ends it (src/accounts/connectedApps.ts).
 */
export const APPROVED_ON_DEVICE = 'approvedOnDevice';

/**
 * The payload member of a grant that outlived the person's revoke of its app on the account
 * page (a device's, which that revoke leaves signed in): when, in seconds since the epoch.
 * The grant still signs its device in, but its consent is not copied into a new sign-in
 * ({@link oidcModelsQueries.consentToCopy}): the app asks again, as the page promised.
 */
export const CONSENT_REVOKED = 'consentRevokedAt';

export type LiveRow = { payload: ModelPayload; consumed_at: Date | null };

/** A discoverable sign-in challenge to store with the read of the interaction it is bound to. */
export interface InteractionChallenge {
  /** The prompt (`prompt.name` of the stored interaction) it is issued for. */
  prompt: string;
  challenge: string;
  purpose: string;
  binding: string;
  expiresAt: Date;
}

/**
 * A sign-in challenge stored in the statement that stores the interaction it is bound to
 * (freshSignIns.ts): an {@link InteractionChallenge} without a prompt to check, as the
 * interaction is stored with it; no user, no data, as the login page's own would be.
 */
export type ChallengeWithRow = Omit<InteractionChallenge, 'prompt'>;

/** The live interaction of stored id `id` (a parameter), as a `with` query's `interaction`. */
export const liveInteraction = (id: string) =>
  `select payload, consumed_at from oidc_models where model = 'Interaction' and id = ${id} and ${IS_LIVE} limit 1`;

/** Whether {@link liveInteraction}'s `interaction` waits at prompt `prompt` (a parameter). */
export const interactionAtPrompt = (prompt: string) =>
  `interaction.payload -> 'prompt' ->> 'name' = ${prompt}::text`;

/**
 * $1 the interaction's stored id, $2 the prompt, $3–$6 the challenge (webauthn_challenges:
 * challenge, purpose, binding, expires_at; no user, no data). A row built by `select` gets no
 * types from the columns it goes into, so the parameters are cast. Outside a transaction the
 * insert returns {@link FLUSH_WAIT_OFF}, as {@link runWriteWithoutFlushWait} would add it.
 */
const findInteractionStoringChallengeText = (
  returning: string,
) => `with interaction as (${liveInteraction('$1')}
  ), stored as (
    insert into webauthn_challenges (challenge, purpose, binding, user_id, data, expires_at)
    select $3::text, $4::text, $5::text, null, '{}'::jsonb, $6::timestamptz from interaction
    where ${interactionAtPrompt('$2')}
    returning ${returning}
  )
  select payload, consumed_at, (select count(*) from stored)::int as stored from interaction`;
const FIND_INTERACTION_STORING_CHALLENGE = {
  alone: findInteractionStoringChallengeText(FLUSH_WAIT_OFF),
  inTransaction: findInteractionStoringChallengeText('1'),
};

/**
 * The live instance of model $1, stored id $2 (and, with `asJson`, stored as $3, compared as
 * jsonb so that only its content counts): found, or deleted, answering its model, id and key
 * (as in destroy). See rowRequired.
 */
const requiredRowText = (action: 'select' | 'delete', asJson: boolean) =>
  `${action === 'select' ? 'select 1' : 'delete'} from oidc_models
      where model = $1 and id = $2${asJson ? ' and payload = $3::jsonb' : ''} and ${IS_LIVE}${
        action === 'delete' ? ` returning model, id, ${CACHE_KEY} as key` : ''
      }`;

/** Marks an instance ($1 model, $2 id) used, if it is live and unused; returns a row when it did. */
const CONSUME = `update oidc_models set consumed_at = now()
      where model = $1 and id = $2 and consumed_at is null and ${IS_LIVE}
      returning 1 as consumed`;

/**
 * Stamps a device code's poll (RFC 8628 §3.5) in its payload: `polledAt` in seconds since the
 * epoch by the database's clock (one clock for every instance), and `pollInterval`, the
 * seconds the device must now wait between polls: $2 at first, and $4 more after each poll
 * that came sooner than the interval less $3 seconds of slack (it is answered `slow_down`,
 * which obliges the device to wait that much longer "for this and all subsequent requests").
 * Every poll is stamped, as the device counts its wait from its last request. The row is
 * locked before it is read: of two polls at once, the second waits for the first and reads
 * what it stamped. The provider reads only the payload members it knows, so both stay Sesame's.
 */
const STAMP_DEVICE_POLL = `with polled as (
        select id,
          extract(epoch from now())::double precision as now,
          coalesce((payload->>'polledAt')::double precision, 0) as polled_at,
          coalesce((payload->>'pollInterval')::double precision, $2::double precision) as poll_interval
        from oidc_models
        where model = 'DeviceCode' and id = $1 and ${IS_LIVE}
        for update
      ), judged as (
        select *, now - polled_at >= poll_interval - $3::double precision as on_time from polled
      )
      update oidc_models m
      set payload = m.payload || jsonb_build_object(
        'polledAt', j.now,
        'pollInterval', case when j.on_time then j.poll_interval else j.poll_interval + $4::double precision end)
      from judged j
      where m.model = 'DeviceCode' and m.id = j.id
      returning j.on_time`;

/** Whether a grant is a device's: marked {@link APPROVED_ON_DEVICE} with the time of its approval. */
const IS_DEVICE_GRANT = `jsonb_typeof(payload->'${APPROVED_ON_DEVICE}') = 'number'`;

/** Sets a live grant's APPROVED_ON_DEVICE ($1 its id, $2 the time); returns a row when the grant was there. */
const MARK_APPROVED_ON_DEVICE = `update oidc_models
      set payload = payload || jsonb_build_object('${APPROVED_ON_DEVICE}', $2::bigint)
      where model = 'Grant' and id = $1 and ${IS_LIVE}
      returning 1 as marked`;

/**
 * Texts of a grant's guarded writes (see {@link oidcModelsQueries.updateLiveGrant}), each
 * answering a row when it stored the grant: `alone` commits without the WAL flush wait, as
 * the upsert it stands for does (rawSql.ts), `inTransaction` as the transaction does.
 */
const guardedGrantWrite = (text: (stored: string) => string) => ({
  alone: text(FLUSH_WAIT_OFF),
  inTransaction: text('1'),
});

/**
 * Replaces a live grant's payload and expiry ($1 its id, $2 the payload, $3 expires_at),
 * keeping a CONSENT_REVOKED stamped since it was read, as {@link REPLACE} does, and the later
 * of the two ends: a renewal (grantRenewal.ts) stored since the grant was read, by a sign-in
 * in another tab, is kept, where the read copy's end would shorten the grant again.
 */
const UPDATE_LIVE_GRANT = guardedGrantWrite(
  (stored) => `update oidc_models
      set payload = $2::jsonb || jsonb_strip_nulls(jsonb_build_object(
          '${CONSENT_REVOKED}', payload->'${CONSENT_REVOKED}',
          'exp', greatest((payload->>'exp')::bigint, ($2::jsonb->>'exp')::bigint))),
        expires_at = greatest(expires_at, $3::timestamptz)
      where model = 'Grant' and id = $1 and ${IS_LIVE}
      returning ${stored} as stored`,
);

/**
 * Inserts a new grant ($1 its id, $2 the payload, $3 expires_at) only while grant $4 is live
 * and not CONSENT_REVOKED. The source is locked: a revoke of it under way is waited for, and
 * its outcome (the grant gone, or stamped) is what the condition reads.
 */
const INSERT_COPY_OF_CONSENT = guardedGrantWrite(
  (stored) => `with source as (
        select 1 from oidc_models
        where model = 'Grant' and id = $4 and ${IS_LIVE} and not payload ? '${CONSENT_REVOKED}'
        for share
      )
      insert into oidc_models (model, id, payload, expires_at)
      select 'Grant', $1, $2::jsonb, $3::timestamptz from source
      returning ${stored} as stored`,
);

/** A live instance by model and one lookup column, as SQL text built once per column. */
const findLiveBy = (column: string) =>
  `select payload, consumed_at from oidc_models where model = $1 and ${column} = $2 and ${IS_LIVE} limit 1`;
const FIND_LIVE = { id: findLiveBy('id'), uid: findLiveBy('uid'), user_code: findLiveBy('user_code') };

/**
 * An instance by model and id or user code, live or expired less than $3 seconds ago; of two
 * with one user code, the later to expire. Only for answers that say an instance expired
 * rather than that it is unknown (see EXPIRED_KEPT_SECONDS).
 */
const findRecentBy = (column: string) =>
  `select payload, consumed_at from oidc_models where model = $1 and ${column} = $2
      and expires_at > now() - make_interval(secs => $3) order by expires_at desc limit 1`;
const FIND_RECENT = { id: findRecentBy('id'), user_code: findRecentBy('user_code') };

async function findLive(db: Db, model: string, column: keyof typeof FIND_LIVE, value: string) {
  const { rows } = await runSql<LiveRow>(db, FIND_LIVE[column], [model, value]);
  return withConsumed(rows[0]);
}

/** A found instance's payload, with `consumed` (seconds) when it has been used. */
export function withConsumed(row: LiveRow | undefined) {
  if (!row) return undefined;
  return row.consumed_at
    ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) }
    : row.payload;
}

/** `$from, $from+1, …`: `count` placeholders. */
function list(from: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `$${from + i}`).join(', ');
}

/** `($1, $2, …), ($n+1, …)`: `count` tuples of `width` placeholders, numbered on from `$after + 1`. */
function placeholders(count: number, width: number, after = 0): string {
  // Every token issued and every login step writes a row or a few: the same lists each time.
  const key = `${count} ${width} ${after}`;
  let text = placeholderLists.get(key);
  if (text === undefined) {
    text = Array.from({ length: count }, (_, i) => `(${list(after + i * width + 1, width)})`).join(', ');
    if (placeholderLists.size < MOST_PLACEHOLDER_LISTS) placeholderLists.set(key, text);
  }
  return text;
}

/** The lists {@link placeholders} built, by shape; past this many, new shapes are built each time. */
const placeholderLists = new Map<string, string>();
const MOST_PLACEHOLDER_LISTS = 500;

/**
 * The whole text of each write statement built from parts (a condition's, the rows' count),
 * by the statement it extends (a condition's constant text, or a kind of write) and its shape.
 * A login's writes are the same few shapes every time; built on each call, their text took
 * ~15 kB of the ~900 kB a login allocates (template parts, joins, and the flat copy the
 * statement-name lookup makes of it), and the lookup hashed and compared ~1.5 kB of new text
 * each time, where a kept text is the same string with its hash known
 * (bench/README.md, "Measured on 2026-12-07, 07:35–08:45"). Past the bound, new shapes are
 * built each time.
 */
const statementTexts = new Map<string, Map<string, string>>();
const MOST_STATEMENT_TEXTS = 500;
let statementTextCount = 0;

/** The text {@link statementTexts} keeps for `base` (a constant text) at `shape`, built once by `build`. */
function statementText(base: string, shape: string, build: () => string): string {
  const shapes = statementTexts.get(base);
  const kept = shapes?.get(shape);
  if (kept !== undefined) return kept;
  const text = build();
  if (statementTextCount < MOST_STATEMENT_TEXTS) {
    if (shapes) shapes.set(shape, text);
    else statementTexts.set(base, new Map([[shape, text]]));
    statementTextCount++;
  }
  return text;
}

/** The kinds of write {@link statementText} keeps texts for, beside conditions' own texts. */
const UPSERT = 'upsert';
const DESTROY_AND_UPSERT = 'destroy and upsert';

/**
 * The text of {@link oidcModelsQueries.destroyAndUpsertIf}: `condition`'s statement as `met`,
 * its parameters first, then `gone` deletions (two parameters each), `rows` upserts
 * (seven each) and `renewals` of grants (two each), all only if `met` returned a row.
 */
function destroyAndUpsertIfText(
  condition: StoreCondition,
  gone: number,
  rows: number,
  renewals: number,
): string {
  let after = condition.parameters.length;
  const parts = [...(condition.before ? [condition.before] : []), `met as (${condition.text})`];
  if (gone > 0) {
    parts.push(`gone as (${deleteText(after, gone, IF_MET)})`);
    after += gone * 2;
  }
  // A renewal reads what `put` returns, to run after it (afterWrites); without one it returns nothing.
  if (rows > 0) parts.push(`put as (${upsertIfMetText(after, rows)}${renewals > 0 ? ' returning 1' : ''})`);
  if (renewals > 0) {
    const first = [...(gone > 0 ? ['gone'] : []), ...(rows > 0 ? ['put'] : [])];
    parts.push(renewalsPart(after + rows * 7, renewals, `${IF_MET} ${afterWrites(first)}`));
  }
  const deletedBy = [
    ...(gone > 0 ? ['select model, id, key from gone'] : []),
    ...(condition.deletes ? ['select model, id, key from met'] : []),
  ];
  const deleted =
    deletedBy.length > 0
      ? `(select coalesce(json_agg(json_build_object('model', model, 'id', id, 'key', key)), '[]') from (${deletedBy.join(' union all ')}) as deleted)`
      : `'[]'::json`;
  return `with ${parts.join(', ')} select exists (select 1 from met) as met, ${deleted} as gone`;
}

/** What a part of {@link destroyAndUpsertIfText} adds to its `where`: only if the condition was met. */
const IF_MET = 'and exists (select 1 from met)';

/**
 * What {@link renewalsPart} adds to its `where`, always true, to run after the statement's
 * `with` parts `names` (each returning rows): Postgres runs the parts a statement's query
 * does not read at its end, the last declared first, so the renewal, declared last, would
 * lock the grant before the rows are stored. (In upsertRows the rows are the statement's
 * query, run before any part it does not read.)
 */
const afterWrites = (names: readonly string[]) =>
  names.map((name) => `and (select count(*) from ${name}) >= 0`).join(' ');

/**
 * A `with` part that renews `count` grants ({@link GrantRenewal}), whose parameters follow
 * `$after`, two each ({@link renewalParameters}), `onlyIf` the statement's condition holds: a
 * grant's end moves to the renewal's, only while it is live and would end sooner.
 * - An update, never an upsert: a grant revoked since the code's request read it (the account
 *   page's Revoke deleted it) stays revoked, where storing it again would honour what the
 *   revoke ended.
 * - It locks the grant last, after the statement's other writes (`onlyIf` names them,
 *   {@link afterWrites}), and a grant another transaction has locked is left as it is (`skip
 *   locked`), not waited for: so a transaction that holds a row this statement stores, and
 *   then wants the grant, never waits for it as it waits for that transaction. An admin's
 *   disable, a recovery link, an email takeover and a cloned passkey's block delete an
 *   account's sessions and grants together (destroyByAccountId); a Revoke of the app locks
 *   the app's grants and then changes the sessions that name it; a sign-in's statement
 *   stores such a session. Locking the grant
 *   first, or waiting for it, the two would wait for each other and Postgres would refuse one
 *   (the sign-in with a 500). A grant left so is renewed at the next sign-in; until then it
 *   ends as it would have.
 */
function renewalsPart(after: number, count: number, onlyIf = ''): string {
  const tuples = Array.from(
    { length: count },
    (_, i) => `($${after + i * 2 + 1}::text, $${after + i * 2 + 2}::bigint)`,
  );
  return `renewed as (update oidc_models
      set payload = oidc_models.payload || jsonb_build_object('exp', due.exp), expires_at = to_timestamp(due.exp)
      from (select g.id, renewal.exp from oidc_models g
          join (values ${tuples.join(', ')}) as renewal (id, exp) on g.model = 'Grant' and g.id = renewal.id
          where ${IS_LIVE} and expires_at < to_timestamp(renewal.exp)${onlyIf && ` ${onlyIf}`}
          for no key update of g skip locked) as due
      where oidc_models.model = 'Grant' and oidc_models.id = due.id)`;
}

const renewalParameters = (r: GrantRenewal) => [r.id, r.exp];

/**
 * The renewals a statement stores: one per grant (the latest end), and none of a grant the
 * statement deletes or stores itself (one statement must not change a row twice; the grant's
 * own write is the newer word).
 */
function renewalsApart(
  renewals: readonly GrantRenewal[],
  rows: readonly OidcModelRow[],
  gone: readonly { model: string; id: string }[] = [],
): readonly GrantRenewal[] {
  if (renewals.length === 0) return renewals;
  const latest = new Map<string, GrantRenewal>();
  for (const renewal of renewals)
    if ((latest.get(renewal.id)?.exp ?? 0) < renewal.exp) latest.set(renewal.id, renewal);
  for (const written of [...rows, ...gone]) if (written.model === 'Grant') latest.delete(written.id);
  return [...latest.values()];
}

/** A row's columns in the order {@link upsertText} names them. */
const rowParameters = (r: OidcModelRow) => [
  r.model,
  r.id,
  r.payload,
  r.grant_id,
  r.uid,
  r.user_code,
  r.expires_at,
];

const COLUMNS = 'model, id, payload, grant_id, uid, user_code, expires_at';

/** The models oidc-provider issues under a grant, as SQL literals: what revoking the grant removes. */
const ISSUED_UNDER_A_GRANT = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]
  .map((model) => `'${model}'`)
  .join(', ');
/**
 * Replaces a row, but keeps a device code's poll stamps (STAMP_DEVICE_POLL), which the
 * provider does not know and would drop when it saves the code again (the person confirms it),
 * and a grant's CONSENT_REVOKED, which a save of a copy loaded before the revoke would drop.
 */
const REPLACE = `on conflict (model, id) do update set
        payload = excluded.payload || case
          when excluded.model = 'DeviceCode' then jsonb_strip_nulls(jsonb_build_object(
            'polledAt', oidc_models.payload->'polledAt', 'pollInterval', oidc_models.payload->'pollInterval'))
          when excluded.model = 'Grant' then jsonb_strip_nulls(jsonb_build_object(
            '${CONSENT_REVOKED}', oidc_models.payload->'${CONSENT_REVOKED}'))
          else '{}' end,
        grant_id = excluded.grant_id, uid = excluded.uid,
        user_code = excluded.user_code, expires_at = excluded.expires_at`;

/** Inserts or replaces (by model and id) `count` rows, whose parameters follow `$after`. */
function upsertText(after: number, count: number): string {
  return `insert into oidc_models (${COLUMNS})
      values ${placeholders(count, 7, after)}
      ${REPLACE}`;
}

/**
 * A `with` part that inserts `count` challenges (webauthn_challenges), whose parameters follow
 * `$after`, four each ({@link challengeParameters}), into a statement storing rows.
 */
function challengesPart(after: number, count: number): string {
  const tuples = Array.from({ length: count }, (_, i) => {
    const at = after + i * 4;
    return `($${at + 1}, $${at + 2}, $${at + 3}, null, '{}'::jsonb, $${at + 4})`;
  });
  return `challenges as (
      insert into webauthn_challenges (challenge, purpose, binding, user_id, data, expires_at)
      values ${tuples.join(', ')}
    )`;
}

/** `with` and `parts` before `statement`, or `statement` alone when there are none. */
const withParts = (parts: readonly string[], statement: string) =>
  parts.length === 0 ? statement : `with ${parts.join(', ')}\n    ${statement}`;

const challengeParameters = (c: ChallengeWithRow) => [c.challenge, c.purpose, c.binding, c.expiresAt];

/** The type of each column in {@link COLUMNS}: a row built by `select` (below) names them, where `values` needs not. */
const COLUMN_TYPES = ['text', 'text', 'jsonb', 'text', 'text', 'text', 'timestamptz'];

/** As {@link upsertText}, but only if the statement's `met` has returned a row. */
function upsertIfMetText(after: number, count: number): string {
  const tuples = Array.from(
    { length: count },
    (_, i) => `(${COLUMN_TYPES.map((type, c) => `$${after + i * 7 + c + 1}::${type}`).join(', ')})`,
  );
  return `insert into oidc_models (${COLUMNS})
      select * from (values ${tuples.join(', ')}) as held (${COLUMNS})
      where exists (select 1 from met)
      ${REPLACE}`;
}

/** The key caches know a row by: a session's uid, else its id (see modelCache.ts). */
const CACHE_KEY = `coalesce(case when model = 'Session' then uid end, id)`;

/**
 * Deletes `count` instances by (model, id), whose parameters follow `$after`, `onlyIf` the
 * statement's condition holds; answers each one's model, id and key (as in destroy).
 */
function deleteText(after: number, count: number, onlyIf = ''): string {
  return `delete from oidc_models where (model, id) in (${placeholders(count, 2, after)})${onlyIf && ` ${onlyIf}`}
      returning model, id, ${CACHE_KEY} as key`;
}

const REQUIRED_ROW = {
  select: { byId: requiredRowText('select', false), asJson: requiredRowText('select', true) },
  delete: { byId: requiredRowText('delete', false), asJson: requiredRowText('delete', true) },
};

/** An instance to delete's parameters, in the order {@link deleteText} numbers them. */
const goneParameters = (g: { model: string; id: string }) => [g.model, g.id];

/**
 * What must happen for held rows to be stored (heldWrites.ts): a statement that changes rows
 * and returns one when it did (`update … where … returning 1`), parameters numbered from `$1`.
 * It runs as part of the statement that stores them, so both happen, or neither.
 */
export interface StoreCondition {
  text: string;
  parameters: unknown[];
  /**
   * `with` parts the statement runs before `met` (which may read them), sharing its
   * parameters. `text` names the whole condition: one `text` always comes with the same `before`.
   */
  before?: string;
  /** Whether it is a deletion whose rows are the deleted rows' model, id and key, answered as the held deletions' are. */
  deletes?: boolean;
}

/**
 * A grant's new end, `exp` in seconds since the epoch, stored with the rows of a statement
 * that stores a code issued under it, only while the grant is live and would end sooner
 * (src/oidc/grantRenewal.ts).
 */
export interface GrantRenewal {
  /** The grant's stored id. */
  id: string;
  exp: number;
}

/** A row of `oidc_models` as it is written: the payload as JSON text, lookup columns beside it. */
export interface OidcModelRow {
  model: string;
  id: string;
  payload: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: Date | null;
}

/**
 * Whether the row may commit without waiting for the WAL flush (rawSql.ts): all but
 * ReplayDetection, the record that a JWT's id was seen, whose loss would let the JWT be used again.
 */
export const mayBeLostInACrash = (row: Pick<OidcModelRow, 'model'>): boolean =>
  row.model !== 'ReplayDetection';

/** The row that stores a model instance, as `json` (the payload's, unless given); `expiresInSeconds` counts from now. */
export function modelRow(
  model: string,
  id: string,
  payload: ModelPayload,
  expiresInSeconds: number | undefined,
  json: string = JSON.stringify(payload),
): OidcModelRow {
  return {
    model,
    id,
    payload: json,
    grant_id: typeof payload.grantId === 'string' ? payload.grantId : null,
    uid: typeof payload.uid === 'string' ? payload.uid : null,
    user_code: typeof payload.userCode === 'string' ? payload.userCode : null,
    expires_at: expiresInSeconds ? new Date(Date.now() + expiresInSeconds * 1000) : null,
  };
}

/**
 * The newest live grant an account gave a client; with `consentOnly`, none marked
 * {@link CONSENT_REVOKED}. `model = 'Grant'` is a literal so the partial index of migration
 * 0005 applies.
 */
async function latestGrant(
  db: Db,
  accountId: string,
  clientId: string,
  consentOnly: boolean,
): Promise<ModelPayload | undefined> {
  const { rows } = await sql<{ payload: ModelPayload }>`
    select payload from oidc_models
    where model = 'Grant' and payload->>'accountId' = ${accountId} and payload->>'clientId' = ${clientId}
      and ${sql.raw(IS_LIVE)} and not (${consentOnly}::boolean and payload ? ${CONSENT_REVOKED}::text)
    order by (payload->>'iat')::bigint desc nulls last
    limit 1`.execute(db);
  return rows[0]?.payload;
}

/**
 * Locks the grants `where` names, by id. Every change of grants and of the rows that name
 * them (sessions, codes, tokens) takes the grants first, in this order (lockGrantsOf too):
 * a delete of an account's or a client's rows in one statement locks them in the order the
 * table holds them, and an app's Revoke holds the app's grants and then changes the sessions
 * that name them, so either way round two such changes waited for each other and Postgres
 * refused one (a cloned passkey's block rolled back, the copy free to try again).
 */
async function lockGrantsWhere(db: Db, where: RawBuilder<unknown>): Promise<void> {
  await sql`select id from oidc_models where model = 'Grant' and ${where} order by id for update`.execute(db);
}

export const oidcModelsQueries = {
  async upsert(
    db: Db,
    model: string,
    id: string,
    payload: ModelPayload,
    expiresInSeconds: number | undefined,
  ) {
    await oidcModelsQueries.upsertRows(db, [modelRow(model, id, payload, expiresInSeconds)]);
  },

  /**
   * Inserts or replaces (by model and id) the rows in one statement; their keys must differ.
   * Everything the provider saves is new state whose loss fails closed (an interaction's
   * progress, a session, grant, code or token just issued: their holder signs in again), so it
   * commits without waiting for the WAL flush (rawSql.ts), unless a row is one that must not
   * be lost ({@link mayBeLostInACrash}). What stops something, a consumed code or a
   * revocation, is a statement of its own below. `challenges` are sign-in challenges bound to
   * interactions among the rows, stored by the same statement (a challenge's loss also fails
   * closed: its ceremony is refused); `renewalsOfCodes`, of the grants codes among the rows are
   * issued under ({@link renewalsApart}; a renewal's loss fails closed too: the consent ends
   * when it would have without it).
   */
  async upsertRows(
    db: Db,
    rows: readonly OidcModelRow[],
    challenges: readonly ChallengeWithRow[] = [],
    renewalsOfCodes: readonly GrantRenewal[] = [],
  ) {
    const renewals = renewalsApart(renewalsOfCodes, rows);
    const parameters: unknown[] = rows.flatMap(rowParameters);
    if (challenges.length) parameters.push(...challenges.flatMap(challengeParameters));
    if (renewals.length) parameters.push(...renewals.flatMap(renewalParameters));
    const run = rows.every(mayBeLostInACrash) ? runWriteWithoutFlushWait : runSql;
    const text = statementText(UPSERT, `${rows.length} ${challenges.length} ${renewals.length}`, () => {
      const parts: string[] = [];
      if (challenges.length > 0) parts.push(challengesPart(rows.length * 7, challenges.length));
      if (renewals.length > 0)
        parts.push(renewalsPart(rows.length * 7 + challenges.length * 4, renewals.length));
      return withParts(parts, upsertText(0, rows.length));
    });
    await run(db, text, parameters);
  },

  async find(db: Db, model: string, id: string) {
    return findLive(db, model, 'id', id);
  },

  /**
   * Several live instances by (model, id) in one statement; the answer lists each key's
   * payload (or undefined) in the order asked. Keys may repeat.
   */
  async findMany(db: Db, keys: readonly { model: string; id: string }[]) {
    const models = [...new Set(keys.map((k) => k.model))];
    const ids = [...new Set(keys.map((k) => k.id))];
    const { rows } = await runSql<LiveRow & { model: string; id: string }>(
      db,
      `select model, id, payload, consumed_at from oidc_models
      where model in (${list(1, models.length)}) and id in (${list(models.length + 1, ids.length)}) and ${IS_LIVE}`,
      [...models, ...ids],
    );
    const found = new Map(rows.map((row) => [`${row.model}\u0000${row.id}`, row]));
    return keys.map((k) => withConsumed(found.get(`${k.model}\u0000${k.id}`)));
  },

  async findByUid(db: Db, model: string, uid: string) {
    return findLive(db, model, 'uid', uid);
  },

  /**
   * The payload of the live browser session with this uid as stored now (never a cache: a
   * sign-out on another instance must be seen), its row held `for key share` until the
   * transaction ends: a sign-out (the provider deletes the row) either committed before, and
   * this finds nothing, or waits for this transaction to end. The provider's saves of the
   * session (an update of its payload, at the end of nearly every provider request) do not
   * wait: they go in one grouped statement with every other request's writes, which would all
   * wait with them.
   */
  async holdSession(db: Db, uid: string): Promise<ModelPayload | undefined> {
    const row = await live(db, 'Session').where('uid', '=', uid).forKeyShare().executeTakeFirst();
    return row?.payload as ModelPayload | undefined;
  },

  /**
   * A live interaction by its stored id, read in the same statement that stores a sign-in
   * challenge for it, and only if it is found waiting at `challenge.prompt`: a request for an
   * unknown, expired or finished interaction stores nothing. `stored` says whether it was
   * stored. The challenge may be lost in a crash of Postgres like any other (challenges.ts),
   * so the statement commits without waiting for the WAL flush (rawSql.ts).
   */
  async findInteractionStoringChallenge(db: Db, id: string, challenge: InteractionChallenge) {
    const text = FIND_INTERACTION_STORING_CHALLENGE[db.isTransaction ? 'inTransaction' : 'alone'];
    const { rows } = await runSql<LiveRow & { stored: number }>(db, text, [
      id,
      challenge.prompt,
      challenge.challenge,
      challenge.purpose,
      challenge.binding,
      challenge.expiresAt,
    ]);
    const row = rows[0];
    return { payload: withConsumed(row), stored: row?.stored === 1 };
  },

  /**
   * Stores `result` (JSON) as the result of the live interaction of stored id `id`, only while
   * it waits at the login prompt with no result yet. The row stays locked until the caller's
   * transaction ends: of two such updates at once, the second waits for the first, then reads
   * its result (READ COMMITTED re-reads the row) and changes nothing.
   * @returns whether it stored it.
   */
  async settleLoginInteraction(db: Db, id: string, result: string): Promise<boolean> {
    const { rows } = await sql`
      update oidc_models set payload = jsonb_set(payload, '{result}', ${result}::jsonb)
      where model = 'Interaction' and id = ${id} and ${sql.raw(IS_LIVE)}
        and payload -> 'prompt' ->> 'name' = 'login' and not payload ? 'result'
      returning 1 as settled`.execute(db);
    return rows.length === 1;
  },

  async findByUserCode(db: Db, model: string, userCode: string) {
    return findLive(db, model, 'user_code', userCode);
  },

  /**
   * An instance by id or user code that is live or expired less than `keptSeconds` ago: for
   * the answers that say a code expired rather than that it is unknown.
   */
  async findRecentlyExpired(
    db: Db,
    model: string,
    column: keyof typeof FIND_RECENT,
    value: string,
    keptSeconds: number,
  ) {
    const { rows } = await runSql<LiveRow>(db, FIND_RECENT[column], [model, value, keptSeconds]);
    return withConsumed(rows[0]);
  },

  /**
   * Marks the instance used, unless it already was: of two concurrent uses of one code only
   * one changes the row. A row that is gone or expired is not marked either.
   * @returns whether this call marked it.
   */
  async consume(db: Db, model: string, id: string): Promise<boolean> {
    const { text, parameters } = oidcModelsQueries.consumptionOf(model, id);
    const { rows } = await runSql(db, text, parameters);
    return rows.length > 0;
  },

  /**
   * Records a poll of the pending device code `id` (on any instance) and judges it against the
   * code's current interval: `interval` at first, `increase` more after each poll that came
   * sooner than it less `slack` seconds.
   * @returns whether this poll came on time; false: the device polls too fast (or the code is gone).
   */
  async recordDevicePoll(
    db: Db,
    id: string,
    timing: { interval: number; slack: number; increase: number },
  ): Promise<boolean> {
    const { rows } = await runSql<{ on_time: boolean }>(db, STAMP_DEVICE_POLL, [
      id,
      timing.interval,
      timing.slack,
      timing.increase,
    ]);
    return rows[0]?.on_time === true;
  },

  /**
   * The statement of {@link consume}, as a condition for held writes (heldWrites.ts): a code
   * redeemed at the token endpoint is consumed by the statement that stores its tokens.
   */
  consumptionOf(model: string, id: string): StoreCondition {
    return { text: CONSUME, parameters: [model, id] };
  },

  /** The grant an instance was issued under, whether or not it is still live. */
  async grantIdOf(db: Db, model: string, id: string): Promise<string | undefined> {
    const { rows } = await runSql<{ grant_id: string | null }>(
      db,
      'select grant_id from oidc_models where model = $1 and id = $2',
      [model, id],
    );
    return rows[0]?.grant_id ?? undefined;
  },

  /**
   * Deletes one instance.
   * @returns the key caches know it by (a session's uid, else its id), if it was there.
   */
  async destroy(db: Db, model: string, id: string): Promise<string | undefined> {
    const { rows } = await runSql<{ key: string }>(
      db,
      `delete from oidc_models where model = $1 and id = $2 returning ${CACHE_KEY} as key`,
      [model, id],
    );
    return rows[0]?.key;
  },

  /**
   * Deletes the instances `gone` names, inserts or replaces `rows` and stores the renewals of
   * grants codes among them are issued under ({@link renewalsApart}), in one statement; no
   * key may be in both `gone` and `rows`, nor twice in either. It commits as every deletion
   * does, waiting for the WAL flush: a deleted interaction or session must stay deleted.
   * @returns the model, id and key (as in destroy) of each row deleted.
   */
  async destroyAndUpsert(
    db: Db,
    gone: readonly { model: string; id: string }[],
    rows: readonly OidcModelRow[],
    renewalsOfCodes: readonly GrantRenewal[] = [],
  ): Promise<{ model: string; id: string; key: string }[]> {
    if (gone.length === 0) {
      await oidcModelsQueries.upsertRows(db, rows, [], renewalsOfCodes);
      return [];
    }
    const renewals = renewalsApart(renewalsOfCodes, rows, gone);
    const parameters: unknown[] = gone.flatMap(goneParameters);
    type Deleted = { model: string; id: string; key: string };
    const shape = `${gone.length} ${rows.length} ${renewals.length}`;
    const text = statementText(DESTROY_AND_UPSERT, shape, () => {
      const deleted = deleteText(0, gone.length);
      if (rows.length === 0 && renewals.length === 0) return deleted;
      const parts = [`gone as (${deleted})`];
      const returning = renewals.length > 0 ? ' returning 1' : '';
      if (rows.length > 0) parts.push(`put as (${upsertText(gone.length * 2, rows.length)}${returning})`);
      if (renewals.length > 0) {
        const first = afterWrites(rows.length > 0 ? ['gone', 'put'] : ['gone']);
        parts.push(renewalsPart(gone.length * 2 + rows.length * 7, renewals.length, first));
      }
      return withParts(parts, 'select model, id, key from gone');
    });
    parameters.push(...rows.flatMap(rowParameters), ...renewals.flatMap(renewalParameters));
    return (await runSql<Deleted>(db, text, parameters)).rows;
  },

  /**
   * A condition (heldWrites.ts) met while the live instance of `model` with stored id `id` is
   * stored (exactly as `json`, the JSON this process wrote, when given). With `deleting`, the
   * condition is its deletion, met only if this statement deleted it: of two such statements
   * at once, the second waits for the first's row lock and then deletes nothing (READ
   * COMMITTED re-reads the row), so exactly one is met.
   */
  rowRequired(model: string, id: string, json: string | undefined, deleting: boolean): StoreCondition {
    const text = REQUIRED_ROW[deleting ? 'delete' : 'select'][json === undefined ? 'byId' : 'asJson'];
    return { text, parameters: json === undefined ? [model, id] : [model, id, json], deletes: deleting };
  },

  /**
   * As {@link oidcModelsQueries.destroyAndUpsert}, in the same statement as `condition`, and
   * only if `condition` changed a row: both, or neither.
   * @returns undefined when the condition was not met (nothing was stored), else as destroyAndUpsert.
   */
  async destroyAndUpsertIf(
    db: Db,
    condition: StoreCondition,
    gone: readonly { model: string; id: string }[],
    rows: readonly OidcModelRow[],
    renewalsOfCodes: readonly GrantRenewal[] = [],
  ): Promise<{ model: string; id: string; key: string }[] | undefined> {
    const renewals = renewalsApart(renewalsOfCodes, rows, gone);
    const parameters: unknown[] = [...condition.parameters];
    const text = statementText(
      condition.text,
      `${parameters.length} ${gone.length} ${rows.length} ${renewals.length} ${condition.deletes === true}`,
      () => destroyAndUpsertIfText(condition, gone.length, rows.length, renewals.length),
    );
    parameters.push(
      ...gone.flatMap(goneParameters),
      ...rows.flatMap(rowParameters),
      ...renewals.flatMap(renewalParameters),
    );
    type Answer = { met: boolean; gone: { model: string; id: string; key: string }[] };
    const { rows: answer } = await runSql<Answer>(db, text, parameters);
    return answer[0]?.met ? answer[0].gone : undefined;
  },

  /** Locks the grants `grantIds` (those that exist), by id, before their rows (lockGrantsWhere). */
  async lockGrants(db: Db, grantIds: readonly string[]): Promise<void> {
    if (grantIds.length > 0) await lockGrantsWhere(db, sql`id = any(${grantIds})`);
  },

  /**
   * Removes every code and token issued under the grant (oidc-provider's adapter contract; the
   * grant itself is destroyed by its id). An Interaction or a Session records a grant id too,
   * of the grant it would reuse: the person is mid-sign-in, and a revocation (a logout while
   * switching accounts, an app revoking its token) must not delete it under them.
   * @returns the model and key (as in destroy) of each row removed.
   */
  async revokeByGrantId(db: Db, grantId: string): Promise<{ model: string; key: string }[]> {
    const { rows } = await runSql<{ model: string; key: string }>(
      db,
      `delete from oidc_models where grant_id = $1 and model in (${ISSUED_UNDER_A_GRANT}) returning model, ${CACHE_KEY} as key`,
      [grantId],
    );
    return rows;
  },

  /** Removes everything issued to a client (grants, codes, tokens of every kind). */
  async destroyByClientId(db: Db, clientId: string): Promise<number> {
    // The delete below locks the client's rows in table order, a token before its grant as
    // likely as after.
    await lockGrantsWhere(db, sql`payload->>'clientId' = ${clientId}`);
    const result = await db
      .deleteFrom('oidc_models')
      .where(sql<boolean>`payload->>'clientId' = ${clientId}`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  /**
   * Removes everything that belongs to an account: its sessions, grants, codes and tokens,
   * and every row of its grants (a client_credentials token has no account and is kept).
   */
  async destroyByAccountId(db: Db, accountId: string): Promise<number> {
    // The delete below locks the account's rows in table order, a session before its grant as
    // likely as after.
    await lockGrantsWhere(db, sql`payload->>'accountId' = ${accountId}`);
    const result = await db
      .deleteFrom('oidc_models')
      .where((eb) =>
        eb.or([
          sql<boolean>`payload->>'accountId' = ${accountId}`,
          eb(
            'grant_id',
            'in',
            eb
              .selectFrom('oidc_models as g')
              .select('g.id')
              .where('g.model', '=', 'Grant')
              .where(sql<boolean>`g.payload->>'accountId' = ${accountId}`),
          ),
        ]),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  /** Ends every provider session of an account (its browsers are signed out of Sesame); grants and tokens stay. */
  async destroySessionsOfAccount(db: Db, accountId: string): Promise<number> {
    const result = await db
      .deleteFrom('oidc_models')
      .where('model', '=', 'Session')
      .where(sql<boolean>`payload->>'accountId' = ${accountId}`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  /**
   * Forgets, in each browser session of the account, that it signed in to the client (its
   * entry in `authorizations`, with the grant id and the `sid` the app knows it by): the app's
   * next sign-in from that session starts afresh, with a new sid.
   */
  async forgetClientInSessions(db: Db, accountId: string, clientId: string): Promise<void> {
    await sql`
      update oidc_models set payload = payload #- array['authorizations', ${clientId}::text]
      where model = 'Session' and payload->>'accountId' = ${accountId}
        and payload->'authorizations' ? ${clientId}::text`.execute(db);
  },

  /** Grant ids of a model's live instances whose payload matches, e.g. grants of one account. */
  async grantIdsWhere(db: Db, model: string, field: 'accountId' | 'clientId', value: string) {
    const rows = await live(db, model)
      .select('id')
      .where(sql<boolean>`payload->>${sql.lit(field)} = ${value}`)
      .execute();
    return rows.map((r) => r.id);
  },

  /**
   * The live grants an account gave devices, of every app: those marked APPROVED_ON_DEVICE,
   * and those from before the mark, which a device's token was issued under (its `gty`
   * starts with the device code grant's; the device's approval then shared the approving
   * browser session's grant, or had a grant no session names).
   */
  async deviceGrantsOf(db: Db, accountId: string): Promise<{ id: string; clientId: string }[]> {
    const { rows } = await sql<{ id: string; clientId: string }>`
      select g.id, g.payload->>'clientId' as "clientId" from oidc_models g
      where g.model = 'Grant' and g.payload->>'accountId' = ${accountId}
        and (g.expires_at is null or g.expires_at > now())
        and (g.payload ? ${APPROVED_ON_DEVICE}::text or exists (
          select 1 from oidc_models t
          where t.grant_id = g.id and t.model in ('AccessToken', 'RefreshToken')
            and split_part(t.payload->>'gty', ' ', 1) = 'device_code'))`.execute(db);
    return rows;
  },

  /**
   * Marks a live grant as the one a person just approved a device's code under
   * ({@link APPROVED_ON_DEVICE}, `at` in seconds since the epoch), by changing its stored row
   * only: a grant revoked since the approval loaded it stays revoked, where saving the loaded
   * copy (an upsert) would store it again and the device would get tokens under it.
   * @returns whether the grant was there to mark.
   */
  async markApprovedOnDevice(db: Db, grantId: string, at: number): Promise<boolean> {
    const { rows } = await runSql(db, MARK_APPROVED_ON_DEVICE, [grantId, at]);
    return rows.length > 0;
  },

  /**
   * Stores `row`, a grant loaded earlier and changed since (scopes added), by changing its
   * stored row only, if it is still live: a grant revoked since it was read stays revoked,
   * where an upsert would store it again, and the tokens still naming it (a JWT access token's
   * grant_id) would be honoured again. A CONSENT_REVOKED stamped meanwhile is kept.
   * @returns whether the grant was there to change.
   */
  async updateLiveGrant(db: Db, row: OidcModelRow): Promise<boolean> {
    const text = UPDATE_LIVE_GRANT[db.isTransaction ? 'inTransaction' : 'alone'];
    const { rows } = await runSql(db, text, [row.id, row.payload, row.expires_at]);
    return rows.length > 0;
  },

  /**
   * Stores `row`, a new grant that copies the consent of grant `sourceId` (found by
   * {@link oidcModelsQueries.consentToCopy}), only if that grant is still live and not marked
   * {@link CONSENT_REVOKED}, in the same statement: a Revoke of the app since the consent was
   * read leaves nothing to copy, where storing the copy regardless kept the revoked consent.
   * @returns whether the copy was stored.
   */
  async insertCopyOfConsent(db: Db, row: OidcModelRow, sourceId: string): Promise<boolean> {
    const text = INSERT_COPY_OF_CONSENT[db.isTransaction ? 'inTransaction' : 'alone'];
    const { rows } = await runSql(db, text, [row.id, row.payload, row.expires_at, sourceId]);
    return rows.length > 0;
  },

  /**
   * Marks the live grants an account still holds for a client as outliving the person's
   * revoke of the app ({@link CONSENT_REVOKED}): their consent is copied no more.
   */
  async markConsentRevoked(db: Db, accountId: string, clientId: string, at: Date): Promise<void> {
    await sql`
      update oidc_models
      set payload = payload || jsonb_build_object(${CONSENT_REVOKED}::text, ${Math.floor(at.getTime() / 1000)}::bigint)
      where model = 'Grant' and payload->>'accountId' = ${accountId} and payload->>'clientId' = ${clientId}
        and ${sql.raw(IS_LIVE)}`.execute(db);
  },

  /**
   * Locks the live grants an account gave a client (FOR UPDATE), waiting for any write to
   * one under way (a copy of its consent holds it FOR SHARE, an extension updates it): a
   * statement run after this one in the transaction sees what those stored, and one begun
   * later waits for the transaction and finds what it left.
   * @returns each grant's id, and whether it is a device's ({@link APPROVED_ON_DEVICE}).
   */
  async lockGrantsOf(
    db: Db,
    accountId: string,
    clientId: string,
  ): Promise<{ id: string; device: boolean }[]> {
    const { rows } = await sql<{ id: string; device: boolean }>`
      select id, ${sql.raw(IS_DEVICE_GRANT)} as device from oidc_models
      where model = 'Grant' and payload->>'accountId' = ${accountId} and payload->>'clientId' = ${clientId}
        and ${sql.raw(IS_LIVE)}
      order by id for update`.execute(db);
    return rows;
  },

  /**
   * Deletes every grant an account gave a client in browsers (all but devices', marked
   * {@link APPROVED_ON_DEVICE}), as stored when the statement runs.
   * @returns the ids of those deleted; their codes and tokens go by {@link oidcModelsQueries.revokeByGrantId}.
   */
  async destroyBrowserGrantsOf(db: Db, accountId: string, clientId: string): Promise<string[]> {
    const { rows } = await sql<{ id: string }>`
      delete from oidc_models
      where model = 'Grant' and payload->>'accountId' = ${accountId} and payload->>'clientId' = ${clientId}
        and (${sql.raw(IS_DEVICE_GRANT)}) is not true
      returning id`.execute(db);
    return rows.map((row) => row.id);
  },

  /**
   * The newest live grant an account gave a client, in any browser session or to any device
   * (the index of migration 0005 answers it): whether the app may still act for them.
   */
  async latestGrantOf(db: Db, accountId: string, clientId: string): Promise<ModelPayload | undefined> {
    return latestGrant(db, accountId, clientId, false);
  },

  /**
   * The consent a new sign-in of the account to a client may copy: its newest live grant,
   * but none that outlived the person's revoke of the app ({@link CONSENT_REVOKED}).
   */
  async consentToCopy(db: Db, accountId: string, clientId: string): Promise<ModelPayload | undefined> {
    return latestGrant(db, accountId, clientId, true);
  },

  /**
   * Deletes every expired row, in batches so that no statement holds many row locks for
   * long. SKIP LOCKED lets several instances sweep at once without waiting on each other or
   * deleting the same rows twice. A sweep runs until a batch comes back short, so it keeps
   * up however many tokens expired since the last one. The models of `kept` stay that many
   * seconds past their expiry (see findRecentlyExpired).
   * @returns how many rows went.
   */
  async deleteExpired(
    db: Db,
    batchSize = 1000,
    kept: Readonly<Record<string, number>> = {},
  ): Promise<number> {
    const stillKept = sql.join(
      Object.entries(kept).map(
        ([model, seconds]) =>
          sql`and not (model = ${model} and expires_at > now() - make_interval(secs => ${seconds}))`,
      ),
      sql` `,
    );
    let total = 0;
    for (;;) {
      const result = await sql`
        delete from oidc_models where ctid in (
          select ctid from oidc_models where expires_at < now() ${stillKept}
          limit ${batchSize} for update skip locked
        )`.execute(db);
      const removed = Number(result.numAffectedRows ?? 0);
      total += removed;
      if (removed < batchSize) return total;
    }
  },
};
