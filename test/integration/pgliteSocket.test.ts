import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { SOCKET_NAME, SOCKET_PORT } from '../../src/db/dataDirLock.js';

/**
 * The embedded database served to local clients through its data directory's socket, the
 * way the `sesame` command reaches it beside a running server.
 */
describe('the embedded database through its data directory socket', () => {
  let dataDir: string;
  let holder: DatabaseHandle;

  const rows = async () =>
    (await sql<{ n: number }>`select n from socket_test order by n`.execute(holder.db)).rows.map((r) => r.n);

  /** A client of the socket, as `pg` connects to a Postgres in a directory. */
  async function socketClient(): Promise<pg.Client> {
    const client = new pg.Client({
      host: dataDir,
      port: SOCKET_PORT,
      user: 'postgres',
      database: 'postgres',
    });
    await client.connect();
    return client;
  }

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-socket-'));
    holder = await openDatabase({ databaseUrl: undefined, dataDir });
    await sql`create table socket_test (n int)`.execute(holder.db);
  }, 60_000);

  afterAll(async () => {
    await holder.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  beforeEach(() => sql`delete from socket_test`.execute(holder.db));

  it('is refused to a second server: the process that holds the files is the only one that opens them', async () => {
    await expect(openDatabase({ databaseUrl: undefined, dataDir })).rejects.toThrow(
      `the embedded database in ${dataDir} is in use by another Sesame process; stop it first, or set DATABASE_URL to use Postgres`,
    );
  });

  it('serves reads and writes to a command that asks to work through the running server', async () => {
    const command = await openDatabase({ databaseUrl: undefined, dataDir }, { throughRunningServer: true });
    try {
      await sql`insert into socket_test values (1)`.execute(command.db);
      const seen = await sql<{ n: number }>`select n from socket_test`.execute(command.db);
      expect(seen.rows).toEqual([{ n: 1 }]);
    } finally {
      await command.close();
    }
    expect(await rows()).toEqual([1]);
  });

  it("never runs the holder's statements inside a client's open transaction", async () => {
    const client = await socketClient();
    try {
      await client.query('begin');
      await client.query('insert into socket_test values (1)');
      // The holder's insert waits for the client's transaction to end...
      let inserted = false;
      const holderInsert = sql`insert into socket_test values (2)`.execute(holder.db).then(() => {
        inserted = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(inserted).toBe(false);
      // ...so the client's rollback takes only the client's row with it.
      await client.query('rollback');
      await holderInsert;
      expect(await rows()).toEqual([2]);
    } finally {
      await client.end();
    }
  });

  it("never runs a client's statements inside the holder's open transaction", async () => {
    const client = await socketClient();
    try {
      let clientInsert: Promise<unknown> | undefined;
      await holder.db
        .transaction()
        .execute(async (trx) => {
          await sql`insert into socket_test values (1)`.execute(trx);
          clientInsert = client.query('insert into socket_test values (2)');
          await new Promise((resolve) => setTimeout(resolve, 200));
          throw new Error('roll back');
        })
        .catch(() => {});
      await clientInsert;
      expect(await rows()).toEqual([2]);
    } finally {
      await client.end();
    }
  });

  it('rolls back the transaction of a client that goes away in the middle of it, and serves on', async () => {
    const client = await socketClient();
    await client.query('begin');
    await client.query('insert into socket_test values (1)');
    await client.end();
    await sql`insert into socket_test values (2)`.execute(holder.db);
    expect(await rows()).toEqual([2]);
  });

  it('answers a failed statement with its error and stays usable', async () => {
    const client = await socketClient();
    try {
      await expect(client.query('select * from no_such_table')).rejects.toThrow(/no_such_table/);
      await client.query('insert into socket_test values ($1)', [3]);
    } finally {
      await client.end();
    }
    expect(await rows()).toEqual([3]);
  });

  it("hands a notice committed by a client to the holder's listeners at once", async () => {
    const notices: string[] = [];
    const subscription = await holder.listen('socket_test_channel', {
      onNotice: (payload) => notices.push(payload),
      onLive: () => {},
      onLost: () => {},
    });
    const client = await socketClient();
    try {
      await client.query("select pg_notify('socket_test_channel', 'changed')");
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(notices).toEqual(['changed']);
    } finally {
      await client.end();
      await subscription.close();
    }
  });
});

/** A new data directory for each test of the describe block it is called in, removed after the test. */
function newDataDirEachTest(prefix: string): () => string {
  let dataDir = '';
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  return () => dataDir;
}

describe('a holder whose socket had a visitor while it was opening', () => {
  const dataDirOfTest = newDataDirEachTest('sesame-visited-');

  // What a second server's or the CLI's check that the directory is taken does: connect, hang up.
  it('closes within seconds after a client that connected and hung up before it served', async () => {
    const dataDir = dataDirOfTest();
    const opening = openDatabase({ databaseUrl: undefined, dataDir });
    const socketPath = path.join(dataDir, SOCKET_NAME);
    while (!fs.existsSync(socketPath)) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise<void>((resolve, reject) => {
      const visitor = net.connect(socketPath, () => {
        visitor.destroy();
        resolve();
      });
      visitor.once('error', reject);
    });
    const holder = await opening;
    // It took under a second; it used to wait forever for that client's 'close', which had come and gone.
    const closed = await Promise.race([
      holder.close().then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('still open'), 20_000).unref()),
    ]);
    expect(closed).toBe('closed');
    expect(fs.existsSync(socketPath)).toBe(false);
  }, 60_000);
});

describe('a server starting while a sesame command holds the data directory', () => {
  const dataDirOfTest = newDataDirEachTest('sesame-command-');

  it('waits for the command to end, then opens the files, instead of refusing to start', async () => {
    const dataDir = dataDirOfTest();
    // No server ran: the command found none to work through and holds the files itself.
    const command = await openDatabase({ databaseUrl: undefined, dataDir }, { throughRunningServer: true });
    await sql`create table from_the_command (n int)`.execute(command.db);
    const starting = openDatabase({ databaseUrl: undefined, dataDir }).catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await command.close();
    const server = await starting;
    expect(server).not.toBeInstanceOf(Error);
    const opened = server as DatabaseHandle;
    try {
      expect((await sql`select count(*)::int as n from from_the_command`.execute(opened.db)).rows).toEqual([
        { n: 0 },
      ]);
    } finally {
      await opened.close();
    }
    // Nothing of the command's is left behind in the directory.
    expect(fs.readdirSync(dataDir).sort()).toEqual(['pg']);
  }, 60_000);
});
