import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../../src/paths.js';

/**
 * The server as one file (scripts/build.mjs): V8 keeps its whole text in the heap for the life
 * of the process, so what it holds and never runs costs memory. zod's error messages are kept in
 * Sesame's own languages only, a package that npm nests twice in one version is held once,
 * and raw-body's charset tables are left to Node.
 */
describe('the server bundle', () => {
  const bundle = fs.readFileSync(path.join(ROOT, 'dist', 'src', 'main.js'), 'utf8');

  it("holds zod's words in Sesame's languages only", () => {
    const languages = fs
      .readdirSync(path.join(ROOT, 'locales'))
      .filter((file) => file.endsWith('.json'))
      .map((file) => path.basename(file, '.json'))
      .sort();
    const zodLanguages = [...bundle.matchAll(/node_modules\/zod\/v4\/locales\/([\w-]+)\.js"/g)]
      .map(([, language]) => language)
      .sort();
    expect(zodLanguages).toEqual(languages);
  });

  it('holds one copy of each version of a package', () => {
    const packageDirs = new Set(
      [...bundle.matchAll(/"([^"]*node_modules\/(?:@[^/"]+\/)?[^/"]+)\//g)].map(([, dir]) => dir!),
    );
    const copies = new Map<string, string[]>();
    for (const dir of packageDirs) {
      const { name, version } = JSON.parse(fs.readFileSync(path.join(ROOT, dir!, 'package.json'), 'utf8'));
      copies.set(`${name}@${version}`, [...(copies.get(`${name}@${version}`) ?? []), dir!]);
    }
    expect([...copies.values()].filter((dirs) => dirs.length > 1)).toEqual([]);
    expect(copies.size).toBeGreaterThan(100);
  });

  it("leaves iconv-lite's code page tables out", () => {
    expect(bundle).not.toMatch(/iconv-lite\/encodings/);
  });
});
