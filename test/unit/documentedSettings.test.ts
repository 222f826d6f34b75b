import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, configFrom } from '../../src/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const envExample = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');

/** README's configuration table: each variable with its Default and Meaning cells. */
const table = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]*)`(?:, `[A-Z0-9_]+`)* \| ([^|]+) \| (.+) \|$/gm)].map(
  (m) => ({
    name: m[1]!,
    defaultCell: m[2]!.trim(),
    meaning: m[3]!,
  }),
);

/** .env.example: each `NAME=` with the comment block above it. */
function envComment(name: string): string {
  const lines = envExample.split('\n');
  const at = lines.indexOf(`${name}=`);
  const comment: string[] = [];
  for (let i = at - 1; i >= 0 && (lines[i]!.startsWith('#') || /^[A-Z_]+=$/.test(lines[i]!)); i--)
    if (lines[i]!.startsWith('#')) comment.unshift(lines[i]!.slice(1).trim());
  return comment.join(' ');
}

/** A literal default (`3000`, `open`), not "unset" nor another variable's value (`RP_NAME`). */
const literal = (cell: string) => /^`(?![A-Z][A-Z0-9_]*`)([^`$]+)`$/.exec(cell)?.[1];

/** The numeric range a text states, as "1-65535", "(1–720)" or "0–36,500". */
function statedRange(text: string): [number, number] | undefined {
  const m = /\b(\d[\d,]*)\s*[–-]\s*(\d[\d,]*)\b/.exec(text);
  return m ? [Number(m[1]!.replace(/,/g, '')), Number(m[2]!.replace(/,/g, ''))] : undefined;
}

const accepts = (name: string, value: string) => {
  try {
    configFrom({ [name]: value });
    return true;
  } catch (error) {
    if (error instanceof ConfigError) return false;
    throw error;
  }
};

describe("the settings README's table and .env.example document", () => {
  it('lists the variables of the table', () => {
    expect(table.map((row) => row.name)).toEqual(
      expect.arrayContaining(['ISSUER', 'PORT', 'RATE_LIMIT_PER_MINUTE']),
    );
  });

  it.each(
    table
      .filter((row) => literal(row.defaultCell) !== undefined)
      .map((row) => [row.name, literal(row.defaultCell)!]),
  )(
    "%s: README's default %s is what Sesame uses when it is unset, and .env.example says the same",
    (name, value) => {
      expect(configFrom({ [name]: value })).toEqual(configFrom({}));
      expect(envComment(name)).toMatch(
        new RegExp(`Default: "?${value.replace(/[.*+?^${}()|[\]\\#]/g, '\\$&')}"?\\b`),
      );
    },
  );

  it.each(['PORT', 'INVITE_TTL_HOURS', 'RATE_LIMIT_PER_MINUTE', 'AUDIT_LOG_DAYS', 'PASSKEY_AUDIT_LOG_DAYS'])(
    '%s: README and .env.example state the range Sesame accepts',
    (name) => {
      const row = table.find((r) => r.name === name)!;
      const range = statedRange(row.meaning);
      expect(range).toBeDefined();
      expect(statedRange(envComment(name))).toEqual(range);
      const [low, high] = range!;
      expect([low, high].map((n) => accepts(name, String(n)))).toEqual([true, true]);
      expect([low - 1, high + 1].filter((n) => n >= 0).map((n) => accepts(name, String(n)))).not.toContain(
        true,
      );
    },
  );
});
