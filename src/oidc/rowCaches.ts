import type { AdapterPayload } from 'oidc-provider';
import { RowCache } from '../db/rowCache.js';
import type { ResourceRow, User } from '../db/schema.js';

/**
 * The rows the provider reads on nearly every request, cached in process and kept in step
 * by change notifications (see RowCache): client metadata by client_id, users by id, APIs
 * (resource servers) by identifier.
 */
export interface RowCaches {
  clients: RowCache<AdapterPayload>;
  users: RowCache<User>;
  resources: RowCache<ResourceRow>;
}

/** Clients and APIs are few; users are many, and only the recently active ones are worth keeping. */
export function createRowCaches(): RowCaches {
  return { clients: new RowCache(1_000), users: new RowCache(10_000), resources: new RowCache(1_000) };
}
