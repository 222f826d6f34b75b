import readline from 'node:readline/promises';
import { CliError } from './context.js';

/**
 * Asks before something that cannot be undone. `--yes` answers for a script; without it
 * the question needs a terminal, so a script that forgot `--yes` stops instead of deleting.
 * @throws CliError when the answer is not yes, or there is no terminal to ask on.
 */
export async function confirmOrRefuse(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw new CliError('not a terminal: pass --yes to confirm');
  const prompt = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError('cancelled: nothing was deleted');
  } finally {
    prompt.close();
  }
}
