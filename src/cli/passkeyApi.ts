import type { Command } from 'commander';
import { TenantValidationError, tenantRelyingPartySettings } from '../passkeyApi/relyingParty.js';
import {
  createTenant,
  deleteTenant,
  listTenants,
  rotateTenantApiKey,
  tenantView,
} from '../passkeyApi/tenants.js';
import { CliError, cliActor, collect, output, table, withDatabase } from './context.js';
import { flagError } from './flags.js';

const notFound = (id: string) => new CliError(`no passkey API tenant with id ${id}`);

/** `sesame passkey-api ...`: apps that run the passkey ceremony themselves (Hanko-compatible API). */
export function registerPasskeyApiCommands(program: Command): void {
  const tenants = program
    .command('passkey-api')
    .description('manage tenants of the passkey API (apps that run the passkey dialog in their own pages)');

  tenants
    .command('create')
    .description('register an app; its API key is shown once')
    .requiredOption('--name <name>', "the app's name, shown by authenticators as the relying party")
    .option('--origin <origin>', "an origin the app's pages are served from (repeatable)", collect, [])
    .option('--rp-id <domain>', "WebAuthn RP ID (default: the first origin's host)")
    .option('--json', 'print JSON')
    .action((opts) => {
      const input = { name: opts.name, origins: opts.origin, rpId: opts.rpId };
      try {
        // Checked before the database is opened, so a typo fails at once.
        tenantRelyingPartySettings(input);
      } catch (error) {
        if (error instanceof TenantValidationError) throw flagError(error.field, error.message);
        throw error;
      }
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
    .command('rotate-key <id>')
    .description('replace the API key; the old one stops working at once')
    .option('--json', 'print JSON')
    .action((id: string, opts) =>
      withDatabase(async (db) => {
        const apiKey = await rotateTenantApiKey(db, id, cliActor());
        if (!apiKey) throw notFound(id);
        output(
          opts.json,
          { tenant_id: id, api_key: apiKey },
          () => `tenant_id: ${id}\napi_key:   ${apiKey}\n(shown once)`,
        );
      }),
    );

  tenants
    .command('delete <id>')
    .description('delete a tenant with all its users and passkeys')
    .option('--json', 'print JSON')
    .action((id: string, opts) =>
      withDatabase(async (db) => {
        if (!(await deleteTenant(db, id, cliActor()))) throw notFound(id);
        output(
          opts.json,
          { tenant_id: id, deleted: true },
          () => `Deleted passkey API tenant ${id} with its users and passkeys`,
        );
      }),
    );
}
