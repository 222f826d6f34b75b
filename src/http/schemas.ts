import type { Context } from 'koa';
import { z } from 'zod';
import { type Translator, translatorFor } from '../i18n/catalog.js';
import type { Locale } from '../i18n/locales.js';
import {
  EMAIL_MAX_LENGTH,
  hasNoControlCharacters,
  isPlainEmailAddress,
  isVisibleText,
  normalizeEmail,
} from '../text.js';
import { badRequest } from './errors.js';
import { refusalLocale } from './middleware/language.js';

/**
 * Messages a person may read are keys of the catalogs' `validation` section
 * (locales/*.json), worded in the request's language where the refusal is built; the
 * issue's own limits fill them in (`{{maximum}}`). Other issues keep zod's words.
 */
const CATALOG_KEY = /^validation\.[A-Za-z0-9]+$/;

/** A zod issue's message in `text`'s language. */
export function issueMessage(issue: z.core.$ZodIssue, text: Translator = translatorFor('en')): string {
  if (!CATALOG_KEY.test(issue.message)) return issue.message;
  return text.t(issue.message, issueValues(issue));
}

/** What a catalog's validation message may name: the issue's limits and allowed values. */
function issueValues(issue: z.core.$ZodIssue): Record<string, string> {
  const { maximum, minimum, values } = issue as { maximum?: unknown; minimum?: unknown; values?: unknown[] };
  return {
    maximum: String(maximum),
    minimum: String(minimum),
    choices: (values ?? []).filter((value) => value !== '').join(', '),
  };
}

/** zod's own words for the issues no catalog key names (a wrong type, a missing field), per language. */
const zodWords: Record<Exclude<Locale, 'en'>, { localeError: z.core.$ZodErrorMap }> = {
  de: z.locales.de(),
  fr: z.locales.fr(),
  es: z.locales.es(),
};

const base64url = z
  .string()
  .max(16_384)
  .regex(/^[A-Za-z0-9_-]*={0,2}$/, { message: 'validation.base64url' });
/** The longest user handle as base64url: 64 bytes (WebAuthn L3 §5.4.3) are 86 characters, 88 with padding. */
const USER_HANDLE_MAX_BASE64URL = 88;
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
    userHandle: base64url.max(USER_HANDLE_MAX_BASE64URL).optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
});

/** One plain address, normalized (src/text.ts): no display name, quotes, comments or list. */
export const emailSchema = z
  .string()
  .overwrite(normalizeEmail)
  .max(EMAIL_MAX_LENGTH, { message: 'validation.emailTooLong' })
  .refine(isPlainEmailAddress, { message: 'validation.emailInvalid' });

/** A person's name or a passkey's: no control characters or bidirectional overrides (src/text.ts). */
export const noControlCharacters = [
  hasNoControlCharacters,
  { message: 'validation.controlCharacters' },
] as const;

/** A person's name, or null for none: empty, or only spaces and invisible characters (isVisibleText). */
export const displayNameSchema = z
  .string()
  .trim()
  .max(100, { message: 'validation.nameTooLong' })
  .refine(...noControlCharacters)
  .transform((v) => (isVisibleText(v) ? v : null));

/** Each bad field's first message (`body` for the input as a whole), in `text`'s language. */
function fieldMessages(issues: z.core.$ZodIssue[], text: Translator): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of issues) fields[issue.path.join('.') || 'body'] ??= issueMessage(issue, text);
  return fields;
}

/**
 * The 400 for input that failed `schema`, naming the first bad field, with every field's
 * message in `fields` for forms and API callers: in the person's language on people's pages
 * and their scripts (see {@link refusalLocale}), in English for APIs and logs.
 */
function invalidInput(
  ctx: Context,
  input: unknown,
  schema: z.ZodType,
  issues: z.core.$ZodIssue[],
  unnamed: string,
) {
  const english = fieldMessages(issues, translatorFor('en'));
  const [first] = Object.entries(english);
  const locale = refusalLocale(ctx);
  // zod words an issue while it parses: parsed again, its own words are the person's.
  const theirs =
    locale === 'en'
      ? issues
      : (schema.safeParse(input, { error: zodWords[locale].localeError }).error?.issues ?? issues);
  const fields = fieldMessages(theirs, translatorFor(locale));
  const error = badRequest(first ? `${first[0]}: ${first[1]}` : unnamed, { fields });
  const [issue] = theirs;
  if (!first || !issue) return error;
  // A catalog message says what is wrong on its own; zod's words need the field's name.
  return CATALOG_KEY.test(issue.message)
    ? error.localized(issue.message, issueValues(issue))
    : error.localized('validation.field', { field: first[0], message: fields[first[0]]! });
}

/** Validates input at the edge: a failure is {@link invalidInput}. */
function parseInput<T extends z.ZodType>(
  ctx: Context,
  input: unknown,
  schema: T,
  unnamed: string,
): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw invalidInput(ctx, input, schema, result.error.issues, unnamed);
  return result.data;
}

/** Validates a request body: see {@link parseInput}. */
export function parseBody<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  return parseInput(ctx, ctx.request.body, schema, 'Invalid request body');
}

/** Validates a request's query parameters (a repeated one arrives as an array): see {@link parseInput}. */
export function parseQuery<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  return parseInput(ctx, ctx.query, schema, 'Invalid query');
}

/** A `limit` query parameter: a whole number from 1 to `max`, `fallback` when absent. */
export function limitParameter(max: number, fallback: number) {
  const error = `must be a whole number from 1 to ${max}`;
  return z.coerce.number({ error }).int({ error }).min(1, { error }).max(max, { error }).default(fallback);
}

/** One filter of the activity log: absent or empty for none, else at most `max` characters of `pattern`. */
function auditFilterParameter(max: number, pattern: RegExp, error: string) {
  return z
    .string({ error: 'must be given once' })
    .max(max, { error: `must be at most ${max} characters` })
    .refine((value) => value === '' || pattern.test(value), { error })
    .transform((value) => value || undefined)
    .optional();
}

/**
 * The activity log's filters, as query parameters (the admin page's and the admin API's):
 * `action` an action's name (`user.taken_over`), or its start up to a dot (`passkey.`);
 * `actor` who acted (`user:<id>`, `api-key:<id>`, `cli`, `system`); `target` what it was done to.
 */
/** `before`, where an older page of the activity log starts: an event id, a Postgres bigint. */
export const auditEventIdParameter = z
  .string({ error: 'must be given once' })
  .regex(/^[1-9][0-9]{0,18}$/, { message: 'must be an event id' })
  // Digit strings of one length compare as their numbers: at most the largest bigint.
  .refine((id) => id.length < 19 || id <= '9223372036854775807', { message: 'must be an event id' })
  .optional();

export const auditFilterSchema = {
  action: auditFilterParameter(
    100,
    /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\.?$/,
    'must be an action, like user.rename or passkey.',
  ),
  actor: auditFilterParameter(200, /^[!-~]+$/, 'must be an actor, like user:<id>, api-key:<id> or cli'),
  target: auditFilterParameter(500, /^[^\p{Cc}]+$/u, 'must hold no control character'),
};

/** A JSON number of seconds: a whole number from 0 to `max` (`maxInWords` says how long that is). */
export function wholeSeconds(max: number, maxInWords: string) {
  const error = 'must be a whole number of seconds';
  return z
    .number({ error })
    .int({ error })
    .min(0, { error })
    .max(max, { error: `must be at most ${max} (${maxInWords})` });
}
