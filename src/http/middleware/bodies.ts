import { bodyParser } from '@koa/bodyparser';

/**
 * Body parsing for Sesame's own routes (the provider parses its own). JSON is strict
 * (objects and arrays only) and small: a passkey response is a few kilobytes, so anything
 * past the limit is refused with 413 before it is read further.
 */
export const JSON_BODY_LIMIT = '64kb';

export function parseBodies() {
  return bodyParser({
    enableTypes: ['json', 'form'],
    jsonLimit: JSON_BODY_LIMIT,
    formLimit: '32kb',
    jsonStrict: true,
    encoding: 'utf-8',
  });
}
