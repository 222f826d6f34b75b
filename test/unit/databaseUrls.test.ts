import { databaseUrlForLog, withDatabaseName } from '../../src/db/connect.js';

describe('databaseUrlForLog: DATABASE_URL as the log shows it', () => {
  it.each([
    ['postgres://sesame:hunter2@db:5432/sesame', 'postgres://sesame:***@db:5432/sesame'],
    // A user and no host: a Unix socket, which the WHATWG URL parser refuses and pg reads.
    [
      'postgres://sesame:hunter2@/sesame?host=/var/run/postgresql',
      'postgres://sesame:***@/sesame?host=/var/run/postgresql',
    ],
    [
      'postgres://sesame:hunter2@%2Frun%2Fpostgresql/sesame',
      'postgres://sesame:***@%2Frun%2Fpostgresql/sesame',
    ],
    // The user part ends at the last '@' before the path; the password, after the first ':'.
    ['postgres://sesame:hun@ter:2@db/sesame', 'postgres://sesame:***@db/sesame'],
    [
      'postgresql:///sesame?host=/run/postgresql&password=hunter2&sslpassword=hunter3&sslmode=require',
      'postgresql:///sesame?host=/run/postgresql&password=***&sslpassword=***&sslmode=require',
    ],
    ['postgres://db:5432/sesame?PASSWORD=hunter2', 'postgres://db:5432/sesame?PASSWORD=***'],
    // URLSearchParams, which pg reads parameters with, decodes their names.
    ['postgres://db/sesame?pass%77ord=hunter2&x=%zz', 'postgres://db/sesame?pass%77ord=***&x=%zz'],
    // A password with an unencoded '/' or '?', which pg reads as a host and a port.
    ['postgres://sesame:2024/hunter2@db.example/sesame', 'postgres://sesame:***@db.example/sesame'],
    ['postgres://sesame:123?hunter2@db.example/sesame', 'postgres://sesame:***@db.example/sesame'],
  ])('masks the password of %s', (url, shown) => {
    expect(databaseUrlForLog(url)).toBe(shown);
    expect(databaseUrlForLog(url)).not.toMatch(/hunter/);
  });

  it.each([
    'postgres://sesame@db:5432/sesame',
    'postgres://sesame@/sesame?host=/var/run/postgresql',
    'postgresql://db/sesame?sslmode=verify-full&application_name=a:b@c',
    'postgres://[::1]:5432/sesame',
    'postgres://db/sesame?password',
  ])('shows %s, which has no password, as it is', (url) => {
    expect(databaseUrlForLog(url)).toBe(url);
  });
});

describe('withDatabaseName: the same URL naming another database', () => {
  it.each([
    ['postgres://postgres@127.0.0.1:5432/test', 'postgres://postgres@127.0.0.1:5432/other'],
    ['postgres://postgres@127.0.0.1:5432', 'postgres://postgres@127.0.0.1:5432/other'],
    [
      'postgres://postgres@/test?host=/var/run/postgresql',
      'postgres://postgres@/other?host=/var/run/postgresql',
    ],
    [
      'postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test',
      'postgres://postgres@%2Fvar%2Frun%2Fpostgresql/other',
    ],
    [
      'postgresql:///test?host=/run/postgresql&sslmode=disable',
      'postgresql:///other?host=/run/postgresql&sslmode=disable',
    ],
    ['postgres://u:p%2Fw@[::1]:5433/test?x=/a/b', 'postgres://u:p%2Fw@[::1]:5433/other?x=/a/b'],
  ])('%s', (url, renamed) => {
    expect(withDatabaseName(url, 'other')).toBe(renamed);
  });
});
