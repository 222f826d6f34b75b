import { z } from 'zod';
import { withAdminAuthority } from '../accounts/adminAuthority.js';
import { CLAIMS_BY_SCOPE } from '../accounts/claims.js';
import type { Db } from '../db/connect.js';
import { type Actor, auditQueries } from '../db/queries/audit.js';
import { clientsQueries } from '../db/queries/clients.js';
import { resourcesQueries } from '../db/queries/resources.js';
import type { ResourceRow } from '../db/schema.js';
import {
  CONTROL_CHARACTERS_REFUSED,
  hasNoControlCharacters,
  INVISIBLE_NAME_REFUSED,
  isPlainUriText,
  isVisibleText,
} from '../text.js';

// No import of oidc-provider here: the CLI loads this file (the provider's hook is resourceServers.ts).

/**
 * Scopes Sesame itself defines (the provider's, claims.ts's `CLAIMS_BY_SCOPE`): a resource
 * cannot claim them, or a request for one would be ambiguous. `groups` was missing: an API
 * could declare it, and a token for that API then also gave the app the person's groups.
 */
const OIDC_SCOPES: ReadonlySet<string> = new Set(['offline_access', ...Object.keys(CLAIMS_BY_SCOPE)]);

/** A scope-token of RFC 6749 §3.3: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Checks a resource indicator (RFC 8707 §2): an absolute URI without a fragment; https, or http on localhost. */
export function resourceIdentifierProblem(value: string): string | undefined {
  if (/\s/.test(value)) return 'must not contain spaces';
  if (!isPlainUriText(value)) return CONTROL_CHARACTERS_REFUSED;
  const url = URL.parse(value);
  if (!url) return 'must be an absolute URI, e.g. https://api.example.com';
  if (url.hash || value.includes('#')) return 'must not contain a fragment (RFC 8707 §2)';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname))
    return undefined;
  return 'must use https (http only for localhost)';
}

const str = (expected: string) => (issue: { input: unknown }) =>
  issue.input === undefined ? 'is required' : `must be ${expected}`;

/** What an admin sets when registering an API. Validated once, here, for the CLI, the API and the pages. */
export const resourceInputSchema = z
  .object({
    identifier: z
      .string({ error: str('a string') })
      .max(2000, { message: 'must be at most 2000 characters' })
      .superRefine((value, ctx) => {
        const problem = resourceIdentifierProblem(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    name: z
      .string({ error: 'must be a string' })
      .trim()
      .min(1, { message: 'must not be empty' })
      .max(100, { message: 'must be at most 100 characters' })
      .refine(hasNoControlCharacters, CONTROL_CHARACTERS_REFUSED)
      // The consent page names the API by it.
      .refine(isVisibleText, INVISIBLE_NAME_REFUSED)
      .optional(),
    scopes: z
      .array(
        z
          .string({ error: 'must be strings' })
          .max(100, { message: 'must be at most 100 characters each' })
          .regex(SCOPE_TOKEN, { message: 'must be scope tokens: no spaces, quotes or backslashes' })
          .refine((scope) => !OIDC_SCOPES.has(scope), {
            message: 'must not be openid, offline_access, email, profile or groups (Sesame’s own scopes)',
          }),
        { error: 'must be an array of strings' },
      )
      .max(50, { message: 'at most 50 scopes' })
      .default([])
      .refine((scopes) => new Set(scopes).size === scopes.length, { message: 'must not repeat a scope' }),
  })
  .strict();

export type ResourceInput = z.input<typeof resourceInputSchema>;

/** Raised when resource input breaks a rule; `field` says which and why. */
export class ResourceValidationError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** An API as admins see it. */
export interface ResourceView {
  id: string;
  identifier: string;
  name: string;
  scopes: string[];
  /** The clients that may get a client_credentials token for the API, each with the scopes it may get. */
  machine_clients: Record<string, string[]>;
  created_at: string;
}

export function resourceView(row: ResourceRow): ResourceView {
  return {
    id: row.id,
    identifier: row.identifier,
    name: row.name,
    scopes: row.scopes as unknown as string[],
    machine_clients: row.machine_clients ?? {},
    created_at: new Date(row.created_at).toISOString(),
  };
}

/** Registers an API (a resource server, RFC 8707) whose access tokens are JWTs. */
export async function createResource(db: Db, input: unknown, actor: Actor): Promise<ResourceView> {
  const parsed = resourceInputSchema.safeParse(input);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    throw new ResourceValidationError(String(issue?.path[0] ?? 'resource'), issue?.message ?? 'is not valid');
  }
  const data = parsed.data;
  return withAdminAuthority(db, actor, async (trx) => {
    const row = await resourcesQueries.insert(trx, {
      identifier: data.identifier,
      name: data.name ?? data.identifier,
      scopes: data.scopes,
    });
    if (!row) throw new ResourceValidationError('identifier', `${data.identifier} is already registered`);
    await auditQueries.record(trx, actor, 'resource.create', row.id, {
      identifier: row.identifier,
      scopes: data.scopes,
    });
    return resourceView(row);
  });
}

export async function listResources(db: Db): Promise<ResourceView[]> {
  return (await resourcesQueries.list(db)).map(resourceView);
}

/** The resource with this id, or with this identifier (a URI). */
export async function findResource(db: Db, idOrIdentifier: string): Promise<ResourceView | undefined> {
  const row = idOrIdentifier.includes(':')
    ? await resourcesQueries.findByIdentifier(db, idOrIdentifier)
    : await resourcesQueries.findById(db, idOrIdentifier);
  return row ? resourceView(row) : undefined;
}

/**
 * Deletes a resource: new tokens for it are refused (invalid_target) at once. JWT access
 * tokens already issued stay valid until they expire — the API checks them alone.
 */
export async function deleteResource(db: Db, idOrIdentifier: string, actor: Actor): Promise<boolean> {
  const found = await findResource(db, idOrIdentifier);
  if (!found) return false;
  return withAdminAuthority(db, actor, async (trx) => {
    const deleted = await resourcesQueries.delete(trx, found.id);
    if (!deleted) return false;
    await auditQueries.record(trx, actor, 'resource.delete', deleted.id, { identifier: deleted.identifier });
    return true;
  });
}

/**
 * Lets a client get client_credentials tokens for the API, with `scopes` (each one of the
 * API's; all of them when none are given), replacing what it was allowed before. No person
 * consents to a machine's token: without this, a client gets none for the API.
 * @returns the API as it is now; undefined when there is no such API.
 * @throws ResourceValidationError for an unknown client, one without the client_credentials
 * grant, or a scope the API does not define.
 */
export async function allowMachineClient(
  db: Db,
  idOrIdentifier: string,
  clientId: string,
  scopes: readonly string[] | undefined,
  actor: Actor,
): Promise<ResourceView | undefined> {
  const found = await findResource(db, idOrIdentifier);
  if (!found) return undefined;
  const client = await clientsQueries.find(db, clientId);
  if (!client) throw new ResourceValidationError('client', `there is no client ${clientId}`);
  if (!(client.grant_types as unknown as string[]).includes('client_credentials')) {
    throw new ResourceValidationError(
      'client',
      `${clientId} does not use client_credentials (its grant types)`,
    );
  }
  const unknown = (scopes ?? []).filter((scope) => !found.scopes.includes(scope));
  if (unknown.length > 0) {
    throw new ResourceValidationError('scopes', `the API has no scope ${unknown.join(', ')}`);
  }
  const granted = [...new Set(scopes?.length ? scopes : found.scopes)];
  return changeMachineClients(db, found.id, actor, 'resource.allow_client', clientId, granted);
}

/** Takes a client's client_credentials access to the API away; tokens it holds live out their hour. */
export async function denyMachineClient(
  db: Db,
  idOrIdentifier: string,
  clientId: string,
  actor: Actor,
): Promise<ResourceView | undefined> {
  const found = await findResource(db, idOrIdentifier);
  if (!found) return undefined;
  return changeMachineClients(db, found.id, actor, 'resource.deny_client', clientId, undefined);
}

async function changeMachineClients(
  db: Db,
  id: string,
  actor: Actor,
  action: string,
  clientId: string,
  scopes: string[] | undefined,
): Promise<ResourceView | undefined> {
  return withAdminAuthority(db, actor, async (trx) => {
    const row = await resourcesQueries.setMachineClient(trx, id, clientId, scopes);
    if (!row) return undefined;
    await auditQueries.record(trx, actor, action, row.id, {
      identifier: row.identifier,
      client: clientId,
      ...(scopes && { scopes }),
    });
    return resourceView(row);
  });
}
