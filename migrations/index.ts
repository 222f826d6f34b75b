import type { Migration } from 'kysely';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_account.js';
import * as m0003 from './0003_passkey_api.js';
import * as m0004 from './0004_row_change_notify.js';
import * as m0005 from './0005_grants_by_account_client.js';
import * as m0006 from './0006_email_verified_by_links.js';
import * as m0007 from './0007_signing_key_schedule.js';
import * as m0008 from './0008_tokens_hashed_ids_and_revocation.js';
import * as m0009 from './0009_pooler_rate_limit_hits.js';
import * as m0010 from './0010_setup_links.js';
import * as m0011 from './0011_passkey_api_hanko.js';
import * as m0012 from './0012_passkey_transactions.js';
import * as m0013 from './0013_groups_and_claims.js';
import * as m0014 from './0014_par_and_resources.js';
import * as m0015 from './0015_backchannel_deliveries.js';
import * as m0016 from './0016_passkey_tenant_settings.js';
import * as m0017 from './0017_mail_outbox.js';
import * as m0018 from './0018_email_verifications.js';
import * as m0019 from './0019_user_locale.js';
import * as m0020 from './0020_branding.js';
import * as m0022 from './0022_announce_group_changes.js';
import * as m0023 from './0023_announce_model_changes.js';
import * as m0024 from './0024_announce_client_auth_failures.js';
import * as m0025 from './0025_resource_machine_clients.js';
import * as m0026 from './0026_passkey_audit_log_retention.js';
import * as m0027 from './0027_api_key_owners.js';
import * as m0028 from './0028_api_key_scopes.js';
import * as m0029 from './0029_user_signup_locale.js';
import * as m0030 from './0030_admin_form_tokens.js';
import * as m0031 from './0031_passkey_tenant_key_rotation.js';
import * as m0032 from './0032_announce_app_secret_changes.js';
import * as m0033 from './0033_mail_outbox_link.js';
import * as m0034 from './0034_passkey_tenant_previous_api_key.js';
import * as m0035 from './0035_passkey_suspected_clone.js';
import * as m0036 from './0036_interactions_without_cookies.js';
import * as m0037 from './0037_audit_event_filters.js';
import * as m0038 from './0038_token_checker_clients.js';

/** Every migration, by name; the names sort in the order they apply. */
export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_account': m0002,
  '0003_passkey_api': m0003,
  '0004_row_change_notify': m0004,
  '0005_grants_by_account_client': m0005,
  '0006_email_verified_by_links': m0006,
  '0007_signing_key_schedule': m0007,
  '0008_tokens_hashed_ids_and_revocation': m0008,
  '0009_pooler_rate_limit_hits': m0009,
  '0010_setup_links': m0010,
  '0011_passkey_api_hanko': m0011,
  '0012_passkey_transactions': m0012,
  '0013_groups_and_claims': m0013,
  '0014_par_and_resources': m0014,
  '0015_backchannel_deliveries': m0015,
  '0016_passkey_tenant_settings': m0016,
  '0019_user_locale': m0019,
  '0020_branding': m0020,
  '0017_mail_outbox': m0017,
  '0018_email_verifications': m0018,
  '0022_announce_group_changes': m0022,
  '0023_announce_model_changes': m0023,
  '0024_announce_client_auth_failures': m0024,
  '0025_resource_machine_clients': m0025,
  '0026_passkey_audit_log_retention': m0026,
  '0027_api_key_owners': m0027,
  '0028_api_key_scopes': m0028,
  '0029_user_signup_locale': m0029,
  '0030_admin_form_tokens': m0030,
  '0031_passkey_tenant_key_rotation': m0031,
  '0032_announce_app_secret_changes': m0032,
  '0033_mail_outbox_link': m0033,
  '0034_passkey_tenant_previous_api_key': m0034,
  '0035_passkey_suspected_clone': m0035,
  '0036_interactions_without_cookies': m0036,
  '0037_audit_event_filters': m0037,
  '0038_token_checker_clients': m0038,
};
