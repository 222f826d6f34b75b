import { z } from 'zod';
import { type CeremonyPolicy, PASSKEY_POLICY } from '../webauthn/policy.js';
import { tenantName, tenantOrigins } from './relyingParty.js';

/** The values Hanko's tenant config accepts for each WebAuthn option (go-webauthn's protocol enums). */
export const USER_VERIFICATION = ['required', 'preferred', 'discouraged'] as const;
export const RESIDENT_KEY = ['required', 'preferred', 'discouraged'] as const;
export const ATTESTATION = ['none', 'indirect', 'direct', 'enterprise'] as const;
/** `none` leaves `authenticatorAttachment` out of the options: any authenticator may answer. */
export const ATTACHMENT = ['platform', 'cross-platform', 'none'] as const;

/**
 * Ceremony timeouts an admin may set: below 10 s nobody finds their security key in time;
 * above 10 minutes the challenge (which lives 5 minutes, PASSKEY_POLICY) would be long gone
 * anyway, and browsers cap the timeout near there.
 */
export const TIMEOUT_BOUNDS_MS = { min: 10_000, max: 600_000 } as const;

/** How one kind of ceremony (passkey or second factor) of a tenant asks the authenticator. */
export interface CeremonySettings {
  userVerification: (typeof USER_VERIFICATION)[number];
  attachment: (typeof ATTACHMENT)[number];
  residentKey: (typeof RESIDENT_KEY)[number];
  attestation: (typeof ATTESTATION)[number];
  timeoutMs: number;
}

/** A tenant's WebAuthn settings: Hanko keeps one config for passkeys and another for MFA. */
export interface TenantSettings {
  webauthn: CeremonySettings;
  mfa: CeremonySettings;
}

/** What every tenant had before these were settable (and what migration 0016 gives existing ones). */
export const DEFAULT_WEBAUTHN_SETTINGS: CeremonySettings = {
  userVerification: PASSKEY_POLICY.userVerification,
  attachment: 'none',
  residentKey: PASSKEY_POLICY.residentKey,
  attestation: PASSKEY_POLICY.attestation,
  timeoutMs: PASSKEY_POLICY.timeoutMs,
};

/**
 * Hanko's MFA defaults (its `createDefaultMfaConfig`): a second factor is a roaming security
 * key that need not be discoverable nor verify the person (the factor before it did); direct
 * attestation lets the app see which key model it is.
 */
export const DEFAULT_MFA_SETTINGS: CeremonySettings = {
  userVerification: 'preferred',
  attachment: 'cross-platform',
  residentKey: 'discouraged',
  attestation: 'direct',
  timeoutMs: PASSKEY_POLICY.timeoutMs,
};

/**
 * A change to some of a tenant's settings; what is left out stays as it is. `name` and
 * `origins` are validated (relyingParty.ts) but not yet checked against the tenant's RP ID.
 */
export interface TenantSettingsChange {
  name?: string;
  /** Replaces the list, as Hanko's `PUT /tenants/{id}/config` does. */
  origins?: string[];
  webauthn?: Partial<CeremonySettings>;
  mfa?: Partial<CeremonySettings>;
}

/** The settings as the admin API and `--json` show them, in Hanko's names. */
export interface CeremonySettingsView {
  user_verification: CeremonySettings['userVerification'];
  attachment: CeremonySettings['attachment'];
  resident_key_requirement: CeremonySettings['residentKey'];
  attestation_preference: CeremonySettings['attestation'];
  timeout: number;
}

export function ceremonySettingsView(settings: CeremonySettings): CeremonySettingsView {
  return {
    user_verification: settings.userVerification,
    attachment: settings.attachment,
    resident_key_requirement: settings.residentKey,
    attestation_preference: settings.attestation,
    timeout: settings.timeoutMs,
  };
}

/** The settings as the WebAuthn layer takes them; `none` leaves the attachment out. */
export function ceremonyPolicy(settings: CeremonySettings): CeremonyPolicy {
  return {
    timeoutMs: settings.timeoutMs,
    userVerification: settings.userVerification,
    residentKey: settings.residentKey,
    attestation: settings.attestation,
    authenticatorAttachment: settings.attachment === 'none' ? undefined : settings.attachment,
  };
}

/** Whether verification must see the UV flag (WebAuthn L3 §7.1 step 15, §7.2 step 17). */
export function requiresUserVerification(settings: CeremonySettings): boolean {
  return settings.userVerification === 'required';
}

const oneOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `must be one of ${values.join(', ')}` });
const timeoutError = `must be a whole number of milliseconds from ${TIMEOUT_BOUNDS_MS.min} to ${TIMEOUT_BOUNDS_MS.max}`;

/** The object's own type error; any other (an unknown key of `.strict()`) keeps zod's words, which name the key. */
const notAnObject = (issue: { code: string }) =>
  issue.code === 'invalid_type' ? 'must be an object' : undefined;

/** One ceremony's settings in a change, in Hanko's names; every member optional. */
const ceremonySettingsChangeSchema = z
  .object(
    {
      user_verification: oneOf(USER_VERIFICATION).optional(),
      attachment: oneOf(ATTACHMENT).optional(),
      resident_key_requirement: oneOf(RESIDENT_KEY).optional(),
      attestation_preference: oneOf(ATTESTATION).optional(),
      timeout: z
        .number({ error: timeoutError })
        .int({ error: timeoutError })
        .min(TIMEOUT_BOUNDS_MS.min, { error: timeoutError })
        .max(TIMEOUT_BOUNDS_MS.max, { error: timeoutError })
        .optional(),
    },
    { error: notAnObject },
  )
  .strict();

/**
 * A change to a tenant's settings as the admin API, the CLI and the page give it:
 * `{name?, origins?, webauthn?: {...}, mfa?: {...}}` in Hanko's names. At least one setting
 * must be given. Name and origins are checked by their rules in {@link tenantSettingsChange}.
 */
export const tenantSettingsChangeSchema = z
  .object(
    {
      name: z.string({ error: 'must be a string' }).max(1000).optional(),
      origins: z
        .array(z.string({ error: 'must be a string' }).max(2000), { error: 'must be an array of origins' })
        .max(100)
        .optional(),
      webauthn: ceremonySettingsChangeSchema.optional(),
      mfa: ceremonySettingsChangeSchema.optional(),
    },
    { error: notAnObject },
  )
  .strict()
  .refine(
    (v) =>
      v.name !== undefined ||
      v.origins !== undefined ||
      Object.keys(v.webauthn ?? {}).length + Object.keys(v.mfa ?? {}).length > 0,
    { error: 'give at least one setting to change' },
  );

export type TenantSettingsChangeInput = z.output<typeof tenantSettingsChangeSchema>;

function ceremonyChange(input: z.output<typeof ceremonySettingsChangeSchema> | undefined) {
  const change: Partial<CeremonySettings> = {};
  if (!input) return change;
  if (input.user_verification !== undefined) change.userVerification = input.user_verification;
  if (input.attachment !== undefined) change.attachment = input.attachment;
  if (input.resident_key_requirement !== undefined) change.residentKey = input.resident_key_requirement;
  if (input.attestation_preference !== undefined) change.attestation = input.attestation_preference;
  if (input.timeout !== undefined) change.timeoutMs = input.timeout;
  return change;
}

/** The change in the admin API's names, for the audit log: only what was given. */
export function settingsChangeView(change: TenantSettingsChange): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  if (change.name !== undefined) view.name = change.name;
  if (change.origins !== undefined) view.origins = change.origins;
  for (const kind of ['webauthn', 'mfa'] as const) {
    const given = change[kind] ?? {};
    const named: Record<string, string | number | undefined> = {
      user_verification: given.userVerification,
      attachment: given.attachment,
      resident_key_requirement: given.residentKey,
      attestation_preference: given.attestation,
      timeout: given.timeoutMs,
    };
    const entries = Object.entries(named).filter(
      (entry): entry is [string, string | number] => entry[1] !== undefined,
    );
    if (entries.length > 0) view[kind] = Object.fromEntries(entries);
  }
  return view;
}

/**
 * The validated input as a change of settings, the name and origins normalised.
 * @throws TenantValidationError for a bad name or origin.
 */
export function tenantSettingsChange(input: TenantSettingsChangeInput): TenantSettingsChange {
  return {
    ...(input.name !== undefined && { name: tenantName(input.name) }),
    ...(input.origins !== undefined && { origins: tenantOrigins(input.origins) }),
    webauthn: ceremonyChange(input.webauthn),
    mfa: ceremonyChange(input.mfa),
  };
}
