import { setTimeout as sleep } from 'node:timers/promises';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { freePort, startTestApp } from './testApp.js';

/** A mail the test SMTP server received, parsed. */
export interface ReceivedMail {
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
 * With `auth`, it insists on that user and password; `refuseRecipient` refuses the recipients it names.
 */
export async function startMailServer(
  options: {
    auth?: { user: string; pass: string };
    /** The SMTP reply code (550: no such mailbox, 450: try later) for a recipient it refuses. */
    refuseRecipient?: (address: string) => number | undefined;
  } = {},
) {
  const port = await freePort();
  const received: ReceivedMail[] = [];
  let server: SMTPServer | undefined;

  const start = async () => {
    server = new SMTPServer({
      disabledCommands: options.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      authOptional: !options.auth,
      allowInsecureAuth: true,
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.username === options.auth?.user && auth.password === options.auth?.pass) {
          callback(null, { user: auth.username });
        } else {
          callback(new Error('Invalid username or password'));
        }
      },
      onRcptTo(address, _session, callback) {
        const code = options.refuseRecipient?.(address.address);
        if (code === undefined) return callback();
        callback(Object.assign(new Error(`${address.address}: refused`), { responseCode: code }));
      },
      onData(stream, _session, callback) {
        simpleParser(stream)
          .then((parsed) => {
            const address = (value: ParsedMail['to']) =>
              (Array.isArray(value) ? value : value ? [value] : []).map((a) => a.text).join(', ');
            received.push({
              to: address(parsed.to),
              from: address(parsed.from),
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              parsed,
            });
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

/** The one-time link in a mail's text. */
export function linkIn(mail: ReceivedMail): string {
  const link = /https?:\/\/\S+\/link\/[A-Za-z0-9_-]{43}/.exec(mail.text)?.[0];
  if (!link) throw new Error(`no one-time link in the mail "${mail.subject}"`);
  return link;
}

/** Waits between mail attempts short enough for a test to see retries. */
export const TEST_MAIL_TIMING = { pollMs: 200, backoffMs: [300], timeoutMs: 5_000 };

/** A test SMTP server and a Sesame that mails through it (`env` adds settings). */
export async function startAppWithMail(env: Record<string, string> = {}) {
  const mail = await startMailServer();
  const sesame = await startTestApp(
    { SMTP_URL: mail.url, MAIL_FROM: 'signin@acme.test', RP_NAME: 'Acme', ...env },
    { mailTiming: TEST_MAIL_TIMING },
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
