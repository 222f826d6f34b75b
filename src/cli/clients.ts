import type { Command } from 'commander';
import {
  ClientValidationError,
  type ClientView,
  createClient,
  deleteClient,
  getClient,
  listClients,
  rotateClientSecret,
  updateClient,
} from '../oidc/clients.js';
import { confirmOrRefuse } from './confirm.js';
import { CliError, cliActor, collect, output, table, withDatabase } from './context.js';
import { flagError } from './flags.js';

function describe(client: ClientView): string {
  return [
    `client_id:   ${client.client_id}`,
    `name:        ${client.name}`,
    `type:        ${client.public ? 'public (PKCE, no secret)' : 'confidential'}${client.application_type === 'native' ? ', native app' : ''}${client.first_party ? ', first-party' : ''}`,
    `grant types: ${client.grant_types.join(', ')}`,
    `introspects other apps' tokens: ${client.introspect_tokens ? 'yes' : 'no'}`,
    `requires PAR: ${client.require_pushed_authorization_requests ? 'yes (RFC 9126)' : 'no'}`,
    `back-channel logout URI: ${client.backchannel_logout_uri ?? '(none)'}`,
    `redirect URIs:\n${client.redirect_uris.map((u) => `  ${u}`).join('\n') || '  (none)'}`,
    `post-logout redirect URIs:\n${client.post_logout_redirect_uris.map((u) => `  ${u}`).join('\n') || '  (none)'}`,
    `allowed groups: ${client.allowed_groups.join(', ') || '(everyone)'}`,
    `created:     ${client.created_at}`,
  ].join('\n');
}

async function guard<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ClientValidationError) {
      const [field, message] = Object.entries(error.fields)[0] ?? ['client', error.message];
      throw flagError(field, message);
    }
    throw error;
  }
}

const notFound = (id: string) => new CliError(`no client with id ${id}`);

/** `sesame clients ...`: register and manage the apps that sign people in through Sesame. */
export function registerClientCommands(program: Command): void {
  const clients = program.command('clients').description('register and manage OIDC clients (apps)');

  clients
    .command('create')
    .description('register a client; its secret is shown once')
    .requiredOption('--name <name>', 'name shown to people on the consent page')
    .option('--redirect-uri <uri>', 'allowed redirect URI (repeatable)', collect, [])
    .option('--post-logout-redirect-uri <uri>', 'allowed post-logout redirect URI (repeatable)', collect, [])
    .option('--public', 'a public client (SPA, native app): PKCE only, no secret', false)
    .option('--first-party', 'trusted app: skips the consent page (in browsers; devices always ask)', false)
    .option(
      '--introspect-tokens',
      "an API that checks apps' tokens: may introspect access tokens issued to other clients (confidential only)",
      false,
    )
    .option(
      '--grant-type <type>',
      'allowed grant type (repeatable): authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code',
      collect,
    )
    .option('--logo-uri <url>', 'https URL of a logo shown on the consent page')
    .option('--require-par', 'accept authorization requests only through the PAR endpoint (RFC 9126)', false)
    .option('--backchannel-logout-uri <url>', 'where Sesame posts a logout token when a person signs out')
    .option('--json', 'print JSON')
    .action((opts) =>
      guard(() =>
        withDatabase(async (db) => {
          const { client, client_secret } = await createClient(
            db,
            {
              name: opts.name,
              redirect_uris: opts.redirectUri,
              post_logout_redirect_uris: opts.postLogoutRedirectUri,
              public: opts.public,
              first_party: opts.firstParty,
              introspect_tokens: opts.introspectTokens,
              ...(opts.grantType && { grant_types: opts.grantType }),
              ...(opts.logoUri && { logo_uri: opts.logoUri }),
              require_pushed_authorization_requests: opts.requirePar,
              ...(opts.backchannelLogoutUri !== undefined && {
                backchannel_logout_uri: opts.backchannelLogoutUri,
              }),
            },
            cliActor(),
          );
          output(opts.json, { client_id: client.client_id, ...(client_secret && { client_secret }) }, () =>
            [
              `Created client "${client.name}"`,
              `client_id:     ${client.client_id}`,
              client_secret
                ? `client_secret: ${client_secret}\n(shown once: store it now; Sesame keeps only a hash)`
                : 'public client: no secret; use PKCE',
            ].join('\n'),
          );
        }),
      ),
    );

  clients
    .command('list')
    .description('list clients (never secrets)')
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        const all = await listClients(db);
        output(opts.json, all, () =>
          table(
            ['CLIENT ID', 'NAME', 'TYPE', 'REDIRECT URIS'],
            all.map((c) => [
              c.client_id,
              c.name,
              c.public ? 'public' : 'confidential',
              c.redirect_uris.join(' '),
            ]),
          ),
        );
      }),
    );

  clients
    .command('show <id>')
    .description("show one client's settings")
    .option('--json', 'print JSON')
    .action((id: string, opts) =>
      withDatabase(async (db) => {
        const client = await getClient(db, id);
        if (!client) throw notFound(id);
        output(opts.json, client, () => describe(client));
      }),
    );

  clients
    .command('update <id>')
    .description("change a client's settings; list options replace the whole list")
    .option('--name <name>', 'new name')
    .option('--redirect-uri <uri>', 'redirect URI (repeatable; replaces the list)', collect)
    .option(
      '--post-logout-redirect-uri <uri>',
      'post-logout redirect URI (repeatable; replaces the list)',
      collect,
    )
    .option('--first-party', 'skip the consent page (in browsers; devices always ask)')
    .option('--no-first-party', 'show the consent page')
    .option(
      '--introspect-tokens',
      "an API that checks apps' tokens: may introspect access tokens issued to other clients (confidential only)",
    )
    .option('--no-introspect-tokens', 'may introspect only its own tokens')
    .option('--grant-type <type>', 'grant type (repeatable; replaces the list)', collect)
    .option('--logo-uri <url>', 'https URL of a logo')
    .option('--require-par', 'accept authorization requests only through the PAR endpoint (RFC 9126)')
    .option('--no-require-par', 'accept plain authorization requests too')
    .option('--backchannel-logout-uri <url>', 'where Sesame posts a logout token when a person signs out')
    .option('--no-backchannel-logout-uri', 'post no logout tokens to this app')
    .option(
      '--allowed-group <group>',
      'only members of this group (id or name) may sign in (repeatable; replaces the list)',
      collect,
    )
    .option('--allow-all-groups', 'let everyone sign in again (clears the allowed groups)')
    .option('--json', 'print JSON')
    .action((id: string, opts) =>
      guard(() =>
        withDatabase(async (db) => {
          if (opts.allowedGroup && opts.allowAllGroups)
            throw new CliError('--allow-all-groups: cannot be combined with --allowed-group');
          const client = await updateClient(
            db,
            id,
            {
              ...(opts.name !== undefined && { name: opts.name }),
              ...(opts.redirectUri && { redirect_uris: opts.redirectUri }),
              ...(opts.postLogoutRedirectUri && { post_logout_redirect_uris: opts.postLogoutRedirectUri }),
              ...(opts.firstParty !== undefined && { first_party: opts.firstParty }),
              ...(opts.introspectTokens !== undefined && { introspect_tokens: opts.introspectTokens }),
              ...(opts.grantType && { grant_types: opts.grantType }),
              ...(opts.logoUri !== undefined && { logo_uri: opts.logoUri }),
              ...(opts.requirePar !== undefined && {
                require_pushed_authorization_requests: opts.requirePar,
              }),
              // `--no-backchannel-logout-uri` sets false: the URI is removed.
              ...(opts.backchannelLogoutUri !== undefined && {
                backchannel_logout_uri:
                  opts.backchannelLogoutUri === false ? null : opts.backchannelLogoutUri,
              }),
              ...(opts.allowedGroup && { allowed_groups: opts.allowedGroup }),
              ...(opts.allowAllGroups && { allowed_groups: [] }),
            },
            cliActor(),
          );
          if (!client) throw notFound(id);
          output(opts.json, client, () => `Updated client ${id}\n${describe(client)}`);
        }),
      ),
    );

  clients
    .command('rotate-secret <id>')
    .description('replace the secret; the old one stops working at once')
    .option('--json', 'print JSON')
    .action((id: string, opts) =>
      withDatabase(async (db) => {
        const rotated = await rotateClientSecret(db, id, cliActor());
        if (!rotated) throw new CliError(`no confidential client with id ${id}`);
        output(
          opts.json,
          rotated,
          () => `client_id:     ${id}\nclient_secret: ${rotated.client_secret}\n(shown once)`,
        );
      }),
    );

  clients
    .command('delete <id>')
    .description('delete a client and revoke every grant and token issued to it')
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts) => {
      await confirmOrRefuse(`Delete client ${id} and revoke every grant and token issued to it?`, opts.yes);
      return withDatabase(async (db) => {
        if (!(await deleteClient(db, id, cliActor()))) throw notFound(id);
        output(
          opts.json,
          { client_id: id, deleted: true },
          () => `Deleted client ${id}; its grants and tokens are revoked`,
        );
      });
    });
}
