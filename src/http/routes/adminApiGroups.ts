import type Router from '@koa/router';
import { z } from 'zod';
import {
  addGroupMember,
  changeGroupClaim,
  createGroup,
  deleteGroup,
  groupMembers,
  listGroups,
  removeGroupMember,
  renameGroup,
} from '../../admin/groups.js';
import { changeUserClaim, noUserFor } from '../../admin/users.js';
import { apiKeyActor } from '../middleware/apiKey.js';
import { parseBody } from '../schemas.js';
import type { Services } from '../services.js';

const groupNameSchema = z.object({ name: z.string({ error: 'must be a string' }) }).strict();
/** `unverified: true` gives an account whose address nobody proved a group or a claim (see addGroupMember). */
const unverified = { unverified: z.boolean().default(false) };
const unverifiedSchema = z.object(unverified).strict();
/** A claim's value: any JSON value; null, its size and its numbers are checked with the claim's rules. */
const claimValue = { value: z.unknown().refine((value) => value !== undefined, { message: 'is required' }) };
const claimValueSchema = z.object(claimValue).strict();
const userClaimValueSchema = z.object({ ...claimValue, ...unverified }).strict();

/**
 * The admin API's groups (`/api/admin/groups`) and user claims (`/api/admin/users/:id/claims`),
 * on the admin API's router and behind its guards. GROUP is an id or a name, USER an id or an email.
 */
export function adminApiGroupRoutes(router: Router, { db, caches }: Pick<Services, 'db' | 'caches'>): void {
  router.get('/groups', async (ctx) => {
    ctx.body = await listGroups(db);
  });

  router.post('/groups', async (ctx) => {
    const group = await createGroup(db, parseBody(ctx, groupNameSchema).name, apiKeyActor(ctx));
    ctx.status = 201;
    ctx.set('Location', `/api/admin/groups/${group.id}`);
    ctx.body = group;
  });

  router.get('/groups/:group', async (ctx) => {
    const { group, members } = await groupMembers(db, ctx.params.group!);
    ctx.body = { ...group, members };
  });

  router.patch('/groups/:group', async (ctx) => {
    ctx.body = await renameGroup(
      db,
      ctx.params.group!,
      parseBody(ctx, groupNameSchema).name,
      apiKeyActor(ctx),
    );
  });

  router.delete('/groups/:group', async (ctx) => {
    await deleteGroup(db, ctx.params.group!, apiKeyActor(ctx));
    ctx.status = 204;
  });

  router.put('/groups/:group/members/:user', async (ctx) => {
    // The body is optional: a PUT without one adds a member whose address was proven.
    const { unverified } = parseBody(ctx, unverifiedSchema);
    ctx.body = await addGroupMember(db, ctx.params.group!, ctx.params.user!, apiKeyActor(ctx), {
      unverified,
    });
  });

  router.delete('/groups/:group/members/:user', async (ctx) => {
    ctx.body = await removeGroupMember(db, ctx.params.group!, ctx.params.user!, apiKeyActor(ctx));
  });

  router.put('/groups/:group/claims/:key', async (ctx) => {
    const { value } = parseBody(ctx, claimValueSchema);
    ctx.body = await changeGroupClaim(db, ctx.params.group!, ctx.params.key!, value, apiKeyActor(ctx));
  });

  router.delete('/groups/:group/claims/:key', async (ctx) => {
    ctx.body = await changeGroupClaim(db, ctx.params.group!, ctx.params.key!, undefined, apiKeyActor(ctx));
  });

  router.put('/users/:id/claims/:key', async (ctx) => {
    const { value, unverified } = parseBody(ctx, userClaimValueSchema);
    const user = await changeUserClaim(db, ctx.params.id!, ctx.params.key!, value, apiKeyActor(ctx), {
      unverified,
    });
    if (!user) throw noUserFor(ctx.params.id!);
    caches.users.invalidate(user.id);
    ctx.body = user;
  });

  router.delete('/users/:id/claims/:key', async (ctx) => {
    const user = await changeUserClaim(db, ctx.params.id!, ctx.params.key!, undefined, apiKeyActor(ctx));
    if (!user) throw noUserFor(ctx.params.id!);
    caches.users.invalidate(user.id);
    ctx.body = user;
  });
}
