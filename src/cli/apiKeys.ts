import type { Command } from 'commander';
import {
  API_KEY_SCOPE_REACH,
  API_KEY_SCOPES,
  ApiKeyValidationError,
  createApiKey,
  listApiKeys,
  revokeApiKey,
} from '../admin/apiKeys.js';
import { CliError, cliActor, output, table, withDatabase } from './context.js';
import { flagError } from './flags.js';

/** `sesame api-keys ...`: keys for the admin REST API (`Authorization: Bearer <key>`). */
export function registerApiKeyCommands(program: Command): void {
  const apiKeys = program.command('api-keys').description('manage keys for the admin API (/api/admin)');

  apiKeys
    .command('create')
    .description('create an API key; the key is shown once')
    .requiredOption('--name <name>', 'what the key is for, e.g. "terraform"')
    .option(
      '--scope <scope>',
      `what it opens: ${API_KEY_SCOPES.map((scope) => `${scope} (${API_KEY_SCOPE_REACH[scope]})`).join(' or ')}`,
      'admin',
    )
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        try {
          const { apiKey, key } = await createApiKey(db, opts.name, cliActor(), opts.scope);
          output(opts.json, { id: apiKey.id, scope: apiKey.scope, key }, () =>
            [
              `Created API key "${apiKey.name}"`,
              `id:    ${apiKey.id}`,
              `scope: ${apiKey.scope}`,
              `key:   ${key}`,
              '(shown once: store it now; Sesame keeps only a hash)',
            ].join('\n'),
          );
        } catch (error) {
          // Named by the flag an operator typed: `--scope: must be one of ...`.
          if (error instanceof ApiKeyValidationError) throw flagError(error.field, error.reason);
          throw error;
        }
      }),
    );

  apiKeys
    .command('list')
    .description('list API keys (never the keys themselves)')
    .option('--json', 'print JSON')
    .action((opts) =>
      withDatabase(async (db) => {
        const all = await listApiKeys(db);
        output(opts.json, all, () =>
          table(
            ['ID', 'NAME', 'SCOPE', 'CREATED BY', 'CREATED', 'LAST USED', 'STATUS'],
            all.map((k) => [
              k.id,
              k.name,
              k.scope,
              k.created_by ?? 'unknown',
              k.created_at,
              k.last_used_at ?? 'never',
              k.revoked_at ? `revoked ${k.revoked_at}` : 'active',
            ]),
          ),
        );
      }),
    );

  apiKeys
    .command('revoke <id>')
    .description(
      'revoke an API key; requests with it are refused at once, and the unused links it issued are cancelled',
    )
    .option('--json', 'print JSON')
    .action((id: string, opts) =>
      withDatabase(async (db) => {
        const result = await revokeApiKey(db, id, cliActor());
        if (!result) throw new CliError(`no API key with id ${id}`);
        const links = result.cancelledLinks;
        const cancelled =
          links > 0 ? `; cancelled ${links} unused link${links === 1 ? '' : 's'} it issued` : '';
        output(opts.json, { ...result.apiKey, cancelled_links: links }, () =>
          result.alreadyRevoked
            ? `API key ${id} was already revoked${cancelled}`
            : `Revoked API key ${id} ("${result.apiKey.name}")${cancelled}`,
        );
      }),
    );
}
