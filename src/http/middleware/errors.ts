import type { Context, Next } from 'koa';
import type { Logger } from '../../logger.js';
import { ceremonyFailures } from '../../metrics.js';
import { PasskeyError } from '../../webauthn/errors.js';
import { HttpError, isNulCharacterError, nulCharacterError } from '../errors.js';
import { pageText, sendPage } from '../views.js';
import { isApiPath, varyByLanguage } from './language.js';

/** Whether the caller is a script (fetch, API client) rather than a person's browser page load. */
export function wantsJson(ctx: Context): boolean {
  if (isApiPath(ctx)) return true;
  if (ctx.is('application/json')) return true;
  const accept = ctx.get('accept');
  return accept.includes('application/json') && !accept.includes('text/html');
}

/** The error's safe message in the request's language when the catalog has it, else in English. */
export function messageFor(ctx: Context, error: HttpError): string {
  if (!error.messageKey || isApiPath(ctx)) return error.message;
  const text = pageText(ctx);
  return text.has(error.messageKey) ? text.t(error.messageKey, { ...error.messageValues }) : error.message;
}

/** The error's extra JSON, its `fields` messages in the request's language where the catalog has them. */
function detailsFor(ctx: Context, error: HttpError): Record<string, unknown> | undefined {
  if (!error.fieldKeys || isApiPath(ctx)) return error.details;
  const text = pageText(ctx);
  const fields = { ...(error.details?.fields as Record<string, string> | undefined) };
  for (const [field, key] of Object.entries(error.fieldKeys)) {
    if (text.has(key)) fields[field] = text.t(key);
  }
  return { ...error.details, fields };
}

/** An error that brings its own page heading: a problem with a one-time or setup link. */
type ProblemWithHeading = HttpError & { readonly heading: string; readonly headingKey?: string };

/**
 * A person opening a bad link gets a page that says what happened, not a bare error; scripts
 * get the JSON of {@link errorHandler}. `back` may add a link onward for some problems.
 */
export function renderProblemPages<E extends ProblemWithHeading>(
  kind: abstract new (...args: never[]) => E,
  back?: (error: E, ctx: Context) => { backUrl: string; backLabel: string } | undefined,
) {
  return async function renderProblemPage(ctx: Context, next: Next) {
    try {
      await next();
    } catch (error) {
      if (!(error instanceof kind) || wantsJson(ctx)) throw error;
      ctx.status = error.status;
      const heading = error.headingKey ? pageText(ctx).t(error.headingKey) : error.heading;
      sendPage(ctx, 'error', {
        title: heading,
        heading,
        message: messageFor(ctx, error),
        ...back?.(error, ctx),
      });
    }
  };
}

/** Maps errors Koa's own parsers raise (body too large, malformed JSON) onto safe messages. */
function fromKoaError(error: {
  status?: number;
  statusCode?: number;
  type?: string;
  expose?: boolean;
}): HttpError | undefined {
  const status = error.status ?? error.statusCode;
  if (status === 413) {
    return new HttpError(413, 'payload_too_large', 'The request body is too large').localized(
      'errors.tooLarge',
    );
  }
  if (status === 415) {
    return new HttpError(415, 'unsupported_media_type', 'Unsupported content type').localized(
      'errors.malformedRequest',
    );
  }
  if (status && status >= 400 && status < 500) {
    return new HttpError(
      status,
      'invalid_request',
      error.type === 'entity.parse.failed' ? 'Malformed JSON body' : 'Malformed request',
    ).localized('errors.malformedRequest');
  }
  return undefined;
}

/**
 * What a request's error says to its sender: Sesame's own, or one of Koa's parsers' (a body too
 * large, malformed) made safe; undefined for anything else (a server error).
 */
export function refusalOf(caught: unknown): HttpError | undefined {
  if (caught instanceof HttpError) return caught;
  if (isNulCharacterError(caught)) return nulCharacterError();
  return typeof caught === 'object' && caught !== null ? fromKoaError(caught) : undefined;
}

/** Whether `error` is that no page is at the address a browser opened (GET), not that a thing a form named is gone. */
export function notAPage(ctx: Pick<Context, 'method'>, error: HttpError): boolean {
  return error.status === 404 && (ctx.method === 'GET' || ctx.method === 'HEAD');
}

/**
 * Catches every error below it: JSON for scripts, an HTML page in Sesame's style for people.
 * Only the safe message leaves the server; the rest is logged without request bodies.
 */
export function errorHandler(log: Logger) {
  return async function handleErrors(ctx: Context, next: Next) {
    try {
      await next();
    } catch (caught) {
      const error =
        refusalOf(caught) ??
        new HttpError(500, 'server_error', 'Something went wrong on our side').localized(
          'errors.serverError',
        );
      if (error instanceof PasskeyError) ceremonyFailures.inc({ reason: error.code });
      if (error.status >= 500) {
        log.error('request failed', {
          method: ctx.method,
          path: ctx.path,
          error: String((caught as Error)?.stack ?? caught),
        });
      }
      ctx.status = error.status;
      if (wantsJson(ctx)) {
        ctx.body = {
          error: error.code,
          error_description: messageFor(ctx, error),
          ...detailsFor(ctx, error),
        };
        if (error.messageKey && !isApiPath(ctx)) {
          ctx.set('Content-Language', ctx.state.locale ?? 'en');
          varyByLanguage(ctx);
        }
      } else {
        const text = pageText(ctx);
        sendPage(ctx, 'error', {
          title: text.t('error.title'),
          // A refused form post (an app revoked meanwhile) was sent from a page that exists.
          heading: text.t(notAPage(ctx, error) ? 'error.notFoundHeading' : 'error.heading'),
          message: messageFor(ctx, error),
          ...(error.back && { backUrl: error.back.url, backLabel: error.back.label }),
        });
      }
    }
  };
}
