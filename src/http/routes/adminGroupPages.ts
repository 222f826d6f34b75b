import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { parseClaimValue, unreleasedClaimNames } from '../../accounts/customClaims.js';
import {
  addGroupMember,
  changeGroupClaim,
  createGroup,
  deleteGroup,
  findGroup,
  groupMembers,
  listGroups,
  OnlyAllowedGroupError,
  removeGroupMember,
  renameGroup,
} from '../../admin/groups.js';
import { ClientValidationError, listGroupsForClient, setClientAllowedGroups } from '../../oidc/clients.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';
import type { AdminPageKit } from './adminPageKit.js';

const nameFormSchema = z.object({ name: z.string().max(1000).default('') });
const memberFormSchema = z.object({
  user: z.string().max(1000).default(''),
  /** Ticked after a refusal: add an account whose address nobody proved (see addGroupMember). */
  unverified: z.literal('on').optional(),
});
const claimFormSchema = z.object({
  key: z.string().max(1000).default(''),
  value: z.string().max(10_000).default(''),
});
const claimKeyFormSchema = z.object({ key: z.string().max(1000).default('') });
const groupField = z.string().max(200);
/**
 * The client page's checkboxes: one `group` field per ticked group (none: everyone may sign
 * in). The form parser (qs) makes more than 20 fields of one name an object keyed by
 * position, not an array: ticking 21 groups was refused as "group: Invalid input".
 */
const allowedGroupsFormSchema = z.object({
  group: z
    .union([
      groupField,
      z.array(groupField).max(200),
      z
        .record(z.string(), groupField)
        .refine((fields) => Object.keys(fields).length <= 200, { message: 'at most 200 fields' }),
    ])
    .optional()
    .transform((value) =>
      value === undefined
        ? []
        : typeof value === 'string'
          ? [value]
          : Array.isArray(value)
            ? value
            : Object.values(value),
    ),
});

/** Notices these pages redirect to (see adminPages.ts). */
export const GROUP_NOTICES: Record<string, string> = {
  'group-created': 'The group was created.',
  'group-renamed': 'The group was renamed; apps see the new name in the next token.',
  'group-deleted': 'The group was deleted.',
  'member-added': 'The member was added.',
  'member-removed': 'The member was removed.',
  'claim-set': 'The claim was saved.',
  'claim-removed': 'The claim was removed.',
  'allowed-groups-saved': 'Who may sign in to this app was saved.',
};

/** A rule the input broke (400) or a name already taken (409): said on the page, not an error page. */
function isFormError(error: unknown): error is HttpError {
  return error instanceof HttpError && (error.status === 400 || error.status === 409 || error.status === 404);
}

/** The group page's forms an admin types into, and their fields; the first takes an error no field names. */
const TYPED_FORMS = { member: ['user'], claim: ['key', 'value'], rename: ['name'] } as const;
type TypedForm = keyof typeof TYPED_FORMS;

/** A typed form the server refused: what the admin typed, and the message beside the field it concerns. */
interface RefusedForm {
  form: TypedForm;
  values: Record<string, string>;
  errors: Record<string, string>;
  /** The refusal's code: `email_unverified` offers the box that adds the account anyway. */
  code: string;
}

function refusedForm(form: TypedForm, body: unknown, error: HttpError): RefusedForm {
  const fields: readonly string[] = TYPED_FORMS[form];
  const sent = (body ?? {}) as Record<string, unknown>;
  const values = Object.fromEntries(
    fields.map((field) => [field, typeof sent[field] === 'string' ? sent[field] : '']),
  );
  const named = Object.keys((error.details?.fields ?? {}) as Record<string, string>);
  const field = fields.find((name) => named.includes(name)) ?? fields[0]!;
  return { form, values, errors: { [field]: error.message }, code: error.code };
}

/** “A”, “A and B”, “A, B and C”. */
function namesList(names: string[]): string {
  return names.length < 2 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

/**
 * /admin/groups: create, rename and delete groups, add and remove members, set the claims
 * a group gives its members; and on a client's page, which groups may sign in to it.
 * Every change to an existing group asks for a passkey step-up, as choosing who may use an
 * app does: members may sign in to the apps that allow the group and carry its name (the
 * `groups` claim) and its claims in their tokens, so adding a member, setting a claim such
 * as a role, or renaming the group to a name an app trusts has the effect of editing the
 * app. Removals ask too: a claim may also take rights away, and the names decide which
 * group's claim wins a clash. Creating a group, in nobody's tokens until it has members,
 * asks for nothing.
 */
export function groupPages(router: Router, kit: AdminPageKit, { db, caches }: Services): void {
  async function renderList(ctx: Context, create: Record<string, unknown> = {}) {
    kit.render(ctx, 'groups', { title: 'Groups', groups: await listGroups(db), create });
  }

  /** The group page; after a refusal, the typed form as sent with its error, or a message for the page. */
  async function renderGroup(ctx: Context, refusal: { refused?: RefusedForm; error?: string } = {}) {
    const { group, members } = await groupMembers(db, ctx.params.id!);
    kit.render(ctx, 'group', {
      title: group.name,
      group,
      members,
      unreleased: unreleasedClaimNames(group.claims),
      ...refusal,
    });
  }

  async function loadGroupId(ctx: Context): Promise<string> {
    const group = await findGroup(db, ctx.params.id!);
    if (!group) throw notFound('There is no group with this id.');
    return group.id;
  }

  /**
   * Runs a change from the group page; a broken rule re-renders the page with the message:
   * beside the field for a `typed` form, which keeps what the admin typed (an unknown member
   * is then a 400 like any bad input: the page exists), at the top for a button's form.
   */
  async function change(
    ctx: Context,
    done: string,
    work: (groupId: string) => Promise<unknown>,
    typed?: TypedForm,
  ) {
    const groupId = await loadGroupId(ctx);
    try {
      await work(groupId);
    } catch (error) {
      if (!isFormError(error)) throw error;
      if (typed) {
        ctx.status = error.status === 404 ? 400 : error.status;
        await renderGroup(ctx, { refused: refusedForm(typed, ctx.request.body, error) });
      } else {
        ctx.status = error.status;
        await renderGroup(ctx, { error: error.message });
      }
      return;
    }
    ctx.redirect(`/admin/groups/${groupId}?done=${done}`);
  }

  router.get('/groups', (ctx) => renderList(ctx));

  router.post('/groups', async (ctx) => {
    const form = parseBody(ctx, nameFormSchema);
    try {
      const group = await createGroup(db, form.name, kit.actor(ctx));
      ctx.redirect(`/admin/groups/${group.id}?done=group-created`);
    } catch (error) {
      if (!isFormError(error)) throw error;
      ctx.status = error.status;
      await renderList(ctx, { ...form, error: error.message });
    }
  });

  router.get('/groups/:id', (ctx) => renderGroup(ctx));

  router.post('/groups/:id/rename', kit.stepUp, (ctx) =>
    change(
      ctx,
      'group-renamed',
      (id) => renameGroup(db, id, parseBody(ctx, nameFormSchema).name, kit.actor(ctx)),
      'rename',
    ),
  );

  router.post('/groups/:id/members', kit.stepUp, (ctx) =>
    change(
      ctx,
      'member-added',
      (id) => {
        const form = parseBody(ctx, memberFormSchema);
        const user = form.user.trim();
        if (!user) throw badRequest('Enter the email address or user ID of the person to add.');
        return addGroupMember(db, id, user, kit.actor(ctx), { unverified: form.unverified === 'on' });
      },
      'member',
    ),
  );

  router.post('/groups/:id/members/remove', kit.stepUp, (ctx) =>
    change(ctx, 'member-removed', (id) =>
      removeGroupMember(db, id, parseBody(ctx, memberFormSchema).user, kit.actor(ctx)),
    ),
  );

  router.post('/groups/:id/claims', kit.stepUp, (ctx) =>
    change(
      ctx,
      'claim-set',
      (id) => {
        const form = parseBody(ctx, claimFormSchema);
        return changeGroupClaim(db, id, form.key.trim(), parseClaimValue(form.value), kit.actor(ctx));
      },
      'claim',
    ),
  );

  router.post('/groups/:id/claims/remove', kit.stepUp, (ctx) =>
    change(ctx, 'claim-removed', (id) =>
      changeGroupClaim(db, id, parseBody(ctx, claimKeyFormSchema).key, undefined, kit.actor(ctx)),
    ),
  );

  /** The delete confirmation; after a refusal, with why and the apps to change first. */
  async function renderDeleteConfirm(ctx: Context, refusal?: OnlyAllowedGroupError) {
    const { group } = await groupMembers(db, ctx.params.id!);
    kit.render(ctx, 'confirm', {
      title: 'Delete group',
      section: 'groups',
      heading: `Delete the group “${group.name}”?`,
      message:
        'Its members leave it, and apps that also allow other groups no longer let them sign in through it. An app that allows only this group must get another allowed group (or allow everyone) first. This cannot be undone.',
      action: `/admin/groups/${group.id}/delete`,
      button: 'Delete group',
      cancel: `/admin/groups/${group.id}`,
      stepUp: true,
      ...(refusal && { refusal: onlyAllowedGroupRefusal(refusal) }),
    });
  }

  router.get('/groups/:id/delete', (ctx) => renderDeleteConfirm(ctx));

  router.post('/groups/:id/delete', kit.stepUp, async (ctx) => {
    try {
      await deleteGroup(db, await loadGroupId(ctx), kit.actor(ctx));
    } catch (error) {
      if (!(error instanceof OnlyAllowedGroupError)) throw error;
      ctx.status = error.status;
      await renderDeleteConfirm(ctx, error);
      return;
    }
    ctx.redirect('/admin/groups?done=group-deleted');
  });

  // Who may sign in to an app decides where sign-ins go, as the client's settings do: step-up.
  router.post('/clients/:id/allowed-groups', kit.stepUp, async (ctx) => {
    const form = parseBody(ctx, allowedGroupsFormSchema);
    const clientId = ctx.params.id!;
    if (!(await listGroupsForClient(db, clientId))) throw notFound('There is no client with this id.');
    try {
      await setClientAllowedGroups(db, clientId, form.group, kit.actor(ctx));
    } catch (error) {
      if (!(error instanceof ClientValidationError)) throw error;
      throw allowedGroupsRefusal(clientId, error);
    }
    caches.clients.invalidate(clientId);
    ctx.redirect(`/admin/clients/${encodeURIComponent(clientId)}?done=allowed-groups-saved`);
  });
}

/**
 * A choice of allowed groups the rules refuse, said with a way back to the client's page: a
 * group ticked on a page shown before another tab deleted it, or more groups than a client
 * may name. It was a server error (500) before.
 */
function allowedGroupsRefusal(clientId: string, error: ClientValidationError): HttpError {
  const problem = error.fields.allowed_groups ?? error.message;
  const refusal = badRequest(
    problem.startsWith('no group')
      ? 'A group you ticked no longer exists: it was deleted after this page was shown. Open the client again to choose among the groups there are now.'
      : `The allowed groups were refused: ${problem}.`,
  );
  refusal.back = {
    url: `/admin/clients/${encodeURIComponent(clientId)}#allowed-groups`,
    label: 'Go to the client',
  };
  return refusal;
}

/** What the delete confirmation says when the group is some apps' only allowed group, with a link to each. */
function onlyAllowedGroupRefusal({ group, clients }: OnlyAllowedGroupError) {
  const names = namesList(clients.map((client) => client.name));
  const them = clients.length === 1 ? names : 'each of them';
  return {
    message: `“${group}” is the only group allowed to sign in to ${names}: without it, everyone could. Change who may sign in to ${them} first (allow another group, or everyone), then delete the group.`,
    links: clients.map((client) => ({
      href: `/admin/clients/${encodeURIComponent(client.client_id)}#allowed-groups`,
      text: `Who may sign in to ${client.name}`,
    })),
  };
}
