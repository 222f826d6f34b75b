import type Router from '@koa/router';
import { z } from 'zod';
import { cookieKeyRotationView, rotateCookieKey } from '../../oidc/cookieKeys.js';
import {
  KEY_ACTIVATION_DELAY_SECONDS,
  MAX_KEY_ACTIVATION_DELAY_SECONDS,
  rotateSigningKeys,
  signingKeyRotationView,
} from '../../oidc/keys.js';
import { rotateTenantSigningKey, tenantSigningKeyRotationView } from '../../passkeyApi/tenants.js';
import { notFound } from '../errors.js';
import { apiKeyActor } from '../middleware/apiKey.js';
import { parseBody, wholeSeconds } from '../schemas.js';
import type { Services } from '../services.js';

const revokePrevious = z.boolean({ error: 'must be true or false' }).default(false);

/**
 * `sesame keys rotate`'s and `sesame passkey-api rotate-signing-key`'s flags as a body, in
 * the same range. Revoked keys with the new one still pending would leave nothing to sign
 * with, so `revoke_previous` switches at once and a delay beside it is refused, as the CLI
 * refuses `--activate-in` beside `--revoke-previous`.
 */
const signingKeyRotationSchema = z
  .object({
    activate_in: wholeSeconds(MAX_KEY_ACTIVATION_DELAY_SECONDS, 'a year').optional(),
    revoke_previous: revokePrevious,
  })
  .strict()
  .refine((body) => !body.revoke_previous || !body.activate_in, {
    path: ['activate_in'],
    error:
      'revoke_previous switches to the new key at once: leave out activate_in or give 0 (nothing could sign in the meantime)',
  });

/** When the new signing keys of a valid body sign, and whether the earlier ones go, as activationFromFlags reads the CLI's flags. */
function activation(body: z.infer<typeof signingKeyRotationSchema>) {
  return {
    activateInSeconds: body.revoke_previous ? 0 : (body.activate_in ?? KEY_ACTIVATION_DELAY_SECONDS),
    revokePrevious: body.revoke_previous,
  };
}

/** `sesame keys rotate-cookie-key`'s flag as a body. */
const cookieKeyRotationSchema = z.object({ revoke_previous: revokePrevious }).strict();

/**
 * The key rotations the CLI has, on the admin API (mounted on its router, so its guards
 * apply: an API key of scope `admin`, JSON bodies, the audit actor `api-key:<id>`). They call
 * the CLI's service functions and answer with what its `--json` prints; the body is optional.
 *
 * - `POST /keys/rotate-signing-key` `{activate_in?, revoke_previous?}`: Sesame's new signing
 *   keys (rotateSigningKeys); running servers publish them from the rows' change notice.
 * - `POST /passkey-tenants/:id/rotate-signing-key` `{activate_in?, revoke_previous?}`: a
 *   passkey API app's new token signing key (rotateTenantSigningKey).
 * - `POST /keys/rotate-cookie-key` `{revoke_previous?}`: a new key for Sesame's cookies
 *   (rotateCookieKey); running servers, this one included, take it from its row notice.
 */
export function keyRotationApiRoutes(router: Router, { config, db }: Pick<Services, 'config' | 'db'>): void {
  router.post('/keys/rotate-signing-key', async (ctx) => {
    const wanted = activation(parseBody(ctx, signingKeyRotationSchema));
    const rotation = await rotateSigningKeys(db, config, apiKeyActor(ctx), wanted);
    ctx.body = signingKeyRotationView(rotation, wanted.revokePrevious);
  });

  router.post('/passkey-tenants/:id/rotate-signing-key', async (ctx) => {
    const body = parseBody(ctx, signingKeyRotationSchema);
    const rotated = await rotateTenantSigningKey(
      db,
      config,
      ctx.params.id!,
      apiKeyActor(ctx),
      activation(body),
    );
    if (!rotated) throw notFound(`No passkey API tenant with id ${ctx.params.id!}`);
    ctx.body = tenantSigningKeyRotationView(rotated, body.revoke_previous);
  });

  router.post('/keys/rotate-cookie-key', async (ctx) => {
    const { revoke_previous } = parseBody(ctx, cookieKeyRotationSchema);
    const rotation = await rotateCookieKey(db, config, apiKeyActor(ctx), { revokePrevious: revoke_previous });
    ctx.body = cookieKeyRotationView(rotation);
  });
}
