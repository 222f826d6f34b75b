import {
  CONTROL_CHARACTERS_REFUSED,
  hasNoControlCharacters,
  INVISIBLE_NAME_REFUSED,
  isVisibleText,
} from '../text.js';

/** The tenant setting a {@link TenantValidationError} is about, as the admin API names it. */
export type TenantField = 'name' | 'origins' | 'rp_id';

/** Raised when a tenant's name, origins or RP ID break a rule; the message is one line. */
export class TenantValidationError extends Error {
  override name = 'TenantValidationError';

  constructor(
    readonly field: TenantField,
    message: string,
  ) {
    super(message);
  }
}

/** A DNS name of lowercase labels; an all-numeric last label would be an IP address. */
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * What Android's Credential Manager puts in clientDataJSON's `origin` for a ceremony run by a
 * native app (not a browser): this prefix, then the unpadded base64url SHA-256 of the app's
 * signing certificate. iOS apps report the https origin of their associated domain instead.
 */
const ANDROID_APP_ORIGIN_PREFIX = 'android:apk-key-hash:';

/** A SHA-256 in base64url without padding: 32 bytes are 43 characters. */
const APK_KEY_HASH = /^[A-Za-z0-9_-]{43}$/;

/**
 * Whether the origin is an Android app's: one that only WebAuthn's clientDataJSON carries.
 * No browser sends it as an Origin header and it has no host, so CORS and the RP ID check
 * leave it out.
 */
export function isAndroidAppOrigin(origin: string): boolean {
  return origin.startsWith(ANDROID_APP_ORIGIN_PREFIX);
}

/** The origins browsers send: those CORS answers and the RP ID must cover. */
export function webOrigins(origins: readonly string[]): string[] {
  return origins.filter((origin) => !isAndroidAppOrigin(origin));
}

/**
 * An Android app's origin with its prefix in lowercase (as Android writes it); the hash must
 * be the canonical base64url of 32 bytes, since clientDataJSON's origin is compared as is.
 */
function normalizeAndroidAppOrigin(value: string): string {
  const hash = value.slice(ANDROID_APP_ORIGIN_PREFIX.length);
  if (!APK_KEY_HASH.test(hash) || Buffer.from(hash, 'base64url').toString('base64url') !== hash) {
    throw new TenantValidationError(
      'origins',
      `origin ${value} must be ${ANDROID_APP_ORIGIN_PREFIX} followed by the SHA-256 of the app's signing certificate in base64url without padding (43 characters)`,
    );
  }
  return ANDROID_APP_ORIGIN_PREFIX + hash;
}

/**
 * An origin the app's pages are served from, normalised to `scheme://host[:port]`. WebAuthn
 * runs only in secure contexts, so https is required; plain http only for localhost, which
 * browsers treat as secure (W3C Secure Contexts §3.1). An Android app's origin
 * (`android:apk-key-hash:...`) is taken too, for the app's own ceremonies.
 */
export function normalizeTenantOrigin(value: string): string {
  if (value.toLowerCase().startsWith(ANDROID_APP_ORIGIN_PREFIX)) return normalizeAndroidAppOrigin(value);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TenantValidationError('origins', `origin ${value} is not an absolute URL`);
  }
  if (url.username || url.password || url.pathname !== '/' || /[?#]/.test(value)) {
    throw new TenantValidationError(
      'origins',
      `origin ${value} must be scheme://host[:port], without a path`,
    );
  }
  const secure = url.protocol === 'https:' || (url.protocol === 'http:' && url.hostname === 'localhost');
  if (!secure) {
    throw new TenantValidationError('origins', `origin ${value} must use https (http only for localhost)`);
  }
  return url.origin;
}

/** Whether the web origin's host is the RP ID or a subdomain of it. */
function isOnRpId(rpId: string, origin: string): boolean {
  const host = new URL(origin).hostname;
  return host === rpId || host.endsWith(`.${rpId}`);
}

/**
 * Checks the RP ID against the origins (WebAuthn L3 §5.1.2 / HTML's "registrable domain
 * suffix"): it must be a domain name, not an IP address or a bare top-level name, and each
 * web origin's host must be it or a subdomain of it (an Android app's origin has no host: its
 * tie to the RP ID is the domain's Digital Asset Links file, which Android checks). Without
 * the public suffix list, names like `co.uk` are not caught here; the browser refuses them at
 * ceremony time.
 */
export function checkRpId(rpId: string, origins: string[]): string {
  const id = rpId.trim().toLowerCase();
  if (!HOSTNAME.test(id)) throw new TenantValidationError('rp_id', `RP ID ${rpId} is not a domain name`);
  if (id !== 'localhost' && !id.includes('.')) {
    throw new TenantValidationError('rp_id', `RP ID ${rpId} is a top-level name; use the app's own domain`);
  }
  const outside = webOrigins(origins).find((origin) => !isOnRpId(id, origin));
  if (outside) {
    throw new TenantValidationError('rp_id', `RP ID ${id} is not a registrable suffix of ${outside}'s host`);
  }
  return id;
}

/**
 * Checks new origins of an existing tenant against its RP ID, which stays: the passkeys its
 * users have are bound to it.
 */
export function checkOriginsOnRpId(rpId: string, origins: string[]): void {
  const outside = webOrigins(origins).find((origin) => !isOnRpId(rpId, origin));
  if (outside) {
    throw new TenantValidationError(
      'origins',
      `origin ${outside} is not on the app's RP ID ${rpId} or a subdomain of it (the RP ID cannot change: passkeys are bound to it)`,
    );
  }
}

/** A tenant's name, trimmed: what authenticators show as the relying party. */
export function tenantName(value: string): string {
  const name = value.trim();
  if (name.length < 1 || name.length > 64) {
    throw new TenantValidationError('name', 'name must be 1 to 64 characters');
  }
  if (!hasNoControlCharacters(name))
    throw new TenantValidationError('name', `name ${CONTROL_CHARACTERS_REFUSED}`);
  // An authenticator's dialog would name no app: people could not tell whose passkey it makes.
  if (!isVisibleText(name)) throw new TenantValidationError('name', `name ${INVISIBLE_NAME_REFUSED}`);
  return name;
}

/** A tenant's origins, normalised and de-duplicated: 1 to 20. */
export function tenantOrigins(values: string[]): string[] {
  if (values.length === 0) throw new TenantValidationError('origins', 'at least one origin is required');
  if (values.length > 20) throw new TenantValidationError('origins', 'at most 20 origins');
  return [...new Set(values.map(normalizeTenantOrigin))];
}

/** The validated relying party of a new tenant: origins normalised and de-duplicated, RP ID checked. */
export function tenantRelyingPartySettings(input: {
  name: string;
  origins: string[];
  rpId?: string | undefined;
}): { name: string; origins: string[]; rpId: string } {
  const name = tenantName(input.name);
  const origins = tenantOrigins(input.origins);
  const [firstWebOrigin] = webOrigins(origins);
  if (input.rpId === undefined && firstWebOrigin === undefined) {
    throw new TenantValidationError('rp_id', 'an RP ID is required when no origin is a web origin');
  }
  const rpId = checkRpId(input.rpId ?? new URL(firstWebOrigin!).hostname, origins);
  return { name, origins, rpId };
}
