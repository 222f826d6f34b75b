import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLITE_TEMPLATE_DIR, seedFromTemplate } from '../../src/db/pgliteTemplate.js';

describe('the embedded-database template', () => {
  let parent: string;

  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-seed-'));
  });

  afterEach(() => {
    fs.rmSync(parent, { recursive: true, force: true });
  });

  it('is made by the build', () => {
    expect(fs.existsSync(path.join(PGLITE_TEMPLATE_DIR, 'PG_VERSION'))).toBe(true);
  });

  // The Docker image builds as root and runs as `node`, which must be able to copy every file.
  it('is readable by everyone and writable by its owner only', () => {
    const modes = new Set<string>();
    for (const name of ['', ...fs.readdirSync(PGLITE_TEMPLATE_DIR, { recursive: true }).map(String)]) {
      const stat = fs.lstatSync(path.join(PGLITE_TEMPLATE_DIR, name));
      modes.add(`${stat.isDirectory() ? 'folders' : 'files'} ${(stat.mode & 0o777).toString(8)}`);
    }
    expect([...modes].sort()).toEqual(['files 644', 'folders 755']);
    expect(fs.statSync(`${PGLITE_TEMPLATE_DIR}.version`).mode & 0o777).toBe(0o644);
  });

  it('seeds a new directory with a cluster PGlite opens and writes to', async () => {
    const pgDir = path.join(parent, 'pg');
    expect(await seedFromTemplate(pgDir)).toBe(true);
    expect(fs.readdirSync(parent)).toEqual(['pg']);
    const pglite = await PGlite.create(pgDir);
    try {
      await pglite.exec('create table seeded (n int); insert into seeded values (7)');
      const { rows } = await pglite.query<{ n: number }>('select n from seeded');
      expect(rows).toEqual([{ n: 7 }]);
    } finally {
      await pglite.close();
    }
    // The template itself is untouched by what the copy did.
    expect(fs.readdirSync(path.join(PGLITE_TEMPLATE_DIR, 'base')).length).toBeGreaterThan(0);
  });

  it('removes the copies that starts killed mid-copy left, with or without a cluster since', async () => {
    const pgDir = path.join(parent, 'pg');
    for (const pid of [4242, 1]) {
      fs.mkdirSync(path.join(parent, `pg.seeding-${pid}`, 'base'), { recursive: true });
      fs.writeFileSync(path.join(parent, `pg.seeding-${pid}`, 'base', '1'), 'half a cluster');
    }
    expect(await seedFromTemplate(pgDir)).toBe(true);
    expect(fs.readdirSync(parent)).toEqual(['pg']);
    fs.mkdirSync(path.join(parent, 'pg.seeding-7'));
    expect(await seedFromTemplate(pgDir)).toBe(false);
    expect(fs.readdirSync(parent)).toEqual(['pg']);
  });

  it('leaves nothing behind when the copy fails', async () => {
    // A path so long that the copy's own folder can be made but not the folders in it: the
    // copy fails midway (ENAMETOOLONG), as on a full disk. Linux allows 4095 bytes.
    const copyLength = 4093;
    let deep = parent;
    while (copyLength - `${deep}/pg.seeding-${process.pid}`.length > 200)
      deep = path.join(deep, 'd'.repeat(199));
    deep = path.join(deep, 'd'.repeat(copyLength - `${deep}//pg.seeding-${process.pid}`.length));
    fs.mkdirSync(deep, { recursive: true });
    const pgDir = path.join(deep, 'pg');
    expect(`${pgDir}.seeding-${process.pid}`).toHaveLength(copyLength);
    await expect(seedFromTemplate(pgDir)).rejects.toThrow(/ENAMETOOLONG/);
    expect(fs.readdirSync(deep)).toEqual([]);
  });

  it('leaves an existing directory alone', async () => {
    const pgDir = path.join(parent, 'pg');
    fs.mkdirSync(pgDir);
    fs.writeFileSync(path.join(pgDir, 'mine'), 'x');
    expect(await seedFromTemplate(pgDir)).toBe(false);
    expect(fs.readdirSync(pgDir)).toEqual(['mine']);
  });
});
