/** A failed send as nodemailer reports it: the server's reply, its code and the command it answered. */
interface SmtpFailure {
  responseCode?: unknown;
  command?: unknown;
  response?: unknown;
}

/** The permanent replies to RCPT TO that are about the recipient (RFC 5321 §4.2.3). */
const RECIPIENT_REFUSED = new Set([
  501, // a syntax error in the address
  550, // no such mailbox
  551, // not local here
  553, // a mailbox name not allowed
]);

/**
 * Whether the server refused this mail for good, so that sending it again would be refused
 * again: its recipient at RCPT TO (see RECIPIENT_REFUSED; a 554 only with an address status,
 * 5.1.x, RFC 3463 §3.2), or its message at DATA (552 too large, 554 refused).
 *
 * Everything else is tried again, every half hour at most, for a day. A refusal of Sesame as a whole — at the
 * greeting, EHLO, STARTTLS, AUTH or MAIL FROM, or a relay or policy refusal (5.7.x, or
 * words of relaying) at RCPT TO, the answer to a wrong or missing login — is the operator's
 * to fix, and giving up would lose every mail meanwhile. A 552 at RCPT TO is a full mailbox,
 * temporary whatever its code says (RFC 5321 §4.5.3.1.10), and so is one said at DATA (5.2.2).
 */
export function isRefusedForGood(failure: unknown): boolean {
  const { responseCode: code, command, response } = failure as SmtpFailure;
  if (typeof code !== 'number') return false;
  const reply = typeof response === 'string' ? response : '';
  // A full mailbox (5.2.2, RFC 3463 §3.3) is temporary wherever it is said: a server that
  // delivers at the end of DATA (LMTP behind it, as Dovecot's quota) says it there.
  if (/^\d{3}[ -]5\.2\.2\b/.test(reply)) return false;
  if (command === 'DATA') return code === 552 || code === 554;
  if (command !== 'RCPT TO') return false;
  // The enhanced status code after the reply code, "550 5.1.1 ...": its subject, 1 (address) or 7 (policy).
  const subject = /^\d{3}[ -][245]\.(\d{1,3})\.\d{1,3}\b/.exec(reply)?.[1];
  if (subject === '7' || /\brelay/i.test(reply)) return false;
  if (code === 554) return subject === '1';
  return RECIPIENT_REFUSED.has(code);
}
