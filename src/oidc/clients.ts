import { z } from 'zod';
import { withAdminAuthority } from '../accounts/adminAuthority.js';
import { randomId, randomSecret, sha256Hex } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { clientsQueries } from '../db/queries/clients.js';
import { groupsQueries } from '../db/queries/groups.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import type { ClientRow } from '../db/schema.js';
import { imageOrigin } from '../http/middleware/securityHeaders.js';
import { isPlainUriText, printable, shownName } from '../text.js';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Schemes that only ever run or show content in place; never a way back to an app. */
const NON_REDIRECT_SCHEMES = new Set([
  'javascript',
  'data',
  'file',
  'blob',
  'vbscript',
  'about',
  'ws',
  'wss',
  'ftp',
]);

/** A private-use scheme (RFC 8252 §7.1): anything but http and https. Only native apps register one. */
function isPrivateUseScheme(uri: string): boolean {
  const scheme = URL.parse(uri)?.protocol;
  return scheme !== undefined && scheme !== 'https:' && scheme !== 'http:';
}

/** RFC 8252 §7.3 names the loopback IP literals; `localhost` may resolve elsewhere (§8.3). */
const LOOPBACK_IPS = new Set(['127.0.0.1', '[::1]']);

function isLoopbackIpHttp(uri: string): boolean {
  const url = URL.parse(uri);
  return url?.protocol === 'http:' && LOOPBACK_IPS.has(url.hostname);
}

/** The URI without its port, when it is http to a loopback IP literal written in canonical form. */
function withoutLoopbackPort(uri: string): string | undefined {
  const url = URL.parse(uri);
  // Only a URI that is already in URL's canonical form: no dot segments, case or
  // escaping differences may make two different strings match.
  if (!url || url.href !== uri || !isLoopbackIpHttp(uri)) return undefined;
  url.port = '';
  return url.href;
}

/**
 * Whether `uri` may be used as a redirect (or post-logout redirect) URI of a client that
 * registered `registered`: exactly one of them, or, for a native app, a registered
 * `http://127.0.0.1` or `http://[::1]` URI on another port (RFC 8252 §7.3: the app listens
 * on whatever port is free). `localhost` is a name, not the loopback interface: it may
 * resolve elsewhere (RFC 8252 §8.3), so it only ever matches exactly. oidc-provider's own
 * check lets any port through for `localhost` too.
 */
export function redirectUriAllowed(
  uri: string,
  registered: readonly string[],
  type: 'native' | 'web' | undefined,
): boolean {
  if (registered.includes(uri)) return true;
  if (type !== 'native') return false;
  const portless = withoutLoopbackPort(uri);
  return portless !== undefined && registered.some((allowed) => withoutLoopbackPort(allowed) === portless);
}

/**
 * Whether oidc-provider must treat the client as a native app (OIDC Registration §2,
 * `application_type`). A client with a custom-scheme redirect or post-logout URI is native:
 * the provider refuses private-use schemes for web clients. So is a public client whose
 * every URI is http to a loopback IP address: a desktop or command-line app that listens
 * on whatever port is free, which the provider then accepts in place of the registered one
 * (RFC 8252 §7.3). Every other client is web, and its URIs match exactly.
 */
export function applicationType(
  uris: { redirect_uris: string[]; post_logout_redirect_uris: string[] },
  isPublic = false,
): 'native' | 'web' {
  const all = [...uris.redirect_uris, ...uris.post_logout_redirect_uris];
  if (all.some(isPrivateUseScheme)) return 'native';
  return isPublic && uris.redirect_uris.length > 0 && all.every(isLoopbackIpHttp) ? 'native' : 'web';
}

/**
 * The ports WHATWG Fetch calls "bad" (fetch.spec.whatwg.org, "port blocking"): browsers refuse
 * to navigate to them and Node's fetch to connect. A redirect URI or back-channel logout URI
 * on one is accepted by everything else and then fails at every use.
 */
const FETCH_BLOCKED_PORTS: ReadonlySet<string> = new Set(
  [
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104,
    109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515,
    526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049,
    3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
  ].map(String),
);

/** Why an http(s) URL's port cannot be used, or undefined. */
function blockedPortProblem(value: string, url: URL): string | undefined {
  return (url.protocol === 'http:' || url.protocol === 'https:') && FETCH_BLOCKED_PORTS.has(url.port)
    ? `${value}: browsers and fetch refuse port ${url.port} (a "bad port" in the Fetch standard); use another`
    : undefined;
}

/**
 * Checks one redirect URI against Sesame's rules: absolute, no fragment (RFC 6749 §3.1.2), no
 * user name or password, no `*` in the host or path (it would be taken for a wildcard), https except
 * on loopback hosts (RFC 8252 §7.3), or a private-use scheme of a native app (RFC 8252 §7.1).
 * Returns the reason it is refused, or undefined.
 */
export function redirectUriProblem(value: string): string | undefined {
  // Redirect URIs are compared as exact strings (RFC 6749 §3.1.2.3): a stray space would never match.
  if (/\s/.test(value)) return `${value.trim()} must not contain spaces`;
  if (!isPlainUriText(value)) return `${printable(value)} must not contain control characters`;
  const url = URL.parse(value);
  if (!url) return `${value} is not an absolute URI`;
  if (url.hash || value.includes('#')) return `${value} must not contain a fragment`;
  // Credentials in a URI the browser is sent to would be shown to, and kept by, everyone on
  // the way. The message leaves them out: it is shown and may be logged by the caller.
  if (url.username || url.password)
    return `${value.replace(/\/\/[^/?#]*@/, '//…@')} must not contain a user name or password`;
  // Matched exactly, so `https://*.example.com/cb` would register a host no app can have, and
  // `https://app.example.com/*` a path no app is sent back to: the client could never sign in.
  if (url.hostname.includes('*') || url.pathname.includes('*'))
    return `${value}: redirect URIs are matched exactly, a * is not a wildcard; list each URI`;
  const blocked = blockedPortProblem(value, url);
  if (blocked) return blocked;
  const scheme = url.protocol.slice(0, -1);
  if (scheme === 'https') return undefined;
  if (scheme === 'http')
    return LOOPBACK_HOSTS.has(url.hostname) ? undefined : `${value} must use https (http only for localhost)`;
  if (NON_REDIRECT_SCHEMES.has(scheme)) return `${value} uses a scheme that cannot be a redirect URI`;
  // Private-use schemes: RFC 8252 §7.1 asks for a reverse domain name, e.g. com.example.app:/callback.
  if (!scheme.includes('.'))
    return `${value}: a native app's scheme must be a reverse domain name like com.example.app`;
  return undefined;
}

/**
 * A native app (one with a custom-scheme URI) reaches the loopback interface over plain
 * http only: oidc-provider refuses https://localhost for it, since no certificate can be
 * claimed for a loopback host (RFC 8252 §7.3, §8.3). Returns the field and reason, or undefined.
 */
export function nativeAppProblem(uris: {
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
}): { field: 'redirect_uris' | 'post_logout_redirect_uris'; message: string } | undefined {
  if (applicationType(uris) !== 'native') return undefined;
  for (const field of ['redirect_uris', 'post_logout_redirect_uris'] as const) {
    const loopback = uris[field].find((uri) => {
      const url = URL.parse(uri);
      return url?.protocol === 'https:' && LOOPBACK_HOSTS.has(url.hostname);
    });
    if (loopback) {
      return {
        field,
        message: `${loopback}: a native app reaches localhost over http, e.g. http://127.0.0.1:PORT/callback`,
      };
    }
  }
  return undefined;
}

const redirectUris = (field: string) =>
  z
    .array(z.string().max(2000, { message: 'is too long' }))
    .max(20, { message: 'at most 20 URIs' })
    .superRefine((uris, ctx) => {
      const seen = new Set<string>();
      for (const uri of uris) {
        const problem = redirectUriProblem(uri);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
        if (seen.has(uri)) ctx.addIssue({ code: 'custom', message: `${uri} is listed twice` });
        seen.add(uri);
      }
    })
    .describe(field);

/**
 * Where Sesame posts logout tokens (Back-Channel Logout 1.0 §2.2): an absolute URI without a
 * fragment; https, or http on a loopback host. Only admins register one, so a host on a
 * private network is allowed (see provider.ts).
 */
const backchannelLogoutUri = z
  .string({ error: 'must be a string' })
  .max(2000, { message: 'is too long' })
  .superRefine((value, ctx) => {
    const url = URL.parse(value);
    if (!isPlainUriText(value) || !url)
      ctx.addIssue({ code: 'custom', message: `${printable(value)} is not an absolute URI` });
    else if (url.hash || value.includes('#'))
      ctx.addIssue({ code: 'custom', message: `${value} must not contain a fragment` });
    else if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)))
      ctx.addIssue({ code: 'custom', message: `${value} must use https (http only for localhost)` });
    else {
      const blocked = blockedPortProblem(value, url);
      if (blocked) ctx.addIssue({ code: 'custom', message: blocked });
    }
  })
  .nullable()
  .optional();

/** RFC 8628: sign-in on a device without a browser (a TV, a command-line tool). */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', DEVICE_CODE_GRANT] as const;

/**
 * The grant types the admin pages set, which ask only for redirect URIs and a "devices
 * without a browser" checkbox: the device code grant as checked; the authorization code
 * grant when there are redirect URIs, or when `base` has it and the app is not a device app
 * (then the missing URIs are the error the form shows); the others as in `base`.
 */
export function grantTypesFromPage(
  base: readonly string[],
  { device, hasRedirectUris }: { device: boolean; hasRedirectUris: boolean },
): string[] {
  const code = hasRedirectUris || (base.includes('authorization_code') && !device);
  const others = base.filter((grant) => grant !== DEVICE_CODE_GRANT && grant !== 'authorization_code');
  return [...(code ? ['authorization_code'] : []), ...others, ...(device ? [DEVICE_CODE_GRANT] : [])];
}

/** An app's logo, shown on its consent page: an https URL whose origin goes into that page's CSP img-src. */
const logoUri = z
  .string()
  .max(2000, { message: 'must be at most 2000 characters' })
  .refine((v) => v.startsWith('https://') && URL.canParse(v), { message: 'must be an https URL' })
  .refine(isPlainUriText, { message: 'must not contain spaces or control characters' })
  .refine((v) => !URL.canParse(v) || imageOrigin(v) !== undefined, {
    message: 'must name its host plainly: letters, digits, dots and hyphens, and a port',
  })
  .nullable()
  .optional();

/**
 * The name people see on the app's consent and sign-in pages. One of only invisible
 * characters (U+200B, a soft hyphen) left those pages saying that nobody asks for access.
 */
const clientName = shownName(100);

/**
 * Why a public client may not introspect other apps' tokens: it has no secret, so anyone
 * could ask in its name (the database refuses it too, migration 0038).
 */
const PUBLIC_INTROSPECTION = "a public client cannot introspect other apps' tokens: it has no secret";

/** What an admin may set when registering a client. Validated once, here, for the CLI, the API and the pages. */
export const clientInputSchema = z
  .object({
    name: clientName,
    redirect_uris: redirectUris('redirect_uris').default([]),
    post_logout_redirect_uris: redirectUris('post_logout_redirect_uris').default([]),
    public: z.boolean().default(false),
    first_party: z.boolean().default(false),
    introspect_tokens: z.boolean().default(false),
    grant_types: z.array(z.enum(GRANT_TYPES)).min(1).optional(),
    logo_uri: logoUri,
    require_pushed_authorization_requests: z.boolean().default(false),
    backchannel_logout_uri: backchannelLogoutUri,
  })
  .strict()
  .superRefine((input, ctx) => {
    const grants = input.grant_types ?? defaultGrantTypes(input.public);
    if (grants.includes('authorization_code') && input.redirect_uris.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['redirect_uris'],
        message: 'at least one is required for sign-in',
      });
    }
    if (input.public && grants.includes('client_credentials')) {
      ctx.addIssue({
        code: 'custom',
        path: ['grant_types'],
        message: 'a public client cannot use client_credentials',
      });
    }
    if (input.public && input.introspect_tokens) {
      ctx.addIssue({ code: 'custom', path: ['introspect_tokens'], message: PUBLIC_INTROSPECTION });
    }
    const native = nativeAppProblem(input);
    if (native) ctx.addIssue({ code: 'custom', path: [native.field], message: native.message });
  });

export type ClientInput = z.input<typeof clientInputSchema>;

/** Fields an admin may change later; the client's kind (public or confidential) is fixed at creation. */
export const clientUpdateSchema = z
  .object({
    name: clientName.optional(),
    redirect_uris: redirectUris('redirect_uris').optional(),
    post_logout_redirect_uris: redirectUris('post_logout_redirect_uris').optional(),
    first_party: z.boolean().optional(),
    introspect_tokens: z.boolean().optional(),
    grant_types: z.array(z.enum(GRANT_TYPES)).min(1).optional(),
    /** Groups (ids or names) whose members alone may use the app; `[]` admits everyone again. */
    allowed_groups: z
      .array(z.string().max(200, { message: 'a group id or name is at most 200 characters' }))
      .max(50, { message: 'at most 50 groups' })
      .optional(),
    logo_uri: logoUri,
    require_pushed_authorization_requests: z.boolean().optional(),
    backchannel_logout_uri: backchannelLogoutUri,
  })
  .strict();

export type ClientUpdate = z.input<typeof clientUpdateSchema>;

export function defaultGrantTypes(isPublic: boolean): Array<(typeof GRANT_TYPES)[number]> {
  return isPublic
    ? ['authorization_code', 'refresh_token']
    : ['authorization_code', 'refresh_token', 'client_credentials'];
}

/** A client as admins see it: never a secret or its hash. */
export interface ClientView {
  client_id: string;
  name: string;
  public: boolean;
  /** `native` when a redirect URI uses an app's own scheme (see {@link applicationType}). */
  application_type: 'native' | 'web';
  first_party: boolean;
  /**
   * May introspect access tokens issued to other clients: an API that checks the tokens apps
   * send it. Without it a client introspects its own tokens only.
   */
  introspect_tokens: boolean;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  grant_types: string[];
  logo_uri: string | null;
  /** Authorization requests only through the PAR endpoint (RFC 9126 §6). */
  require_pushed_authorization_requests: boolean;
  /** Where logout tokens are posted when a person signs out (Back-Channel Logout 1.0), or null. */
  backchannel_logout_uri: string | null;
  /** Names of the groups whose members alone may sign in to the app; empty: everyone may. */
  allowed_groups: string[];
  created_at: string;
  updated_at: string;
}

export function clientView(row: ClientRow, allowedGroups: string[] = []): ClientView {
  const uris = {
    redirect_uris: row.redirect_uris as unknown as string[],
    post_logout_redirect_uris: row.post_logout_redirect_uris as unknown as string[],
  };
  return {
    client_id: row.client_id,
    name: row.name,
    public: row.is_public,
    application_type: applicationType(uris, row.is_public),
    first_party: row.first_party,
    introspect_tokens: row.introspect_tokens,
    ...uris,
    grant_types: row.grant_types as unknown as string[],
    logo_uri: row.logo_uri,
    require_pushed_authorization_requests: row.require_pushed_authorization_requests,
    backchannel_logout_uri: row.backchannel_logout_uri,
    allowed_groups: allowedGroups,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

/** Raised when client input breaks a rule; `fields` says which field and why. */
export class ClientValidationError extends Error {
  constructor(readonly fields: Record<string, string>) {
    const [first] = Object.entries(fields);
    super(first ? `${first[0]}: ${first[1]}` : 'invalid client');
  }
}

export function parseClientInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const fields: Record<string, string> = {};
  for (const issue of result.error.issues) {
    const key = String(issue.path[0] ?? 'client');
    fields[key] ??= issue.message;
  }
  throw new ClientValidationError(fields);
}

/**
 * Registers a client. The secret (confidential clients) is returned once and stored only
 * as its SHA-256.
 */
export async function createClient(db: Db, input: unknown, actor: Actor) {
  const data = parseClientInput(clientInputSchema, input);
  const clientId = randomId(16);
  const secret = data.public ? undefined : randomSecret();
  const row = await withAdminAuthority(db, actor, async (trx) => {
    const created = await clientsQueries.insert(trx, clientId, secret ? sha256Hex(secret) : null, {
      name: data.name,
      redirectUris: data.redirect_uris,
      postLogoutRedirectUris: data.post_logout_redirect_uris,
      grantTypes: data.grant_types ?? defaultGrantTypes(data.public),
      isPublic: data.public,
      firstParty: data.first_party,
      introspectTokens: data.introspect_tokens,
      logoUri: data.logo_uri ?? null,
      requirePushedAuthorizationRequests: data.require_pushed_authorization_requests,
      backchannelLogoutUri: data.backchannel_logout_uri ?? null,
    });
    await auditQueries.record(trx, actor, 'client.create', clientId, { name: data.name });
    return created;
  });
  return { client: clientView(row), client_secret: secret };
}

export async function listClients(db: Db): Promise<ClientView[]> {
  const [rows, allowed] = await Promise.all([
    clientsQueries.list(db),
    groupsQueries.allowedForAllClients(db),
  ]);
  return rows.map((row) => clientView(row, allowed.get(row.client_id)));
}

export async function getClient(db: Db, clientId: string): Promise<ClientView | undefined> {
  const row = await clientsQueries.find(db, clientId);
  if (!row) return undefined;
  return clientView(
    row,
    (await groupsQueries.allowedForClient(db, clientId)).map((group) => group.name),
  );
}

/** The ids of the groups named (by id or name); a group that does not exist breaks the rule. */
async function allowedGroupIds(db: Db, idsOrNames: readonly string[]): Promise<string[]> {
  const ids = new Set<string>();
  for (const idOrName of idsOrNames) {
    const group = await groupsQueries.findByIdOrName(db, idOrName);
    if (!group) throw new ClientValidationError({ allowed_groups: `no group with id or name ${idOrName}` });
    ids.add(group.id);
  }
  return [...ids];
}

export async function updateClient(db: Db, clientId: string, input: unknown, actor: Actor) {
  const data = parseClientInput(clientUpdateSchema, input);
  const existing = await clientsQueries.find(db, clientId);
  if (!existing) return undefined;
  const grantTypes = data.grant_types ?? (existing.grant_types as unknown as string[]);
  const uris = data.redirect_uris ?? (existing.redirect_uris as unknown as string[]);
  if (grantTypes.includes('authorization_code') && uris.length === 0) {
    throw new ClientValidationError({ redirect_uris: 'at least one is required for sign-in' });
  }
  if (existing.is_public && grantTypes.includes('client_credentials')) {
    throw new ClientValidationError({ grant_types: 'a public client cannot use client_credentials' });
  }
  if (existing.is_public && data.introspect_tokens) {
    throw new ClientValidationError({ introspect_tokens: PUBLIC_INTROSPECTION });
  }
  const native = nativeAppProblem({
    redirect_uris: uris,
    post_logout_redirect_uris:
      data.post_logout_redirect_uris ?? (existing.post_logout_redirect_uris as unknown as string[]),
  });
  if (native) throw new ClientValidationError({ [native.field]: native.message });
  return withAdminAuthority(db, actor, async (trx) => {
    if (data.allowed_groups) {
      // Before naming the groups: a group deleted meanwhile would otherwise take the list with it.
      await groupsQueries.lockAllowedGroups(trx);
      await groupsQueries.setAllowedForClient(trx, clientId, await allowedGroupIds(trx, data.allowed_groups));
    }
    const row = await clientsQueries.update(trx, clientId, {
      ...(data.name !== undefined && { name: data.name }),
      ...(data.redirect_uris && { redirectUris: data.redirect_uris }),
      ...(data.post_logout_redirect_uris && { postLogoutRedirectUris: data.post_logout_redirect_uris }),
      ...(data.grant_types && { grantTypes: data.grant_types }),
      ...(data.first_party !== undefined && { firstParty: data.first_party }),
      ...(data.introspect_tokens !== undefined && { introspectTokens: data.introspect_tokens }),
      ...(data.logo_uri !== undefined && { logoUri: data.logo_uri }),
      ...(data.require_pushed_authorization_requests !== undefined && {
        requirePushedAuthorizationRequests: data.require_pushed_authorization_requests,
      }),
      ...(data.backchannel_logout_uri !== undefined && { backchannelLogoutUri: data.backchannel_logout_uri }),
    });
    await auditQueries.record(trx, actor, 'client.update', clientId, {
      fields: Object.keys(data),
      ...(data.allowed_groups && { allowed_groups: data.allowed_groups }),
      // Who let an app read other apps' tokens, or took it back, must show in the log.
      ...(data.introspect_tokens !== undefined && { introspect_tokens: data.introspect_tokens }),
    });
    if (!row) return undefined;
    return clientView(
      row,
      (await groupsQueries.allowedForClient(trx, clientId)).map((group) => group.name),
    );
  });
}

/**
 * Replaces a confidential client's secret. The old one stops working at once: only the new
 * hash is stored, and the provider reads the client afresh on every request.
 */
export async function rotateClientSecret(db: Db, clientId: string, actor: Actor) {
  const secret = randomSecret();
  const updated = await withAdminAuthority(db, actor, async (trx) => {
    if (!(await clientsQueries.setSecretHash(trx, clientId, sha256Hex(secret)))) return false;
    await auditQueries.record(trx, actor, 'client.rotate_secret', clientId);
    return true;
  });
  return updated ? { client_id: clientId, client_secret: secret } : undefined;
}

/** Deletes a client and everything issued to it: grants, codes, access and refresh tokens. */
export async function deleteClient(db: Db, clientId: string, actor: Actor): Promise<boolean> {
  return withAdminAuthority(db, actor, async (trx) => {
    if (!(await clientsQueries.delete(trx, clientId))) return false;
    const revoked = await oidcModelsQueries.destroyByClientId(trx, clientId);
    await auditQueries.record(trx, actor, 'client.delete', clientId, { revoked });
    return true;
  });
}

/**
 * Every group, with whether it may sign in to the client (for the client's admin page);
 * undefined when there is no such client.
 */
export async function listGroupsForClient(
  db: Db,
  clientId: string,
): Promise<Array<{ id: string; name: string; allowed: boolean }> | undefined> {
  if (!(await clientsQueries.find(db, clientId))) return undefined;
  const [all, allowed] = await Promise.all([
    groupsQueries.list(db),
    groupsQueries.allowedForClient(db, clientId),
  ]);
  const allowedIds = new Set(allowed.map((group) => group.id));
  return all.map((group) => ({ id: group.id, name: group.name, allowed: allowedIds.has(group.id) }));
}

/** Sets which groups (ids or names) may sign in to a client; none: everyone may. */
export async function setClientAllowedGroups(db: Db, clientId: string, idsOrNames: string[], actor: Actor) {
  return updateClient(db, clientId, { allowed_groups: idsOrNames }, actor);
}
