import type { AdapterPayload } from 'oidc-provider';
import { RowCache } from '../db/rowCache.js';
import type { User } from '../db/schema.js';

/**
 * The rows the provider reads on nearly every request, cached in process and kept in step
 * by change notifications (see RowCache): client metadata by client_id, users by id.
 */
export interface RowCaches {
  clients: RowCache<AdapterPayload>;
  users: RowCache<User>;
}

/** Clients are few; users are many, and only the recently active ones are worth keeping. */
export function createRowCaches(): RowCaches {
  return { clients: new RowCache(1_000), users: new RowCache(10_000) };
}
