/**
 * The one error type route handlers throw. `message` is safe to show the person or client;
 * anything else (library errors, SQL) stays in the log.
 */
export class HttpError extends Error {
  override name = 'HttpError';

  constructor(
    readonly status: number,
    /** A short machine-readable code, e.g. `invalid_request`. */
    readonly code: string,
    message: string,
    /** Extra JSON fields for API callers, e.g. which field was wrong. */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  /** The catalog key (locales/*.json) of the message in the person's language, for pages and their scripts. */
  messageKey?: string;
  messageValues?: Record<string, string>;

  /** Names the message's translation; `message` stays English for logs and API callers. */
  localized(key: string, values?: Record<string, string>): this {
    this.messageKey = key;
    this.messageValues = values;
    return this;
  }

  /** The catalog keys of `details.fields` messages, said in the person's language as the message is. */
  fieldKeys?: Record<string, string>;

  /** A link onward that the error page shows under the message, in the person's language. */
  back?: { url: string; label: string };
}

/** What a page shows for one way a link can fail: its status, code, heading and words. */
export interface PageProblem {
  status: number;
  code: string;
  heading: string;
  message: string;
}

/**
 * An {@link HttpError} for one of a fixed set of problems a page names (`problem`), each
 * with the words its error page shows (`heading` is the page's title).
 */
export class ProblemError<P extends string> extends HttpError {
  readonly heading: string;

  /** The catalog key of the heading in the person's language, when the problems have a catalog section. */
  readonly headingKey: string | undefined;

  /**
   * @param catalogSection where locales/*.json words these problems: `<section>.<problem>.heading`
   *   and `.message` (the English here stays for logs and API callers).
   */
  constructor(
    readonly problem: P,
    problems: Record<P, PageProblem>,
    catalogSection?: string,
  ) {
    const { status, code, heading, message } = problems[problem];
    super(status, code, message);
    this.heading = heading;
    this.headingKey = catalogSection && `${catalogSection}.${problem}.heading`;
    if (catalogSection) this.localized(`${catalogSection}.${problem}.message`);
  }
}

export const badRequest = (message: string, details?: Record<string, unknown>) =>
  new HttpError(400, 'invalid_request', message, details);
export const unauthorized = (message = 'Authentication required') =>
  new HttpError(401, 'unauthorized', message);
export const forbidden = (message = 'You do not have access to this page') =>
  new HttpError(403, 'forbidden', message);
export const notFound = (message = 'Not found') => new HttpError(404, 'not_found', message);
export const conflict = (message: string, details?: Record<string, unknown>) =>
  new HttpError(409, 'conflict', message, details);

/**
 * Postgres refuses U+0000 in text and jsonb (SQLSTATE 22021 and 22P05). Input that carries
 * one is the caller's mistake, so it gets a 400, not a 500; the statement changed nothing.
 */
export function isNulCharacterError(caught: unknown): boolean {
  const code = (caught as { code?: unknown } | null | undefined)?.code;
  return code === '22021' || code === '22P05';
}

export const nulCharacterError = () =>
  badRequest('Text must not contain NUL characters').localized('errors.nulCharacter');
