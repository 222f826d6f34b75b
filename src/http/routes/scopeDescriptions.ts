import type { Translator } from '../../i18n/catalog.js';

/** Scopes Sesame describes in words (the catalog's `scopes` section); others are shown by name. */
const DESCRIBED = new Set(['openid', 'email', 'profile', 'groups', 'offline_access']);

/** Scopes in words for the consent page, in the person's language. */
export function describeScopes(scopes: string[], text: Translator): string[] {
  return [...new Set(scopes)]
    .filter(Boolean)
    .map((scope) => (DESCRIBED.has(scope) ? text.t(`scopes.${scope}`) : text.t('scopes.other', { scope })));
}
