import { setTimeout as sleep } from 'node:timers/promises';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { Logger } from '../../src/logger.js';
import { freePort, startTestApp } from './testApp.js';

/** A mail the test SMTP server received, parsed. */
export interface ReceivedMail {
  /** The recipients of the SMTP envelope (RCPT TO); smtp-server shows a punycode domain in Unicode. */
  envelopeTo: string[];
  to: string;
  from: string;
  subject: string;
  text: string;
  html: string;
  parsed: ParsedMail;
}

/**
 * A real SMTP server in this process (smtp-server) on a loopback port of this Jest worker:
 * every mail it accepts is parsed (mailparser) into `received`. `stop()` takes it down and
 * `start()` brings it back on the same port, as a mail server that goes away for a while.
 * With `auth`, it insists on that user and password (each login it is offered is in
 * `logins`; every command line clients send is in `commands`); the `refuse...` options refuse connections, recipients or messages, with a
 * reply code or a whole reply ("554 5.7.1 Relay access denied"); `replyAfterMs` answers
 * the connection, MAIL FROM and RCPT TO that much late, as a slow server does.
 */
export async function startMailServer(
  options: {
    auth?: { user: string; pass: string };
    /** The reply (550: no such mailbox, 450: try later) to a recipient it refuses. */
    refuseRecipient?: (address: string) => Refusal | undefined;
    /** The reply instead of the greeting, for a client it refuses as a whole. */
    refuseConnection?: () => Refusal | undefined;
    /** The reply at the end of DATA to a message it refuses (which is then not in `received`). */
    refuseMessage?: (mail: ReceivedMail) => Refusal | undefined;
    replyAfterMs?: number;
  } = {},
) {
  const port = await freePort();
  const received: ReceivedMail[] = [];
  const logins: string[] = [];
  const commands: string[] = [];
  let server: SMTPServer | undefined;
  /** Calls `callback` (with the refusal, if any) `replyAfterMs` late. */
  const reply = (callback: (error?: Error | null) => void, refusal?: Refusal, what = 'refused') =>
    setTimeout(
      () => callback(refusal === undefined ? null : refusalError(refusal, what)),
      options.replyAfterMs ?? 0,
    );

  const start = async () => {
    server = new SMTPServer({
      disabledCommands: options.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      authOptional: !options.auth,
      allowInsecureAuth: true,
      // A refusal's reply is exactly the one given, with no enhanced status code added.
      hideENHANCEDSTATUSCODES: true,
      // Every line a client sends, as sent (smtp-server turns a punycode address into Unicode).
      logger: {
        debug(entry: { tnx?: string }, _message: string, line: string) {
          if (entry.tnx === 'command') commands.push(line);
        },
      } as unknown as SMTPServerOptions['logger'],
      onConnect(_session, callback) {
        reply(callback, options.refuseConnection?.(), 'Access denied');
      },
      onAuth(auth, _session, callback) {
        logins.push(auth.username ?? '');
        if (auth.username === options.auth?.user && auth.password === options.auth?.pass) {
          callback(null, { user: auth.username });
        } else {
          callback(new Error('Invalid username or password'));
        }
      },
      onMailFrom(_address, _session, callback) {
        reply(callback);
      },
      onRcptTo(address, _session, callback) {
        reply(callback, options.refuseRecipient?.(address.address), `${address.address}: refused`);
      },
      onData(stream, session, callback) {
        simpleParser(stream)
          .then((parsed) => {
            const address = (value: ParsedMail['to']) =>
              (Array.isArray(value) ? value : value ? [value] : []).map((a) => a.text).join(', ');
            const mail = {
              envelopeTo: session.envelope.rcptTo.map((rcpt) => rcpt.address),
              to: address(parsed.to),
              from: address(parsed.from),
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              parsed,
            };
            const refusal = options.refuseMessage?.(mail);
            if (refusal !== undefined) return callback(refusalError(refusal, 'message refused'));
            received.push(mail);
            callback();
          })
          .catch(callback);
      },
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, '127.0.0.1', () => resolve());
    });
  };

  const stop = () =>
    new Promise<void>((resolve) => {
      const closing = server;
      server = undefined;
      if (!closing) return resolve();
      closing.close(() => resolve());
    });

  await start();
  return {
    port,
    received,
    logins,
    /** The command lines clients sent (a login's secret redacted). */
    commands,
    url: `smtp://127.0.0.1:${port}`,
    start,
    stop,
    /** The mails to `address` (its last one last). */
    to: (address: string) => received.filter((mail) => mail.to.includes(address)),
    /** Waits until `count` mails went to `address`, failing after `ms`; returns them. */
    async waitFor(address: string, count = 1, ms = 20_000): Promise<ReceivedMail[]> {
      const until = Date.now() + ms;
      while (received.filter((mail) => mail.to.includes(address)).length < count) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${count} mail(s) to ${address}`);
        await sleep(50);
      }
      return received.filter((mail) => mail.to.includes(address));
    },
  };
}

export type MailServer = Awaited<ReturnType<typeof startMailServer>>;

/** An SMTP refusal: a reply code, or a whole reply line ("550 5.1.1 No such user"). */
type Refusal = number | string;

/** The error smtp-server answers with `refusal`; `text` follows a bare code. */
function refusalError(refusal: Refusal, text: string): Error {
  const [code, message] =
    typeof refusal === 'number' ? [refusal, text] : [Number(refusal.slice(0, 3)), refusal.slice(4)];
  return Object.assign(new Error(message), { responseCode: code });
}

/** The one-time link in a mail's text. */
export function linkIn(mail: ReceivedMail): string {
  const link = /https?:\/\/\S+\/link\/[A-Za-z0-9_-]{43}/.exec(mail.text)?.[0];
  if (!link) throw new Error(`no one-time link in the mail "${mail.subject}"`);
  return link;
}

/** Waits between mail attempts short enough for a test to see retries. */
export const TEST_MAIL_TIMING = { pollMs: 200, backoffMs: [300], timeoutMs: 5_000 };

/** A test SMTP server and a Sesame that mails through it (`env` adds settings; `log` replaces its logger). */
export async function startAppWithMail(env: Record<string, string> = {}, options: { log?: Logger } = {}) {
  const mail = await startMailServer();
  const sesame = await startTestApp(
    { SMTP_URL: mail.url, MAIL_FROM: 'signin@acme.test', RP_NAME: 'Acme', ...env },
    { mailTiming: TEST_MAIL_TIMING, log: options.log },
  );
  return {
    mail,
    sesame,
    async stop() {
      await sesame.stop();
      await mail.stop();
    },
  };
}
