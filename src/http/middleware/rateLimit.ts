import { isIP } from 'node:net';
import type { Context, Middleware, Next } from 'koa';
import { type HitCounter, type HitVerdict, MemoryHitCounter } from '../../db/hitCounter.js';
import { HttpError } from '../errors.js';

/**
 * The window RATE_LIMIT_PER_MINUTE counts in. Passkey ceremonies and one-time links are
 * what a guesser or a scripted abuser hammers (challenges to fill the table, assertions to
 * replay, link tokens to probe); a person needs a handful per minute, so the default of 600
 * per client IP stops scripts long before it bothers anyone, even behind a shared NAT.
 */
const WINDOW_SECONDS = 60;

/**
 * An address as some proxies write it into X-Forwarded-For, with the client's port
 * (`203.0.113.7:51234`, `[2001:db8::1]:51234`): a port per connection would be a count per
 * connection.
 */
function withoutPort(ip: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(ip);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(ip);
  return v4 ? v4[1]! : ip;
}

/**
 * A client address as a person reads it: without a port a proxy wrote, and an IPv4 address
 * that Node reports in IPv6 form (`::ffff:203.0.113.7`) as IPv4. Undefined for what is no
 * address at all.
 */
export function plainAddress(forwarded: string): string | undefined {
  const ip = withoutPort(forwarded.trim());
  if (isIP(ip) === 0) return undefined;
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
}

/**
 * The client a request is counted against: its IP address (the proxy's X-Forwarded-For
 * when TRUST_PROXY is on, as Koa reads it), and for IPv6 its /64 network, since one host
 * commonly holds a whole /64 and could otherwise take a fresh address per request.
 */
export function rateLimitKey(forwarded: string): string {
  const ip = plainAddress(forwarded);
  // What a proxy wrote that is no address at all shares one count, and never throws.
  if (ip === undefined) return 'unreadable';
  if (!ip.includes(':')) return ip;
  const [head = '', tail] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/**
 * A per-client-IP limit shared by every route it guards: `perMinute` requests in a
 * minute, then 429 `rate_limited` with Retry-After (seconds) until the window frees up.
 * Counted by `counter`: in Postgres, so every instance on the database shares one count
 * (in memory on the embedded database, which one process owns).
 * `perMinute` 0 turns it off (the benchmark measures throughput that way).
 */
export function rateLimit(perMinute: number, counter: HitCounter = new MemoryHitCounter()): Middleware {
  if (perMinute === 0) {
    return async function noRateLimit(_ctx: Context, next: Next) {
      await next();
    };
  }
  return async function limitRate(ctx: Context, next: Next) {
    refuseOver(ctx, await counter.hit(`ip:${rateLimitKey(ctx.ip)}`, perMinute, WINDOW_SECONDS));
    await next();
  };
}

/** Over the limit: 429 `rate_limited` with Retry-After (seconds). */
function refuseOver(ctx: Context, verdict: HitVerdict): void {
  if (verdict.allowed) return;
  const retryAfter = Math.max(1, Math.ceil(verdict.msBeforeNext / 1000));
  ctx.set('Retry-After', String(retryAfter));
  const details = { retry_after: retryAfter };
  if (retryAfter <= 60)
    throw new HttpError(
      429,
      'rate_limited',
      'Too many requests. Wait a minute, then try again.',
      details,
    ).localized('errors.rateLimited');
  // The limits of 15 minutes (sign-up, recovery, device codes) said "wait a minute" too.
  const minutes = String(Math.ceil(retryAfter / 60));
  throw new HttpError(
    429,
    'rate_limited',
    `Too many requests. Try again in ${minutes} minutes.`,
    details,
  ).localized('errors.rateLimitedMinutes', { minutes });
}

/**
 * Sign-up attempts per email address from one requester (a client IP, an IPv6 /64): a person
 * retries a cancelled passkey prompt a few times. Counted per requester, not per address
 * alone: a count per address that anyone could use up let a stranger who knows someone's
 * address name it five times every 15 minutes and keep its owner from ever signing up. The
 * stranger now uses up only their own count; the owner, signing up from anywhere else, is
 * not refused. No cap per address from all requesters together: one answer already says
 * whether an address has an account (the answer for a taken one differs), so a cap would
 * bound only asking again about the same address, and two IPs could keep it used up and
 * lock the owner out again. Probing many addresses is bounded per IP (below).
 */
export const SIGNUP_ATTEMPTS_PER_ADDRESS_AND_IP = { name: 'signup-address-ip', points: 5, seconds: 15 * 60 };

/**
 * Sign-up attempts per client IP, whatever addresses they name: each sign-up mails a welcome
 * to the address it names and keeps an account on it, so without this one IP could mail
 * strangers some 200 times a minute under the general per-IP limit. A person needs one or
 * two; a household or an office behind one address gets 20 in 15 minutes.
 */
export const SIGNUP_ATTEMPTS_PER_IP = { name: 'signup-ip', points: 20, seconds: 15 * 60 };

/**
 * "Lost your passkey?" requests per address from one requester (a client IP, an IPv6 /64):
 * a person who lost their passkey asks once or twice, three times if a mail is slow. Counted
 * per requester, not per address alone: a count per address that anyone could use up let a
 * stranger who knows someone's address post it three times every 15 minutes and keep its
 * owner from ever recovering, for three requests a quarter hour. The stranger now uses up only
 * their own count; the owner, asking from anywhere else, still gets a link.
 */
export const SELF_RECOVERY_REQUESTS_PER_ADDRESS_AND_IP = {
  name: 'recover-address-ip',
  points: 3,
  seconds: 15 * 60,
};

/**
 * "Lost your passkey?" requests per address from all requesters together: each one mails a
 * link to that inbox, so this bounds the mail many IPs can send one mailbox to 20 per
 * hour-long window (a window starts at its first request: up to 40 within minutes across two).
 * One requester, at 3 per 15 minutes, gets at most 15 into a window, so no single address can
 * use this up; two IPv4 addresses or a few IPv6 /64s can, and keep it used up, and then each of
 * their posts still mails the owner a link (the newest works), and an administrator can hand one out.
 */
export const SELF_RECOVERY_REQUESTS_PER_ADDRESS = { name: 'recover-address', points: 20, seconds: 60 * 60 };

/** "Lost your passkey?" requests per client IP: a person needs one or two; a script probing many addresses gets 10. */
export const SELF_RECOVERY_REQUESTS_PER_IP = { name: 'recover-ip', points: 10, seconds: 15 * 60 };

/**
 * Changes on the account page per account (name, language, passkey names, revoking apps and
 * devices, signing out everywhere), whichever IP they come from: each one the account makes
 * is written to the audit log, so without this a signed-in script could write some 600 rows
 * a minute and push real events off /admin/audit's first page. A person makes a few.
 */
export const ACCOUNT_CHANGES_PER_ACCOUNT = { name: 'account-change', points: 30, seconds: WINDOW_SECONDS };

/** Welcome mails sent again per address (SIGNUP=open-verified): a lost mail needs one more, not a flood. */
export const WELCOME_RESENDS_PER_ADDRESS = { name: 'welcome-resend', points: 3, seconds: 15 * 60 };

/**
 * Device codes typed (or confirmed) at ISSUER/device per client IP: a person needs two or
 * three posts per device they sign in; a script guessing codes gets 30 tries in 15 minutes
 * against 20^8 possible codes.
 */
export const DEVICE_CODE_ENTRIES_PER_IP = { name: 'device-code', points: 30, seconds: 15 * 60 };

/**
 * Passkey API calls that carry the tenant's API key, counted per tenant rather than per IP:
 * they come from the app's own server, one address for all the app's users, so the per-IP
 * limit capped a whole app (at the default, some 300 sign-ins a minute of two calls each).
 * Hanko sets no limit; a tenant gets this many times RATE_LIMIT_PER_MINUTE (60,000 a
 * minute at the default), more than an app one Sesame serves makes, and still a ceiling for
 * a leaked key. A wrong key is no key: such calls keep the per-IP limit. A right key skips
 * it, so an address over its limit sees 200 for a right key among 429s: what makes guessing
 * hopeless is the key's 256 random bits, not this limit. (Refusing right keys from an address
 * over its limit for wrong ones would let anyone behind the app server's address, a NAT or a
 * platform's shared egress, lock the app's server out with a wrong key a second.)
 */
export const PASSKEY_API_KEYED_CALLS_FACTOR = 100;

/** The per-tenant limit of keyed passkey API calls for a RATE_LIMIT_PER_MINUTE of `perMinute`. */
export function passkeyApiKeyedCallsPerTenant(perMinute: number) {
  return {
    name: 'passkey-tenant',
    points: perMinute * PASSKEY_API_KEYED_CALLS_FACTOR,
    seconds: WINDOW_SECONDS,
  };
}

/**
 * A limit on what the caller names as `key` (an email address) rather than the client IP:
 * `points` per `seconds` (counted by `counter`, shared by instances like {@link rateLimit}),
 * then the same 429. `enabled` false (with
 * RATE_LIMIT_PER_MINUTE=0) turns it off.
 */
export function keyedRateLimit(
  { name, points, seconds }: { name: string; points: number; seconds: number },
  counter: HitCounter,
  enabled = true,
) {
  return async function countAttempt(ctx: Context, key: string): Promise<void> {
    if (enabled) refuseOver(ctx, await counter.hit(`${name}:${key}`, points, seconds));
  };
}
