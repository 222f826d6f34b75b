import type Router from '@koa/router';
import { z } from 'zod';
import { tenantSettingsChange, tenantSettingsChangeSchema } from '../../passkeyApi/tenantSettings.js';
import {
  changeTenantSettings,
  createTenant,
  deleteTenant,
  findTenant,
  listTenants,
  MAX_PREVIOUS_API_KEY_SECONDS,
  rotateTenantApiKey,
  tenantApiKeyRotationView,
  tenantView,
} from '../../passkeyApi/tenants.js';
import { deleteTenantUser } from '../../passkeyApi/tenantUsers.js';
import { notFound } from '../errors.js';
import { apiKeyActor } from '../middleware/apiKey.js';
import { parseBody, wholeSeconds } from '../schemas.js';
import type { Services } from '../services.js';

/** The shape of a new passkey API tenant; its rules (https origins, RP ID suffix) are checked by createTenant. */
const required = (expected: string) => (issue: { input: unknown }) =>
  issue.input === undefined ? 'is required' : `must be ${expected}`;
const tenantInputSchema = z
  .object({
    name: z.string({ error: required('a string') }).max(1000),
    origins: z
      .array(z.string({ error: 'must be a string' }).max(2000), { error: required('an array of origins') })
      .max(100),
    rp_id: z.string({ error: 'must be a string' }).max(300).optional(),
  })
  .strict();

/** `sesame passkey-api rotate-key`'s flag as a body: how long the replaced key keeps working. */
const apiKeyRotationSchema = z
  .object({
    keep_previous_for: wholeSeconds(MAX_PREVIOUS_API_KEY_SECONDS, '30 days').default(0),
  })
  .strict();

const noTenant = (id: string) => notFound(`No passkey API tenant with id ${id}`);

/**
 * The passkey API's apps (tenants) on the admin API, mounted on its router so its guards
 * apply (an API key of scope `admin`, JSON bodies, the audit actor `api-key:<id>`): what
 * `sesame passkey-api ...` does, answered as its `--json` prints it. The signing-key
 * rotation is with the other key rotations (adminApiKeyRotations.ts).
 */
export function passkeyTenantApiRoutes(
  router: Router,
  { config, db }: Pick<Services, 'config' | 'db'>,
): void {
  router.get('/passkey-tenants', async (ctx) => {
    ctx.body = (await listTenants(db)).map(tenantView);
  });

  router.post('/passkey-tenants', async (ctx) => {
    const input = parseBody(ctx, tenantInputSchema);
    const { tenant, apiKey } = await createTenant(
      db,
      config,
      { name: input.name, origins: input.origins, rpId: input.rp_id },
      apiKeyActor(ctx),
    );
    ctx.status = 201;
    ctx.set('Location', `/api/admin/passkey-tenants/${tenant.id}`);
    ctx.body = { ...tenantView(tenant), api_key: apiKey };
  });

  router.get('/passkey-tenants/:id', async (ctx) => {
    const tenant = await findTenant(db, ctx.params.id!);
    if (!tenant) throw noTenant(ctx.params.id!);
    ctx.body = tenantView(tenant);
  });

  // The tenant's name, origins (replacing the list) and WebAuthn settings, in Hanko's names;
  // what the body leaves out stays.
  router.patch('/passkey-tenants/:id', async (ctx) => {
    const change = tenantSettingsChange(parseBody(ctx, tenantSettingsChangeSchema));
    const tenant = await changeTenantSettings(db, ctx.params.id!, change, apiKeyActor(ctx));
    if (!tenant) throw noTenant(ctx.params.id!);
    ctx.body = tenantView(tenant);
  });

  // Without a body the old key stops working at once; `keep_previous_for` lets it work on.
  router.post('/passkey-tenants/:id/rotate-key', async (ctx) => {
    const { keep_previous_for } = parseBody(ctx, apiKeyRotationSchema);
    const rotated = await rotateTenantApiKey(db, ctx.params.id!, apiKeyActor(ctx), {
      keepPreviousForSeconds: keep_previous_for,
    });
    if (!rotated) throw noTenant(ctx.params.id!);
    ctx.body = tenantApiKeyRotationView(rotated);
  });

  router.delete('/passkey-tenants/:id', async (ctx) => {
    if (!(await deleteTenant(db, ctx.params.id!, apiKeyActor(ctx)))) throw noTenant(ctx.params.id!);
    ctx.status = 204;
  });

  // Erasing one of the app's users (the app's own user id, URL-encoded); 204 as Hanko's admin API.
  router.delete('/passkey-tenants/:id/users/:userId', async (ctx) => {
    const { id, userId } = ctx.params as { id: string; userId: string };
    const erased = await deleteTenantUser(db, id, userId, apiKeyActor(ctx));
    if (erased === 'no_tenant') throw noTenant(id);
    if (erased === 'no_user') throw notFound(`Passkey API tenant ${id} has no user with id ${userId}`);
    ctx.status = 204;
  });
}
