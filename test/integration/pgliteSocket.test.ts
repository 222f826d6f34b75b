import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { SOCKET_NAME, SOCKET_PORT } from '../../src/db/dataDirLock.js';
import { eventually } from '../support/eventually.js';
import { runCli, startSesameProcess } from '../support/sesameProcess.js';

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
  async function socketClient(options?: string): Promise<pg.Client> {
    const client = new pg.Client({
      host: dataDir,
      port: SOCKET_PORT,
      user: 'postgres',
      database: 'postgres',
      ...(options && { options }),
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

  /** Runs `use` with a client of the socket, which then leaves. */
  async function withSocketClient(
    use: (client: pg.Client) => Promise<void>,
    options?: string,
  ): Promise<void> {
    const client = await socketClient(options);
    try {
      await use(client);
    } finally {
      await client.end();
    }
  }

  /** The session's prepared statements. */
  const prepared = async () =>
    (await sql<{ name: string }>`select name from pg_prepared_statements order by name`.execute(holder.db))
      .rows;

  /** The holder listening on `channel`, and the notices it has heard there. */
  async function holderListening(channel: string) {
    const notices: string[] = [];
    const subscription = await holder.listen(channel, {
      onNotice: (payload) => notices.push(payload),
      onLive: () => {},
      onLost: () => {},
    });
    return { notices, subscription };
  }

  /** The holder's session as its own statements see it. */
  const holderSession = async () =>
    (
      await sql<Record<string, string>>`select current_setting('search_path') as search_path,
        current_setting('DateStyle') as date_style, current_setting('default_transaction_read_only') as read_only,
        current_setting('statement_timeout') as statement_timeout, current_user as current, session_user as session,
        (select count(*)::int from pg_cursors where name <> '') as cursors,
        (select count(*)::int from pg_class where relpersistence = 't') as temporary_tables`.execute(
        holder.db,
      )
    ).rows[0];
  const ownSession = {
    search_path: 'public',
    date_style: 'ISO, MDY',
    read_only: 'off',
    statement_timeout: '0',
    current: 'postgres',
    session: 'postgres',
    cursors: 0,
    temporary_tables: 0,
  };

  it('gives the holder its own session back when a client that changed it leaves', async () => {
    expect(await holderSession()).toEqual(ownSession);
    const { notices, subscription } = await holderListening('socket_reset_channel');
    await withSocketClient(async (client) => {
      await client.query('create role socket_visitor');
      // What pg_dump sends first, and what an operator's psql might.
      await client.query("select pg_catalog.set_config('search_path', '', false)");
      await client.query("set datestyle = 'German'; set statement_timeout = '5s'");
      await client.query('create temporary table visitor_scratch (n int)');
      await client.query('begin; declare visitor_cursor cursor with hold for select 1; commit');
      await client.query('prepare visitor_statement as select 1');
      await client.query({ name: 'visitor_parsed', text: 'select 2' });
      await client.query('unlisten *');
      await client.query('set session authorization socket_visitor; set role socket_visitor');
      await client.query('set session characteristics as transaction read only');
    });
    try {
      await eventually(async () => JSON.stringify(await holderSession()) === JSON.stringify(ownSession));
      expect(await holderSession()).toEqual(ownSession);
      await sql`insert into socket_test values (1)`.execute(holder.db);
      expect(await rows()).toEqual([1]);
      // Its prepared statements went with it: a next client (a second pg_dump) makes them again.
      await withSocketClient(async (next) => {
        await next.query('prepare visitor_statement as select 1');
        await next.query({ name: 'visitor_parsed', text: 'select 2' });
      });
      // The holder's LISTEN is back.
      await withSocketClient(async (notifier) => {
        await notifier.query("select pg_notify('socket_reset_channel', 'still heard')");
      });
      await eventually(async () => notices.length > 0);
      expect(notices).toEqual(['still heard']);
    } finally {
      await subscription.close();
    }
  });

  /** Lets the holder hear a client's leave (it does so a moment after the client has gone). */
  const holderHearsTheLeave = () => new Promise((resolve) => setTimeout(resolve, 300));

  it('keeps the session of a client still connected when another leaves, and resets it when the last leaves', async () => {
    const staying = await socketClient();
    try {
      await staying.query('prepare staying_statement as select 3 as n');
      await staying.query({ name: 'staying_parsed', text: 'select 4 as n' });
      await staying.query('prepare reused as select 1');
      await staying.query('deallocate reused');
      await staying.query("set datestyle = 'German'; set search_path = ''");
      await staying.query('create temporary table staying_scratch (n int)');
      await staying.query('begin; declare staying_cursor cursor with hold for select 7 as n; commit');
      await withSocketClient(async (leaving) => {
        // A name the staying client holds: refused, and not taken from it when this one leaves.
        await expect(leaving.query({ name: 'staying_parsed', text: 'select 5 as n' })).rejects.toThrow(
          /already exists/,
        );
        // A name the staying client prepared and deallocated: this client's now.
        await leaving.query('prepare reused as select 2 as n');
        await leaving.query('prepare leaving_statement as select 6');
      });
      await holderHearsTheLeave();
      expect((await staying.query('execute staying_statement')).rows).toEqual([{ n: 3 }]);
      expect((await staying.query({ name: 'staying_parsed', text: 'select 4 as n' })).rows).toEqual([
        { n: 4 },
      ]);
      expect((await staying.query('show datestyle')).rows).toEqual([{ DateStyle: 'German, DMY' }]);
      expect((await staying.query('show search_path')).rows).toEqual([{ search_path: '""' }]);
      expect((await staying.query('select count(*)::int as n from staying_scratch')).rows).toEqual([
        { n: 0 },
      ]);
      expect((await staying.query('fetch staying_cursor')).rows).toEqual([{ n: 7 }]);
      await staying.query('set search_path = public');
    } finally {
      await staying.end();
    }
    await eventually(async () => (await prepared()).length === 0);
    expect(await prepared()).toEqual([]);
    expect(await holderSession()).toEqual(ownSession);
    // What pg_dump prepares, under the same names, by a next client: no 42P05.
    await withSocketClient(async (next) => {
      await next.query('prepare staying_statement as select 3 as n');
      await next.query({ name: 'staying_parsed', text: 'select 4 as n' });
    });
  });

  it('drops a PREPARE sent over the extended protocol when the client leaves', async () => {
    await withSocketClient(async (client) => {
      // pg's types omit queryMode, which makes it Parse/Bind/Execute a statement without parameters.
      const extended = { text: 'prepare extended_statement as select 1', queryMode: 'extended' };
      await client.query(extended as pg.QueryConfig);
    });
    await eventually(async () => (await prepared()).length === 0);
    await withSocketClient(async (next) => {
      await next.query('prepare extended_statement as select 1');
    });
  });

  it("keeps the holder's LISTEN after a client's UNLISTEN *, while another client stays connected", async () => {
    const { notices, subscription } = await holderListening('socket_unlisten_channel');
    try {
      await withSocketClient(async (staying) => {
        // It has spoken: the session is not reset when the other leaves.
        await staying.query("set datestyle = 'German'");
        await withSocketClient(async (leaving) => {
          await leaving.query('unlisten *');
        });
        await holderHearsTheLeave();
        await staying.query("select pg_notify('socket_unlisten_channel', 'heard')");
        await eventually(async () => notices.length > 0);
        expect(notices).toEqual(['heard']);
        expect((await staying.query('show datestyle')).rows).toEqual([{ DateStyle: 'German, DMY' }]);
      });
    } finally {
      await subscription.close();
    }
  });

  it('answers a PREPARE in a failed transaction with its error, and the client rolls back and prepares', async () => {
    await withSocketClient(async (client) => {
      await client.query('begin');
      await expect(client.query('select 1/0')).rejects.toThrow(/division by zero/);
      await expect(client.query('prepare failed_statement as select 1')).rejects.toThrow(/aborted/);
      await client.query('rollback');
      await client.query('prepare failed_statement as select 6 as n');
      expect((await client.query('execute failed_statement')).rows).toEqual([{ n: 6 }]);
    });
    await sql`insert into socket_test values (6)`.execute(holder.db);
    expect(await rows()).toEqual([6]);
    await eventually(async () => (await prepared()).length === 0);
    expect(await prepared()).toEqual([]);
  });

  it("does not apply a client's startup options to the holder's session", async () => {
    await withSocketClient(async (client) => {
      expect((await client.query('show search_path')).rows).toEqual([{ search_path: 'public' }]);
      expect(await holderSession()).toEqual(ownSession);
    }, '-c search_path=nothing -c DateStyle=German');
  });

  it('refuses COPY FROM STDIN, which would stop the server, and serves on', async () => {
    const client = await socketClient();
    try {
      const refused = { code: '0A000', message: expect.stringContaining('stop the server to restore data') };
      await expect(client.query('copy socket_test from stdin')).rejects.toMatchObject(refused);
      await expect(
        client.query('/* restore */ COPY public.socket_test (n) FROM stdin;'),
      ).rejects.toMatchObject(refused);
      await expect(
        client.query({ text: 'copy socket_test from stdin', queryMode: 'extended' } as pg.QueryConfig),
      ).rejects.toMatchObject(refused);
      // Inside a transaction it aborts the transaction, as a refused statement does on Postgres.
      await client.query('begin');
      await expect(client.query('copy socket_test from stdin')).rejects.toMatchObject(refused);
      await expect(client.query('select 1')).rejects.toMatchObject({ code: '25P02' });
      await client.query('rollback');
      // The client, the holder and COPY TO STDOUT's kin all go on.
      expect((await client.query('select 2 as n')).rows).toEqual([{ n: 2 }]);
      await sql`insert into socket_test values (7)`.execute(holder.db);
      expect(await rows()).toEqual([7]);
    } finally {
      await client.end();
    }
  });

  it("hands a notice committed by a client to the holder's listeners at once", async () => {
    const { notices, subscription } = await holderListening('socket_test_channel');
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

describe('a running server whose database a client of the socket changed', () => {
  const dataDirOfTest = newDataDirEachTest('sesame-dumped-');

  it('serves on after the client leaves, as after a pg_dump that emptied the search_path', async () => {
    const dataDir = dataDirOfTest();
    const server = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, 60_000);
    try {
      const client = new pg.Client({
        host: dataDir,
        port: SOCKET_PORT,
        user: 'postgres',
        database: 'postgres',
      });
      await client.connect();
      try {
        await client.query("select pg_catalog.set_config('search_path', '', false)");
        await client.query('create temporary table dump_scratch (n int)');
        await client.query('begin; declare dump_cursor cursor with hold for select 1; commit');
      } finally {
        await client.end();
      }
      expect((await fetch(`${server.baseUrl}/.well-known/openid-configuration`)).status).toBe(200);
      // A request that reads the database (the app lookup of /auth): a 500 while the server's
      // statements ran with the client's empty search_path.
      const authStatus = async () =>
        (await fetch(`${server.baseUrl}/auth?client_id=nobody&response_type=code&scope=openid`)).status;
      // The server hears the client leave a moment after the client has gone.
      await eventually(async () => (await authStatus()) !== 500);
      expect(await authStatus()).toBe(400);
      const listed = await runCli(['users', 'list', '--json'], { DATA_DIR: dataDir, ISSUER: server.baseUrl });
      expect(listed).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(listed.stdout)).toEqual([]);
    } finally {
      await server.stop();
    }
  }, 60_000);
});
