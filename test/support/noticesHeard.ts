import { sql } from 'kysely';
import { ROW_CHANGES_CHANNEL } from '../../src/db/rowCache.js';
import { eventually } from './eventually.js';
import type { TestApp } from './testApp.js';

/**
 * Waits until the server has heard the notice of every change committed so far, and its
 * caches are live. A row read before its own change's notice arrived is not kept (the notice
 * may stand for a newer row), so a test that wants a row answered from memory, or a row it
 * changed in the table read anew, waits for this first. Notices reach the server in commit
 * order, so once a notice sent now has arrived, every earlier one has. It is sent as an API's
 * change: the tests that wait change no API, so only the marker moves that cache's count (or
 * the caches going live again, which also means every later notice will arrive).
 */
export async function noticesHeard(sesame: TestApp): Promise<boolean> {
  const { resources, clients } = sesame.app.caches;
  const before = resources.generation;
  return eventually(async () => {
    if (resources.generation > before && clients.live) return true;
    // Sent again until heard: a marker sent while the listener was reconnecting is lost.
    await sql`select pg_notify(${ROW_CHANGES_CHANNEL}, 'resources:a marker')`.execute(sesame.db);
    return false;
  });
}
