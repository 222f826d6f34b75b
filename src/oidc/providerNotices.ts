import { stripVTControlCharacters } from 'node:util';
import type { Logger } from '../logger.js';

/** oidc-provider prints its notices and warnings with console.info/warn, behind this prefix. */
const NOTICE = /^oidc-provider (NOTICE|WARNING): (.*)$/s;

/**
 * oidc-provider 9 warns on every import under Node 20, which Sesame supports on purpose
 * (package.json engines): logged as information that says so, not as a warning an operator
 * takes for a wrong runtime.
 */
const UNSUPPORTED_RUNTIME = /^Unsupported runtime\b/;
const SUPPORTED_HERE = ' (Sesame supports Node.js 20.19 and later; this line needs nothing done)';

/**
 * Sends oidc-provider's console lines into Sesame's log, so the server's output stays JSON
 * lines. The library prints them with console.info/console.warn (coloured on a TTY), e.g. on
 * import under Node 20: "Unsupported runtime" (Sesame supports Node 20 on purpose,
 * package.json engines). Must run before oidc-provider is imported. Every other console line
 * passes through unchanged.
 *
 * The notices are held until `release()`: the server loads oidc-provider while it opens the
 * database, and a start that fails there must still print only its one line.
 */
export function routeProviderNotices(log: Logger): { release(): void } {
  let held: (() => void)[] | undefined = [];
  const route =
    (original: (...args: unknown[]) => void, write: Logger['info']) =>
    (...args: unknown[]) => {
      const match =
        typeof args[0] === 'string' && args.length === 1
          ? NOTICE.exec(stripVTControlCharacters(args[0]))
          : null;
      if (!match) return original(...args);
      const runtime = UNSUPPORTED_RUNTIME.test(match[2]!);
      const notice = () =>
        (runtime ? log.info : write)(`oidc-provider: ${match[2]}${runtime ? SUPPORTED_HERE : ''}`, {
          source: 'oidc-provider',
        });
      if (held) held.push(notice);
      else notice();
    };
  console.info = route(console.info.bind(console), (message, fields) => log.info(message, fields));
  console.warn = route(console.warn.bind(console), (message, fields) => log.warn(message, fields));
  return {
    release() {
      const notices = held ?? [];
      held = undefined;
      for (const notice of notices) notice();
    },
  };
}
