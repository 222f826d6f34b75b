import { bodyParser } from '@koa/bodyparser';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import { translatorFor } from '../../i18n/catalog.js';
import { badRequest, HttpError } from '../errors.js';
import { refusalLocale } from './language.js';

/**
 * Body parsing for Sesame's own routes (the provider parses its own). JSON is strict
 * (objects and arrays only) and small: a passkey response is a few kilobytes, so anything
 * past the limit is refused with 413 before it is read further.
 */
export const JSON_BODY_LIMIT = '64kb';

// With the u flag a surrogate pair is one code point, so only a lone surrogate is in Cs.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Where in a parsed body a string holds a lone UTF-16 surrogate (JSON's `"\ud800"`), as a
 * dotted path (`name`, `origins.0`), or undefined when every string is well formed. Such a
 * string has no UTF-8 form: jsonb refuses it, and a text column would silently store U+FFFD.
 * The walk uses an explicit stack, so no nesting depth can overflow it.
 */
export function illFormedTextPath(body: unknown): string | undefined {
  // Each entry keeps its key and its parent's entry, so a path is built only when one is reported.
  interface Entry {
    value: unknown;
    key: string | undefined;
    parent: Entry | undefined;
  }
  const pathOf = (entry: Entry | undefined, last?: string) => {
    const keys = last === undefined ? [] : [last];
    for (let at = entry; at?.key !== undefined; at = at.parent) keys.unshift(at.key);
    return keys.join('.') || 'body';
  };
  const pending: Entry[] = [{ value: body, key: undefined, parent: undefined }];
  while (pending.length > 0) {
    const entry = pending.pop()!;
    const { value } = entry;
    if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) return pathOf(entry);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (LONE_SURROGATE.test(key)) return pathOf(entry, key.replace(/\p{Cs}/gu, '\uFFFD'));
        pending.push({ value: inner, key, parent: entry });
      }
    }
  }
  return undefined;
}

/** Refuses a parsed body with a lone surrogate anywhere, with a 400 that names the field. */
export async function refuseIllFormedText(ctx: Context, next: Next) {
  const field = illFormedTextPath(ctx.request.body);
  if (field !== undefined) {
    const message = 'must not contain unpaired UTF-16 surrogates';
    const theirs = translatorFor(refusalLocale(ctx)).t('validation.illFormedText');
    throw badRequest(`${field}: ${message}`, { fields: { [field]: theirs } }).localized('validation.field', {
      field,
      message: theirs,
    });
  }
  await next();
}

export function parseBodies(): Middleware {
  return compose<Context>([
    refusingUndecodableBodies(
      bodyParser({
        enableTypes: ['json', 'form'],
        jsonLimit: JSON_BODY_LIMIT,
        formLimit: '32kb',
        jsonStrict: true,
        encoding: 'utf-8',
      }),
    ),
    refuseIllFormedText,
  ]);
}

/** The content codings the body parser decodes (inflation's list), in lower case. */
const DECODED_CODINGS = ['identity', 'gzip', 'deflate', 'br'];

/**
 * `parse` with a body that its Content-Encoding (gzip, deflate, br) does not decode refused
 * as malformed input, 400: zlib's error carries no status, and was answered with a 500 (and
 * an error in the log) before any sign-in, CSRF or API key check. A coding the parser does
 * not know is 415 that names the coding (RFC 9110 §15.5.16), not a complaint about the
 * content type. Errors of the routes after it pass through untouched. Used by every
 * surface that parses bodies itself: Sesame's pages, the admin API and the passkey API.
 */
export function refusingUndecodableBodies(parse: Middleware): Middleware {
  return async function parseBody(ctx, next) {
    // Content codings are case-insensitive (RFC 9110 §8.4.1); the parser knows lower case only.
    const named = ctx.req.headers['content-encoding'];
    if (named !== undefined && named !== named.toLowerCase())
      ctx.req.headers['content-encoding'] = named.toLowerCase();
    let parsed = false;
    try {
      await parse(ctx, () => {
        parsed = true;
        return next();
      });
    } catch (error) {
      const coding = ctx.get('content-encoding');
      if (parsed || !coding) throw error;
      const status = (error as { status?: unknown } | null)?.status;
      if (status === 415 && !DECODED_CODINGS.includes(coding)) {
        throw new HttpError(
          415,
          'unsupported_media_type',
          `Content-Encoding ${JSON.stringify(coding.slice(0, 64))} is not supported; send the body uncompressed, or as gzip, deflate or br`,
        ).localized('errors.malformedRequest');
      }
      if (status !== undefined) throw error;
      throw badRequest('The request body could not be decoded as its Content-Encoding says').localized(
        'errors.malformedRequest',
      );
    }
  };
}
