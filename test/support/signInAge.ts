import { sql } from 'kysely';
import { noticesHeard } from './noticesHeard.js';
import type { TestApp } from './testApp.js';

export const DAY = 24 * 60 * 60;

/**
 * Moves the account's passkey sign-in `days` into the past, leaving its sessions stored as
 * they are: a session used every day since, whose 14 days started again at each use. Waits
 * until the server heard of the change, since it keeps sessions in memory.
 */
export async function ageSignIn(sesame: TestApp, sub: string, days: number): Promise<void> {
  await sesame.db
    .updateTable('oidc_models')
    .set({
      payload: sql`jsonb_set(payload, '{loginTs}', to_jsonb((payload->>'loginTs')::bigint - ${days * DAY}))`,
    })
    .where('model', '=', 'Session')
    .where(sql<string>`payload->>'accountId'`, '=', sub)
    .execute();
  if (!(await noticesHeard(sesame))) throw new Error('the server did not hear of the changed sessions');
}

/**
 * Moves a stored model instance's issue and expiry (`iat`, `exp` and its row's expiry) `days`
 * into the past, as if it had been issued that long ago. A grant's change is announced: a test
 * that then asks the server waits until it has heard (noticesHeard).
 */
export async function ageModel(sesame: TestApp, model: string, storedId: string, days: number) {
  const seconds = days * DAY;
  await sesame.db
    .updateTable('oidc_models')
    .set({
      expires_at: sql<Date>`expires_at - make_interval(secs => ${seconds})`,
      payload: sql`payload || jsonb_build_object('iat', (payload->>'iat')::bigint - ${seconds}, 'exp', (payload->>'exp')::bigint - ${seconds})`,
    })
    .where('model', '=', model)
    .where('id', '=', storedId)
    .execute();
}
