import { createHash } from 'node:crypto';
import { withAdminAuthority } from '../accounts/adminAuthority.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { type BrandingChange, brandingQueries, type StoredBrandImage } from '../db/queries/branding.js';
import { RowCache, type RowChangeListener } from '../db/rowCache.js';
import { type AccentPalette, accentPalette } from './colours.js';
import type { BrandImageKind } from './images.js';

/** The brand pages show: the database's values over the config's. */
/** A change an admin asks for: a field left out stays; null returns to the configured value. */
export type BrandChange = BrandingChange;

export interface Brand {
  readonly name: string;
  readonly palette: AccentPalette;
  /** Set where the brand has that image: its ETag, also the version in its URL. */
  readonly logoEtag: string | undefined;
  readonly faviconEtag: string | undefined;
  /** /brand.css: the accent as CSS custom properties, for both colour schemes. */
  readonly css: string;
  readonly cssEtag: string;
  /** Whether each value comes from /admin/branding (true) or from the config. */
  readonly overridden: { name: boolean; accent: boolean; logo: boolean; favicon: boolean };
}

/** A strong ETag from a hash of the content. */
export function etagOf(content: string | Uint8Array): string {
  return `"${createHash('sha256').update(content).digest('base64url').slice(0, 22)}"`;
}

/** The stylesheet that carries the accent: CSP forbids inline style, so it is a file of its own. */
function brandStylesheet(palette: AccentPalette): string {
  return [
    `:root { --accent: ${palette.accent}; --on-accent: ${palette.onAccent}; }`,
    `@media (prefers-color-scheme: dark) { :root { --accent: ${palette.darkAccent}; --on-accent: ${palette.onDarkAccent}; } }`,
    '',
  ].join('\n');
}

/**
 * The brand, kept in process and in step with the `branding` row through its change notices
 * (migration 0020), so a change on /admin/branding reaches every instance's pages at once;
 * until the notices are live it reads the row on each request.
 */
export class BrandStore implements RowChangeListener {
  readonly #cache = new RowCache<Brand>(1);
  readonly #defaults: Config['brand'];
  readonly #defaultImages: Partial<Record<BrandImageKind, StoredBrandImage>>;

  constructor(
    private readonly db: Db,
    defaults: Config['brand'],
  ) {
    this.#defaults = defaults;
    this.#defaultImages = {};
    for (const kind of ['logo', 'favicon'] as const) {
      const file = defaults[kind];
      if (file) this.#defaultImages[kind] = { bytes: file.bytes, type: file.type, etag: etagOf(file.bytes) };
    }
  }

  /** The brand from the config alone: what pages show when the database cannot be read. */
  get configured(): Brand {
    return this.#compose(undefined);
  }

  /** The brand as kept now, without waiting; undefined when it must be read (current()). */
  kept(): Brand | undefined {
    return this.#cache.peek('1');
  }

  async current(): Promise<Brand> {
    return (await this.#cache.find('1', async () => this.#compose(await brandingQueries.settings(this.db))))!;
  }

  /** The logo or favicon with its type and ETag, or undefined when the brand has none. */
  async image(kind: BrandImageKind): Promise<StoredBrandImage | undefined> {
    return (await brandingQueries.image(this.db, kind)) ?? this.#defaultImages[kind];
  }

  /**
   * Saves an admin's change and records who made it (naming only the fields changed); this
   * instance sees it at once, the others when its notice arrives.
   */
  async update(change: BrandChange, actor: string): Promise<void> {
    await withAdminAuthority(this.db, actor, async (trx) => {
      await brandingQueries.update(trx, change);
      await auditQueries.record(trx, actor, 'branding.update', null, { changed: Object.keys(change) });
    });
    this.#cache.invalidate('1');
  }

  #compose(row: Awaited<ReturnType<typeof brandingQueries.settings>>): Brand {
    const palette = accentPalette(row?.accent ?? this.#defaults.accent);
    const css = brandStylesheet(palette);
    return {
      name: row?.name ?? this.#defaults.name,
      palette,
      logoEtag: row?.logo_etag ?? this.#defaultImages.logo?.etag,
      faviconEtag: row?.favicon_etag ?? this.#defaultImages.favicon?.etag,
      css,
      cssEtag: etagOf(css),
      overridden: {
        name: row?.name != null,
        accent: row?.accent != null,
        logo: row?.logo_etag != null,
        favicon: row?.favicon_etag != null,
      },
    };
  }

  invalidate(key: string): void {
    this.#cache.invalidate(key);
  }

  goLive(): void {
    this.#cache.goLive();
  }

  goDark(): void {
    this.#cache.goDark();
  }
}
