import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeployResponse, StatusResponse } from '../../contract/api.js';
import { deployOutput, formatBytes, formatCreated, formatDeploy, formatJson, formatStatus, formatTable } from './output.js';
import { fakeItem } from './testing/fake-daemon.js';

const DEPLOYED: DeployResponse = {
  name: 'shop',
  host: '203.0.113.10',
  port: 32785,
  db: 'pg_3w7x9q2mzd',
  user: 'u_4p9ks2j8ra',
  password: 'pw',
  database_url: 'postgres://u_4p9ks2j8ra:pw@203.0.113.10:32785/pg_3w7x9q2mzd?sslmode=require',
  created_at: '2025-11-29T02:29:00.000Z',
  postgres_version: 17,
  memory_mb: 512,
};

describe('deploy output', () => {
  it('prints exactly the seven key: value lines', () => {
    assert.equal(
      formatDeploy(DEPLOYED),
      [
        'name: shop',
        'host: 203.0.113.10',
        'port: 32785',
        'db: pg_3w7x9q2mzd',
        'user: u_4p9ks2j8ra',
        'password: pw',
        'DATABASE_URL: postgres://u_4p9ks2j8ra:pw@203.0.113.10:32785/pg_3w7x9q2mzd?sslmode=require',
        '',
      ].join('\n'),
    );
  });

  it('has exactly the documented JSON keys, DATABASE_URL in upper case', () => {
    const json = JSON.parse(formatJson(deployOutput(DEPLOYED)));
    assert.deepEqual(Object.keys(json), ['name', 'host', 'port', 'db', 'user', 'password', 'DATABASE_URL']);
    assert.equal(json.port, 32785);
    assert.equal(json.DATABASE_URL, DEPLOYED.database_url);
  });
});

describe('status output', () => {
  it('prints an aligned table with name, version, port, state, size and created', () => {
    const response: StatusResponse = {
      items: [
        fakeItem('shop', 0),
        { ...fakeItem('analytics-warehouse', 1), state: 'stopped', used_bytes: null, size_gb: 100, postgres_version: 15 },
        { ...fakeItem('x', 2), health: 'unhealthy' },
      ],
      detached_volumes: [],
      unknown_containers: [],
      pool: [],
      backups: null,
    };
    assert.equal(
      formatStatus(response, 'http://s:1'),
      [
        'NAME                 VERSION  PORT   STATE                SIZE           CREATED',
        'shop                 17       40000  running              42 MB / 10 GB  2025-11-29 02:29 UTC',
        'analytics-warehouse  15       40001  stopped              ? / 100 GB     2025-11-29 02:29 UTC',
        'x                    17       40002  running (unhealthy)  42 MB / 10 GB  2025-11-29 02:29 UTC',
        '',
      ].join('\n'),
    );
  });

  it('lists volumes kept by destroy --keep-data', () => {
    const response: StatusResponse = {
      items: [],
      detached_volumes: [{ name: 'old', volume_name: 'pgdb-data-old', created_at: null }],
      unknown_containers: [],
      pool: [],
      backups: null,
    };
    assert.equal(
      formatStatus(response, 'http://s:1'),
      'kept data volumes (destroyed with --keep-data; reuse one with `pgdb deploy --from-volume <volume>`):\n' +
        'NAME  VOLUME         CREATED\nold   pgdb-data-old  -\n',
    );
  });

  it('ends with a line break when its last line is the warm pool or a problem (on a pipe, the next output starts on a line of its own)', () => {
    const response: StatusResponse = {
      items: [{ ...fakeItem('shop', 0), problem: 'WAL archiving fails' }],
      detached_volumes: [],
      unknown_containers: [],
      pool: [{ postgres_version: 17, target: 1, ready: 1, filling: 0 }],
      backups: null,
    };
    const text = formatStatus(response, 'http://s:1');
    assert.match(text, /\nwarm pool: Postgres 17 1\/1 ready\nshop: WAL archiving fails\n$/);
    assert.match(formatStatus({ ...response, items: [fakeItem('shop', 0)] }, 'http://s:1'), /\nwarm pool: Postgres 17 1\/1 ready\n$/);
  });

  it('says why the warm pool cannot fill (an image that cannot be pulled), with or without databases', () => {
    const pool = [{ postgres_version: 17, target: 1, ready: 0, filling: 0, problem: 'image 127.0.0.1:5000/postgres:17 is not on the server and could not be pulled (connection refused)' }];
    const empty: StatusResponse = { items: [], detached_volumes: [], unknown_containers: [], pool, backups: null };
    assert.equal(
      formatStatus(empty, 'http://s:1'),
      'no databases on http://s:1; create one with `pgdb deploy`\nwarm pool for Postgres 17 cannot fill: image 127.0.0.1:5000/postgres:17 is not on the server and could not be pulled (connection refused)\n',
    );
    assert.match(formatStatus({ ...empty, items: [fakeItem('shop', 0)] }, 'http://s:1'), /\nwarm pool: Postgres 17 0\/1 ready\nwarm pool for Postgres 17 cannot fill: image .* \(connection refused\)\n$/);
  });

  it('says so when the server has no databases', () => {
    const empty: StatusResponse = { items: [], detached_volumes: [], unknown_containers: [], pool: [], backups: null };
    assert.equal(formatStatus(empty, 'http://s:1'), 'no databases on http://s:1; create one with `pgdb deploy`\n');
  });
});

describe('formatting helpers', () => {
  it('aligns table columns without trailing spaces', () => {
    assert.equal(formatTable(['A', 'LONG'], [['wide cell', ''], ['b', 'c']]), 'A          LONG\nwide cell\nb          c\n');
  });

  it('formats byte counts', () => {
    assert.deepEqual(
      [0, 512, 1536, 42 * 1024 ** 2, 7.5 * 1024 ** 3, 3 * 1024 ** 5].map(formatBytes),
      ['0 B', '512 B', '1.5 kB', '42 MB', '7.5 GB', '3072 TB'],
    );
  });

  it('formats creation times in UTC and passes through what is not a date', () => {
    assert.equal(formatCreated('2025-11-29T03:29:59+01:00'), '2025-11-29 02:29 UTC');
    assert.equal(formatCreated('yesterday'), 'yesterday');
  });
});
