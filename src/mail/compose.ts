import path from 'node:path';
import { Eta } from 'eta';
import type { Config } from '../config.js';
import type { NewMail } from '../db/queries/mailOutbox.js';
import { VIEWS_DIR } from '../paths.js';

const MAIL_VIEWS = path.join(VIEWS_DIR, 'mail');
// Plain text is not HTML: nothing to escape. The HTML part escapes every <%= %>, as pages do.
const text = new Eta({ views: MAIL_VIEWS, autoEscape: false, cache: true, autoTrim: false });
const html = new Eta({ views: MAIL_VIEWS, autoEscape: true, cache: true, autoTrim: false });

/** What each mail's templates (views/mail/<template>.txt.eta and .html.eta) are given. */
export interface MailData {
  invite: { email: string; url: string; expiresAt: Date; admin: boolean };
  recovery: { email: string; url: string; expiresAt: Date; selfService: boolean };
  welcome: { email: string; url: string; expiresAt: Date; mustVerify: boolean };
  notice: {
    notice: 'passkey_added' | 'passkey_removed' | 'recovery_used' | 'admin_granted';
    email: string;
    passkeyName: string | null;
    at: Date;
    accountUrl: string;
  };
}

export type MailTemplate = keyof MailData;

/** A date as mails show it, in UTC: 2026-12-02 13:05. */
function mailDate(date: Date): string {
  return date.toISOString().replace('T', ' ').slice(0, 16);
}

/**
 * Renders one mail for `to`: its subject is the first line of the text template, the text
 * part what follows the blank line after it, the HTML part the .html template in the mail
 * layout. Every sentence lives in the templates; the issuer's name is RP_NAME.
 */
export function composeMail<T extends MailTemplate>(
  config: Config,
  template: T,
  to: string,
  data: MailData[T],
): NewMail {
  const values: Record<string, unknown> = { ...data, issuerName: config.rpName };
  if ('expiresAt' in data) values.expires = mailDate(data.expiresAt);
  if ('at' in data) values.when = mailDate(data.at);
  const [subject = '', ...body] = text.render(`./${template}.txt.eta`, values).split('\n');
  const rendered = html.render(`./${template}.html.eta`, { ...values, subject });
  return { template, to, subject: subject.trim(), text: body.join('\n').trimStart(), html: rendered };
}
