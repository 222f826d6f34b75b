import fs from 'node:fs';
import path from 'node:path';
import { SOCKET_NAME } from './dataDirLock.js';

/**
 * Beside the socket of the embedded database: the ISSUER of the server that holds it. A
 * `sesame` command that works through that server prints links (invites, recovery links)
 * under its own ISSUER, which follows its own PORT and .env: run without the server's
 * `PORT=3400`, it printed links to port 3000, where nothing answers, and said nothing.
 */
const ISSUER_FILE_NAME = `${SOCKET_NAME}.issuer`;

/** Records the server's ISSUER for the commands that will work through it; written before it listens. */
export function recordServerIssuer(dataDir: string, issuer: string): void {
  fs.writeFileSync(path.join(dataDir, ISSUER_FILE_NAME), `${issuer}\n`, { mode: 0o600 });
}

/**
 * Removes the ISSUER a holder of the directory recorded: the holder closing it, or the next
 * one claiming it after a crash. Left behind, a command working through a later holder (a
 * command, which records none) was told to go back to an address nobody serves any more.
 */
export function forgetServerIssuer(dataDir: string): void {
  fs.rmSync(path.join(dataDir, ISSUER_FILE_NAME), { force: true });
}

/**
 * What a command working through the server says when its ISSUER is not the server's, or
 * undefined when they agree (or the server recorded none: an older Sesame).
 */
export function issuerMismatch(dataDir: string, issuer: string): string | undefined {
  let recorded: string;
  try {
    recorded = fs.readFileSync(path.join(dataDir, ISSUER_FILE_NAME), 'utf8').trim();
  } catch {
    return undefined;
  }
  if (!recorded || recorded === issuer) return undefined;
  return `the server running on ${dataDir} serves ${recorded}, but this command's ISSUER is ${issuer}: the links it prints would lead there; set ISSUER (or PORT) for this command as the server has it (in .env, which both read)`;
}
