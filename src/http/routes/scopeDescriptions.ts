import type { Db } from '../../db/connect.js';
import type { Translator } from '../../i18n/catalog.js';
import { type ConsentDetails, resourcesToConsent } from '../../oidc/resourceConsent.js';
import { findResource } from '../../oidc/resources.js';

/** Scopes Sesame describes in words (the catalog's `scopes` section); others are shown by name. */
const DESCRIBED = new Set(['openid', 'email', 'profile', 'groups', 'offline_access']);

/** Scopes in words for the consent page, in the person's language. */
export function describeScopes(scopes: string[], text: Translator): string[] {
  return [...new Set(scopes)]
    .filter(Boolean)
    .map((scope) => (DESCRIBED.has(scope) ? text.t(`scopes.${scope}`) : text.t('scopes.other', { scope })));
}

/**
 * What the consent page lists, in the person's language: the scopes the request asks for,
 * then each API it names that the grant does not cover yet, by its registered name, with
 * the scopes of it asked for (listed there, not again on their own).
 */
export async function describeConsent(
  db: Db,
  interaction: { params: Record<string, unknown>; prompt: { details: Record<string, unknown> } },
  text: Translator,
): Promise<string[]> {
  const apis = resourcesToConsent(interaction.prompt.details as ConsentDetails);
  const apiScopes = new Set([...apis.values()].flat());
  const scopes = String(interaction.params.scope ?? 'openid')
    .split(' ')
    .filter((scope) => !apiScopes.has(scope));
  const named = await Promise.all(
    [...apis].map(async ([identifier, scopesOfApi]) => {
      // An API deleted since the request is named by its identifier; the token is refused anyway.
      const api = (await findResource(db, identifier))?.name ?? identifier;
      return scopesOfApi.length > 0
        ? text.t('consent.apiWithScopes', { api, scopes: scopesOfApi })
        : text.t('consent.api', { api });
    }),
  );
  return [...describeScopes(scopes, text), ...named];
}
