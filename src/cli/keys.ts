import type { Command } from 'commander';
import { resealKeys } from '../keysAtRest.js';
import { cookieKeyRotationView, rotateCookieKey } from '../oidc/cookieKeys.js';
import { KEY_ACTIVATION_DELAY_SECONDS, rotateSigningKeys, signingKeyRotationView } from '../oidc/keys.js';
import { cliActor, output, table, withDatabase } from './context.js';
import { activationFromFlags, seconds } from './flags.js';

/** `sesame keys ...`: the keys Sesame signs tokens and cookies with. */
export function registerKeyCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description('manage the keys Sesame signs tokens and cookies with, and their encryption at rest');

  keys
    .command('rotate')
    .description(
      'add new signing keys: published at once, signing after a delay; the old ones sign until then and stay published 31 days more (apps present old ID tokens at sign-out)',
    )
    .option(
      '--activate-in <seconds>',
      'how long apps get to fetch the new keys before they sign (0: at once, for a key thought exposed)',
      seconds,
      KEY_ACTIVATION_DELAY_SECONDS,
    )
    .option(
      '--revoke-previous',
      "also remove every earlier key from the JWKS and from signing at once (a key known exposed); tokens it signed stop verifying. Implies --activate-in 0. Passkey API apps have keys of their own: see 'sesame passkey-api rotate-signing-key'",
    )
    .option('--json', 'print JSON')
    .action((opts: { activateIn: number; revokePrevious?: boolean; json?: boolean }, command: Command) => {
      const activation = activationFromFlags(opts, command, 'the new keys');
      return withDatabase(async (db, config) => {
        const rotation = await rotateSigningKeys(db, config, cliActor(), activation);
        const { kids, activatesAt, revokedKids } = rotation;
        output(Boolean(opts.json), signingKeyRotationView(rotation, activation.revokePrevious), () =>
          [
            `New signing keys: ${kids.join(', ')}`,
            `Published now; they sign from ${activatesAt.toISOString()}. Running servers pick them up at once (within 2 s behind a pooler without DATABASE_DIRECT_URL).`,
            ...(activation.revokePrevious
              ? [
                  `Revoked: ${revokedKids.join(', ') || 'none'}. Tokens they signed no longer verify; apps that check ID tokens will ask people to sign in again.`,
                ]
              : []),
          ].join('\n'),
        );
      });
    });

  keys
    .command('rotate-cookie-key')
    .description(
      "add a new key for Sesame's cookies (sessions, sign-ins in progress): it verifies at once and signs after a minute, when every running server knows it; the old keys sign until then and still verify for 15 days",
    )
    .option(
      '--revoke-previous',
      'also delete every earlier cookie key at once (a key known exposed): everyone is signed out of Sesame and sign-ins in progress start again',
    )
    .option('--json', 'print JSON')
    .action((opts: { revokePrevious?: boolean; json?: boolean }) =>
      withDatabase(async (db, config) => {
        const revokePrevious = Boolean(opts.revokePrevious);
        const rotation = await rotateCookieKey(db, config, cliActor(), { revokePrevious });
        const until = rotation.previousKeysVerifyUntil?.toISOString() ?? null;
        output(Boolean(opts.json), cookieKeyRotationView(rotation), () => {
          const removed = `${rotation.removedKeys} earlier cookie ${rotation.removedKeys === 1 ? 'key' : 'keys'}`;
          return [
            revokePrevious
              ? 'New cookie key: it signs from now on. Running servers pick it up at once (within 2 s behind a pooler without DATABASE_DIRECT_URL).'
              : `New cookie key: every running server knows it within seconds, and it signs from ${rotation.activatesAt.toISOString()}.`,
            ...(revokePrevious
              ? [
                  `Revoked ${removed}: everyone is signed out of Sesame and sign-ins in progress start again. Apps' own sessions and tokens are not affected.`,
                ]
              : [
                  ...(until ? [`Earlier keys still verify until ${until}, so nobody is signed out.`] : []),
                  ...(rotation.removedKeys ? [`Deleted ${removed} whose grace had ended.`] : []),
                ]),
          ].join('\n');
        });
      }),
    );

  keys
    .command('reseal')
    .description(
      "seal every stored private key (signing keys, cookie keys, passkey API apps' keys) and the bodies of mails not yet sent with KEY_ENCRYPTION_SECRET, in one transaction: those sealed with KEY_ENCRYPTION_SECRET_PREVIOUS, those an older Sesame sealed without binding them to their rows, and those in plain text. Run it once every instance runs with both secrets; then remove KEY_ENCRYPTION_SECRET_PREVIOUS and restart them. Refuses, changing nothing, when a key opens with neither secret, or while every key is in plain text (a start with KEY_ENCRYPTION_SECRET seals them)",
    )
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withDatabase(
        async (db, config) => {
          const reseal = await resealKeys(db, config, cliActor());
          const rows = [
            ['signing keys', 'signing_keys'],
            ['cookie keys', 'cookie_keys'],
            ["passkey API apps' keys", 'passkey_tenant_keys'],
            ['queued mails', 'mail_outbox'],
          ] as const;
          output(
            Boolean(opts.json),
            {
              resealed: reseal.resealed,
              sealed: reseal.sealed,
              unchanged: reseal.unchanged,
              unreadable_mails: reseal.unreadableMails,
            },
            () =>
              [
                'Sealed with KEY_ENCRYPTION_SECRET:',
                table(
                  [
                    '',
                    're-sealed (were under the previous secret, or not bound to their rows)',
                    'sealed (were plain text)',
                    'already sealed',
                  ],
                  rows.map(([label, store]) => [
                    label,
                    String(reseal.resealed[store]),
                    String(reseal.sealed[store]),
                    String(reseal.unchanged[store]),
                  ]),
                ),
                ...(reseal.unreadableMails
                  ? [
                      `${reseal.unreadableMails} queued ${reseal.unreadableMails === 1 ? 'mail opens' : 'mails open'} with neither secret: left as ${reseal.unreadableMails === 1 ? 'it is' : 'they are'}, ${reseal.unreadableMails === 1 ? 'it' : 'they'} cannot be sent.`,
                    ]
                  : []),
                config.keyEncryptionSecretPrevious
                  ? 'Nothing stored needs KEY_ENCRYPTION_SECRET_PREVIOUS any more: remove it and restart the instances.'
                  : 'Every stored key opens with KEY_ENCRYPTION_SECRET.',
              ].join('\n'),
          );
        },
        { sealsKeys: true },
      ),
    );
}
