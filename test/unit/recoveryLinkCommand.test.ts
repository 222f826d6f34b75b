import { execFileSync } from 'node:child_process';
import { recoveryLinkCommand } from '../../src/accounts/selfRecovery.js';

describe('recoveryLinkCommand', () => {
  // What a POSIX shell makes of the line an administrator's notice tells them to paste.
  const argumentsOf = (line: string) =>
    execFileSync('sh', ['-c', `set -- ${line.replace(/^sesame /, '')}; printf '%s\\n' "$@"`], {
      encoding: 'utf8',
    })
      .trimEnd()
      .split('\n');

  it('hands the shell the address as one argument, whatever a plain address may hold', () => {
    for (const email of [
      'boss@example.com',
      "o'neil@example.com",
      'x`touch\u0024{IFS}/tmp/pwned`@example.com',
      'a$(id)|b;c&d{e}@example.com',
    ]) {
      expect(argumentsOf(recoveryLinkCommand(email))).toEqual(['users', 'invite', '--email', email]);
    }
  });
});
