import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../logger.js';

/**
 * How a sent redirect URI differs from a registered one that is nearly it, in the few ways
 * an app's configuration usually goes wrong: a trailing slash, the port, http for https, the
 * host's letter case. Undefined when none of the registered ones is that near.
 */
export function nearMiss(sent: string, registered: readonly string[]): string | undefined {
  if (!URL.canParse(sent)) return undefined;
  const url = new URL(sent);
  for (const candidate of registered) {
    // A URL that parses may still not rebuild (`foo:[`, `x:a b` with another scheme): such a
    // candidate is just not near. Thrown here, inside the provider's error event, it made the
    // refusal a 500.
    try {
      const hint = nearMissOf(url, sent, new URL(candidate), candidate);
      if (hint) return hint;
    } catch {}
  }
  return undefined;
}

function nearMissOf(url: URL, sent: string, other: URL, candidate: string): string | undefined {
  const same = (a: URL, b: URL) => a.href === b.href;
  const withPath = (u: URL, path: string) => Object.assign(new URL(u.href), { pathname: path });
  const trimmed = (path: string) => (path.endsWith('/') ? path.slice(0, -1) : `${path}/`);
  if (url.pathname !== '/' && same(withPath(url, trimmed(url.pathname)), other))
    return `only its trailing slash differs from the registered ${candidate}`;
  if (url.protocol === other.protocol && url.hostname === other.hostname && url.port !== other.port) {
    if (same(Object.assign(new URL(url.href), { port: other.port }), other))
      return `only its port differs from the registered ${candidate}`;
  }
  if (
    url.protocol !== other.protocol &&
    same(new URL(`${other.protocol}${url.href.slice(url.protocol.length)}`), other)
  )
    return `only its scheme differs from the registered ${candidate}`;
  if (sent !== candidate && sent.toLowerCase() === candidate.toLowerCase())
    return `only letter case differs from the registered ${candidate}`;
  return undefined;
}

/**
 * Logs an authorization request refused for its redirect_uri. The refusal is shown on
 * Sesame's error page, in the person's browser, never to the app, and the page does not list
 * the registered URIs: without this line, whoever set the app up compares them by hand.
 */
export function logRedirectUriMismatches(
  provider: {
    on(event: 'authorization.error', listener: (ctx: KoaContextWithOIDC, error: Error) => void): unknown;
  },
  log: Logger,
): void {
  provider.on('authorization.error', (ctx, error) => {
    // A line of advice: whatever it meets, it must not turn the refusal into a 500.
    try {
      logMismatch(ctx, error, log);
    } catch {}
  });
}

function logMismatch(ctx: KoaContextWithOIDC, error: Error, log: Logger): void {
  if ((error as { error?: unknown }).error !== 'invalid_redirect_uri') return;
  const client = ctx.oidc.client;
  if (!client) return;
  const params = (ctx.oidc.params ?? (ctx.method === 'POST' ? ctx.oidc.body : ctx.query) ?? {}) as Record<
    string,
    unknown
  >;
  const sent = typeof params.redirect_uri === 'string' ? params.redirect_uri : undefined;
  const registered = client.redirectUris ?? [];
  const hint = sent === undefined ? undefined : nearMiss(sent, registered);
  log.warn('authorization request refused: its redirect_uri is not registered for the client', {
    client: client.clientId,
    redirect_uri: sent,
    registered,
    ...(hint && { hint: `${hint}; redirect URIs match exactly` }),
  });
}
