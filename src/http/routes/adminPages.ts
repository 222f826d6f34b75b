import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { z } from 'zod';
import { auditEventsPage } from '../../admin/audit.js';
import {
  deleteUser,
  demoteUser,
  disableUser,
  enableUser,
  findUser,
  inviteUser,
  issueRecoveryLink,
  listUsers,
  promoteUser,
  userView,
} from '../../admin/users.js';
import {
  ClientValidationError,
  type ClientView,
  createClient,
  DEVICE_CODE_GRANT,
  defaultGrantTypes,
  deleteClient,
  getClient,
  grantTypesFromPage,
  listClients,
  listGroupsForClient,
  rotateClientSecret,
  updateClient,
} from '../../oidc/clients.js';
import { EMAIL_MAX_LENGTH } from '../../text.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import { parseBodies } from '../middleware/bodies.js';
import { forgetCachesAfterChanges } from '../middleware/cacheChanges.js';
import { requireAdmin, requireSignIn, requireStepUp } from '../middleware/session.js';
import { parseUploads } from '../middleware/uploads.js';
import { sesameRouter } from '../router.js';
import {
  auditEventIdParameter,
  auditFilterSchema,
  emailSchema,
  issueMessage,
  parseBody,
  parseQuery,
} from '../schemas.js';
import type { Services } from '../services.js';
import { renderPage } from '../views.js';
import { API_KEY_NOTICES, apiKeyPages } from './adminApiKeyPages.js';
import { BRANDING_NOTICES, brandingPages } from './adminBrandingPages.js';
import { GROUP_NOTICES, groupPages } from './adminGroupPages.js';
import { mailPages } from './adminMailPages.js';
import { type OneShotForm, oneShotForms } from './adminOneShotForms.js';
import { type AdminPageKit, lines } from './adminPageKit.js';
import { PASSKEY_TENANT_NOTICES, passkeyTenantPages } from './adminPasskeyTenantPages.js';
import { adminRefusals } from './adminRefusals.js';
import { RESOURCE_NOTICES, resourcePages } from './adminResourcePages.js';

const uriList = z.string().max(40_000).default('');
const checkbox = z.literal('on').optional();

const clientFormSchema = z.object({
  name: z.string().max(1000).default(''),
  redirect_uris: uriList,
  post_logout_redirect_uris: uriList,
  type: z.enum(['confidential', 'public']).default('confidential'),
  first_party: checkbox,
  introspect_tokens: checkbox,
  require_par: checkbox,
  backchannel_logout_uri: z.string().max(4000).default(''),
  device_flow: checkbox,
});
const inviteFormSchema = z.object({ email: z.string().max(1000).default(''), admin: checkbox });

type ClientForm = z.output<typeof clientFormSchema>;

/** Which events the activity page shows, and where an older page starts: an event id, a Postgres bigint. */
const auditQuerySchema = z.object({ ...auditFilterSchema, before: auditEventIdParameter });

/**
 * Messages shown after a Post/Redirect/Get; the query names one, never carries text. A Map,
 * so a name only finds a message of its own: on a plain object `?done=constructor` showed
 * the inherited function's source.
 */
const NOTICES = new Map<string, string>(
  Object.entries({
    'client-updated': 'Changes saved.',
    'client-deleted': 'The client was deleted and every token issued to it revoked.',
    'user-disabled': 'The user was disabled; their sessions and tokens are revoked.',
    'user-enabled': 'The user can sign in again.',
    'user-deleted': 'The user and their passkeys were deleted.',
    'user-promoted': 'The user is now an administrator.',
    'user-demoted': 'The user is no longer an administrator.',
    ...PASSKEY_TENANT_NOTICES,
    ...API_KEY_NOTICES,
    ...RESOURCE_NOTICES,
    ...GROUP_NOTICES,
    ...BRANDING_NOTICES,
  }),
);

/** Users shown on one page of /admin/users. */
const USERS_PER_PAGE = 50;
/** Events shown on one page of /admin/audit. */
const AUDIT_EVENTS_PER_PAGE = 100;

/** Admin pages may show secrets: keep every one of them out of caches and history snapshots. */
async function noStore(ctx: Context, next: Next) {
  ctx.set('Cache-Control', 'no-store');
  await next();
}

/**
 * The admin pages at /admin: register and manage clients, manage users, passkey API apps
 * and admin API keys, read the audit log. Only admins signed in through Sesame's own passkey login get in. Every form posts
 * with a CSRF token and ends in a redirect, except the answers that show a secret once
 * (a new client secret or key, a one-time link): those are the POST response itself, so the
 * secret is never in a URL, a cookie or the server's memory. The forms that mint a secret
 * carry a single-use token too (adminOneShotForms.ts): sending one again mints nothing.
 */
export function adminPagesRoutes(services: Services): Router {
  const { config, db, provider, csrf, caches } = services;
  const router = sesameRouter(
    { prefix: '/admin' },
    noStore,
    requireSignIn(provider, db, config),
    requireAdmin(csrf, db),
    adminRefusals(render),
    parseBodies(),
    parseUploads,
    csrf.protect(),
    forgetCachesAfterChanges(caches.groups, caches.models),
  );

  const actor = (ctx: Context) => `user:${ctx.state.signedIn!.user.id}`;

  function render(ctx: Context, view: string, data: Record<string, unknown> & { title: string }) {
    ctx.type = 'html';
    ctx.body = renderPage(
      ctx,
      `admin/${view}`,
      {
        wide: true,
        script: 'admin',
        csrf: csrf.token(ctx),
        me: ctx.state.signedIn!.user,
        notice: typeof ctx.query.done === 'string' ? NOTICES.get(ctx.query.done) : undefined,
        ...data,
      },
      // Admin pages stay English.
      'en',
    );
  }

  async function loadClient(ctx: Context): Promise<ClientView> {
    const client = await getClient(db, ctx.params.id!);
    if (!client) throw notFound('There is no client with this id.');
    return client;
  }

  const noSuchUser = () => notFound('There is no user with this id.');

  async function loadUser(ctx: Context) {
    const user = await findUser(db, ctx.params.id!);
    if (!user) throw noSuchUser();
    return user;
  }

  /** Refuses a change that found no account: it went since loadUser (deleted, or taken over: a new id). */
  function changedUser<T>(result: T | undefined): T {
    if (result === undefined) throw noSuchUser();
    return result;
  }

  /** An admin cannot lock themselves out from these pages; another admin (or the CLI) can. */
  function refuseSelf(ctx: Context, userId: string, what: string) {
    if (userId === ctx.state.signedIn!.user.id) throw badRequest(`You cannot ${what} your own account here.`);
  }

  // Anything that hands out a credential (a client secret, an API key) or a way into an
  // account (a one-time link, enabling a disabled user), that decides where people's sign-ins
  // go or what apps are told about them (a client's settings, its allowed groups, a group's
  // members, claims or name), who administers Sesame, or that cannot be undone (deleting a
  // client, a user or a passkey API app) needs a recent passkey step-up.
  const stepUp = requireStepUp(db);
  const kit: AdminPageKit = { render, actor, stepUp, ...oneShotForms(db, render) };

  router.get('/', (ctx) => ctx.redirect('/admin/clients'));

  router.get('/clients', async (ctx) => {
    render(ctx, 'clients', { title: 'Clients', clients: await listClients(db) });
  });

  router.get('/clients/new', async (ctx) => {
    render(ctx, 'client-new', {
      title: 'Register a client',
      form: { type: 'confidential' },
      errors: {},
      once: await kit.formToken(ctx, NEW_CLIENT.action),
    });
  });

  // A public client has no secret, but registering one still needs the step-up: its redirect
  // URIs receive people's sign-ins.
  router.post('/clients', stepUp, async (ctx) => {
    const form = parseBody(ctx, clientFormSchema);
    try {
      const sent = await kit.submitOnce(ctx, NEW_CLIENT, (trx) =>
        createClient(
          trx,
          {
            name: form.name,
            redirect_uris: lines(form.redirect_uris),
            post_logout_redirect_uris: lines(form.post_logout_redirect_uris),
            public: form.type === 'public',
            first_party: form.first_party === 'on',
            introspect_tokens: form.introspect_tokens === 'on',
            require_pushed_authorization_requests: form.require_par === 'on',
            backchannel_logout_uri: form.backchannel_logout_uri.trim() || null,
            grant_types: grantTypesFromPage(defaultGrantTypes(form.type === 'public'), {
              device: form.device_flow === 'on',
              hasRedirectUris: lines(form.redirect_uris).length > 0,
            }),
          },
          actor(ctx),
        ),
      );
      if (!sent) return;
      const { client, client_secret } = sent.value;
      render(ctx, 'client-secret', {
        title: 'Client registered',
        heading: `Registered “${client.name}”`,
        client,
        secret: client_secret,
      });
    } catch (error) {
      if (!(error instanceof ClientValidationError)) throw error;
      ctx.status = 400;
      render(ctx, 'client-new', {
        title: 'Register a client',
        form,
        errors: error.fields,
        once: kit.sentFormToken(ctx),
      });
    }
  });

  router.get('/clients/:id', async (ctx) => {
    const client = await loadClient(ctx);
    const groups = await listGroupsForClient(db, client.client_id);
    render(ctx, 'client', { title: client.name, client, form: formFor(client), errors: {}, groups });
  });

  // Every edit asks, whatever it changes: the form always posts every field, and a page that
  // sometimes asks and sometimes not would teach admins to confirm without reading.
  router.post('/clients/:id', stepUp, async (ctx) => {
    const client = await loadClient(ctx);
    const form = parseBody(ctx, clientFormSchema);
    try {
      await updateClient(
        db,
        client.client_id,
        {
          name: form.name,
          redirect_uris: lines(form.redirect_uris),
          post_logout_redirect_uris: lines(form.post_logout_redirect_uris),
          first_party: form.first_party === 'on',
          introspect_tokens: form.introspect_tokens === 'on',
          require_pushed_authorization_requests: form.require_par === 'on',
          backchannel_logout_uri: form.backchannel_logout_uri.trim() || null,
          grant_types: grantTypesFromPage(client.grant_types, {
            device: form.device_flow === 'on',
            hasRedirectUris: lines(form.redirect_uris).length > 0,
          }),
        },
        actor(ctx),
      );
      caches.clients.invalidate(client.client_id);
      ctx.redirect(`/admin/clients/${encodeURIComponent(client.client_id)}?done=client-updated`);
    } catch (error) {
      if (!(error instanceof ClientValidationError)) throw error;
      ctx.status = 400;
      const groups = await listGroupsForClient(db, client.client_id);
      render(ctx, 'client', { title: client.name, client, form, errors: error.fields, groups });
    }
  });

  /** A confidential client, whose secret the admin may rotate. */
  async function loadConfidentialClient(ctx: Context): Promise<ClientView> {
    const client = await loadClient(ctx);
    if (client.public) throw badRequest('A public client has no secret to rotate.');
    return client;
  }

  // The old secret stops working at once, so the button asks first, as deleting does; the
  // confirmation's single-use token makes a reload of the new secret's page rotate nothing.
  router.get('/clients/:id/rotate-secret', async (ctx) => {
    const client = await loadConfidentialClient(ctx);
    const clientPath = `/admin/clients/${encodeURIComponent(client.client_id)}`;
    render(ctx, 'confirm', {
      title: 'Rotate client secret',
      section: 'clients',
      heading: `Rotate the secret of “${client.name}”?`,
      message:
        'Sesame makes a new secret and shows it once. The old secret stops working at once: the app cannot sign anyone in or get tokens until its configuration has the new one.',
      action: `${clientPath}/rotate-secret`,
      button: 'Rotate secret',
      cancel: clientPath,
      stepUp: true,
      once: await kit.formToken(ctx, rotateSecretForm(client).action),
    });
  });

  router.post('/clients/:id/rotate-secret', stepUp, async (ctx) => {
    const client = await loadConfidentialClient(ctx);
    const sent = await kit.submitOnce(ctx, rotateSecretForm(client), async (trx) => {
      const rotated = await rotateClientSecret(trx, client.client_id, actor(ctx));
      if (!rotated) throw notFound('There is no client with this id.');
      return rotated;
    });
    if (!sent) return;
    caches.clients.invalidate(client.client_id);
    render(ctx, 'client-secret', {
      title: 'New client secret',
      heading: `New secret for “${client.name}”`,
      client,
      secret: sent.value.client_secret,
      rotated: true,
    });
  });

  router.get('/clients/:id/delete', async (ctx) => {
    const client = await loadClient(ctx);
    render(ctx, 'confirm', {
      title: 'Delete client',
      heading: `Delete “${client.name}”?`,
      message:
        'The app will no longer be able to sign anyone in, and every token issued to it stops working at once.',
      action: `/admin/clients/${encodeURIComponent(client.client_id)}/delete`,
      button: 'Delete client',
      cancel: `/admin/clients/${encodeURIComponent(client.client_id)}`,
      stepUp: true,
    });
  });

  router.post('/clients/:id/delete', stepUp, async (ctx) => {
    const client = await loadClient(ctx);
    await deleteClient(db, client.client_id, actor(ctx));
    caches.clients.invalidate(client.client_id);
    ctx.redirect('/admin/clients?done=client-deleted');
  });

  /** The users page: 50 at a time in email order, narrowed by the search box (`?q=`). */
  async function renderUsers(ctx: Context, invite: Record<string, unknown> = {}) {
    const text = (name: string) => {
      const value = ctx.query[name];
      // As long as an address may be: the next page starts after the last address shown.
      return typeof value === 'string' && value.length <= EMAIL_MAX_LENGTH
        ? value.trim() || undefined
        : undefined;
    };
    const search = text('q');
    const after = text('after');
    const page = await listUsers(db, { search, after, limit: USERS_PER_PAGE });
    const next =
      page.next && `/admin/users?${new URLSearchParams({ ...(search && { q: search }), after: page.next })}`;
    render(ctx, 'users', { title: 'Users', users: page.users, search, first: !after, next, invite });
  }

  router.get('/users', (ctx) => renderUsers(ctx));

  router.post('/users/invite', stepUp, async (ctx) => {
    const form = parseBody(ctx, inviteFormSchema);
    const email = emailSchema.safeParse(form.email);
    if (!email.success) {
      ctx.status = 400;
      await renderUsers(ctx, { ...form, error: issueMessage(email.error.issues[0]!) });
      return;
    }
    let link: Awaited<ReturnType<typeof inviteUser>>;
    try {
      link = await inviteUser(db, config, { email: email.data, admin: form.admin === 'on' }, actor(ctx));
    } catch (error) {
      // An admin invitation for an existing account: said beside the field, not on an error page.
      if (!(error instanceof HttpError) || error.status !== 409) throw error;
      ctx.status = 409;
      await renderUsers(ctx, { ...form, error: error.message });
      return;
    }
    render(ctx, 'link', { title: 'One-time link', email: email.data, admin: form.admin === 'on', link });
  });

  router.post('/users/:id/link', stepUp, async (ctx) => {
    const user = await loadUser(ctx);
    const link = await issueRecoveryLink(db, config, user.id, actor(ctx));
    if (!link) throw noSuchUser();
    render(ctx, 'link', { title: 'One-time link', email: user.email, recovery: true, link });
  });

  // Disabling only takes access away, and is wanted at once when an account is misused: no
  // step-up. Disabling an administrator also revokes for good the admin API keys they made and
  // changes who administers Sesame, as demoting does: step-up.
  router.post('/users/:id/disable', async (ctx) => {
    const user = await loadUser(ctx);
    refuseSelf(ctx, user.id, 'disable');
    if (user.is_admin) await stepUp(ctx, async () => {});
    changedUser(await disableUser(db, user.id, actor(ctx)));
    caches.users.invalidate(user.id);
    ctx.redirect('/admin/users?done=user-disabled');
  });

  // Enabling gives a disabled person their way in back, as a one-time link would: step-up.
  router.post('/users/:id/enable', stepUp, async (ctx) => {
    const user = await loadUser(ctx);
    changedUser(await enableUser(db, user.id, actor(ctx)));
    caches.users.invalidate(user.id);
    ctx.redirect('/admin/users?done=user-enabled');
  });

  // Who administers Sesame is as sensitive as a one-time link: both need the step-up.
  router.post('/users/:id/promote', stepUp, async (ctx) => {
    const user = await loadUser(ctx);
    try {
      changedUser(await promoteUser(db, config, user.id, actor(ctx)));
    } catch (error) {
      if (!(error instanceof HttpError && error.code === 'email_unverified')) throw error;
      // Whoever signed up with the address may not own it: the invite form, filled in, reaches the mailbox.
      ctx.status = 409;
      await renderUsers(ctx, {
        email: user.email,
        admin: 'on',
        error: `Nobody has proved they receive mail at ${user.email}, so whoever signed up with it may not own it. Send this admin invite instead: whoever opens it takes the account over as an administrator, with a new account and a new sub (apps see a new user).`,
      });
      return;
    }
    caches.users.invalidate(user.id);
    ctx.redirect('/admin/users?done=user-promoted');
  });

  router.post('/users/:id/demote', stepUp, async (ctx) => {
    const user = await loadUser(ctx);
    refuseSelf(ctx, user.id, 'demote');
    changedUser(await demoteUser(db, user.id, actor(ctx)));
    caches.users.invalidate(user.id);
    ctx.redirect('/admin/users?done=user-demoted');
  });

  router.get('/users/:id/delete', async (ctx) => {
    const user = userView(await loadUser(ctx));
    refuseSelf(ctx, user.id, 'delete');
    render(ctx, 'confirm', {
      title: 'Delete user',
      heading: `Delete ${user.email}?`,
      message:
        'Their account and passkeys are deleted, and they are signed out of every app. This cannot be undone.',
      action: `/admin/users/${user.id}/delete`,
      button: 'Delete user',
      cancel: '/admin/users',
      stepUp: true,
    });
  });

  router.post('/users/:id/delete', stepUp, async (ctx) => {
    const user = await loadUser(ctx);
    refuseSelf(ctx, user.id, 'delete');
    changedUser(await deleteUser(db, user.id, actor(ctx)));
    caches.users.invalidate(user.id);
    ctx.redirect('/admin/users?done=user-deleted');
  });

  groupPages(router, kit, services);
  passkeyTenantPages(router, kit, services);
  apiKeyPages(router, kit, services);
  resourcePages(router, kit, services);
  brandingPages(router, kit, services);
  mailPages(router, kit, services);

  /**
   * The activity page: 100 events at a time, newest first, those that match the filters
   * (`?action=`, `?actor=`, `?target=`, see auditFilterSchema); `?before=<id>` starts below that event.
   */
  router.get('/audit', async (ctx) => {
    const { before, ...filter } = parseQuery(ctx, auditQuerySchema);
    const page = await auditEventsPage(db, { limit: AUDIT_EVENTS_PER_PAGE, before, filter });
    /** The page's address with the same filters, starting below `below` when given. */
    const address = (below?: string) => {
      const query = new URLSearchParams(
        Object.entries({ ...filter, before: below }).filter(([, v]) => v) as string[][],
      );
      return query.size ? `/admin/audit?${query}` : '/admin/audit';
    };
    render(ctx, 'audit', {
      title: 'Activity',
      events: page.events,
      filter,
      filtered: Object.values(filter).some(Boolean),
      first: !before,
      newest: address(),
      older: page.older && address(page.older),
    });
  });

  return router;
}

/** The registration form of a client: its secret is shown once, in the answer to its POST. */
const NEW_CLIENT: OneShotForm = {
  action: 'client.create',
  section: 'clients',
  formPath: '/admin/clients/new',
  repeated: {
    heading: 'Client already registered',
    message:
      "This form was sent before and registered the client then; sending it again registered nothing. The client's secret was shown once, on the page that answered it, and Sesame keeps only a hash: if it was lost, open the client and rotate its secret.",
    next: { href: '/admin/clients', label: 'Go to the clients' },
  },
};

/** The confirmation that rotates a client's secret. */
function rotateSecretForm(client: ClientView): OneShotForm {
  const clientPath = `/admin/clients/${encodeURIComponent(client.client_id)}`;
  return {
    action: `client.rotate_secret:${client.client_id}`,
    section: 'clients',
    formPath: `${clientPath}/rotate-secret`,
    repeated: {
      heading: 'Secret already rotated',
      message:
        'This confirmation was sent before and rotated the secret then; sending it again rotated nothing. The new secret was shown once, on the page that answered it, and Sesame keeps only a hash: if it was lost, rotate the secret again.',
      next: { href: clientPath, label: "Continue to the client's settings" },
    },
  };
}

/** The edit form's initial values for a stored client. */
function formFor(client: ClientView): ClientForm {
  return {
    name: client.name,
    redirect_uris: client.redirect_uris.join('\n'),
    post_logout_redirect_uris: client.post_logout_redirect_uris.join('\n'),
    type: client.public ? 'public' : 'confidential',
    first_party: client.first_party ? 'on' : undefined,
    introspect_tokens: client.introspect_tokens ? 'on' : undefined,
    require_par: client.require_pushed_authorization_requests ? 'on' : undefined,
    backchannel_logout_uri: client.backchannel_logout_uri ?? '',
    device_flow: client.grant_types.includes(DEVICE_CODE_GRANT) ? 'on' : undefined,
  };
}
