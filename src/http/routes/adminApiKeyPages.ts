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
import type { OneShotForm } from './adminOneShotForms.js';
import type { AdminPageKit } from './adminPageKit.js';

/** The scope is checked by createApiKey; a form without one (an older page) makes an admin key. */
const apiKeyFormSchema = z.object({
  name: z.string().max(1000).default(''),
  scope: z.string().max(100).default('admin'),
});

/** Notices these pages redirect to (see adminPages.ts). */
export const API_KEY_NOTICES: Record<string, string> = {
  'api-key-revoked':
    'The API key was revoked; requests with it are refused from now on, and the unused links it issued no longer work.',
};

/** The form that creates an admin API key, shown once in the answer to its POST. */
const NEW_API_KEY: OneShotForm = {
  action: 'api_key.create',
  section: 'api-keys',
  formPath: '/admin/api-keys',
  repeated: {
    heading: 'API key already created',
    message:
      'This form was sent before and created the key then; sending it again created nothing. The key was shown once, on the page that answered it, and Sesame keeps only a hash: if it was lost, revoke that key and create another.',
    next: { href: '/admin/api-keys', label: 'Back to API keys' },
  },
};

/**
 * /admin/api-keys: keys for the admin REST API. A new key is shown once, in the answer to
 * the POST that made it, which needs a passkey step-up and the form's single-use token.
 */
export function apiKeyPages(router: Router, kit: AdminPageKit, { db }: Services): void {
  /** The list with the creation form; `once` is the form's token (a new one when not given). */
  async function renderList(ctx: Context, create: Record<string, unknown> = {}, once?: string) {
    const apiKeys = await listApiKeys(db);
    const creators = await Promise.all(apiKeys.map((apiKey) => creatorOf(db, apiKey)));
    kit.render(ctx, 'api-keys', {
      title: 'API keys',
      apiKeys: apiKeys.map((apiKey, i) => ({ ...apiKey, creator: creators[i] })),
      scopes: API_KEY_SCOPES.map((scope) => ({ scope, reach: API_KEY_SCOPE_REACH[scope] })),
      create,
      once: once ?? (await kit.formToken(ctx, NEW_API_KEY.action)),
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
      const sent = await kit.submitOnce(ctx, NEW_API_KEY, (trx) =>
        createApiKey(trx, form.name, kit.actor(ctx), form.scope),
      );
      if (!sent) return;
      const { apiKey, key } = sent.value;
      kit.render(ctx, 'api-key-created', { title: 'API key created', apiKey, key });
    } catch (error) {
      if (!(error instanceof ApiKeyValidationError)) throw error;
      ctx.status = 400;
      await renderList(ctx, { ...form, error: error.message, field: error.field }, kit.sentFormToken(ctx));
    }
  });

  router.get('/api-keys/:id/revoke', async (ctx) => {
    const apiKey = await loadApiKey(ctx);
    kit.render(ctx, 'confirm', {
      title: 'Revoke API key',
      section: 'api-keys',
      heading: `Revoke the API key “${apiKey.name}”?`,
      message:
        'Tools that use this key are refused from now on, and the unused invite and recovery links it issued stop working. A revoked key cannot be used again.',
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
