import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { StoredTenant } from '../../db/queries/passkeyTenants.js';
import { KEY_ACTIVATION_DELAY_SECONDS } from '../../oidc/keys.js';
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
  rotateTenantSigningKey,
  tenantView,
} from '../../passkeyApi/tenants.js';
import { notFound } from '../errors.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';
import type { OneShotForm } from './adminOneShotForms.js';
import { type AdminPageKit, lines } from './adminPageKit.js';

const tenantFormSchema = z.object({
  name: z.string().max(1000).default(''),
  origins: z.string().max(40_000).default(''),
  rp_id: z.string().max(1000).default(''),
});

/** The form that renames the app or replaces its origins (the RP ID stays). */
const relyingPartyFormSchema = tenantFormSchema.pick({ name: true, origins: true });
type RelyingPartyForm = z.output<typeof relyingPartyFormSchema>;

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
  'tenant-origins-saved': "The app's name and origins were saved; its next ceremonies use them.",
  'tenant-signing-key-rotated':
    "A new signing key is in the app's JWKS; it signs once the delay has passed. The old key signs until then and stays in the JWKS until what it signed has expired.",
  'tenant-signing-key-replaced':
    "A new signing key signs the app's tokens from now on. The old keys were removed: tokens they signed no longer verify.",
};

const signingKeyFormSchema = z.object({ when: z.enum(['scheduled', 'revoke']) });
/** How long the replaced API key keeps working: the choices the rotation form offers, in seconds. */
const apiKeyFormSchema = z.object({ keep_previous_for: z.enum(['0', '3600', '86400']).default('0') });

/** The registration form of a passkey API app: its API key is shown once, in the answer to its POST. */
const NEW_TENANT: OneShotForm = {
  action: 'passkey_tenant.create',
  section: 'passkey-tenants',
  formPath: '/admin/passkey-tenants/new',
  repeated: {
    heading: 'App already registered',
    message:
      "This form was sent before and registered the app then; sending it again registered nothing. The app's API key was shown once, on the page that answered it, and Sesame keeps only a hash: if it was lost, open the app and rotate its API key.",
    next: { href: '/admin/passkey-tenants', label: 'Go to the passkey API apps' },
  },
};

/** The confirmation that rotates a passkey API app's key. */
function rotateKeyForm(tenant: StoredTenant): OneShotForm {
  const tenantPath = `/admin/passkey-tenants/${tenant.id}`;
  return {
    action: `passkey_tenant.rotate_key:${tenant.id}`,
    section: 'passkey-tenants',
    formPath: `${tenantPath}/rotate-key`,
    repeated: {
      heading: 'API key already rotated',
      message:
        'This confirmation was sent before and rotated the API key then; sending it again rotated nothing. The new key was shown once, on the page that answered it, and Sesame keeps only a hash: if it was lost, rotate the key again.',
      next: { href: tenantPath, label: "Continue to the app's settings" },
    },
  };
}

/**
 * /admin/passkey-tenants: apps that use the passkey API. The API key is shown once, in the
 * answer to the POST that made it, like a client secret; that POST needs a passkey step-up
 * and the form's single-use token.
 */
export function passkeyTenantPages(router: Router, kit: AdminPageKit, { config, db }: Services): void {
  const path = (tenant: StoredTenant) => `/admin/passkey-tenants/${tenant.id}`;

  async function loadTenant(ctx: Context): Promise<StoredTenant> {
    const tenant = await findTenant(db, ctx.params.id!);
    if (!tenant) throw notFound('There is no passkey API app with this id.');
    return tenant;
  }

  function showKey(
    ctx: Context,
    tenant: StoredTenant,
    apiKey: string,
    rotated: boolean,
    previousKeyExpiresAt: Date | null = null,
  ) {
    kit.render(ctx, 'passkey-tenant-key', {
      title: rotated ? 'New API key' : 'App registered',
      heading: rotated ? `New API key for “${tenant.name}”` : `Registered “${tenant.name}”`,
      tenant: tenantView(tenant),
      apiKey,
      baseUrl: tenantIssuer(config, tenant.id),
      rotated,
      previousKeyExpiresAt: previousKeyExpiresAt?.toISOString(),
    });
  }

  router.get('/passkey-tenants', async (ctx) => {
    const tenants = (await listTenants(db)).map(tenantView);
    kit.render(ctx, 'passkey-tenants', { title: 'Passkey API', tenants });
  });

  router.get('/passkey-tenants/new', async (ctx) => {
    kit.render(ctx, 'passkey-tenant-new', {
      title: 'Register an app',
      form: {},
      errors: {},
      once: await kit.formToken(ctx, NEW_TENANT.action),
    });
  });

  router.post('/passkey-tenants', kit.stepUp, async (ctx) => {
    const form = parseBody(ctx, tenantFormSchema);
    try {
      const sent = await kit.submitOnce(ctx, NEW_TENANT, (trx) =>
        createTenant(
          trx,
          config,
          { name: form.name, origins: lines(form.origins), rpId: form.rp_id.trim() || undefined },
          kit.actor(ctx),
        ),
      );
      if (!sent) return;
      showKey(ctx, sent.value.tenant, sent.value.apiKey, false);
    } catch (error) {
      if (!(error instanceof TenantValidationError)) throw error;
      ctx.status = 400;
      kit.render(ctx, 'passkey-tenant-new', {
        title: 'Register an app',
        form,
        errors: { [error.field]: error.message },
        once: kit.sentFormToken(ctx),
      });
    }
  });

  function showTenant(
    ctx: Context,
    tenant: StoredTenant,
    errors: Record<string, string> = {},
    form?: SettingsForm | RelyingPartyForm,
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

  // A new origin may run the app's ceremonies: a passkey step-up first.
  router.post('/passkey-tenants/:id/origins', kit.stepUp, async (ctx) => {
    const tenant = await loadTenant(ctx);
    const form = parseBody(ctx, relyingPartyFormSchema);
    try {
      const change = tenantSettingsChange({ name: form.name, origins: lines(form.origins) });
      if (!(await changeTenantSettings(db, tenant.id, change, kit.actor(ctx)))) {
        throw notFound('There is no passkey API app with this id.');
      }
    } catch (error) {
      if (!(error instanceof TenantValidationError)) throw error;
      ctx.status = 400;
      showTenant(ctx, tenant, { [error.field]: error.message }, form);
      return;
    }
    ctx.redirect(`${path(tenant)}?done=tenant-origins-saved`);
  });

  // The old key stops working at once unless the form keeps it a while, so the button asks
  // first, as deleting does; the confirmation's single-use token makes a reload of the new
  // key's page rotate nothing.
  router.get('/passkey-tenants/:id/rotate-key', async (ctx) => {
    const tenant = await loadTenant(ctx);
    kit.render(ctx, 'passkey-tenant-rotate-key', {
      title: 'Rotate API key',
      tenant: tenantView(tenant),
      once: await kit.formToken(ctx, rotateKeyForm(tenant).action),
    });
  });

  router.post('/passkey-tenants/:id/rotate-key', kit.stepUp, async (ctx) => {
    const tenant = await loadTenant(ctx);
    const keepPreviousForSeconds = Number(parseBody(ctx, apiKeyFormSchema).keep_previous_for);
    const sent = await kit.submitOnce(ctx, rotateKeyForm(tenant), async (trx) => {
      const rotated = await rotateTenantApiKey(trx, tenant.id, kit.actor(ctx), { keepPreviousForSeconds });
      if (!rotated) throw notFound('There is no passkey API app with this id.');
      return rotated;
    });
    if (sent) showKey(ctx, tenant, sent.value.apiKey, true, sent.value.previousKeyExpiresAt);
  });

  // Revoking the old keys makes what they signed fail, so the button asks first, and the
  // change needs a passkey step-up; the answer redirects, so a reload rotates nothing.
  router.get('/passkey-tenants/:id/rotate-signing-key', async (ctx) => {
    const tenant = await loadTenant(ctx);
    kit.render(ctx, 'passkey-tenant-signing-key', {
      title: 'Rotate signing key',
      tenant: tenantView(tenant),
      delayMinutes: Math.round(KEY_ACTIVATION_DELAY_SECONDS / 60),
    });
  });

  router.post('/passkey-tenants/:id/rotate-signing-key', kit.stepUp, async (ctx) => {
    const tenant = await loadTenant(ctx);
    const revoke = parseBody(ctx, signingKeyFormSchema).when === 'revoke';
    const rotated = await rotateTenantSigningKey(
      db,
      config,
      tenant.id,
      kit.actor(ctx),
      revoke ? { activateInSeconds: 0, revokePrevious: true } : {},
    );
    if (!rotated) throw notFound('There is no passkey API app with this id.');
    ctx.redirect(
      `${path(tenant)}?done=${revoke ? 'tenant-signing-key-replaced' : 'tenant-signing-key-rotated'}`,
    );
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
