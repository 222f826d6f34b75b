import { domainToASCII } from 'node:url';
import { z } from 'zod';

/**
 * Rules for the text people and admins type in: names and email addresses. Names are shown
 * on pages (escaped), in ID tokens and in the CLI's tables on an admin's terminal, where a
 * control character is a command: ESC starts sequences that retitle the window, recolour or
 * clear the screen or write the clipboard, and CR or LF fakes a line.
 */

/** Control characters (Unicode Cc: C0, DEL and C1), and the bidirectional embeddings, overrides and isolates that reorder what follows them. */
const UNWANTED_IN_A_NAME = /[\p{Cc}\u202A-\u202E\u2066-\u2069]/u;

/**
 * Whether a URI an admin registers (a redirect, logo or back-channel logout URI, an API's
 * identifier) holds no whitespace, control character or bidirectional override. URL's parser
 * drops tabs and newlines and percent-encodes the rest, so it accepts such a string, but the
 * string as typed is what is stored, compared and shown.
 */
export function isPlainUriText(text: string): boolean {
  return !/\s/.test(text) && !UNWANTED_IN_A_NAME.test(text);
}

/** The rule's words where admins type a name (the API, the admin pages, the CLI); people's pages say it in their language. */
export const CONTROL_CHARACTERS_REFUSED = 'must not contain control characters';

/** The rule's words for a name an admin typed that shows nothing (see {@link isVisibleText}). */
export const INVISIBLE_NAME_REFUSED = 'must show something, not only spaces or invisible characters';

/**
 * Whether a name shows anything: it holds more than spaces and invisible characters (format
 * characters such as U+200B or a soft hyphen, tag characters, variation selectors, Hangul
 * fillers, and the code points Unicode reserves to draw as nothing even while unassigned,
 * U+2065 say). Such a name is blank on every page and in the `name` claim; a name is then no name.
 */
export function isVisibleText(text: string): boolean {
  return /[^\p{White_Space}\p{Cf}\p{Cc}\p{Mn}\p{Default_Ignorable_Code_Point}\u2800]/u.test(text);
}

/**
 * A name someone types that others read (an app, an API key, a passkey API user or
 * passkey): trimmed, 1 to `max` characters, no control character, and something to see.
 */
export const shownName = (max: number) =>
  z
    .string()
    .trim()
    .min(1, { message: 'is required' })
    .max(max, { message: `must be at most ${max} characters` })
    .refine(hasNoControlCharacters, CONTROL_CHARACTERS_REFUSED)
    .refine(isVisibleText, INVISIBLE_NAME_REFUSED);

/** Whether a name holds no control character and no bidirectional override (see {@link UNWANTED_IN_A_NAME}). */
export function hasNoControlCharacters(text: string): boolean {
  return !UNWANTED_IN_A_NAME.test(text);
}

const CONTROL = /[\p{Cc}\u202A-\u202E\u2066-\u2069]/gu;
const CONTROL_BUT_NEWLINE = /(?!\n)[\p{Cc}\u202A-\u202E\u2066-\u2069]/gu;

/**
 * `text` safe to write to a terminal: each control character and bidirectional override as
 * its `\u` escape (ESC as `\u001b`, U+202E, which shows the rest of a row reversed, as `\u202e`), newlines kept when `keepNewlines` (a multi-line message), else escaped too (one
 * cell of a table, where a newline would fake a row). Stored values from before a rule
 * refused them, and values no rule covers, pass through here.
 */
export function printable(text: string, keepNewlines = false): string {
  return text.replace(
    keepNewlines ? CONTROL_BUT_NEWLINE : CONTROL,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export const EMAIL_MAX_LENGTH = 254;

// RFC 5322's dot-atom: atext (letters and digits of any script, as SMTPUTF8 allows, and
// !#$%&'*+/=?^_`{|}~-) in dot-separated runs. No quotes, comments, angle brackets, commas or
// display names: a mail library reads those as a different recipient, or several.
const ATOM = "[\\p{L}\\p{N}\\p{M}!#$%&'*+/=?^_`{|}~-]+";
// A domain of two or more labels of letters, digits and inner hyphens; no trailing dot.
const LABEL = '[\\p{L}\\p{N}\\p{M}](?:[\\p{L}\\p{N}\\p{M}-]*[\\p{L}\\p{N}\\p{M}])?';
const PLAIN_ADDRESS = new RegExp(`^${ATOM}(?:\\.${ATOM})*@(?:${LABEL}\\.)+${LABEL}$`, 'u');

/**
 * An email address as Sesame keeps it: trimmed and in Unicode NFKC, so that a composed and a
 * decomposed "é", or full-width letters typed with an input method, are one address.
 */
export function normalizeEmail(input: string): string {
  return input.trim().normalize('NFKC');
}

/**
 * An address as per-address limits count it: compatibility forms, accents and case folded
 * (and a final sigma as any other). The account lookup compares with the database's
 * `lower()`, which folds some letters JavaScript's toLowerCase() keeps apart (`İ`, `ς`): each
 * such spelling of one address found the same account and made a count of its own, so
 * `alİce@…` had three more recovery mails sent to alice. Folding more than the lookup only
 * ever shares a count between addresses, never splits one.
 */
export function addressKey(email: string): string {
  return email.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replaceAll('ς', 'σ');
}

/**
 * Whether `email` (normalized) is one plain address, `local@domain.tld`: what the mail is
 * sent to must be exactly what was stored and verified. `ceo<attacker@evil.example>` or
 * `a,b@example.com` would otherwise be one account's address and another mailbox's mail.
 */
export function isPlainEmailAddress(email: string): boolean {
  if (email.length > EMAIL_MAX_LENGTH || !PLAIN_ADDRESS.test(email)) return false;
  // What mail servers refuse for good (a 501 that the outbox would try again for a day): a
  // local part over 64 octets (RFC 5321 §4.5.3.1.1), a domain label over 63 in its ASCII form
  // (RFC 1035 §2.3.4; an IDN label as punycode), or a domain over 253.
  const at = email.lastIndexOf('@');
  if (Buffer.byteLength(email.slice(0, at)) > 64) return false;
  const domain = domainToASCII(email.slice(at + 1));
  return domain !== '' && domain.length <= 253 && domain.split('.').every((label) => label.length <= 63);
}
