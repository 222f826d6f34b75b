/**
 * Claims an admin sets on a user or a group, released with the `profile` scope.
 * Names are checked here once, for the CLI, the admin API and the pages.
 */

/**
 * Names an app must be able to trust as Sesame's own: the JWT registered claims (RFC 7519
 * §4.1), those the ID token carries (OIDC Core §2, §3.1.3.6, and `sub_jwk` of self-issued
 * tokens, §7.4), the standard claims (OIDC Core §5.1), `verified_claims` of OpenID Connect
 * for Identity Assurance (an app reading it trusts the provider verified what it holds), the
 * ones Sesame issues itself (`groups`) and the aggregated-claims members (§5.6.2). The other
 * names Identity Assurance registers (`title`, `salutation`, `place_of_birth`…) are only
 * meaningful inside `verified_claims`, and an admin's `title` (a job title) is common: they
 * stay free, so claims stored under them before are still released.
 */
export const RESERVED_CLAIM_NAMES: ReadonlySet<string> = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'auth_time',
  'nonce',
  'acr',
  'amr',
  'azp',
  'sid',
  'at_hash',
  'c_hash',
  's_hash',
  'cnf',
  'scope',
  'client_id',
  'events',
  'name',
  'given_name',
  'family_name',
  'middle_name',
  'nickname',
  'preferred_username',
  'profile',
  'picture',
  'website',
  'email',
  'email_verified',
  'gender',
  'birthdate',
  'zoneinfo',
  'locale',
  'phone_number',
  'phone_number_verified',
  'address',
  'updated_at',
  'sub_jwk',
  'verified_claims',
  'groups',
  '_claim_names',
  '_claim_sources',
]);

/** Bounds that keep ID tokens small enough for a URL fragment or a cookie and the rows cheap to read. */
export const CLAIM_KEY_MAX_LENGTH = 64;
export const CLAIM_VALUE_MAX_BYTES = 2048;
export const CLAIMS_PER_OWNER_MAX = 50;
/** All of one user's or group's claims as JSON: an ID token must stay far below header and proxy limits. */
export const CLAIMS_TOTAL_MAX_BYTES = 8192;

const CLAIM_KEY = /^[A-Za-z][A-Za-z0-9_.:-]*$/;

/**
 * Names every JavaScript object answers to (`constructor`, `toString`, `__proto__`, ...). A
 * claim of such a name breaks the code that handles claims: oidc-provider merges the ID
 * token's claims only from objects whose `constructor` is Object's, so a `constructor` claim
 * left the token without `sub`, and apps refused the sign-in.
 */
const OBJECT_PROPERTY_NAMES: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/** A claim name or value that breaks a rule; the message is one line naming the rule. */
export class ClaimValidationError extends Error {
  constructor(
    readonly field: 'key' | 'value',
    message: string,
  ) {
    super(message);
  }
}

/** Refuses a name an app could mistake for one Sesame vouches for, or one too long or odd to be a JSON member name. */
export function checkClaimKey(key: string): void {
  if (key.length === 0) throw new ClaimValidationError('key', 'a claim name is required');
  if (key.length > CLAIM_KEY_MAX_LENGTH)
    throw new ClaimValidationError('key', `a claim name is at most ${CLAIM_KEY_MAX_LENGTH} characters`);
  if (!CLAIM_KEY.test(key))
    throw new ClaimValidationError(
      'key',
      `${key}: a claim name starts with a letter and holds only letters, digits, _ . : and -`,
    );
  if (RESERVED_CLAIM_NAMES.has(key))
    throw new ClaimValidationError(
      'key',
      `${key} is a registered OIDC claim or one Sesame issues itself; choose another name`,
    );
  if (OBJECT_PROPERTY_NAMES.has(key))
    throw new ClaimValidationError(
      'key',
      `${key} is the name of a property every JavaScript object has, which apps and libraries mistake for it; choose another name`,
    );
}

/** Whether a stored claim may be released: a name reserved or refused after it was stored is not. */
export function releasable(key: string, value: unknown): boolean {
  // OIDC Core §5.3.2: a claim without a value is omitted, not sent as null. A number stored
  // before such numbers were refused reads back rounded: released, it would be another number.
  return (
    value !== null &&
    !RESERVED_CLAIM_NAMES.has(key) &&
    !OBJECT_PROPERTY_NAMES.has(key) &&
    unfaithfulNumber(value) === undefined
  );
}

/**
 * The first number in `value` that JSON cannot carry as it was meant: one beyond ±2^53 is
 * rounded (12345678901234567890 became 12345678901234567000) and one beyond the double range
 * is Infinity, which JSON writes as null.
 */
function unfaithfulNumber(value: unknown): number | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value))
      ? undefined
      : value;
  if (value === null || typeof value !== 'object') return undefined;
  for (const member of Object.values(value)) {
    const found = unfaithfulNumber(member);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Refuses a value whose JSON is larger than {@link CLAIM_VALUE_MAX_BYTES}, null (unset the
 * claim instead), no JSON value at all, or holding a number that would not read back the same.
 */
export function checkClaimValue(value: unknown): void {
  if (value instanceof InexactNumber)
    throw new ClaimValidationError(
      'value',
      `${value.typed} cannot be kept exactly as a number (at most 15 significant digits, integers up to ${Number.MAX_SAFE_INTEGER}); quote it to keep it as a string`,
    );
  const json = JSON.stringify(value);
  if (json === undefined) throw new ClaimValidationError('value', 'a claim value must be a JSON value');
  if (value === null)
    throw new ClaimValidationError('value', 'a claim value cannot be null; unset the claim to remove it');
  const number = unfaithfulNumber(value);
  if (number !== undefined)
    throw new ClaimValidationError(
      'value',
      `${number} cannot be kept exactly as a number (integers up to ${Number.MAX_SAFE_INTEGER}); quote it to keep it as a string`,
    );
  if (Buffer.byteLength(json) > CLAIM_VALUE_MAX_BYTES)
    throw new ClaimValidationError(
      'value',
      `a claim value is at most ${CLAIM_VALUE_MAX_BYTES} bytes as JSON`,
    );
}

/** The claims after setting `key`; refuses one claim too many. */
export function withClaim(
  claims: Record<string, unknown>,
  key: string,
  value: unknown,
): Record<string, unknown> {
  checkClaimKey(key);
  checkClaimValue(value);
  if (!Object.hasOwn(claims, key) && Object.keys(claims).length >= CLAIMS_PER_OWNER_MAX)
    throw new ClaimValidationError('key', `at most ${CLAIMS_PER_OWNER_MAX} claims per user or group`);
  const next = { ...claims, [key]: value };
  if (Buffer.byteLength(JSON.stringify(next)) > CLAIMS_TOTAL_MAX_BYTES)
    throw new ClaimValidationError(
      'value',
      `all claims of a user or group are at most ${CLAIMS_TOTAL_MAX_BYTES} bytes as JSON`,
    );
  return next;
}

/** The claims without `key`. */
export function withoutClaim(claims: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _removed, ...rest } = claims;
  return rest;
}

/**
 * A number typed as a claim's value that a double cannot keep (0.12345678901234567890123
 * reads as 0.12345678901234568, 1e400 as Infinity): carried as typed to checkClaimValue,
 * which refuses it naming the digits typed, not the rounded ones.
 */
class InexactNumber {
  constructor(readonly typed: string) {}
}

/** JSON strings (skipped) and number literals of a JSON text, in order. */
const JSON_STRINGS_AND_NUMBERS = /"(?:[^"\\]|\\.)*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/** The significant digits of a decimal number's text, without sign, point, exponent or padding zeros. */
const significantDigits = (text: string) =>
  text
    .replace(/^-/, '')
    .replace(/[eE].*$/, '')
    .replace('.', '')
    .replace(/^0+/, '')
    .replace(/0+$/, '');

/** The first number literal of a JSON text that does not read back as typed; undefined when all do. */
function inexactLiteral(text: string): string | undefined {
  for (const [token] of text.matchAll(JSON_STRINGS_AND_NUMBERS)) {
    if (token.startsWith('"')) continue;
    const number = Number(token);
    if (!Number.isFinite(number)) return token;
    const digits = significantDigits(token);
    // Up to 15 significant digits a double keeps any decimal number.
    if (digits.length <= 15) continue;
    if (significantDigits(Math.abs(number).toPrecision(Math.min(digits.length, 100))) !== digits)
      return token;
  }
  return undefined;
}

/**
 * The CLI's and the group page's VALUE: JSON when it parses (`42`, `true`, `["a"]`,
 * `{"a":1}`), else the text itself. JSON holding a number a double cannot keep is refused by
 * checkClaimValue (InexactNumber) rather than stored rounded.
 */
export function parseClaimValue(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  const inexact = inexactLiteral(text);
  return inexact === undefined ? value : new InexactNumber(inexact);
}

/**
 * What a member is released: the groups' claims (the group whose name sorts first wins a
 * clash between groups), then the user's own, which win over any group's. A plain object
 * whose own names are only releasable ones, whatever the stored rows hold.
 */
export function mergeCustomClaims(
  userClaims: Record<string, unknown>,
  groupClaims: ReadonlyArray<Record<string, unknown>>,
): Record<string, unknown> {
  const chosen = new Map<string, unknown>();
  for (const claims of [...groupClaims].reverse())
    for (const [key, value] of Object.entries(claims)) chosen.set(key, value);
  for (const [key, value] of Object.entries(userClaims)) chosen.set(key, value);
  const merged: Record<string, unknown> = {};
  for (const [key, value] of chosen) if (releasable(key, value)) merged[key] = value;
  return merged;
}

/**
 * The names of stored claims that are not released (stored before a rule refused their name
 * or value): shown beside them wherever claims are listed, so an admin sees why an app no
 * longer gets one.
 */
export function unreleasedClaimNames(claims: Record<string, unknown>): string[] {
  return Object.entries(claims)
    .filter(([key, value]) => !releasable(key, value))
    .map(([key]) => key);
}
