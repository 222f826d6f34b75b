import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../src/db/connect.js';
import { checkDataDirOwner } from '../../src/db/dataDirOwner.js';

/** Giving a directory to another user takes root; the suite runs as root in CI and here. */
const asRoot = process.getuid?.() === 0;
/** `nobody` on Debian and most Linux systems. */
const OTHER_UID = 65534;

describe('the owner of the embedded data directory', () => {
  let dataDir: string;

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-owner-'));
  });

  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it("accepts a directory of the process's own user, with or without its cluster yet", () => {
    expect(() => checkDataDirOwner(dataDir)).not.toThrow();
    fs.mkdirSync(path.join(dataDir, 'pg'));
    expect(() => checkDataDirOwner(dataDir)).not.toThrow();
  });

  (asRoot ? it : it.skip)(
    'refuses a cluster another user owns, even to root, naming the owner (needs root to chown)',
    () => {
      const pgDir = path.join(dataDir, 'pg');
      fs.mkdirSync(pgDir);
      fs.chownSync(pgDir, OTHER_UID, OTHER_UID);
      expect(() => checkDataDirOwner(dataDir)).toThrow(
        new RegExp(
          `^DATA_DIR ${pgDir} belongs to (nobody|uid ${OTHER_UID}), not to root, which runs this: run Sesame and the sesame command as (nobody|uid ${OTHER_UID})$`,
        ),
      );
    },
  );

  (asRoot ? it : it.skip)(
    'is checked before the database opens: nothing is written, and the directory is left for its owner (needs root to chown)',
    async () => {
      fs.chownSync(dataDir, OTHER_UID, OTHER_UID);
      await expect(openDatabase({ databaseUrl: undefined, dataDir })).rejects.toThrow(/belongs to/);
      expect(fs.readdirSync(dataDir)).toEqual([]);
    },
  );
});
