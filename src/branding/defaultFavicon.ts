import fs from 'node:fs';
import path from 'node:path';
import type { StoredBrandImage } from '../db/queries/branding.js';
import { PUBLIC_DIR } from '../paths.js';
import { etagOf } from './brand.js';

let loaded: StoredBrandImage | undefined;

/**
 * Sesame's own icon (public/favicon.ico, a 32×32 PNG in an ICO), for a brand without a
 * favicon: browsers ask for /favicon.ico on every site, and a 404 there is an error in
 * their console. Read once, on first use.
 */
export function defaultFavicon(): StoredBrandImage {
  if (!loaded) {
    const bytes = fs.readFileSync(path.join(PUBLIC_DIR, 'favicon.ico'));
    loaded = { bytes, type: 'image/x-icon', etag: etagOf(bytes) };
  }
  return loaded;
}
