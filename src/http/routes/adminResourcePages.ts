import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import {
  createResource,
  deleteResource,
  findResource,
  listResources,
  ResourceValidationError,
} from '../../oidc/resources.js';
import { notFound } from '../errors.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';
import type { AdminPageKit } from './adminPageKit.js';

const resourceFormSchema = z.object({
  identifier: z.string().max(4000).default(''),
  name: z.string().max(1000).default(''),
  scopes: z.string().max(10_000).default(''),
});

/** Notices these pages redirect to (see adminPages.ts). */
export const RESOURCE_NOTICES: Record<string, string> = {
  'resource-created': 'The API was registered: apps can ask for tokens for it now.',
  'resource-deleted': 'The API was deleted; apps can no longer get tokens for it.',
};

/**
 * /admin/resources: APIs registered as resource servers (RFC 8707), whose access tokens are
 * JWTs. Deleting one cannot be undone, so it needs a passkey step-up.
 */
export function resourcePages(router: Router, kit: AdminPageKit, { db, caches }: Services): void {
  async function renderList(ctx: Context, create: Record<string, unknown> = {}) {
    kit.render(ctx, 'resources', { title: 'APIs', resources: await listResources(db), create });
  }

  async function loadResource(ctx: Context) {
    const resource = await findResource(db, ctx.params.id!);
    if (!resource || resource.id !== ctx.params.id) throw notFound('There is no API with this id.');
    return resource;
  }

  router.get('/resources', (ctx) => renderList(ctx));

  router.post('/resources', async (ctx) => {
    const form = parseBody(ctx, resourceFormSchema);
    try {
      const resource = await createResource(
        db,
        {
          identifier: form.identifier.trim(),
          scopes: form.scopes.split(/\s+/).filter(Boolean),
          ...(form.name.trim() && { name: form.name }),
        },
        kit.actor(ctx),
      );
      caches.resources.invalidate(resource.identifier);
      ctx.redirect('/admin/resources?done=resource-created');
    } catch (error) {
      if (!(error instanceof ResourceValidationError)) throw error;
      ctx.status = 400;
      await renderList(ctx, { ...form, errors: { [error.field]: error.reason } });
    }
  });

  router.get('/resources/:id/delete', async (ctx) => {
    const resource = await loadResource(ctx);
    kit.render(ctx, 'confirm', {
      title: 'Delete API',
      section: 'resources',
      heading: `Delete the API “${resource.name}”?`,
      message:
        'Apps can no longer get access tokens for it. Tokens already issued stay valid until they expire (at most an hour).',
      action: `/admin/resources/${encodeURIComponent(resource.id)}/delete`,
      button: 'Delete API',
      cancel: '/admin/resources',
      stepUp: true,
    });
  });

  router.post('/resources/:id/delete', kit.stepUp, async (ctx) => {
    const resource = await loadResource(ctx);
    await deleteResource(db, resource.id, kit.actor(ctx));
    caches.resources.invalidate(resource.identifier);
    ctx.redirect('/admin/resources?done=resource-deleted');
  });
}
