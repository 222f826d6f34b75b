/** Scopes in words for the consent page; unknown scopes are shown by name. */
const DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are (a stable account identifier)',
  email: 'See your email address',
  profile: 'See your name and the details an administrator added to your account',
  groups: 'See which groups you are in',
  offline_access: 'Stay signed in and access your account while you are away',
};

export function describeScopes(scopes: string[]): string[] {
  return [...new Set(scopes)].filter(Boolean).map((s) => DESCRIPTIONS[s] ?? `Use the "${s}" permission`);
}
