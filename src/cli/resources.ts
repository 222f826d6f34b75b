import type { Command } from 'commander';
import {
  allowMachineClient,
  createResource,
  deleteResource,
  denyMachineClient,
  listResources,
  ResourceValidationError,
  type ResourceView,
} from '../oidc/resources.js';
import { confirmOrRefuse } from './confirm.js';
import { CliError, cliActor, collect, output, table, withDatabase } from './context.js';
import { flagError } from './flags.js';

/** `sesame resources ...`: APIs (RFC 8707 resource servers) that get JWT access tokens. */
export function registerResourceCommands(program: Command): void {
  const resources = program
    .command('resources')
    .description('register APIs that receive JWT access tokens (resource indicators, RFC 8707)');

  resources
    .command('create')
    .description('register an API; apps ask for tokens for it with resource=<identifier>')
    .requiredOption('--identifier <uri>', 'the API’s URI, e.g. https://api.example.com; the tokens’ aud')
    .option('--scope <scope>', 'a scope the API defines (repeatable)', collect, [])
    .option('--name <name>', 'a name for admins (default: the identifier)')
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        try {
          const resource = await createResource(
            db,
            {
              identifier: opts.identifier,
              scopes: opts.scope,
              ...(opts.name !== undefined && { name: opts.name }),
            },
            cliActor(),
          );
          output(opts.json, resource, () =>
            [
              `Registered API "${resource.name}"`,
              `id:         ${resource.id}`,
              `identifier: ${resource.identifier}`,
              `scopes:     ${resource.scopes.join(' ') || '(none)'}`,
            ].join('\n'),
          );
        } catch (error) {
          if (error instanceof ResourceValidationError) throw flagError(error.field, error.reason);
          throw error;
        }
      }),
    );

  resources
    .command('list')
    .description('list registered APIs')
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        const all = await listResources(db);
        output(opts.json, all, () =>
          table(
            ['ID', 'IDENTIFIER', 'NAME', 'SCOPES', 'CLIENT_CREDENTIALS CLIENTS'],
            all.map((r) => [
              r.id,
              r.identifier,
              r.name,
              r.scopes.join(' '),
              Object.keys(r.machine_clients).join(' '),
            ]),
          ),
        );
      }),
    );

  resources
    .command('allow-client <id-or-identifier> <client-id>')
    .description('let a client get client_credentials tokens for the API (no other client can)')
    .option(
      '--scope <scope>',
      'a scope of the API it may get (repeatable; default: all of them)',
      collect,
      [],
    )
    .option('--json', 'print JSON')
    .action((id: string, clientId: string, opts) =>
      withDatabase(async (db) => {
        let resource: ResourceView | undefined;
        try {
          resource = await allowMachineClient(db, id, clientId, opts.scope, cliActor());
        } catch (error) {
          if (!(error instanceof ResourceValidationError)) throw error;
          if (error.field === 'scopes') throw flagError(error.field, error.reason);
          throw new CliError(error.reason);
        }
        if (!resource) throw new CliError(`no API with id or identifier ${id}`);
        const scopes = resource.machine_clients[clientId]!;
        output(
          opts.json,
          resource,
          () =>
            `${clientId} may get client_credentials tokens for ${resource.identifier}, scopes: ${scopes.join(' ') || '(none)'}`,
        );
      }),
    );

  resources
    .command('deny-client <id-or-identifier> <client-id>')
    .description('stop a client getting client_credentials tokens for the API (issued ones last their hour)')
    .option('--json', 'print JSON')
    .action((id: string, clientId: string, opts) =>
      withDatabase(async (db) => {
        const resource = await denyMachineClient(db, id, clientId, cliActor());
        if (!resource) throw new CliError(`no API with id or identifier ${id}`);
        output(
          opts.json,
          resource,
          () => `${clientId} gets no more client_credentials tokens for ${resource.identifier}`,
        );
      }),
    );

  resources
    .command('delete <id-or-identifier>')
    .description('delete an API; new tokens for it are refused (issued ones last until they expire)')
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts) => {
      await confirmOrRefuse(`Delete the API ${id}? Apps can no longer get tokens for it.`, opts.yes);
      return withDatabase(async (db) => {
        if (!(await deleteResource(db, id, cliActor())))
          throw new CliError(`no API with id or identifier ${id}`);
        output(opts.json, { id, deleted: true }, () => `Deleted API ${id}`);
      });
    });
}
