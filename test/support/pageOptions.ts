import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';

const ENTITIES: Record<string, string> = { quot: '"', '#39': "'", lt: '<', gt: '>', amp: '&' };

/**
 * The passkey request options a login page carries for its autofill (`data-passkey-options`,
 * HTML-escaped JSON), as the page's script reads them; undefined when the page has none.
 */
export function passkeyOptionsIn(html: string): PublicKeyCredentialRequestOptionsJSON | undefined {
  const match = /data-passkey-options="([^"]*)"/.exec(html);
  if (!match) return undefined;
  const json = match[1]!.replace(/&(quot|#39|lt|gt|amp);/g, (_, name: string) => ENTITIES[name]!);
  return JSON.parse(json) as PublicKeyCredentialRequestOptionsJSON;
}
