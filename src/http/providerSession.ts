import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Config } from '../config.js';
import { TTL } from '../oidc/ttl.js';

/**
 * Signs a browser in to Sesame after a passkey ceremony that happened outside an OIDC
 * interaction (a one-time link): a fresh provider session, exactly what the login step
 * leaves behind, so the account pages and later app sign-ins see the person as signed in.
 * A session this browser already had is ended first: its authorizations belong to
 * whoever was signed in before, and a new session id also rules out session fixation.
 */
export async function startProviderSession(
  ctx: Context,
  provider: Provider,
  config: Pick<Config, 'secureCookies'>,
  login: { accountId: string; amr: string[] },
): Promise<void> {
  const previous = await provider.Session.get(ctx);
  if (previous.accountId) await previous.destroy();

  const session = new (provider.Session as unknown as new () => InstanceType<Provider['Session']>)();
  session.loginAccount({ accountId: login.accountId, amr: login.amr });
  await session.save(TTL.Session);

  // The cookie holds the session id (its jti). The provider's own cookie jar signs with its cookie keys, as its session middleware does.
  const cookies = provider.createContext(ctx.req, ctx.res).cookies;
  cookies.secure = ctx.secure || cookies.secure;
  cookies.set(provider.cookieName('session'), session.jti, {
    signed: true,
    httpOnly: true,
    sameSite: 'lax',
    secure: config.secureCookies,
    expires: new Date(Date.now() + TTL.Session * 1000),
  });
}
