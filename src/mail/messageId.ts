import { domainToASCII } from 'node:url';

/**
 * The Message-ID of the outbox's mail `id`, the same at every attempt: a mail the server
 * took but whose answer was lost is sent again, and the copy can then be told apart (and
 * dropped) by the receiver. The domain is the sender's (RFC 5322 §3.6.4), in ASCII.
 */
export function messageIdFor(id: string, address: string): string {
  const domain = address.slice(address.lastIndexOf('@') + 1);
  return `<${id}@${domainToASCII(domain) || domain}>`;
}
