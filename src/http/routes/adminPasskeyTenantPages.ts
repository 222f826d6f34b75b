import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import { tenantIssuer } from '../../passkeyApi/jwt.js';
import { TenantValidationError } from '../../passkeyApi/relyingParty.js';
import {
  createTenant,
  deleteTenant,
  findTenant,
  listTenants,
  rotateTenantApiKey,
  tenantView,
} from '../../passkeyApi/tenants.js';
import { notFound } from '../errors.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';
import { type AdminPageKit, lines } from './adminPageKit.js';

const tenantFormSchema = z.object({
  name: z.string().max(1000).default(''),
  origins: z.string().max(40_000).default(''),
  rp_id: z.string().max(1000).default(''),
});

/** Notices these pages redirect to (see adminPages.ts). */
export const PASSKEY_TENANT_NOTICES: Record<string, string> = {
  'tenant-deleted': 'The app was deleted with its users and passkeys.',
};

/**
 * /admin/passkey-tenants: apps that use the passkey API. The API key is shown once, in the
 * answer to the POST that made it, like a client secret; that POST needs a passkey step-up.
 */
export function passkeyTenantPages(router: Router, kit: AdminPageKit, { config, db }: Services): void {
  const path = (tenant: StoredTenant) => `/admin/passkey-tenants/${tenant.id}`;

  async function loadTenant(ctx: Context): Promise<StoredTenant> {
    const tenant = await findTenant(db, ctx.params.id!);
    if (!tenant) throw notFound('There is no passkey API app with this id.');
    return tenant;
  }

  function showKey(ctx: Context, tenant: StoredTenant, apiKey: string, rotated: boolean) {
    kit.render(ctx, 'passkey-tenant-key', {
      title: rotated ? 'New API key' : 'App registered',
      heading: rotated ? `New API key for “${tenant.name}”` : `Registered “${tenant.name}”`,
      tenant: tenantView(tenant),
      apiKey,
      baseUrl: tenantIssuer(config, tenant.id),
      rotated,
    });
  }

  router.get('/passkey-tenants', async (ctx) => {
    const tenants = (await listTenants(db)).map(tenantView);
    kit.render(ctx, 'passkey-tenants', { title: 'Passkey API', tenants });
  });

  router.get('/passkey-tenants/new', (ctx) => {
    kit.render(ctx, 'passkey-tenant-new', { title: 'Register an app', form: {}, errors: {} });
  });

  router.post('/passkey-tenants', kit.stepUp, async (ctx) => {
    const form = parseBody(ctx, tenantFormSchema);
    try {
      const { tenant, apiKey } = await createTenant(
        db,
        config,
        { name: form.name, origins: lines(form.origins), rpId: form.rp_id.trim() || undefined },
        kit.actor(ctx),
      );
      showKey(ctx, tenant, apiKey, false);
    } catch (error) {
      if (!(error instanceof TenantValidationError)) throw error;
      ctx.status = 400;
      kit.render(ctx, 'passkey-tenant-new', {
        title: 'Register an app',
        form,
        errors: { [error.field]: error.message },
      });
    }
  });

  router.get('/passkey-tenants/:id', async (ctx) => {
    const tenant = await loadTenant(ctx);
    kit.render(ctx, 'passkey-tenant', {
      title: tenant.name,
      tenant: tenantView(tenant),
      baseUrl: tenantIssuer(config, tenant.id),
    });
  });

  router.post('/passkey-tenants/:id/rotate-key', kit.stepUp, async (ctx) => {
    const tenant = await loadTenant(ctx);
    const apiKey = await rotateTenantApiKey(db, tenant.id, kit.actor(ctx));
    if (!apiKey) throw notFound('There is no passkey API app with this id.');
    showKey(ctx, tenant, apiKey, true);
  });

  router.get('/passkey-tenants/:id/delete', async (ctx) => {
    const tenant = await loadTenant(ctx);
    kit.render(ctx, 'confirm', {
      title: 'Delete app',
      section: 'passkey-tenants',
      heading: `Delete “${tenant.name}”?`,
      message:
        'Its users and their passkeys are deleted, and its API key stops working at once. This cannot be undone.',
      action: `${path(tenant)}/delete`,
      button: 'Delete app',
      cancel: path(tenant),
      stepUp: true,
    });
  });

  // Irreversible (its users' passkeys go with it): a passkey step-up first.
  router.post('/passkey-tenants/:id/delete', kit.stepUp, async (ctx) => {
    const tenant = await loadTenant(ctx);
    await deleteTenant(db, tenant.id, kit.actor(ctx));
    ctx.redirect('/admin/passkey-tenants?done=tenant-deleted');
  });
}
