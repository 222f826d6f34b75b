import type { Command } from 'commander';
import { KEY_ACTIVATION_DELAY_SECONDS } from '../oidc/keys.js';
import { TenantValidationError, tenantRelyingPartySettings } from '../passkeyApi/relyingParty.js';
import {
  type TenantSettingsChangeInput,
  tenantSettingsChange,
  tenantSettingsChangeSchema,
} from '../passkeyApi/tenantSettings.js';
import {
  changeTenantSettings,
  createTenant,
  deleteTenant,
  listTenants,
  MAX_PREVIOUS_API_KEY_SECONDS,
  rotateTenantApiKey,
  rotateTenantSigningKey,
  tenantApiKeyRotationView,
  tenantSigningKeyRotationView,
  tenantView,
} from '../passkeyApi/tenants.js';
import { deleteTenantUser } from '../passkeyApi/tenantUsers.js';
import { confirmOrRefuse } from './confirm.js';
import { CliError, cliActor, collect, output, table, withDatabase } from './context.js';
import { activationFromFlags, flagError, seconds } from './flags.js';

const notFound = (id: string) => new CliError(`no passkey API tenant with id ${id}`);

/** A whole number stays a string when it is not one, so the schema's message names the flag. */
const integerFlag = (value: string | undefined) =>
  value !== undefined && /^\d+$/.test(value) ? Number(value) : value;

/** A tenant rule broken by a flag's value, as one line naming the flag. */
async function namingTheFlag<T>(run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof TenantValidationError) throw flagError(error.field, error.message);
    throw error;
  }
}

/** The `update` flags as a settings change, checked before the database is opened. */
function settingsChangeFromFlags(
  opts: Record<string, string | undefined> & { origin?: string[] },
): TenantSettingsChangeInput {
  const ceremony = (prefix: '' | 'mfa') => {
    const flag = (name: string) => opts[prefix ? `${prefix}${name[0]!.toUpperCase()}${name.slice(1)}` : name];
    const given = {
      user_verification: flag('userVerification'),
      attachment: flag('attachment'),
      resident_key_requirement: flag('residentKey'),
      attestation_preference: flag('attestation'),
      timeout: integerFlag(flag('timeout')),
    };
    return Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined));
  };
  const result = tenantSettingsChangeSchema.safeParse({
    name: opts.name,
    origins: opts.origin,
    webauthn: ceremony(''),
    mfa: ceremony('mfa'),
  });
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  if (!issue?.path.length) {
    throw new CliError('give at least one setting to change (see sesame passkey-api update --help)');
  }
  throw flagError(issue.path.join('.'), issue.message);
}

/** `sesame passkey-api ...`: apps that run the passkey ceremony themselves (Hanko-compatible API). */
export function registerPasskeyApiCommands(program: Command): void {
  const tenants = program
    .command('passkey-api')
    .description('manage tenants of the passkey API (apps that run the passkey dialog in their own pages)');

  tenants
    .command('create')
    .description('register an app; its API key is shown once')
    .requiredOption('--name <name>', "the app's name, shown by authenticators as the relying party")
    .option(
      '--origin <origin>',
      "an origin the app's pages are served from, or an Android app's android:apk-key-hash:... (repeatable)",
      collect,
      [],
    )
    .option('--rp-id <domain>', "WebAuthn RP ID (default: the first web origin's host)")
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const input = { name: opts.name, origins: opts.origin, rpId: opts.rpId };
      // Checked before the database is opened, so a typo fails at once.
      await namingTheFlag(() => tenantRelyingPartySettings(input));
      return withDatabase(async (db, config) => {
        const { tenant, apiKey } = await createTenant(db, config, input, cliActor());
        output(opts.json, { tenant_id: tenant.id, api_key: apiKey }, () =>
          [
            `Created passkey API tenant "${tenant.name}"`,
            `tenant_id: ${tenant.id}`,
            `api_key:   ${apiKey}`,
            '(shown once: store it on the app server; Sesame keeps only a hash)',
            `base URL:  ${config.issuer}/passkey-api/`,
            `RP ID:     ${tenant.rpId}`,
            `origins:   ${tenant.origins.join(' ')}`,
          ].join('\n'),
        );
      });
    });

  tenants
    .command('list')
    .description('list tenants (never keys)')
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        const all = (await listTenants(db)).map(tenantView);
        output(opts.json, all, () =>
          table(
            ['TENANT ID', 'NAME', 'RP ID', 'ORIGINS'],
            all.map((t) => [t.tenant_id, t.name, t.rp_id, t.origins.join(' ')]),
          ),
        );
      }),
    );

  tenants
    .command('update <id>')
    .description(
      "change the tenant's name, origins or WebAuthn settings for passkeys and for second factors (MFA)",
    )
    .option('--name <name>', "the app's new name, shown by authenticators as the relying party")
    .option(
      '--origin <origin>',
      "the app's origins, replacing the list (repeatable); each web origin must be on the RP ID, which stays",
      collect,
    )
    .option('--user-verification <uv>', 'required | preferred | discouraged (default: required)')
    .option(
      '--attachment <attachment>',
      'platform | cross-platform | none (default: none, any authenticator)',
    )
    .option('--resident-key <requirement>', 'required | preferred | discouraged (default: required)')
    .option('--attestation <preference>', 'none | indirect | direct | enterprise (default: none)')
    .option('--timeout <ms>', 'ceremony timeout in milliseconds, 10000 to 600000 (default: 300000)')
    .option('--mfa-user-verification <uv>', 'the same for second factors (default: preferred)')
    .option('--mfa-attachment <attachment>', 'the same for second factors (default: cross-platform)')
    .option('--mfa-resident-key <requirement>', 'the same for second factors (default: discouraged)')
    .option('--mfa-attestation <preference>', 'the same for second factors (default: direct)')
    .option('--mfa-timeout <ms>', 'the same for second factors (default: 300000)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts) => {
      const change = await namingTheFlag(() => tenantSettingsChange(settingsChangeFromFlags(opts)));
      return withDatabase(async (db) => {
        const tenant = await namingTheFlag(() => changeTenantSettings(db, id, change, cliActor()));
        if (!tenant) throw notFound(id);
        const view = tenantView(tenant);
        const describe = (label: string, s: typeof view.webauthn) =>
          `${label}: user verification ${s.user_verification}, attachment ${s.attachment}, resident key ${s.resident_key_requirement}, attestation ${s.attestation_preference}, timeout ${s.timeout} ms`;
        output(opts.json, view, () =>
          [
            `Updated passkey API tenant "${view.name}"`,
            `origins:  ${view.origins.join(' ')}`,
            describe('passkeys', view.webauthn),
            describe('MFA     ', view.mfa),
          ].join('\n'),
        );
      });
    });

  tenants
    .command('rotate-key <id>')
    .description('replace the API key; the old one stops working at once unless --keep-previous-for is given')
    .option(
      '--keep-previous-for <seconds>',
      `let the old key work beside the new one this long, while the app's servers take the new one (at most ${MAX_PREVIOUS_API_KEY_SECONDS}); without it, the old key and any earlier one still in its overlap stop at once`,
      seconds,
    )
    .option('--json', 'print JSON')
    .action((id: string, opts: { keepPreviousFor?: number; json?: boolean }) => {
      if (opts.keepPreviousFor !== undefined && opts.keepPreviousFor > MAX_PREVIOUS_API_KEY_SECONDS) {
        throw new CliError(`--keep-previous-for: at most ${MAX_PREVIOUS_API_KEY_SECONDS} seconds (30 days)`);
      }
      return withDatabase(async (db) => {
        const rotated = await rotateTenantApiKey(db, id, cliActor(), {
          keepPreviousForSeconds: opts.keepPreviousFor,
        });
        if (!rotated) throw notFound(id);
        const until = rotated.previousKeyExpiresAt;
        output(Boolean(opts.json), tenantApiKeyRotationView(rotated), () =>
          [
            `tenant_id: ${rotated.tenantId}`,
            `api_key:   ${rotated.apiKey}`,
            '(shown once)',
            until ? `The old key works until ${until.toISOString()}.` : 'The old key no longer works.',
          ].join('\n'),
        );
      });
    });

  tenants
    .command('rotate-signing-key <id>')
    .description(
      "add a new key that signs the app's tokens: published in its JWKS at once, signing after a delay; the old key signs until then and stays published until tokens it signed expire",
    )
    .option(
      '--activate-in <seconds>',
      "how long the app's server gets to fetch the new key before it signs (0: at once)",
      seconds,
      KEY_ACTIVATION_DELAY_SECONDS,
    )
    .option(
      '--revoke-previous',
      "also remove the app's earlier keys from its JWKS and from signing at once (a key known exposed); tokens they signed stop verifying. Implies --activate-in 0",
    )
    .option('--json', 'print JSON')
    .action(
      (
        id: string,
        opts: { activateIn: number; revokePrevious?: boolean; json?: boolean },
        command: Command,
      ) => {
        const activation = activationFromFlags(opts, command, 'the new key');
        return withDatabase(async (db, config) => {
          const rotated = await rotateTenantSigningKey(db, config, id, cliActor(), activation);
          if (!rotated) throw notFound(id);
          const { tenantId, kid, activatesAt, revokedKids } = rotated;
          output(Boolean(opts.json), tenantSigningKeyRotationView(rotated, activation.revokePrevious), () =>
            [
              `New signing key for passkey API tenant ${tenantId}: ${kid}`,
              `Published in its JWKS now; it signs from ${activatesAt.toISOString()}.`,
              ...(activation.revokePrevious
                ? [`Revoked: ${revokedKids.join(', ') || 'none'}. Tokens they signed no longer verify.`]
                : []),
            ].join('\n'),
          );
        });
      },
    );

  tenants
    .command('delete <id>')
    .description('delete a tenant with all its users and passkeys')
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts) => {
      await confirmOrRefuse(`Delete passkey API tenant ${id} with all its users and passkeys?`, opts.yes);
      return withDatabase(async (db) => {
        const deleted = await deleteTenant(db, id, cliActor());
        if (!deleted) throw notFound(id);
        output(
          opts.json,
          { tenant_id: deleted, deleted: true },
          () => `Deleted passkey API tenant ${deleted} with its users and passkeys`,
        );
      });
    });

  tenants
    .command('delete-user <tenant> <user-id>')
    .description(
      "erase one of the app's users: its names, passkeys, MFA credentials, transactions and pending ceremonies (the audit log keeps the user id)",
    )
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (tenantId: string, userId: string, opts) => {
      await confirmOrRefuse(
        `Erase user ${userId} of passkey API tenant ${tenantId} with its passkeys?`,
        opts.yes,
      );
      return withDatabase(async (db) => {
        const erased = await deleteTenantUser(db, tenantId, userId, cliActor());
        if (erased === 'no_tenant') throw notFound(tenantId);
        if (erased === 'no_user')
          throw new CliError(`passkey API tenant ${tenantId} has no user with id ${userId}`);
        output(
          opts.json,
          { tenant_id: tenantId, user_id: userId, deleted: true },
          () => `Erased user ${userId} of passkey API tenant ${tenantId} with its passkeys`,
        );
      });
    });
}
