import path from 'node:path';
import { Eta } from 'eta';
import type { Config } from '../config.js';
import type { NewMail } from '../db/queries/mailOutbox.js';
import type { User } from '../db/schema.js';
import { type Translator, translatorFor } from '../i18n/catalog.js';
import { isLocale, type Locale } from '../i18n/locales.js';
import { VIEWS_DIR } from '../paths.js';
import type { SecurityNotice } from './notices.js';

const MAIL_VIEWS = path.join(VIEWS_DIR, 'mail');
// Plain text is not HTML: nothing to escape. The HTML part escapes every <%= %>, as pages do.
const text = new Eta({ views: MAIL_VIEWS, autoEscape: false, cache: true, autoTrim: false });
const html = new Eta({ views: MAIL_VIEWS, autoEscape: true, cache: true, autoTrim: false });

/** What each mail's templates (views/mail/<template>.txt.eta and .html.eta) are given. */
export interface MailData {
  invite: { email: string; url: string; expiresAt: Date; admin: boolean };
  recovery: { email: string; url: string; expiresAt: Date; selfService: boolean };
  /**
   * "Lost your passkey?" asked for an administrator's address: no link, only how an
   * administrator gets back in (another administrator's link, or `command` on the server).
   */
  adminRecovery: { email: string; adminUrl: string; command: string };
  welcome: { email: string; url: string; expiresAt: Date; mustVerify: boolean };
  /** A new link to verify the address, asked for on the account page or the sign-in's "Send the link again". */
  confirmation: { email: string; url: string; expiresAt: Date; mustVerify: boolean };
  notice: {
    notice: SecurityNotice;
    email: string;
    passkeyName: string | null;
    at: Date;
    accountUrl: string;
    /** For a recovery: the passkeys the account had before, removed with the link's use or kept. */
    otherPasskeys?: { removed: number; kept: number } | null;
  };
}

export type MailTemplate = keyof MailData;

/**
 * The language a mail to `account` is written in: the one its owner chose, else (for a
 * request the person made themselves) the request's, else the language of their last
 * sign-in's page or, before one, of the page the account was made on (for mails an
 * administrator's action sends), else DEFAULT_LOCALE.
 */
export function mailLocale(
  config: Pick<Config, 'defaultLocale'>,
  account: Pick<User, 'locale' | 'signup_locale'> | undefined | null,
  requested?: Locale,
): Locale {
  if (isLocale(account?.locale)) return account.locale;
  if (requested) return requested;
  return isLocale(account?.signup_locale) ? account.signup_locale : config.defaultLocale;
}

// Text parts use the HTML messages without their markup (only <strong> around values).
const withoutMarkup = (html: string) => html.replace(/<\/?strong>/g, '');

/** What a recovery notice says of the account's other passkeys: gone, or still signing in; nothing when it had none. */
function otherPasskeysText(
  t: Translator['t'],
  others: MailData['notice']['otherPasskeys'],
): string | undefined {
  if (others?.removed) return t('mail.notice.removedPasskeys', { count: others.removed });
  if (others?.kept) return t('mail.notice.keptPasskeys', { count: others.kept });
  return undefined;
}

/**
 * Renders one mail for `to` in `locale`: its subject is the first line of the text template,
 * the text part what follows the blank line after it, the HTML part the .html template in
 * the mail layout. The sentences live in locales/*.json (`mail`); the issuer's name is RP_NAME.
 */
export function composeMail<T extends MailTemplate>(
  config: Config,
  template: T,
  to: string,
  data: MailData[T],
  locale: Locale,
): NewMail {
  const translator = translatorFor(locale);
  const values: Record<string, unknown> = {
    ...data,
    issuerName: config.rpName,
    lang: locale,
    t: translator.t,
    html: translator.html,
    plain: (key: string, values: Record<string, unknown>) => withoutMarkup(translator.t(key, values)),
  };
  // Dates stay dates: the catalog writes them as the recipient's language does (`{{expires, datetime}}`).
  if ('expiresAt' in data) values.expires = data.expiresAt;
  if ('at' in data) values.when = data.at;
  if ('notice' in data) {
    const named = data.passkeyName && data.notice.startsWith('passkey_') ? 'Named' : '';
    values.bodyKey = `mail.notice.body.${data.notice}${named}Html`;
    // A blocked passkey is no change the owner may have made: its footer says what to do.
    values.footerKey = data.notice === 'passkey_blocked' ? 'mail.notice.blockedFooter' : 'mail.notice.footer';
    values.bodyValues = {
      issuer: config.rpName,
      email: data.email,
      name: data.passkeyName,
      when: values.when,
    };
    values.otherPasskeysText = otherPasskeysText(translator.t, data.otherPasskeys);
  }
  const [subject = '', ...body] = text.render(`./${template}.txt.eta`, values).split('\n');
  const rendered = html.render(`./${template}.html.eta`, { ...values, subject });
  return { template, to, subject: subject.trim(), text: body.join('\n').trimStart(), html: rendered };
}
