import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import {
  API_KEY_SCOPE_REACH,
  API_KEY_SCOPES,
  ApiKeyValidationError,
  createApiKey,
  creatorOf,
  findApiKey,
  listApiKeys,
  revokeApiKey,
} from '../../admin/apiKeys.js';
import { notFound } from '../errors.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';
import type { AdminPageKit } from './adminPageKit.js';

/** The scope is checked by createApiKey; a form without one (an older page) makes an admin key. */
const apiKeyFormSchema = z.object({
  name: z.string().max(1000).default(''),
  scope: z.string().max(100).default('admin'),
});

/** Notices these pages redirect to (see adminPages.ts). */
export const API_KEY_NOTICES: Record<string, string> = {
  'api-key-revoked': 'The API key was revoked; requests with it are refused from now on.',
};

/**
 * /admin/api-keys: keys for the admin REST API. A new key is shown once, in the answer to
 * the POST that made it, which needs a passkey step-up.
 */
export function apiKeyPages(router: Router, kit: AdminPageKit, { db }: Services): void {
  async function renderList(ctx: Context, create: Record<string, unknown> = {}) {
    const apiKeys = await listApiKeys(db);
    const creators = await Promise.all(apiKeys.map((apiKey) => creatorOf(db, apiKey)));
    kit.render(ctx, 'api-keys', {
      title: 'API keys',
      apiKeys: apiKeys.map((apiKey, i) => ({ ...apiKey, creator: creators[i] })),
      scopes: API_KEY_SCOPES.map((scope) => ({ scope, reach: API_KEY_SCOPE_REACH[scope] })),
      create,
    });
  }

  async function loadApiKey(ctx: Context) {
    const apiKey = await findApiKey(db, ctx.params.id!);
    if (!apiKey) throw notFound('There is no API key with this id.');
    return apiKey;
  }

  router.get('/api-keys', (ctx) => renderList(ctx));

  router.post('/api-keys', kit.stepUp, async (ctx) => {
    const form = parseBody(ctx, apiKeyFormSchema);
    try {
      const { apiKey, key } = await createApiKey(db, form.name, kit.actor(ctx), form.scope);
      kit.render(ctx, 'api-key-created', { title: 'API key created', apiKey, key });
    } catch (error) {
      if (!(error instanceof ApiKeyValidationError)) throw error;
      ctx.status = 400;
      await renderList(ctx, { ...form, error: error.message, field: error.field });
    }
  });

  router.get('/api-keys/:id/revoke', async (ctx) => {
    const apiKey = await loadApiKey(ctx);
    kit.render(ctx, 'confirm', {
      title: 'Revoke API key',
      section: 'api-keys',
      heading: `Revoke the API key “${apiKey.name}”?`,
      message: 'Tools that use this key are refused from now on. A revoked key cannot be used again.',
      action: `/admin/api-keys/${encodeURIComponent(apiKey.id)}/revoke`,
      button: 'Revoke API key',
      cancel: '/admin/api-keys',
    });
  });

  router.post('/api-keys/:id/revoke', async (ctx) => {
    const apiKey = await loadApiKey(ctx);
    await revokeApiKey(db, apiKey.id, kit.actor(ctx));
    ctx.redirect('/admin/api-keys?done=api-key-revoked');
  });
}
