import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import { tenantIssuer } from '../../passkeyApi/jwt.js';
import { TenantValidationError } from '../../passkeyApi/relyingParty.js';
import {
  type TenantSettingsChangeInput,
  tenantSettingsChange,
  tenantSettingsChangeSchema,
} from '../../passkeyApi/tenantSettings.js';
import {
  changeTenantSettings,
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

const settingField = z.string().max(100).optional();
/** The settings form: one select (or number) per setting, `webauthn_*` and `mfa_*`. */
const settingsFormSchema = z.object({
  webauthn_user_verification: settingField,
  webauthn_attachment: settingField,
  webauthn_resident_key_requirement: settingField,
  webauthn_attestation_preference: settingField,
  webauthn_timeout: settingField,
  mfa_user_verification: settingField,
  mfa_attachment: settingField,
  mfa_resident_key_requirement: settingField,
  mfa_attestation_preference: settingField,
  mfa_timeout: settingField,
});
type SettingsForm = z.output<typeof settingsFormSchema>;

/**
 * The form as a settings change, or the fields in error keyed by form name. A timeout that
 * is not a whole number stays text, so the schema's message is shown for it.
 */
function settingsChangeFromForm(
  form: SettingsForm,
): { change: TenantSettingsChangeInput } | { errors: Record<string, string> } {
  const ceremony = (kind: 'webauthn' | 'mfa') => {
    const timeout = form[`${kind}_timeout`]?.trim();
    const given = {
      user_verification: form[`${kind}_user_verification`],
      attachment: form[`${kind}_attachment`],
      resident_key_requirement: form[`${kind}_resident_key_requirement`],
      attestation_preference: form[`${kind}_attestation_preference`],
      timeout: timeout !== undefined && /^\d{1,9}$/.test(timeout) ? Number(timeout) : timeout,
    };
    return Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined));
  };
  const result = tenantSettingsChangeSchema.safeParse({
    webauthn: ceremony('webauthn'),
    mfa: ceremony('mfa'),
  });
  if (result.success) return { change: result.data };
  const errors: Record<string, string> = {};
  for (const issue of result.error.issues) errors[issue.path.join('_') || 'settings'] ??= issue.message;
  return { errors };
}

/** Notices these pages redirect to (see adminPages.ts). */
export const PASSKEY_TENANT_NOTICES: Record<string, string> = {
  'tenant-deleted': 'The app was deleted with its users and passkeys.',
  'tenant-settings-saved': "The app's WebAuthn settings were saved; its next ceremonies use them.",
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

  function showTenant(
    ctx: Context,
    tenant: StoredTenant,
    errors: Record<string, string> = {},
    form?: SettingsForm,
  ) {
    kit.render(ctx, 'passkey-tenant', {
      title: tenant.name,
      tenant: tenantView(tenant),
      baseUrl: tenantIssuer(config, tenant.id),
      errors,
      form,
    });
  }

  router.get('/passkey-tenants/:id', async (ctx) => {
    showTenant(ctx, await loadTenant(ctx));
  });

  // Weakening user verification changes what a sign-in proves: a passkey step-up first.
  router.post('/passkey-tenants/:id/settings', kit.stepUp, async (ctx) => {
    const tenant = await loadTenant(ctx);
    const form = parseBody(ctx, settingsFormSchema);
    const parsed = settingsChangeFromForm(form);
    if ('errors' in parsed) {
      ctx.status = 400;
      showTenant(ctx, tenant, parsed.errors, form);
      return;
    }
    if (!(await changeTenantSettings(db, tenant.id, tenantSettingsChange(parsed.change), kit.actor(ctx)))) {
      throw notFound('There is no passkey API app with this id.');
    }
    ctx.redirect(`${path(tenant)}?done=tenant-settings-saved`);
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
