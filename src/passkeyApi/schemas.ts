import { z } from 'zod';

/**
 * The app's own user id. It becomes the WebAuthn user handle as UTF-8, which may be at
 * most 64 bytes (WebAuthn L3 §5.4.3).
 */
const userId = z
  .string({ message: 'must be a string' })
  .min(1, { message: 'is required' })
  .refine((v) => Buffer.byteLength(v, 'utf8') <= 64, { message: 'must be at most 64 bytes' });

const httpUrl = z
  .string()
  .max(2048, { message: 'must be at most 2048 characters' })
  .refine(
    (v) => {
      try {
        return ['http:', 'https:'].includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: 'must be an http(s) URL' },
  );

/** `POST /registration/initialize` (Hanko: InitRegistrationDto). */
export const registrationInitializeSchema = z.object({
  user_id: userId,
  username: z
    .string()
    .trim()
    .min(1, { message: 'is required' })
    .max(128, { message: 'must be at most 128 characters' }),
  display_name: z.string().trim().max(128, { message: 'must be at most 128 characters' }).nullish(),
  icon: httpUrl.nullish(),
});

/** `POST /login/initialize`: empty for a discoverable login, or the user whose passkeys to allow. */
export const loginInitializeSchema = z.object({
  user_id: userId.nullish(),
});

/** `GET /credentials?user_id=`. */
export const credentialsQuerySchema = z.object({ user_id: userId });

/** `PATCH /credentials/{id}`. */
export const credentialRenameSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, { message: 'is required' })
    .max(128, { message: 'must be at most 128 characters' }),
});

/** A credential id in the path: base64url, as long as WebAuthn allows (1023 bytes, §5.8.3). */
export const credentialIdSchema = z
  .string()
  .min(1)
  .max(1366)
  .regex(/^[A-Za-z0-9_-]+$/);
