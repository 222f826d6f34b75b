import type { Kysely } from 'kysely';

/**
 * The activity log's filters (by action, by actor, by target) read the newest matching events
 * through an index each, in id order like the unfiltered log, instead of scanning the table
 * backwards past every event that does not match (a flood of them is what the filters are for).
 */
const INDEXES = {
  audit_events_action_id: 'action',
  audit_events_actor_id: 'actor',
  audit_events_target_id: 'target',
};

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const [name, column] of Object.entries(INDEXES)) {
    await db.schema.createIndex(name).on('audit_events').columns([column, 'id']).execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of Object.keys(INDEXES)) await db.schema.dropIndex(name).execute();
}
