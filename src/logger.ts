import type { Config } from './config.js';

type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/**
 * A structured one-line-per-event logger. Fields must never hold secrets: callers pass ids,
 * not tokens. URLs are the exception callers cannot avoid (a one-time link's token is its
 * path), so the logger redacts them itself: see {@link redactUrl}.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /**
   * A warn line written whatever LOG_LEVEL says, even `silent`: for the one line an operator
   * cannot do without (the first-run setup link), which nothing else would tell them.
   */
  warnAlways(message: string, fields?: Record<string, unknown>): void;
  /** Whether lines at `level` are written: work done only to build such a line can be skipped. */
  writes(level: Level): boolean;
}

const REDACTED = '[redacted]';

/** Fields that hold a request URL or path; they go through {@link redactUrl}. */
const URL_FIELDS = new Set(['url', 'path', 'redirect_uri']);

/**
 * Query parameters whose values are safe to log: they say what was asked for, never prove
 * anything. Every other value (code, state, id_token_hint, refresh_token, login_hint, ...)
 * is replaced, so a parameter added later is secret until someone decides otherwise.
 */
const LOGGABLE_QUERY_PARAMETERS = new Set([
  'client_id',
  'response_type',
  'response_mode',
  'scope',
  'redirect_uri',
  'post_logout_redirect_uri',
  'prompt',
  'code_challenge_method',
  'done',
  'error',
]);

/** Path segments that are bearer secrets: the token of a one-time link (/link/<token>/...). */
const LINK_TOKEN = /\/link\/[^/?#\s"]+/g;
/**
 * A run of characters that looks like a generated secret (randomSecret() makes 43). A path
 * segment that holds one anywhere, once percent-decoded, goes whole: a mail client that
 * takes a `)` or `>` after a welcome link into it, or writes `_` as `%5F`, still sends the
 * token, and a segment not exactly a token's shape was logged with it.
 */
const SECRET_RUN = /[A-Za-z0-9_.~-]{40,}/;

/** Whether a path segment or bare query word holds something shaped like a generated secret. */
function holdsSecret(segment: string): boolean {
  // Each escape decoded on its own: decodeURIComponent refuses the whole segment for one `%`
  // that does not decode (a lone one, a cut UTF-8 sequence), and the token in it went unseen.
  return SECRET_RUN.test(segment) || SECRET_RUN.test(segment.replace(PERCENT_ESCAPE, decodedByte));
}

const PERCENT_ESCAPE = /%([0-9A-Fa-f]{2})/g;
const decodedByte = (_escape: string, hex: string) => String.fromCharCode(Number.parseInt(hex, 16));

/**
 * A URL or path as it may be logged: the token of a one-time link and any segment shaped
 * like a generated secret are cut out of the path, and every query value is replaced except
 * the few in {@link LOGGABLE_QUERY_PARAMETERS}.
 */
export function redactUrl(url: string): string {
  const queryAt = url.indexOf('?');
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  const redactedPath = path
    .replace(LINK_TOKEN, `/link/${REDACTED}`)
    .split('/')
    .map((segment) => (holdsSecret(segment) ? REDACTED : segment))
    .join('/');
  if (queryAt === -1) return redactedPath;
  const query = url
    .slice(queryAt + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      if (equals === -1) return holdsSecret(pair) ? REDACTED : pair;
      const name = pair.slice(0, equals);
      if (name === 'return_to') return `${name}=${redactedReturnPath(pair.slice(equals + 1))}`;
      return LOGGABLE_QUERY_PARAMETERS.has(name) ? pair : `${name}=${REDACTED}`;
    });
  return `${redactedPath}?${query.join('&')}`;
}

/** Every secret-shaped run in a text, for {@link redactText}. */
const SECRET_RUNS = new RegExp(SECRET_RUN.source, 'g');

/**
 * What may break a secret a third party quotes in two: a quoted-printable soft line break (`=`
 * at a line's end, RFC 2045 §6.7: how a mail's body carries a long link) and the start of an
 * SMTP reply's next line (`550-5.7.1 `, RFC 5321 §4.2.1). Secrets are looked for with them left out.
 */
const QUOTED_BREAK = /=\r?\n|\r?\n\d{3}[ -](?:\d\.\d{1,3}\.\d{1,3} )?/g;

/**
 * Whether a secret-shaped run of free text is a secret: some piece of it between dots is as
 * long as a generated one (a token; a JWT's signature is), or it starts as a JWT does (`eyJ`,
 * a JSON header's `{"`), dots and all. A host name's pieces are short however long the name
 * (`BN1NAM02FT012.eop-nam02.prod.protection.outlook.com`), and it stays.
 */
const isSecretRun = (run: string) =>
  run.split('.').some((piece) => piece.length >= 40) || (run.startsWith('eyJ') && run.includes('.'));

/**
 * Free text (an error message, a mail server's reply) as it may be logged or stored: the
 * token of a one-time link, and every run shaped like a generated secret (a token, a JWT), are
 * cut out; the rest stays as it is, for whoever diagnoses. A word between slashes and spaces
 * that holds such a secret only once percent-decoded goes whole, as a path segment does in
 * {@link redactUrl}, and a secret split by a {@link QUOTED_BREAK} goes with the break. A third
 * party's error text can quote what it was sent: a mail server that refuses a message may name
 * the link in it.
 */
export function redactText(text: string): string {
  // The text without its breaks, and where each of its characters is in `text`.
  let joined = '';
  const at: number[] = [];
  let from = 0;
  for (const { index, 0: quotedBreak } of text.matchAll(QUOTED_BREAK)) {
    for (let i = from; i < index; i += 1) at.push(i);
    joined += text.slice(from, index);
    from = index + quotedBreak.length;
  }
  for (let i = from; i < text.length; i += 1) at.push(i);
  joined += text.slice(from);
  const cuts: [number, number][] = [];
  for (const { index, 0: link } of joined.matchAll(LINK_TOKEN))
    cuts.push([index + '/link/'.length, index + link.length]);
  for (const { index, 0: word } of joined.matchAll(/[^\s/]+/g)) {
    const runs = [...word.matchAll(SECRET_RUNS)].filter(([run]) => isSecretRun(run));
    for (const { index: runAt, 0: run } of runs) cuts.push([index + runAt, index + runAt + run.length]);
    const decoded = word.replace(PERCENT_ESCAPE, decodedByte);
    if (!runs.length && [...decoded.matchAll(SECRET_RUNS)].some(([run]) => isSecretRun(run)))
      cuts.push([index, index + word.length]);
  }
  // Each cut, with the breaks inside it, back in `text`, last first; overlapping ones as one.
  cuts.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  let result = text;
  let before = Number.POSITIVE_INFINITY;
  for (const [start, end] of cuts) {
    if (end <= start) continue;
    const cutEnd = Math.min(at[end - 1]! + 1, before);
    const cutStart = at[start]!;
    if (cutStart >= cutEnd) continue;
    result = result.slice(0, cutStart) + REDACTED + result.slice(cutEnd);
    before = cutStart;
  }
  return result;
}

/**
 * `return_to`'s value, a path on Sesame that a sign-in returns to, as it may be logged: with
 * that path's own redaction. Opening a welcome mail's `/verify/<token>` signed out redirects
 * to `/account/login?return_to=%2Fverify%2F<token>`.
 */
function redactedReturnPath(encoded: string): string {
  let path: string;
  try {
    path = decodeURIComponent(encoded);
  } catch {
    return REDACTED;
  }
  return encodeURIComponent(redactUrl(path));
}

/**
 * The most of a URL or path a line keeps, once redacted: anyone may send a 15 kB path, and
 * each would make a 15 kB line. A longer one is cut, and `<field>_length` says how long it was.
 */
export const LOGGED_URL_MAX_LENGTH = 2048;

/**
 * Adds the field to `safe` as it may be logged. Other strings (an error's message or stack)
 * may quote a link's path: its token goes too.
 */
function addRedactedField(safe: Record<string, unknown>, name: string, value: unknown): void {
  if (typeof value !== 'string') safe[name] = value;
  else if (!URL_FIELDS.has(name)) safe[name] = value.replace(LINK_TOKEN, `/link/${REDACTED}`);
  else {
    const redacted = redactUrl(value);
    safe[name] = redacted.slice(0, LOGGED_URL_MAX_LENGTH);
    if (redacted.length > LOGGED_URL_MAX_LENGTH) safe[`${name}_length`] = value.length;
  }
}

/** Writes JSON lines (to stderr unless `write` is given) at or above the configured level. */
export function createLogger(
  level: Config['logLevel'],
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const threshold = ORDER[level];
  const line = (lvl: Level, message: string, fields?: Record<string, unknown>) => {
    const safe: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(fields ?? {})) addRedactedField(safe, name, value);
    write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg: message, ...safe })}\n`);
  };
  const at = (lvl: Level) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] >= threshold) line(lvl, message, fields);
  };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    warnAlways: (message, fields) => line('warn', message, fields),
    writes: (lvl) => ORDER[lvl] >= threshold,
  };
}

/**
 * Sends Node's process warnings (a library's `process.emitWarning`, such as pg's eleven lines
 * about `sslmode=require`) into the log, one line each. Node's own listener, which prints them
 * as plain text, is removed: the server's output stays JSON lines. Warnings name settings and
 * libraries, not values (pg's quotes the sslmode, never the URL).
 */
export function routeProcessWarnings(log: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    const [summary = '', ...rest] = warning.message.split('\n');
    const detail = rest
      .map((line) => line.trim())
      .filter(Boolean)
      .join(' ');
    log.warn(summary, {
      source: warning.name,
      ...(warning.code && { code: warning.code }),
      ...(detail && { detail }),
    });
  });
}
