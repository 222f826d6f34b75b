import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T> = ColumnType<T, string, string>;

export interface UsersTable {
  id: Generated<string>;
  email: string;
  email_verified: Generated<boolean>;
  name: string | null;
  is_admin: Generated<boolean>;
  disabled_at: NullableTimestamp;
  /** Browser sign-ins (sessions, interactions, codes) from this second or before are over (migration 0008). */
  sessions_ended_at: NullableTimestamp;
  /** Grants, codes and tokens from this second or before are revoked (migration 0008). */
  tokens_revoked_at: NullableTimestamp;
  /** Claims an admin set on this person, released with the `profile` scope (migration 0013). */
  claims: ColumnType<Record<string, unknown>, string | undefined, string>;
  /** The language the person chose for Sesame's pages; null: chosen per request (migration 0019). */
  locale: Generated<string | null>;
  /**
   * The language of the page the account was made on, then of the page of each sign-in, for
   * mails sent outside the person's requests (migration 0029).
   */
  signup_locale: Generated<string | null>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface CredentialsTable {
  /** base64url credential id. */
  id: string;
  user_id: string;
  public_key: Uint8Array;
  /** Stored as bigint; read back as string (pg) or bigint (PGlite): always pass through Number(). */
  counter: ColumnType<string | number | bigint, number, number>;
  transports: Json<string[]>;
  aaguid: string;
  backup_eligible: boolean;
  backup_state: boolean;
  name: string;
  created_at: Generated<Date>;
  last_used_at: NullableTimestamp;
  /** When a correctly signed assertion's counter went backwards: a copy exists, the passkey is blocked (migration 0035). */
  suspected_clone_at: NullableTimestamp;
}

export interface WebauthnChallengesTable {
  /** base64url challenge; the primary key makes each one single-use. */
  challenge: string;
  purpose: string;
  /** What the challenge is bound to: an interaction uid, an account session, a link. */
  binding: string;
  user_id: string | null;
  data: Json<Record<string, unknown>>;
  expires_at: Timestamp;
  created_at: Generated<Date>;
}

export interface OidcModelsTable {
  model: string;
  id: string;
  payload: Json<Record<string, unknown>>;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: NullableTimestamp;
  consumed_at: NullableTimestamp;
}

export interface ClientsTable {
  client_id: string;
  name: string;
  /** SHA-256 of the secret, hex; null for public clients. */
  secret_hash: string | null;
  redirect_uris: Json<string[]>;
  post_logout_redirect_uris: Json<string[]>;
  grant_types: Json<string[]>;
  is_public: boolean;
  first_party: boolean;
  /** May introspect access tokens issued to other clients (an API that checks them); never a public client. Migration 0038. */
  introspect_tokens: Generated<boolean>;
  logo_uri: string | null;
  /** Authorization requests only through the PAR endpoint (RFC 9126 §6); migration 0014. */
  require_pushed_authorization_requests: Generated<boolean>;
  /** Where logout tokens are posted (Back-Channel Logout 1.0); migration 0014. */
  backchannel_logout_uri: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** An API registered as a resource server (RFC 8707); its access tokens are JWTs (migration 0014). */
export interface ResourcesTable {
  id: Generated<string>;
  /** The `resource` value apps send and the tokens' `aud`: an absolute URI without a fragment. */
  identifier: string;
  name: string;
  scopes: Json<string[]>;
  /** The clients that may get a client_credentials token for the API, each with the scopes it may get (migration 0025). */
  machine_clients: ColumnType<Record<string, string[]>, string | undefined, string>;
  created_at: Generated<Date>;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  /** The private JWK as JSON, or an "enc:" envelope (see sealAtRest) with KEY_ENCRYPTION_SECRET set. */
  private_jwk: string;
  created_at: Generated<Date>;
  /** From when the key signs; published before that so apps' cached JWKS already hold it. */
  activates_at: Generated<Date>;
  /** From when it no longer signs (its successor's activation); published for a grace period after. */
  retired_at: NullableTimestamp;
}

export interface AppSecretsTable {
  name: string;
  value: string;
  created_at: Generated<Date>;
}

export interface OneTimeTokensTable {
  id: Generated<string>;
  token_hash: string;
  purpose: string;
  email: string;
  user_id: string | null;
  grant_admin: Generated<boolean>;
  created_by: string | null;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
  created_at: Generated<Date>;
}

/** The first-run link that creates the first administrator (migration 0010). */
export interface SetupLinksTable {
  id: Generated<string>;
  token_hash: string;
  expires_at: Timestamp;
  created_at: Generated<Date>;
}

/** The scopes an admin API key may have; the check constraint of api_keys.scope lists the same. */
export const API_KEY_SCOPES = ['admin', 'metrics'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export interface ApiKeysTable {
  id: Generated<string>;
  name: string;
  key_hash: string;
  /** The actor who created it (`user:<id>`, `cli:<name>`); null when no record says. */
  created_by: string | null;
  /** What it may do: `admin` (everything) or `metrics` (GET /metrics only); see migration 0028. */
  scope: Generated<ApiKeyScope>;
  created_at: Generated<Date>;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

export interface AuditEventsTable {
  id: Generated<string>;
  actor: string;
  action: string;
  target: string | null;
  details: Json<Record<string, unknown>>;
  created_at: Generated<Date>;
}

export interface StepUpsTable {
  /** The provider session's uid: a step-up belongs to one signed-in browser. */
  session_uid: string;
  user_id: string;
  verified_at: Generated<Date>;
}

/** A single-use token of an admin form that mints a secret (migration 0030); only its SHA-256 is stored. */
export interface AdminFormTokensTable {
  token_hash: string;
  /** The provider session's uid and its account: a token works only in the browser it was shown in. */
  session_uid: string;
  user_id: string;
  /** What the form does, with its target: `client.rotate_secret:<client id>`. */
  action: string;
  expires_at: Timestamp;
  /** When the form's POST did its work; null while the form is unused. */
  spent_at: NullableTimestamp;
}

/** An app using the passkey API: its relying party, hashed API key and its own signing key. */
export interface PasskeyTenantsTable {
  id: Generated<string>;
  name: string;
  rp_id: string;
  origins: Json<string[]>;
  /** SHA-256 of the API key, hex. */
  api_key_hash: string;
  /** SHA-256 of the key a rotation replaced, valid until the expiry beside it (migration 0034). */
  previous_api_key_hash: string | null;
  previous_api_key_expires_at: Date | null;
  /** WebAuthn settings of the tenant's passkey ceremonies (migration 0016; see passkeyApi/tenantSettings.ts). */
  webauthn_user_verification: Generated<string>;
  webauthn_attachment: Generated<string>;
  webauthn_resident_key: Generated<string>;
  webauthn_attestation: Generated<string>;
  webauthn_timeout_ms: Generated<number>;
  /** The same for its second-factor (MFA) ceremonies. */
  mfa_user_verification: Generated<string>;
  mfa_attachment: Generated<string>;
  mfa_resident_key: Generated<string>;
  mfa_attestation: Generated<string>;
  mfa_timeout_ms: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** A passkey API tenant's RS256 signing keys (migration 0031), scheduled like signing_keys. */
export interface PasskeyTenantKeysTable {
  kid: string;
  tenant_id: string;
  /** The private RS256 JWK as JSON, or an "enc:" envelope (see sealAtRest) with KEY_ENCRYPTION_SECRET set. */
  private_jwk: string;
  created_at: Generated<Date>;
  /** When it starts signing; published from its creation. */
  activates_at: Generated<Date>;
  /** When it stops signing; it stays published for a grace after (see passkeyApi/jwt.ts). */
  retired_at: Date | null;
}

/** A tenant's user, identified by the id the app gave it. */
export interface PasskeyTenantUsersTable {
  tenant_id: string;
  user_id: string;
  username: string;
  display_name: string;
  icon: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** A passkey registered through the passkey API; (tenant_id, id) is the key. */
export interface PasskeyTenantCredentialsTable {
  tenant_id: string;
  /** base64url credential id. */
  id: string;
  user_id: string;
  public_key: Uint8Array;
  /** Stored as bigint; read back as string (pg) or bigint (PGlite): always pass through Number(). */
  counter: ColumnType<string | number | bigint, number, number>;
  transports: Json<string[]>;
  aaguid: string;
  attestation_type: string;
  backup_eligible: boolean;
  backup_state: boolean;
  name: string;
  created_at: Generated<Date>;
  last_used_at: NullableTimestamp;
  /** Set by the MFA calls; a passkey login refuses MFA credentials. */
  is_mfa: Generated<boolean>;
  /** As credentials.suspected_clone_at (migration 0035): the passkey is blocked. */
  suspected_clone_at: NullableTimestamp;
}

/** One entry of a passkey API tenant's audit log (Hanko's `audit_logs`). */
export interface PasskeyTenantAuditLogsTable {
  id: Generated<string>;
  tenant_id: string;
  /** Hanko's audit log type, e.g. `webauthn_authentication_final_succeeded`. */
  type: string;
  error: string | null;
  meta_http_request_id: string;
  meta_source_ip: string;
  meta_user_agent: string;
  actor_user_id: string | null;
  transaction_id: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** A transaction an app's user signs with a passkey (migration 0012); the identifier is unique per tenant. */
export interface PasskeyTenantTransactionsTable {
  id: Generated<string>;
  tenant_id: string;
  user_id: string;
  identifier: string;
  /** The transaction data as JSON text, exactly as the challenge commits to it. */
  data: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** Every table Sesame stores, as Kysely sees them. */
/** Hits per rate-limited key in its current window, shared by every instance (migration 0009). */
export interface RateLimitHitsTable {
  key: string;
  hits: number;
  expires_at: Date;
}

/** A named set of users (migration 0013); its claims are released to members with `profile`. */
export interface GroupsTable {
  id: Generated<string>;
  name: string;
  claims: ColumnType<Record<string, unknown>, string | undefined, string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface GroupMembersTable {
  group_id: string;
  user_id: string;
  created_at: Generated<Date>;
}

/** A client with rows here admits only members of these groups. */
export interface ClientAllowedGroupsTable {
  client_id: string;
  group_id: string;
}

/** A logout token to post to an app's backchannel_logout_uri (migration 0015). */
export interface BackchannelDeliveriesTable {
  id: Generated<string>;
  client_id: string;
  uri: string;
  sub: string;
  sid: string | null;
  /**
   * No longer written: each attempt signs a token of its own (backchannelOutbox.ts), as a
   * token kept for retries expired two minutes after it was signed.
   */
  logout_token: string | null;
  attempts: Generated<number>;
  /** Null once done: delivered, or given up with last_error. */
  next_attempt_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  last_error: string | null;
  delivered_at: NullableTimestamp;
  created_at: Generated<Date>;
}

/** The brand an admin set on /admin/branding (migration 0020): one row, null where config applies. */
export interface BrandingTable {
  id: Generated<number>;
  name: string | null;
  accent: string | null;
  /** bytea: pg reads it as a Buffer, PGlite as a plain Uint8Array. */
  logo: Uint8Array | null;
  logo_type: string | null;
  /** A hash of the logo's bytes: its ETag and the version in its URL. */
  logo_etag: string | null;
  favicon: Uint8Array | null;
  favicon_type: string | null;
  favicon_etag: string | null;
  updated_at: Generated<Date>;
}

/** A mail to send (migration 0017). */
export interface MailOutboxTable {
  id: Generated<string>;
  /** Which views/mail template made it: what admins and metrics see, never the body. */
  template: string;
  to_address: string;
  subject: string;
  /** Emptied once done: the body may hold a one-time link. */
  text_body: string | null;
  html_body: string | null;
  attempts: Generated<number>;
  /** Null once done: sent, or given up with last_error. */
  next_attempt_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  last_error: string | null;
  sent_at: NullableTimestamp;
  created_at: Generated<Date>;
  /** The SHA-256 of the one-time link in the mail, if any (migration 0033): not sent once it cannot be used. */
  link_hash: string | null;
}

/** The link of a welcome mail that verifies an account's address (migration 0018). */
export interface EmailVerificationsTable {
  id: Generated<string>;
  user_id: string;
  /** The address the mail went to: a link for an address the account no longer has verifies nothing. */
  email: string;
  token_hash: string;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
  created_at: Generated<Date>;
}

export interface Database {
  mail_outbox: MailOutboxTable;
  email_verifications: EmailVerificationsTable;
  users: UsersTable;
  credentials: CredentialsTable;
  webauthn_challenges: WebauthnChallengesTable;
  oidc_models: OidcModelsTable;
  clients: ClientsTable;
  signing_keys: SigningKeysTable;
  app_secrets: AppSecretsTable;
  one_time_tokens: OneTimeTokensTable;
  setup_links: SetupLinksTable;
  api_keys: ApiKeysTable;
  audit_events: AuditEventsTable;
  step_ups: StepUpsTable;
  admin_form_tokens: AdminFormTokensTable;
  passkey_tenants: PasskeyTenantsTable;
  passkey_tenant_keys: PasskeyTenantKeysTable;
  passkey_tenant_users: PasskeyTenantUsersTable;
  passkey_tenant_credentials: PasskeyTenantCredentialsTable;
  passkey_tenant_audit_logs: PasskeyTenantAuditLogsTable;
  passkey_tenant_transactions: PasskeyTenantTransactionsTable;
  rate_limit_hits: RateLimitHitsTable;
  resources: ResourcesTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  client_allowed_groups: ClientAllowedGroupsTable;
  backchannel_deliveries: BackchannelDeliveriesTable;
  branding: BrandingTable;
}

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type UserUpdate = Updateable<UsersTable>;
export type CredentialRow = Selectable<CredentialsTable>;
export type ClientRow = Selectable<ClientsTable>;
export type ResourceRow = Selectable<ResourcesTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
export type OneTimeTokenRow = Selectable<OneTimeTokensTable>;
export type SetupLinkRow = Selectable<SetupLinksTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type AuditEventRow = Selectable<AuditEventsTable>;
export type GroupRow = Selectable<GroupsTable>;
