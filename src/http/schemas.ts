import type { Context } from 'koa';
import { z } from 'zod';
import { badRequest, HttpError } from './errors.js';

const base64url = z
  .string()
  .max(16_384)
  .regex(/^[A-Za-z0-9_-]*={0,2}$/, { message: 'must be base64url' });
const transports = z.array(z.enum(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'])).max(8);

/** A PublicKeyCredential from navigator.credentials.create(), as JSON (WebAuthn L3 §5.1, toJSON()). */
export const registrationResponseSchema = z.object({
  id: base64url.min(1).max(1366),
  rawId: base64url.min(1).max(1366),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: base64url.min(1),
    attestationObject: base64url.min(1),
    authenticatorData: base64url.optional(),
    transports: transports.optional(),
    publicKeyAlgorithm: z.number().int().optional(),
    publicKey: base64url.optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
});

/** A PublicKeyCredential from navigator.credentials.get(), as JSON. */
export const authenticationResponseSchema = z.object({
  id: base64url.min(1).max(1366),
  rawId: base64url.min(1).max(1366),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: base64url.min(1),
    authenticatorData: base64url.min(1),
    signature: base64url.min(1),
    userHandle: base64url.optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
});

export const emailSchema = z
  .string()
  .trim()
  .max(254, { message: 'Email is too long' })
  .regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: 'Enter a valid email address' });

export const displayNameSchema = z
  .string()
  .trim()
  .max(100, { message: 'Name must be at most 100 characters' })
  .transform((v) => (v === '' ? null : v));

/**
 * Validates input at the edge. A failure is a 400 naming the first bad field, with every
 * field's message in `fields` for forms and API callers.
 */
function parseInput<T extends z.ZodType>(input: unknown, schema: T, unnamed: string): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const fields: Record<string, string> = {};
    for (const issue of result.error.issues) {
      const key = issue.path.join('.') || 'body';
      fields[key] ??= issue.message;
    }
    const [first] = Object.entries(fields);
    throw badRequest(first ? `${first[0]}: ${first[1]}` : unnamed, { fields });
  }
  return result.data;
}

/** Validates a request body: see {@link parseInput}. */
export function parseBody<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  return parseInput(ctx.request.body, schema, 'Invalid request body');
}

/** Validates a request's query parameters (a repeated one arrives as an array): see {@link parseInput}. */
export function parseQuery<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  return parseInput(ctx.query, schema, 'Invalid query');
}

/** A `limit` query parameter: a whole number from 1 to `max`, `fallback` when absent. */
export function limitParameter(max: number, fallback: number) {
  const error = `must be a whole number from 1 to ${max}`;
  return z.coerce.number({ error }).int({ error }).min(1, { error }).max(max, { error }).default(fallback);
}

/**
 * Validates a person's form of email and (optional) name, as {@link parseBody}; the refusal
 * names the field at fault in the person's language (the page's script shows it).
 */
export function parsePersonForm<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  try {
    return parseBody(ctx, schema);
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    const fields = (error.details?.fields ?? {}) as Record<string, string>;
    throw error.localized(fields.name && !fields.email ? 'errors.invalidName' : 'errors.invalidEmail');
  }
}
