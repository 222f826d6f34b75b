import type { AdapterPayload } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { RowCache } from '../db/rowCache.js';
import type { ResourceRow, User } from '../db/schema.js';
import { KnownPasskeys } from '../webauthn/knownPasskeys.js';
import { FreshSignIns } from './freshSignIns.js';
import { GroupCache } from './groupCache.js';
import { ModelCache } from './modelCache.js';

/**
 * The rows the provider reads on nearly every request, cached in process and kept in step
 * by change notifications (see RowCache): client metadata by client_id, users by id, APIs
 * (resource servers) by identifier; groups, memberships and clients' allowed groups.
 */
export interface RowCaches {
  clients: RowCache<AdapterPayload>;
  users: RowCache<User>;
  resources: RowCache<ResourceRow>;
  groups: GroupCache;
  /** Access and client_credentials tokens, grants, sessions by uid (listener for `oidc_models`). */
  models: ModelCache;
  /**
   * Not a row cache: interactions this process just stored, for the one read of each that
   * follows here (no notices keep it in step; see FreshSignIns for why none are needed).
   */
  freshSignIns: FreshSignIns;
  /** Not a row cache either: passkeys that signed in here, for their next sign-in (knownPasskeys.ts). */
  passkeys: KnownPasskeys;
}

/** Clients and APIs are few; users are many, and only the recently active ones are worth keeping. */
export function createRowCaches(db: Db): RowCaches {
  return {
    clients: new RowCache(1_000),
    users: new RowCache(10_000),
    resources: new RowCache(1_000),
    groups: new GroupCache(db),
    models: new ModelCache(),
    freshSignIns: new FreshSignIns(),
    passkeys: new KnownPasskeys(),
  };
}
