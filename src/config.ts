import fs from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { parse as parseConnectionString } from 'pg-connection-string';
import { z } from 'zod';
import { accentProblem, DEFAULT_ACCENT, normaliseHexColour } from './branding/colours.js';
import { type BrandImageKind, imageProblem, imageTypeOf } from './branding/images.js';
import { type Locale, SUPPORTED_LOCALES } from './i18n/locales.js';
import {
  CONTROL_CHARACTERS_REFUSED,
  hasNoControlCharacters,
  INVISIBLE_NAME_REFUSED,
  isVisibleText,
} from './text.js';

/** Raised when the environment holds a value Sesame cannot start with; its message is one line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

const httpUrl = (name: string) =>
  z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${name} must be an absolute http(s) URL` });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: `${name} must be an absolute http(s) URL` });
    } else if (url.search || url.hash || value.includes('#') || value.includes('?')) {
      ctx.addIssue({ code: 'custom', message: `${name} must not have a query or fragment` });
    } else if (url.username || url.password) {
      ctx.addIssue({ code: 'custom', message: `${name} must not contain a user name or password` });
    } else if (url.pathname !== '/') {
      // Sesame's routes (discovery, /interaction, /static) are served from the root of the host.
      ctx.addIssue({
        code: 'custom',
        message: `${name} must not have a path: serve Sesame at the root of its own host name`,
      });
    }
  });

const positiveInt = (name: string, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { message: `${name} must be a whole number` })
    .transform(Number)
    .refine((n) => n >= 1 && n <= max, { message: `${name} must be between 1 and ${max}` });

/**
 * How many reverse proxies stand in front of Sesame: `true` (or yes/1) one, a whole number
 * N that many, `false` (or no/0) none. Each trusted proxy appends the address it saw to
 * X-Forwarded-For, so the client is the N-th entry from the right; anything further left
 * was written by the client and is never believed.
 */
const proxyHops = (name: string) =>
  z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .refine((v) => /^\d+$/.test(v) || ['true', 'false', 'yes', 'no'].includes(v), {
      message: `${name} must be true, false or the number of proxies in front of Sesame`,
    })
    .transform((v) => (v === 'true' || v === 'yes' ? 1 : v === 'false' || v === 'no' ? 0 : Number(v)))
    .refine((n) => n <= 10, { message: `${name} must be at most 10 proxies` });

/** A whole number from 0 to `max`, where 0 means "off". */
const wholeNumber = (name: string, max: number, zeroMeans: string) =>
  z
    .string()
    .regex(/^\d+$/, { message: `${name} must be a whole number (0 ${zeroMeans})` })
    .transform(Number)
    .refine((n) => n <= max, { message: `${name} must be between 0 and ${max}` });

/** An accent colour that passes WCAG AA as text on white (see branding/colours.ts). */
const accentColour = (name: string) =>
  z
    .string()
    .superRefine((value, ctx) => {
      const problem = accentProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: `${name} ${problem}` });
    })
    .transform((value) => normaliseHexColour(value)!);

/** A brand image as it is served: its bytes, their type read from the magic bytes. */
export interface BrandImageFile {
  readonly bytes: Buffer;
  readonly type: string;
}

/** A path to a brand image, read once at start and checked for size and type. */
const brandImage = (name: string, kind: BrandImageKind) =>
  z.string().transform((file, ctx): BrandImageFile => {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(path.resolve(file));
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${name}: cannot read ${file}: ${(error as Error).message}` });
      return z.NEVER;
    }
    const problem = imageProblem(kind, bytes);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: `${name} ${problem}` });
      return z.NEVER;
    }
    return { bytes, type: imageTypeOf(bytes)! };
  });

/** The one setting SMTP_URL takes after `?`, and its values (see mailConfig). */
const STARTTLS_SETTINGS = ['required', 'optional'] as const;

/**
 * `smtp://` (STARTTLS, see mailConfig) or `smtps://` (TLS from the start), with a host, a
 * port if any of 1-65535, and no setting but `?starttls=required|optional`.
 */
const smtpUrl = (name: string) =>
  z.string().superRefine((value, ctx) => {
    const problem = smtpUrlProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: `${name}${problem}` });
  });

/** What is wrong with an SMTP_URL, as the rest of a sentence that starts with its name. */
function smtpUrlProblem(value: string): string | undefined {
  const url = URL.parse(value);
  // URL refuses a port past 65535 as a whole; say which part is wrong.
  const port = /^smtps?:\/\/(?:[^@/?#]*@)?(?:\[[^\]/?#]*\]|[^:/?#]*):(\d+)(?:[/?#]|$)/i.exec(value)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535))
    return `'s port must be 1-65535 (got ${port})`;
  if (!url || (url.protocol !== 'smtp:' && url.protocol !== 'smtps:'))
    return ' must be an smtp:// or smtps:// URL';
  if (!url.hostname) return " must name the mail server's host";
  if (!decodes(url.username) || !decodes(url.password))
    return "'s user name or password is not percent-encoded: write % as %25, or leave them out of the URL and set SMTP_USER and SMTP_PASSWORD";
  // Settings nodemailer would read (requireTLS, ...) are not read here: refused, not ignored.
  const settings = [...url.searchParams];
  const [setting] = settings;
  if (settings.length > 1 || (setting && setting[0] !== 'starttls'))
    return ` takes one setting after "?", starttls=required or starttls=optional (got ${url.search})`;
  if (setting && !(STARTTLS_SETTINGS as readonly string[]).includes(setting[1]))
    return `'s starttls must be "required" or "optional" (got "${setting[1]}")`;
  if (setting && url.protocol === 'smtps:')
    return "'s starttls is for smtp:// (smtps:// is TLS from the start)";
  return undefined;
}

/** Whether a URL's user name or password percent-decodes (a bare `%` does not). */
function decodes(part: string): boolean {
  try {
    decodeURIComponent(part);
    return true;
  } catch {
    return false;
  }
}

/**
 * A Postgres connection URL, read here as the pool reads it (pg-connection-string): a host,
 * or a Unix socket's directory (`postgres://sesame@/sesame?host=/var/run/postgresql`, or the
 * directory percent-encoded as the host). A URL it refuses (a port out of range, an sslcert
 * that is not there), or one with a broken escape, which it would read otherwise than
 * written, stops the start with this line, not at the first connection. Its message never repeats the URL, which may hold a password.
 */
const postgresUrl = (name: string) =>
  z.string().superRefine((value, ctx) => {
    if (!/^postgres(ql)?:\/\//.test(value)) {
      ctx.addIssue({ code: 'custom', message: `${name} must be a postgres:// or postgresql:// URL` });
      return;
    }
    // pg reads a URL with a bare % by escaping it whole: a password's %41 stays "%41" in one
    // URL and becomes "A" in another. Refused as SMTP_URL's is.
    if (/%(?![0-9a-f]{2})/i.test(value)) {
      ctx.addIssue({
        code: 'custom',
        message: `${name} has a % that is not a percent-escape: write % as %25 (in its password too)`,
      });
      return;
    }
    try {
      parseConnectionString(value);
    } catch (error) {
      const said = (error as { message?: unknown } | undefined)?.message;
      const reason = typeof said === 'string' && said ? said : 'unreadable';
      ctx.addIssue({
        code: 'custom',
        message: `${name} is not a connection URL Postgres clients read: ${reason}`,
      });
    }
  });

const schema = z.object({
  // No default here: it follows PORT (http://localhost:$PORT), see loadConfig.
  ISSUER: httpUrl('ISSUER').optional(),
  PORT: positiveInt('PORT', 65535).default(3000),
  HOST: z
    .string()
    .regex(/^[A-Za-z0-9.:%_-]+$/, { message: 'HOST must be a host name or an IP address to listen on' })
    .default('0.0.0.0'),
  DATABASE_URL: postgresUrl('DATABASE_URL').optional(),
  DATABASE_DIRECT_URL: postgresUrl('DATABASE_DIRECT_URL').optional(),
  DATA_DIR: z.string().min(1, { message: 'DATA_DIR must not be empty' }).default('./data'),
  RP_NAME: z
    .string()
    .min(1, { message: 'RP_NAME must not be empty' })
    .max(64, { message: 'RP_NAME must be at most 64 characters' })
    // It is the first line of every mail's subject and the passkey dialog's name.
    .refine(hasNoControlCharacters, { message: `RP_NAME ${CONTROL_CHARACTERS_REFUSED}` })
    // A name of spaces or zero-width characters signs every mail and names every passkey with nothing.
    .refine(isVisibleText, { message: `RP_NAME ${INVISIBLE_NAME_REFUSED}` })
    .default('Sesame'),
  // No default here: it follows RP_NAME, the name the passkey dialog shows, see loadConfig.
  BRAND_NAME: z
    .string()
    .trim()
    .min(1, { message: 'BRAND_NAME must not be empty' })
    .max(64, { message: 'BRAND_NAME must be at most 64 characters' })
    .refine(hasNoControlCharacters, { message: `BRAND_NAME ${CONTROL_CHARACTERS_REFUSED}` })
    .refine(isVisibleText, { message: `BRAND_NAME ${INVISIBLE_NAME_REFUSED}` })
    .optional(),
  BRAND_ACCENT: accentColour('BRAND_ACCENT').default(DEFAULT_ACCENT),
  BRAND_LOGO: brandImage('BRAND_LOGO', 'logo').optional(),
  BRAND_FAVICON: brandImage('BRAND_FAVICON', 'favicon').optional(),
  SIGNUP: z
    .enum(['open', 'invite', 'open-verified'], {
      message: 'SIGNUP must be "open" or "invite" (or "open-verified": open, for verified addresses only)',
    })
    .default('open'),
  DEFAULT_LOCALE: z
    .enum(SUPPORTED_LOCALES, { message: `DEFAULT_LOCALE must be one of ${SUPPORTED_LOCALES.join(', ')}` })
    .default('en'),
  LOG_LEVEL: z
    .enum(LOG_LEVELS, { message: `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}` })
    .default('info'),
  TRUST_PROXY: proxyHops('TRUST_PROXY').default(0),
  KEY_ENCRYPTION_SECRET: z
    .string()
    .min(32, { message: 'KEY_ENCRYPTION_SECRET must be at least 32 characters' })
    .optional(),
  KEY_ENCRYPTION_SECRET_PREVIOUS: z
    .string()
    .min(32, { message: 'KEY_ENCRYPTION_SECRET_PREVIOUS must be at least 32 characters' })
    .optional(),
  INVITE_TTL_HOURS: positiveInt('INVITE_TTL_HOURS', 24 * 30).default(24),
  RATE_LIMIT_PER_MINUTE: wholeNumber('RATE_LIMIT_PER_MINUTE', 1_000_000, 'turns rate limiting off').default(
    600,
  ),
  AUDIT_LOG_DAYS: wholeNumber('AUDIT_LOG_DAYS', 36_500, 'keeps them forever').default(365),
  PASSKEY_AUDIT_LOG_DAYS: wholeNumber('PASSKEY_AUDIT_LOG_DAYS', 36_500, 'keeps them forever').default(90),
  SMTP_URL: smtpUrl('SMTP_URL').optional(),
  SMTP_USER: z.string().optional(),
  SMTP_PASSWORD: z.string().optional(),
  MAIL_FROM: z
    .string()
    .max(320, { message: 'MAIL_FROM must be at most 320 characters' })
    // A line break would end the From header and start another of its choosing.
    .refine(hasNoControlCharacters, { message: `MAIL_FROM ${CONTROL_CHARACTERS_REFUSED}` })
    .refine((v) => mailSender(v) !== undefined, {
      message: 'MAIL_FROM must be an address, like sesame@example.com or "Sesame <sesame@example.com>"',
    })
    .optional(),
  SELF_RECOVERY: z.enum(['on', 'off'], { message: 'SELF_RECOVERY must be "on" or "off"' }).default('on'),
});

/** Sesame's settings, read once from the environment and frozen. */
export interface Config {
  /** Public base URL; the OIDC issuer, WebAuthn origin and RP ID derive from it. */
  readonly issuer: string;
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string | undefined;
  /**
   * A direct (or session-mode pooler) connection for LISTEN and migrations, which need one
   * server session throughout; DATABASE_URL when unset.
   */
  readonly databaseDirectUrl: string | undefined;
  readonly dataDir: string;
  readonly rpName: string;
  /** WebAuthn relying party id: the issuer's host name (WebAuthn L3 §5.1.2). */
  readonly rpId: string;
  /** WebAuthn origin the browser reports in clientDataJSON. */
  readonly origin: string;
  /**
   * What pages show until an admin changes it on /admin/branding: the name (BRAND_NAME,
   * else RP_NAME), the accent colour, and the logo and favicon files read at start.
   */
  readonly brand: {
    readonly name: string;
    readonly accent: string;
    readonly logo: BrandImageFile | undefined;
    readonly favicon: BrandImageFile | undefined;
  };
  /** The pages' language when neither the OIDC request, the account nor the browser picks a supported one. */
  readonly defaultLocale: Locale;
  /** Who may create an account; `open-verified`: anyone, but an account signs in to apps only once its address is verified. */
  readonly signup: 'open' | 'invite' | 'open-verified';
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** Whether a reverse proxy's X-Forwarded-* headers are read (TRUST_PROXY). */
  readonly trustProxy: boolean;
  /** How many proxies append to X-Forwarded-For; the client is that many entries from the right (0 when off). */
  readonly proxyHops: number;
  /** Seals private keys (and queued mails' bodies) at rest, and opens them. */
  readonly keyEncryptionSecret: string | undefined;
  /**
   * The secret KEY_ENCRYPTION_SECRET replaces, while the stored keys are re-sealed with the new
   * one (`sesame keys reseal`): it only opens, never seals.
   */
  readonly keyEncryptionSecretPrevious: string | undefined;
  readonly inviteTtlSeconds: number;
  /** Passkey ceremonies and one-time link requests one client IP may make per minute; 0: no limit. */
  readonly rateLimitPerMinute: number;
  /**
   * Days Sesame keeps its audit log's events (AUDIT_LOG_DAYS, /admin/audit); 0 keeps them
   * forever. Without a bound the log grows with every sign-in, failed one included.
   */
  readonly auditLogDays: number;
  /**
   * Days the passkey API keeps its tenants' audit log entries (PASSKEY_AUDIT_LOG_DAYS); 0
   * keeps them forever. Anyone may start a passkey login, and each start is an entry.
   */
  readonly passkeyAuditLogDays: number;
  /** Cookies get the Secure flag when the issuer is served over https. */
  readonly secureCookies: boolean;
  /** How Sesame sends mail (SMTP_URL, MAIL_FROM); undefined: it sends none and admins hand links over. */
  readonly mail: MailConfig | undefined;
  /** Whether "Lost your passkey?" mails a recovery link (needs mail; SELF_RECOVERY=off turns it off). */
  readonly selfRecovery: boolean;
}

/** The SMTP server and sender of Sesame's mail. */
export interface MailConfig {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (smtps://); otherwise STARTTLS when the server offers it, or always (requireTLS). */
  readonly secure: boolean;
  /** With smtp://: send nothing unless the server takes STARTTLS (see mailConfig). */
  readonly requireTLS: boolean;
  readonly auth: { readonly user: string; readonly pass: string } | undefined;
  /** MAIL_FROM: its address, and the name shown before it ('' when none). */
  readonly from: MailSender;
}

/** The sender of Sesame's mail, as MAIL_FROM names it. */
export interface MailSender {
  readonly name: string;
  readonly address: string;
}

// An address without the characters that mail headers read as structure: a comma or
// semicolon (a list), parentheses (a comment), quotes, brackets, a colon (a group).
const SENDER_ADDRESS = /^[^\s@<>()[\]",;:\\]+@[^\s@<>()[\]",;:\\]+$/;

/**
 * MAIL_FROM (`sesame@example.com` or `Name <sesame@example.com>`, the name quoted or not) as
 * its name and address, or undefined when it is neither. The mail library is handed the two
 * apart and quotes the name itself: handed the string, it reads the name's own commas,
 * colons, parentheses or quotes as mail syntax, and `Acme: sign-in <…>` became a group, `Acme
 * (EU <…>` no sender at all, and `Ac"me <…>` another address.
 */
export function mailSender(value: string): MailSender | undefined {
  const trimmed = value.trim();
  const angled = /^([^<>]*)<([^<>]*)>$/.exec(trimmed);
  const address = angled ? angled[2]!.trim() : trimmed;
  if (!SENDER_ADDRESS.test(address)) return undefined;
  const name = angled ? angled[1]!.trim() : '';
  const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(name);
  return { name: quoted ? quoted[1]!.replace(/\\(.)/g, '$1') : name, address };
}

/** The mail settings from SMTP_URL, SMTP_USER, SMTP_PASSWORD and MAIL_FROM. */
function mailConfig(values: z.infer<typeof schema>): MailConfig | undefined {
  if (!values.SMTP_URL) {
    for (const name of ['MAIL_FROM', 'SMTP_USER', 'SMTP_PASSWORD'] as const) {
      if (values[name])
        throw new ConfigError(`${name} is set but SMTP_URL is not: set SMTP_URL to send mail`);
    }
    return undefined;
  }
  if (!values.MAIL_FROM)
    throw new ConfigError("MAIL_FROM must be set when SMTP_URL is (the sender of Sesame's mail)");
  const url = new URL(values.SMTP_URL);
  const secure = url.protocol === 'smtps:';
  const user = values.SMTP_USER ?? decodeURIComponent(url.username);
  const pass = values.SMTP_PASSWORD ?? decodeURIComponent(url.password);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // Every mail holds a one-time link that takes the account over, and the login is a
  // password: neither crosses a network in clear. So smtp:// requires STARTTLS, except to
  // this machine (a local relay or a dev sink, where nothing crosses a wire) or when the
  // operator says the relay is trusted (?starttls=optional).
  const starttls = url.searchParams.get('starttls') ?? (isLoopbackHost(host) ? 'optional' : 'required');
  return Object.freeze({
    host,
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    requireTLS: !secure && starttls === 'required',
    auth: user ? Object.freeze({ user, pass }) : undefined,
    from: Object.freeze(mailSender(values.MAIL_FROM)!),
  });
}

/**
 * The process environment over the `.env` file in the working directory (if there is one):
 * a variable set in the real environment wins over the file, as with docker and systemd.
 * @throws ConfigError when the file exists but cannot be read.
 */
function environmentWithDotEnv(file = path.resolve('.env')): NodeJS.ProcessEnv {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return process.env;
    throw new ConfigError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return { ...parseEnv(text), ...process.env };
}

/**
 * Validates the environment and returns the frozen configuration. Without `env` it reads
 * the process environment over `./.env`.
 * Empty (or blank) values count as unset, so `PORT=` in an env file falls back to the default.
 * @throws ConfigError with one line naming the variable and what is wrong.
 */
export function loadConfig(env: NodeJS.ProcessEnv = environmentWithDotEnv()): Config {
  const input = Object.fromEntries(
    Object.keys(schema.shape)
      .map((key) => [key, env[key]])
      .filter(([, value]) => value !== undefined && value.trim() !== ''),
  );
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    const message = issue.message.startsWith(variable) ? issue.message : `${variable}: ${issue.message}`;
    throw new ConfigError(message);
  }
  const values = parsed.data;
  const issuerUrl = new URL(values.ISSUER ?? `http://localhost:${values.PORT}`);
  const issuer = issuerUrl.href.replace(/\/$/, '');
  if (values.DATABASE_DIRECT_URL && !values.DATABASE_URL)
    throw new ConfigError(
      'DATABASE_DIRECT_URL is set but DATABASE_URL is not: set DATABASE_URL too, or neither for the embedded database',
    );
  const mail = mailConfig(values);
  if (values.SIGNUP === 'open-verified' && !mail) {
    throw new ConfigError(
      'SIGNUP=open-verified needs SMTP_URL and MAIL_FROM: the verification link is mailed',
    );
  }
  if (values.KEY_ENCRYPTION_SECRET_PREVIOUS !== undefined) {
    if (values.KEY_ENCRYPTION_SECRET === undefined) {
      throw new ConfigError(
        'KEY_ENCRYPTION_SECRET_PREVIOUS is set but KEY_ENCRYPTION_SECRET is not: set the new secret the keys are to be sealed with',
      );
    }
    if (values.KEY_ENCRYPTION_SECRET_PREVIOUS === values.KEY_ENCRYPTION_SECRET) {
      throw new ConfigError(
        'KEY_ENCRYPTION_SECRET_PREVIOUS is the same as KEY_ENCRYPTION_SECRET: set it to the secret being replaced, or unset it',
      );
    }
  }
  return Object.freeze({
    issuer,
    port: values.PORT,
    host: values.HOST,
    databaseUrl: values.DATABASE_URL,
    databaseDirectUrl: values.DATABASE_URL ? (values.DATABASE_DIRECT_URL ?? values.DATABASE_URL) : undefined,
    dataDir: path.resolve(values.DATA_DIR),
    rpName: values.RP_NAME,
    rpId: issuerUrl.hostname,
    origin: issuerUrl.origin,
    brand: Object.freeze({
      name: values.BRAND_NAME ?? values.RP_NAME,
      accent: values.BRAND_ACCENT,
      logo: values.BRAND_LOGO,
      favicon: values.BRAND_FAVICON,
    }),
    signup: values.SIGNUP,
    defaultLocale: values.DEFAULT_LOCALE,
    logLevel: values.LOG_LEVEL,
    trustProxy: values.TRUST_PROXY > 0,
    proxyHops: values.TRUST_PROXY,
    keyEncryptionSecret: values.KEY_ENCRYPTION_SECRET,
    keyEncryptionSecretPrevious: values.KEY_ENCRYPTION_SECRET_PREVIOUS,
    inviteTtlSeconds: values.INVITE_TTL_HOURS * 3600,
    rateLimitPerMinute: values.RATE_LIMIT_PER_MINUTE,
    auditLogDays: values.AUDIT_LOG_DAYS,
    passkeyAuditLogDays: values.PASSKEY_AUDIT_LOG_DAYS,
    secureCookies: issuerUrl.protocol === 'https:',
    mail,
    selfRecovery: mail !== undefined && values.SELF_RECOVERY === 'on',
  });
}

/** Options tests and embedders use to build a config without touching process.env. */
export function configFrom(overrides: Record<string, string | undefined>): Config {
  return loadConfig(overrides as NodeJS.ProcessEnv);
}

/** A host whose connections never leave this machine: `localhost`, 127.0.0.0/8 or ::1. */
function isLoopbackHost(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  return host.toLowerCase() === 'localhost' || host === '::1';
}

/** Host names browsers treat as a secure context over plain http (W3C Secure Contexts §3.1). */
function isLocalhost(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost');
}

/**
 * Settings Sesame starts with but that cannot work as intended, each as one line for the
 * start-up log: an ISSUER on which browsers refuse passkeys, an ISSUER on this machine on
 * another port than PORT, an https ISSUER on PORT itself (where Sesame serves plain http), and
 * an https ISSUER reached through a proxy that Sesame does not trust.
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  const issuer = new URL(config.issuer);
  const hostname = issuer.hostname.replace(/^\[|\]$/g, '');
  if (isIP(hostname)) {
    // WebAuthn L3 §5.1.2: the RP ID is a valid domain string; an IP address is not one.
    warnings.push(
      `ISSUER ${config.issuer} has an IP address as its host: passkeys need a host name (use http://localhost:${issuer.port || config.port} locally, or a domain with https)`,
    );
  } else if (issuer.protocol === 'http:' && !isLocalhost(hostname)) {
    // WebAuthn runs only in a secure context: https, or http on localhost.
    warnings.push(
      `ISSUER ${config.issuer} is http on a host other than localhost: browsers allow passkeys only over https there`,
    );
  }
  // An ISSUER on this machine on another port than PORT: its links (the setup link first)
  // lead where nothing listens, unless a proxy here maps the port (so not an error).
  const issuerPort = Number(issuer.port || (issuer.protocol === 'https:' ? 443 : 80));
  if ((isLoopbackHost(hostname) || isLocalhost(hostname)) && issuerPort !== config.port) {
    warnings.push(
      `ISSUER ${config.issuer} is on this machine but Sesame listens on PORT ${config.port}: its links lead to port ${issuerPort}, where only a proxy forwarding to ${config.port} would answer`,
    );
  }
  // Sesame serves no TLS: an https ISSUER means a proxy, on this machine or another. For an
  // ISSUER on this machine (localhost, a loopback address) the proxy would have to listen on
  // ISSUER's port, where Sesame listens itself: every page fails with a TLS error (the
  // TRUST_PROXY line below does not say why). A public host's proxy may be another machine
  // forwarding its port to the same port here.
  if (
    issuer.protocol === 'https:' &&
    issuerPort === config.port &&
    (isLoopbackHost(hostname) || isLocalhost(hostname))
  ) {
    warnings.push(
      `ISSUER ${config.issuer} is https on port ${issuerPort}, where Sesame itself serves plain http (PORT): an https ISSUER needs a TLS-terminating proxy in front, on that port forwarding to another PORT, or browsers get a TLS error on every page (locally, use http://localhost:${config.port})`,
    );
  }
  if (issuer.protocol === 'https:' && !config.trustProxy) {
    warnings.push(
      `ISSUER is https but TRUST_PROXY is not set: behind a TLS proxy set TRUST_PROXY=true, or every client counts as the proxy's address in rate limits and logs`,
    );
  }
  return warnings;
}
