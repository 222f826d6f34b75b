import type { Db } from './connect.js';
import { type ModelPayload, oidcModelsQueries } from './queries/oidcModels.js';

interface Pending {
  model: string;
  id: string;
  resolve(payload: ModelPayload | undefined): void;
  reject(error: unknown): void;
}

/**
 * Reads of `oidc_models` by (model, id) made in the same turn of the event loop go to the
 * database as one statement. oidc-provider looks a token up as several models at once
 * (introspection and revocation without a hint ask for it as an AccessToken, a
 * ClientCredentials and a RefreshToken together): three round trips become one, and
 * concurrent requests share statements too. A lone read runs as before. Reads are issued
 * once everything the current turn started has run (process.nextTick), so no read waits
 * for I/O it did not need; a failed statement fails every read that was in it.
 */
export class GroupedFinds {
  #pending: Pending[] = [];
  /** Reads asked for, and statements sent for them, since this was made. */
  reads = 0;
  statements = 0;

  constructor(private readonly db: Db) {}

  find(model: string, id: string): Promise<ModelPayload | undefined> {
    this.reads++;
    return new Promise((resolve, reject) => {
      if (this.#pending.push({ model, id, resolve, reject }) === 1)
        process.nextTick(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    this.statements++;
    try {
      if (batch.length === 1) {
        const [only] = batch;
        only!.resolve(await oidcModelsQueries.find(this.db, only!.model, only!.id));
        return;
      }
      const found = await oidcModelsQueries.findMany(this.db, batch);
      for (const [i, read] of batch.entries()) read.resolve(found[i]);
    } catch (error) {
      for (const read of batch) read.reject(error);
    }
  }
}
