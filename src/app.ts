import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Router from '@koa/router';
import Koa from 'koa';
import compose from 'koa-compose';
import type Provider from 'oidc-provider';
import { SPENT_ADMIN_FORM_TOKENS_KEPT_DAYS } from './admin/formTokens.js';
import { BrandStore } from './branding/brand.js';
import type { Config } from './config.js';
import type { DatabaseHandle, Db } from './db/connect.js';
import { GroupedUpserts } from './db/groupedUpserts.js';
import { MemoryHitCounter, PostgresHitCounter } from './db/hitCounter.js';
import { adminFormTokensQueries } from './db/queries/adminFormTokens.js';
import { auditQueries } from './db/queries/audit.js';
import { backchannelDeliveriesQueries } from './db/queries/backchannelDeliveries.js';
import { challengesQueries } from './db/queries/challenges.js';
import { emailVerificationsQueries } from './db/queries/emailVerifications.js';
import { mailOutboxQueries } from './db/queries/mailOutbox.js';
import { oidcModelsQueries } from './db/queries/oidcModels.js';
import { oneTimeTokensQueries } from './db/queries/oneTimeTokens.js';
import { passkeyTenantAuditLogsQueries } from './db/queries/passkeyTenantAuditLogs.js';
import { keepCachesInStep } from './db/rowCache.js';
import { HttpError, notFound } from './http/errors.js';
import { LiveCookieKeys } from './http/liveCookieKeys.js';
import { Csrf } from './http/middleware/csrf.js';
import { errorHandler } from './http/middleware/errors.js';
import { httpMetrics } from './http/middleware/httpMetrics.js';
import { issuerHeaderPinner, issuerOrigin } from './http/middleware/issuerOrigin.js';
import { pageLanguage } from './http/middleware/language.js';
import {
  DEVICE_CODE_ENTRIES_PER_IP,
  keyedRateLimit,
  rateLimit,
  rateLimitKey,
} from './http/middleware/rateLimit.js';
import { requestLog } from './http/middleware/requestLog.js';
import { formsStayHere, securityHeaderSetter } from './http/middleware/securityHeaders.js';
import { staticFiles } from './http/middleware/staticFiles.js';
import { POST_AS_GET_PATHS, redirectPostAsGet } from './http/postAsGet.js';
import { frontDoor, refuseLargeBody } from './http/providerApi.js';
import { routersByPath } from './http/router.js';
import { accountRoutes } from './http/routes/account.js';
import { accountSessionRoutes } from './http/routes/accountSession.js';
import { adminApiRoutes } from './http/routes/adminApi.js';
import { adminPagesRoutes } from './http/routes/adminPages.js';
import { brandRoutes } from './http/routes/brand.js';
import { healthRoutes } from './http/routes/health.js';
import { interactionRoutes } from './http/routes/interaction.js';
import { linkRoutes } from './http/routes/links.js';
import { metricsRoutes } from './http/routes/metrics.js';
import { passkeyApiRoutes } from './http/routes/passkeyApi.js';
import { passkeyApiAtRoot } from './http/routes/passkeyApiKit.js';
import { recoverRoutes } from './http/routes/recover.js';
import { setupRoutes } from './http/routes/setup.js';
import { verifyEmailRoutes } from './http/routes/verifyEmail.js';
import type { Services } from './http/services.js';
import { showBrandOn } from './http/views.js';
import { sealKeysAtRest } from './keysAtRest.js';
import type { Logger } from './logger.js';
import { MailOutbox } from './mail/outbox.js';
import { BackchannelOutbox, type DeliveryTiming } from './oidc/backchannelOutbox.js';
import { ClientAuthBackoff } from './oidc/clientAuthBackoff.js';
import { loadCookieKeys, removeExpiredCookieKeys } from './oidc/cookieKeys.js';
import { ensureSigningKeys, loadSigningJwks, removeUnpublishedSigningKeys } from './oidc/keys.js';
import { LiveProvider } from './oidc/liveProvider.js';
import { createProvider } from './oidc/provider.js';
import { PAGELESS_PROVIDER_PATHS, providerRequestTooLarge, providerRouteOf } from './oidc/providerPaths.js';
import { PUBLIC_METADATA_PATHS, PublicMetadataCache } from './oidc/publicMetadata.js';
import { createRowCaches, type RowCaches } from './oidc/rowCaches.js';
import { EXPIRED_KEPT_SECONDS } from './oidc/ttl.js';
import type { OutboxTiming } from './outboxWorker.js';
import { removeUnpublishedTenantKeys } from './passkeyApi/tenants.js';
import { PUBLIC_DIR } from './paths.js';
import { forRequestFrom } from './requestContext.js';

/** The provider's routes the per-IP limit counts (see `route` in createApp). */
const COUNTED_PROVIDER_ROUTES: ReadonlySet<string> = new Set([
  '/auth',
  '/request',
  '/device',
  '/device/auth',
  '/device/:uid',
  '/session/end',
  '/session/end/confirm',
]);

async function noSuchPage(): Promise<never> {
  throw notFound('There is no page at this address.').localized('errors.noSuchPage');
}

/**
 * Discovery and the JWKS are the same for everyone and change rarely; relying parties and
 * proxies may keep them five minutes. That is also how long a cache may go on showing a
 * key removed from the JWKS, or miss one rotated in with no delay (`--activate-in 0`).
 */
const PUBLIC_METADATA_CACHE = 'public, max-age=300';

/** Expired rows are swept this often; each sweep deletes in small batches. */
const CLEANUP_INTERVAL_MS = 10 * 60 * 1000;

/**
 * Back-channel logout deliveries and mails done (delivered or given up) are kept this long
 * for admins to look into; one-time links (and email verification links) this long after they expired.
 */
const DONE_DELIVERIES_KEPT_DAYS = 30;

export interface AppDeps {
  config: Config;
  db: Db;
  log: Logger;
  /**
   * Subscribes to database notifications (DatabaseHandle.listen). Without it nothing is
   * cached: every client and account lookup reads the database.
   */
  listen?: DatabaseHandle['listen'];
  /** Overrides the back-channel logout outbox's timing (tests make its waits short). */
  backchannelTiming?: Partial<DeliveryTiming>;
  /** Overrides the mail outbox's timing (tests make its waits short). */
  mailTiming?: Partial<OutboxTiming>;
  /** Overrides how long a client may take to send a request (tests make it short). */
  httpTiming?: Partial<HttpTiming>;
}

/**
 * How long a client may take to send a request's headers, and all of it, before the server
 * answers 408 and closes the connection; and how often that is checked. Node's defaults (60 s,
 * 300 s, every 30 s) let a client that sends a byte now and then hold a connection, and its
 * memory, for up to five and a half minutes. Sesame's requests are small: the largest, a
 * branding image, is at most a few hundred kB.
 */
export interface HttpTiming {
  headersMs: number;
  requestMs: number;
  checkMs: number;
}

const HTTP_TIMING: HttpTiming = { headersMs: 20_000, requestMs: 30_000, checkMs: 5_000 };

/** A composed Sesame server: start() listens, stop() drains requests and stops timers (the caller closes the database). */
export interface SesameApp {
  readonly koa: Koa;
  readonly provider: Provider;
  readonly config: Config;
  readonly db: Db;
  /** Sesame's own routers (not the provider's), for tests that walk every route. */
  readonly routers: readonly Router[];
  /** The rows kept in step by change notifications, for tests that tell memory from the table. */
  readonly caches: RowCaches;
  /** Serves on the configured port, or on `port` (0 picks a free one); resolves to the bound port. */
  start(port?: number, host?: string): Promise<number>;
  stop(): Promise<void>;
}

/** Builds the app: keys and cookie secrets from the database, the provider, Sesame's routes. */
export async function createApp({
  config,
  db,
  log,
  listen,
  backchannelTiming,
  mailTiming,
  httpTiming,
}: AppDeps): Promise<SesameApp> {
  const timing = { ...HTTP_TIMING, ...httpTiming };
  await sealKeysAtRest(db, config, log);
  await ensureSigningKeys(db, config);
  const [signing, cookieKeys] = await Promise.all([loadSigningJwks(db, config), loadCookieKeys(db, config)]);
  const liveCookieKeys = new LiveCookieKeys(() => loadCookieKeys(db, config), log, cookieKeys);
  const cookieSigner = liveCookieKeys.signer;
  const caches = createRowCaches(db);
  const brand = new BrandStore(db, config.brand);
  const writes = new GroupedUpserts(db);
  // Limits count in Postgres, so every instance on the database shares them.
  const hits = config.databaseUrl ? new PostgresHitCounter(db) : new MemoryHitCounter();
  const clientAuthBackoff = config.rateLimitPerMinute ? new ClientAuthBackoff(hits) : undefined;
  const live = new LiveProvider(
    (jwks) => createProvider({ config, db, log, jwks, cookieSigner, caches, writes, clientAuthBackoff }),
    () => loadSigningJwks(db, config),
    log,
    signing,
  );
  const outbox = new BackchannelOutbox(db, () => live.provider, log, backchannelTiming);
  const mailOutbox = config.mail ? new MailOutbox(db, config.mail, config, log, mailTiming) : undefined;
  const rowChanges = listen
    ? await keepCachesInStep(
        listen,
        {
          clients: caches.clients,
          users: caches.users,
          resources: caches.resources,
          groups: caches.groups,
          oidc_models: caches.models,
          group_members: caches.groups.memberships,
          client_allowed_groups: caches.groups.clientRules,
          signing_keys: live,
          app_secrets: liveCookieKeys,
          branding: brand,
          // Failures counted for a client (migration 0024); on the embedded database they are counted in memory.
          ...(clientAuthBackoff && config.databaseUrl && { rate_limit_hits: clientAuthBackoff.notLockedOut }),
        },
        log,
      )
    : undefined;
  const csrf = new Csrf(cookieSigner, config, log);
  const services: Services = {
    config,
    db,
    log,
    get provider() {
      return live.provider;
    },
    csrf,
    caches,
    brand,
    rateLimit: rateLimit(config.rateLimitPerMinute, hits),
    hits,
  };

  // Koa takes the left-most X-Forwarded-For entry unless maxIpsCount cuts the list to the
  // entries the trusted proxies wrote (see TRUST_PROXY in config.ts).
  const koa = new Koa({ proxy: config.trustProxy, maxIpsCount: config.proxyHops });
  koa.keys = cookieSigner;
  koa.silent = true;
  koa.use(httpMetrics());
  koa.use(requestLog(log));
  // Discovery and the JWKS, once the provider has rendered them, are the same bytes for
  // everyone (publicMetadata.ts): answered here, counted and logged like every request, with
  // the security headers, and nothing else a static document does not need in front of them.
  const publicMetadata = new PublicMetadataCache();
  const setSecurityHeaders = securityHeaderSetter({ hsts: config.secureCookies });
  koa.use(function answerPublicMetadata(ctx, next) {
    if (
      !PUBLIC_METADATA_PATHS.has(ctx.path) ||
      !publicMetadata.serve(ctx, live.provider, PUBLIC_METADATA_CACHE)
    )
      return next();
    setSecurityHeaders(ctx.res);
  });
  koa.use(issuerOrigin(config));
  koa.use(function rememberClientAddress(ctx, next) {
    return forRequestFrom(ctx.ip, next);
  });
  // Every page of this request, error pages too, speaks its language and shows the brand as
  // it is now (when the database cannot say, the configured brand). The protocol endpoints
  // that answer only JSON skip both: no Accept-Language parsing, no brand lookup.
  const pageContext = compose<Koa.Context>([
    pageLanguage(config),
    function showBrand(ctx, next) {
      // Kept in memory almost always: no promise to wait for on each page request.
      const kept = brand.kept();
      if (!kept) return showBrandRead(ctx, next);
      showBrandOn(ctx.req, kept);
      return next();
    },
  ]);
  async function showBrandRead(ctx: Koa.Context, next: Koa.Next) {
    const current = await brand.current().catch((error: Error) => {
      log.warn('branding could not be read; pages show the configured brand', { error: error.message });
      return brand.configured;
    });
    showBrandOn(ctx.req, current);
    return next();
  }
  koa.use(function forPages(ctx, next) {
    return PAGELESS_PROVIDER_PATHS.has(ctx.path) ? next() : pageContext(ctx, next);
  });
  koa.use(errorHandler(log));
  koa.use(function securityHeaders(ctx, next) {
    setSecurityHeaders(ctx.res);
    formsStayHere(ctx.res, ctx.path);
    return next();
  });
  // The OIDC protocol (discovery, authorize, token, userinfo, JWKS, logout) is the provider's.
  // Its API endpoints (token, userinfo, introspection, revocation, PAR) do not come through
  // this stack: the server's listener hands them to the provider itself (providerApi.ts).
  const oidcProvider = async (ctx: Koa.Context) => {
    const tooLarge = providerRequestTooLarge(ctx.req, ctx.path);
    if (tooLarge) {
      // In the provider's JSON where it answers only JSON (PAR, the device's request), else a
      // page for a browser: 414 for a query string (RFC 9110 §15.5.15), 413 for a body.
      if (!PAGELESS_PROVIDER_PATHS.has(ctx.path))
        throw new HttpError(tooLarge.status, 'invalid_request', tooLarge.description).localized(
          'errors.tooLarge',
        );
      ctx.respond = false;
      return refuseLargeBody(ctx.res, tooLarge);
    }
    // The provider's pages (the device flow's auto-submitted code, logout's confirmation)
    // hold the session's form token; its redirects carry codes. None is for a cache.
    if (!PAGELESS_PROVIDER_PATHS.has(ctx.path)) ctx.res.setHeader('Cache-Control', 'no-store');
    if (PUBLIC_METADATA_PATHS.has(ctx.path)) {
      // Not kept yet (or a CORS request): the provider renders it, and a plain GET is kept.
      ctx.res.setHeader('Cache-Control', PUBLIC_METADATA_CACHE);
      publicMetadata.capture(ctx, live.provider);
    }
    ctx.respond = false;
    await live.handle(ctx.req, ctx.res);
  };
  // Sesame's pages and APIs. What none of them answers is a 404: the provider sees only its
  // own paths, spelled exactly (it would match `/TOKEN` or `/token/` too).
  const routers = [
    healthRoutes(db),
    brandRoutes(brand),
    metricsRoutes(db),
    interactionRoutes(services),
    accountSessionRoutes(services),
    accountRoutes(services),
    linkRoutes(services),
    setupRoutes(services),
    recoverRoutes(services),
    verifyEmailRoutes(services),
    adminApiRoutes(services),
    adminPagesRoutes(services),
    passkeyApiRoutes(services),
  ];
  const sesameRoutes = compose<Koa.Context>([staticFiles(PUBLIC_DIR), routersByPath(routers)]);
  // Hanko's layout, `/{tenant_id}/...` at the root, reaches the passkey API too.
  koa.use(passkeyApiAtRoot);
  // Authorization requests count against the per-IP limit too: each one starts an
  // interaction (a row) and is where a script would probe clients and redirect URIs. So do
  // pushed authorization requests and device authorization requests (a row each, a public
  // client needs no secret), the device page, and the logout page (a visitor's session, a
  // row); typed device codes have a tighter limit of their own: a code is all a person needs
  // to sign a device in to their account. A login's return to /auth/:uid is not counted
  // again: it continues a request already counted, and without the signed cookie that
  // request set it reads nothing. Routes are matched as the provider's exact paths
  // (providerRouteOf): `/auth/` or `/DEVICE` is no provider path, so no spelling reaches the
  // provider past its count.
  const deviceCodeEntry = keyedRateLimit(DEVICE_CODE_ENTRIES_PER_IP, hits, config.rateLimitPerMinute > 0);
  // A form POST at `/auth` or `/session/end` is counted, then sent on as a GET (postAsGet.ts),
  // which is counted again: the provider never sees the POST.
  const postAsGet = (ctx: Koa.Context) => redirectPostAsGet(ctx, config.issuer);
  koa.use(async function route(ctx) {
    const providerRoute = providerRouteOf(ctx.path);
    if (providerRoute === undefined) return sesameRoutes(ctx, noSuchPage);
    const answer = ctx.method === 'POST' && POST_AS_GET_PATHS.has(providerRoute) ? postAsGet : oidcProvider;
    if (!COUNTED_PROVIDER_ROUTES.has(providerRoute)) return answer(ctx);
    if (providerRoute === '/device' && ctx.method === 'POST')
      await deviceCodeEntry(ctx, rateLimitKey(ctx.ip));
    return services.rateLimit(ctx, () => answer(ctx));
  });

  let server: http.Server | undefined;
  let cleanupTimer: NodeJS.Timeout | undefined;

  const cleanup = async () => {
    try {
      const removed =
        (await oidcModelsQueries.deleteExpired(db, undefined, EXPIRED_KEPT_SECONDS)) +
        (await challengesQueries.deleteExpired(db)) +
        (await hits.sweep()) +
        (await backchannelDeliveriesQueries.deleteDoneBefore(db, DONE_DELIVERIES_KEPT_DAYS)) +
        (await mailOutboxQueries.deleteDoneBefore(db, DONE_DELIVERIES_KEPT_DAYS)) +
        (await oneTimeTokensQueries.deleteExpiredBefore(db, DONE_DELIVERIES_KEPT_DAYS)) +
        (await emailVerificationsQueries.deleteExpiredBefore(db, DONE_DELIVERIES_KEPT_DAYS)) +
        (await removeUnpublishedSigningKeys(db)) +
        (await removeExpiredCookieKeys(db, config)) +
        (await removeUnpublishedTenantKeys(db)) +
        (await adminFormTokensQueries.deleteExpiredBefore(db, SPENT_ADMIN_FORM_TOKENS_KEPT_DAYS)) +
        (config.passkeyAuditLogDays
          ? await passkeyTenantAuditLogsQueries.deleteOlderThan(db, config.passkeyAuditLogDays)
          : 0) +
        (config.auditLogDays ? await auditQueries.deleteOlderThan(db, config.auditLogDays) : 0);
      if (removed) log.debug('expired rows removed', { removed });
    } catch (error) {
      log.warn('cleanup failed', { error: (error as Error).message });
    }
  };

  return {
    koa,
    get provider() {
      return live.provider;
    },
    config,
    db,
    routers,
    caches,
    async start(port = config.port, host = config.host) {
      server = http.createServer(
        {
          headersTimeout: timing.headersMs,
          requestTimeout: timing.requestMs,
          connectionsCheckingInterval: timing.checkMs,
        },
        frontDoor(koa, {
          handle: (req, res) => live.handle(req, res),
          log,
          pinHeaders: issuerHeaderPinner(config),
          setSecurityHeaders,
        }),
      );
      // Keep-alive longer than common proxies' idle timeout, so the proxy closes first.
      server.keepAliveTimeout = 65_000;
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, resolve);
      });
      cleanupTimer = setInterval(cleanup, CLEANUP_INTERVAL_MS);
      cleanupTimer.unref();
      outbox.start();
      mailOutbox?.start();
      return (server.address() as AddressInfo).port;
    },
    async stop() {
      if (cleanupTimer) clearInterval(cleanupTimer);
      await outbox.stop();
      await mailOutbox?.stop();
      live.stop();
      liveCookieKeys.stop();
      await rowChanges?.close();
      if (!server) return;
      const closing = new Promise<void>((resolve) => server!.close(() => resolve()));
      server.closeIdleConnections();
      // In-flight requests get ten seconds to finish; then their connections are cut.
      const force = setTimeout(() => server?.closeAllConnections(), 10_000);
      force.unref();
      await closing;
      clearTimeout(force);
      server = undefined;
    },
  };
}
