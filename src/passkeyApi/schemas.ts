import { z } from 'zod';
import { authenticationResponseSchema, registrationResponseSchema } from '../http/schemas.js';
import { CONTROL_CHARACTERS_REFUSED, hasNoControlCharacters, shownName } from '../text.js';

/**
 * The app's own user id. It becomes the WebAuthn user handle as UTF-8, which may be at
 * most 64 bytes (WebAuthn L3 §5.4.3).
 */
const userId = z
  .string({ message: 'must be a string' })
  .min(1, { message: 'is required' })
  .refine((v) => Buffer.byteLength(v, 'utf8') <= 64, { message: 'must be at most 64 bytes' });

/** Longest http(s) icon URL. */
const MAX_ICON_URL_LENGTH = 2048;
/** Longest `data:` icon: a small raster image (about 6 KB once base64 is decoded). */
const MAX_ICON_DATA_URL_LENGTH = 8192;

/**
 * A `data:` icon as Hanko's `validate:"url"` takes one, kept to base64 raster images: no
 * SVG, which runs scripts when it is opened as a document.
 */
const DATA_IMAGE_URL =
  /^data:image\/(?:png|jpeg|gif|webp|avif|x-icon|vnd\.microsoft\.icon);base64,[A-Za-z0-9+/]+={0,2}$/i;

function isIconUrl(value: string): boolean {
  if (DATA_IMAGE_URL.test(value)) return value.length <= MAX_ICON_DATA_URL_LENGTH;
  if (value.length > MAX_ICON_URL_LENGTH) return false;
  try {
    return ['http:', 'https:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

/**
 * The user's icon (Hanko: `validate:"url"`): an http(s) URL, or a base64 `data:image/…` URL of
 * a PNG, JPEG, GIF, WebP, AVIF or ICO image. It is stored for the app and shown nowhere:
 * no page or answer of Sesame renders it, and WebAuthn dropped `user.icon`.
 */
const iconUrl = z.string().refine(isIconUrl, {
  message: `must be an http(s) URL of at most ${MAX_ICON_URL_LENGTH} characters, or a base64 data:image URL (PNG, JPEG, GIF, WebP, AVIF or ICO) of at most ${MAX_ICON_DATA_URL_LENGTH}`,
});

/** `POST /registration/initialize` (Hanko: InitRegistrationDto). */
export const registrationInitializeSchema = z.object({
  user_id: userId,
  // The authenticator's dialog and the person's passkey manager show the account by it.
  username: shownName(128),
  display_name: z
    .string()
    .trim()
    .max(128, { message: 'must be at most 128 characters' })
    .refine(hasNoControlCharacters, CONTROL_CHARACTERS_REFUSED)
    .nullish(),
  icon: iconUrl.nullish(),
});

/** `POST /login/initialize`: empty for a discoverable login, or the user whose passkeys to allow. */
export const loginInitializeSchema = z.object({
  user_id: userId.nullish(),
});

/**
 * A whole number from the query string, in decimal digits as Go's strconv.ParseInt reads it
 * (`1e3`, ` 5` or `0x10` are no number to Hanko's binding). Hanko treats a page or page size
 * of 0 or less as "not given"; past {@link MAX_PER_PAGE} a page would be one unbounded read.
 */
const pageNumber = (max: number) =>
  z
    .preprocess(
      (value) => (typeof value === 'string' && /^[+-]?\d*$/.test(value) ? Number(value) : value),
      z
        .number({ message: 'must be a whole number' })
        .int({ message: 'must be a whole number' })
        .max(max, { message: `must be at most ${max}` }),
    )
    .optional();

/** The largest page `GET /credentials` and `GET /audit_logs` serve (Hanko has no limit). */
export const MAX_PER_PAGE = 1000;

/**
 * A query parameter Hanko binds to one value: given more than once (`page=2&page=3`), the
 * first counts, as echo's binding takes it, rather than the array being refused.
 */
const firstValue = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => (Array.isArray(value) ? value[0] : value), schema);

/** Pages of a list, as Hanko reads them: `page` from 1, `per_page` 20 unless given. */
const paging = {
  page: firstValue(pageNumber(1_000_000).transform((v) => (v && v > 0 ? v : 1))),
  per_page: firstValue(pageNumber(MAX_PER_PAGE).transform((v) => (v && v > 0 ? v : 20))),
};

/** `GET /credentials`: one user's passkeys with `user_id`, else all of the tenant's; newest first. */
export const credentialsQuerySchema = z.object({
  user_id: firstValue(z.string().max(256).optional()),
  ...paging,
  // As Hanko (`omitempty,oneof=desc asc`): an empty `order=`, as a client that fills in every
  // parameter of its request sends it, is the default order, not an error.
  order: firstValue(
    z.preprocess(
      (value) => (value === '' ? undefined : value),
      z.enum(['desc', 'asc'], { message: 'must be desc or asc' }).default('desc'),
    ),
  ),
});

/** A time in the query string (RFC 3339, as Hanko's Go binding reads it). */
const queryTime = z
  .string()
  .max(64)
  .refine((v) => /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v)), {
    message: 'must be an RFC 3339 time',
  })
  .transform((v) => new Date(v))
  .optional();

/** A query parameter that may be repeated (`type=a&type=b`). */
const repeated = z
  .union([z.string().max(128), z.array(z.string().max(128)).max(50)])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .optional();

/** `GET /audit_logs` (Hanko: ListAuditLogDto). */
export const auditLogsQuerySchema = z.object({
  ...paging,
  start_time: firstValue(queryTime),
  end_time: firstValue(queryTime),
  type: repeated,
  actor_user_id: firstValue(z.string().max(256).optional()),
  meta_source_ip: firstValue(z.string().max(256).optional()),
  q: firstValue(z.string().max(256).optional()),
});

/**
 * JSON `null` where a member may be absent: what `@github/webauthn-json` (used by Hanko's
 * tutorials and example frontends) sends when the browser reports null, and what Hanko's
 * verifier (go-webauthn) reads as absent.
 */
const nullAsAbsent = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => (value === null ? undefined : value), schema);

/** A registration response as Hanko accepts it: `null` for the optional members. */
export const tenantRegistrationResponseSchema = registrationResponseSchema.extend({
  response: registrationResponseSchema.shape.response.extend({
    transports: nullAsAbsent(registrationResponseSchema.shape.response.shape.transports),
    authenticatorData: nullAsAbsent(registrationResponseSchema.shape.response.shape.authenticatorData),
    publicKeyAlgorithm: nullAsAbsent(registrationResponseSchema.shape.response.shape.publicKeyAlgorithm),
    publicKey: nullAsAbsent(registrationResponseSchema.shape.response.shape.publicKey),
  }),
  authenticatorAttachment: nullAsAbsent(registrationResponseSchema.shape.authenticatorAttachment),
  clientExtensionResults: nullAsAbsent(registrationResponseSchema.shape.clientExtensionResults),
});

/** An assertion as Hanko accepts it: `null` user handle or attachment. */
export const tenantAuthenticationResponseSchema = authenticationResponseSchema.extend({
  response: authenticationResponseSchema.shape.response.extend({
    userHandle: nullAsAbsent(authenticationResponseSchema.shape.response.shape.userHandle),
  }),
  authenticatorAttachment: nullAsAbsent(authenticationResponseSchema.shape.authenticatorAttachment),
  clientExtensionResults: nullAsAbsent(authenticationResponseSchema.shape.clientExtensionResults),
});

/** `PATCH /credentials/{id}`. */
export const credentialRenameSchema = z.object({
  // The tenant's app lists its people's passkeys by it, as Sesame's account page does.
  name: shownName(128),
});

/** A credential id in the path: base64url, as long as WebAuthn allows (1023 bytes, §5.8.3). */
export const credentialIdSchema = z
  .string()
  .min(1)
  .max(1366)
  .regex(/^[A-Za-z0-9_-]+$/);
