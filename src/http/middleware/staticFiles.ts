import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context, Next } from 'koa';

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * Serves the built browser bundles and stylesheet from memory. The set is fixed at start,
 * so no request can name a path outside public/.
 */
export function staticFiles(publicDir: string, prefix = '/static/') {
  const assets = new Map<string, Asset>();
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (TYPES[path.extname(entry.name)]) {
        const body = fs.readFileSync(full);
        const rel = path.relative(publicDir, full).split(path.sep).join('/');
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`;
        assets.set(prefix + rel, { body, type: TYPES[path.extname(entry.name)]!, etag });
      }
    }
  };
  walk(publicDir);

  return async function serveStatic(ctx: Context, next: Next) {
    const asset = ctx.method === 'GET' || ctx.method === 'HEAD' ? assets.get(ctx.path) : undefined;
    if (!asset) return next();
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.set('ETag', asset.etag);
    if (ctx.get('if-none-match') === asset.etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = asset.type;
    ctx.body = asset.body;
  };
}
