import type { Db } from '../connect.js';

/** The branding row without its images: what every page needs. */
export interface BrandingSettings {
  name: string | null;
  accent: string | null;
  logo_type: string | null;
  logo_etag: string | null;
  favicon_type: string | null;
  favicon_etag: string | null;
}

/** A stored image with its type and ETag. */
export interface StoredBrandImage {
  bytes: Buffer;
  type: string;
  etag: string;
}

/** A change to the branding row: a field left out stays as it is; null returns it to the config's value. */
export interface BrandingChange {
  name?: string | null;
  accent?: string | null;
  logo?: StoredBrandImage | null;
  favicon?: StoredBrandImage | null;
}

const imageColumns = (kind: 'logo' | 'favicon', image: StoredBrandImage | null | undefined) =>
  image === undefined
    ? {}
    : {
        [kind]: image?.bytes ?? null,
        [`${kind}_type`]: image?.type ?? null,
        [`${kind}_etag`]: image?.etag ?? null,
      };

export const brandingQueries = {
  async settings(db: Db): Promise<BrandingSettings | undefined> {
    return db
      .selectFrom('branding')
      .select(['name', 'accent', 'logo_type', 'logo_etag', 'favicon_type', 'favicon_etag'])
      .where('id', '=', 1)
      .executeTakeFirst();
  },

  async image(db: Db, kind: 'logo' | 'favicon'): Promise<StoredBrandImage | undefined> {
    const row = await db
      .selectFrom('branding')
      .select([`${kind} as bytes`, `${kind}_type as type`, `${kind}_etag as etag`])
      .where('id', '=', 1)
      .executeTakeFirst();
    if (!row?.bytes || !row.type || !row.etag) return undefined;
    // pg reads bytea as a Buffer, PGlite as a plain Uint8Array: one type for every caller.
    const bytes = Buffer.isBuffer(row.bytes)
      ? row.bytes
      : Buffer.from(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength);
    return { bytes, type: row.type, etag: row.etag };
  },

  /** Applies the change to the one branding row, creating it on first use. */
  async update(db: Db, change: BrandingChange): Promise<void> {
    const values = {
      ...(change.name !== undefined && { name: change.name }),
      ...(change.accent !== undefined && { accent: change.accent }),
      ...imageColumns('logo', change.logo),
      ...imageColumns('favicon', change.favicon),
    };
    await db
      .insertInto('branding')
      .values({ id: 1, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet({ ...values, updated_at: new Date() }))
      .execute();
  },
};
