/**
 * Backups into a real S3-compatible store (SeaweedFS, built by
 * scripts/build-seaweedfs.sh) over HTTPS with a test CA: the daemon's
 * databases, on their isolated bridge, reach it at the default bridge's
 * gateway under the certificate's DNS name (PGDB_BACKUP_S3_ADDRESS =
 * host-gateway). Point-in-time restore through S3, and a store that goes
 * away: archiving fails loudly, the database keeps taking writes, and
 * nothing committed is lost once the store is back. A major upgrade whose
 * stanzas live in the bucket.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import aws4 from 'aws4';
import { bridgeAddressOf, docker, query, requireDockerAndImages, TestDaemon } from './support/daemon.js';
import { eventually } from './support/eventually.js';
import { S3Store } from './support/s3-store.js';
import { openServerRecord, parseBackupKey } from '../daemon/src/backup/server-record.js';
import { testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(30);
/** Where the daemon keeps the sealed server record in the bucket. */
const RECORD_KEY = 'pgdb/server.pgdb';

function pgQuote(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** One request signed with SigV4 by aws4, over TLS checked against `target.ca`. */
function signedRequest(
  target: { host: string; port: number; ca: string },
  credentials: { accessKeyId: string; secretAccessKey: string },
  region: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const signed = aws4.sign({ host: target.host, port: target.port, method, path, service: 's3', region, headers, ...(body !== undefined ? { body } : {}) }, credentials);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: target.host, port: target.port, method, path: signed.path, headers: signed.headers as Record<string, string>, ca: target.ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function count(url: string): Promise<number> {
  return Number((await query<{ n: string }>(url, 'SELECT count(*) AS n FROM items'))[0].n);
}

describe('backups to S3', { timeout: 1_200_000 }, () => {
  let store: S3Store;
  let daemon: TestDaemon;
  let secrets: string;

  before(async () => {
    requireDockerAndImages([15, 17, 18]);
    const gateway = bridgeAddressOf();
    store = await new S3Store({ bindAddress: gateway, dnsNames: ['s3.test'] }).start();
    secrets = mkdtempSync(join(tmpdir(), 'pgdb-s3keys-'));
    writeFileSync(join(secrets, 'access'), `${store.accessKey}\n`, { mode: 0o600 });
    writeFileSync(join(secrets, 'secret'), `${store.secretKey}\n`, { mode: 0o600 });
    daemon = await new TestDaemon({ portRange: PORT_RANGE, env: s3Env() }).start();
  });

  const s3Env = () => store.daemonEnv(secrets);

  after(async () => {
    await daemon?.destroyAll();
    await store?.destroy();
    if (secrets) rmSync(secrets, { recursive: true, force: true });
  });

  test('point-in-time restore through S3: the backup and WAL are objects in the bucket, the copy has exactly the rows before T', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'cloud' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const url = deployed.body.database_url;
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY)');
    await query(url, 'INSERT INTO items SELECT generate_series(1, 300)');
    const listed = await eventually('first backup in S3', 240_000, async () => {
      const response = await daemon.api('GET', '/v1/db/cloud/backups');
      return response.status === 200 && response.body.backups.length > 0 ? response.body : undefined;
    });
    assert.equal(listed.repository.kind, 's3');
    const status = await daemon.api('GET', '/v1/status');
    assert.equal(status.body.backups.kind, 's3');
    const stanza = status.body.items.find((i: any) => i.name === 'cloud').volume_name;
    const objects = await store.listObjects(`pgdb/${stanza}/`);
    assert.ok(objects.some((o) => o.key.includes('/backup/')), 'the backup is in the bucket');
    assert.ok(objects.some((o) => o.key.includes('/archive/')), 'WAL is in the bucket');

    await query(url, 'INSERT INTO items SELECT generate_series(301, 400)');
    await sleep(1100);
    const t = new Date().toISOString();
    await sleep(1100);
    await query(url, 'INSERT INTO items SELECT generate_series(401, 450)');
    const copy = await daemon.api('POST', '/v1/db/cloud/restore', { as: 'cloud-copy', time: t });
    assert.equal(copy.status, 201, JSON.stringify(copy.body));
    assert.equal(await count(copy.body.database_url), 400);
    assert.equal(await count(url), 450);
  });

  test('a tenant made superuser holds only its own stanza\'s key: the server\'s S3 keys are nowhere it can read, and the backup gateway turns its key away from other stanzas, the server record and the bucket', async () => {
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'thief' });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const thief = daemon.record('thief');
    const victim = daemon.record('cloud');
    // As a Postgres bug might: the tenant's role becomes a superuser, so it runs programs as the postgres OS user.
    docker('exec', thief.container_id, 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres',
      '-c', `ALTER ROLE "${thief.user}" SUPERUSER`);
    const url = deployed.body.database_url;
    const run = async (program: string) => {
      await query(url, 'CREATE TABLE IF NOT EXISTS public.loot (line text)');
      await query(url, 'TRUNCATE public.loot');
      await query(url, `COPY public.loot FROM PROGRAM ${pgQuote(program)} WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')`);
      return (await query<{ line: string | null }>(url, 'SELECT line FROM public.loot')).map((r) => r.line ?? '').join('\n');
    };
    const conf = await run('cat /etc/pgdb/pgbackrest.conf');
    const option = (name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(conf)?.[1];
    assert.equal(option('repo1-s3-key'), thief.backup.stanza, 'its S3 key is its stanza\'s name');
    // Everything the postgres user can read in its container: no file, environment or command line holds the server's keys.
    const found = await run(`grep -rIlsF -e ${store.accessKey} -e ${store.secretKey} /etc /var/lib /tmp /home /root /run /usr/local /proc/1/environ /proc/1/cmdline; true`);
    assert.equal(found, '', `the server's S3 keys are readable in the container: ${found}`);
    // Nor the API's private key, nor the CA's: a line of each PEM (the third, all key bytes), looked for everywhere it can read.
    const secretLine = (file: string) => readFileSync(join(daemon.dataDir, 'tls', file), 'utf8').split('\n')[2];
    const keys = await run(`grep -rIlsF -e ${secretLine('api.key')} -e ${secretLine('ca.key')} /etc /var/lib /tmp /home /root /run /usr/local /proc/1/environ /proc/1/cmdline; true`);
    assert.equal(keys, '', `the API's or the CA's private key is readable in the container: ${keys}`);
    // Positive control: the same search finds its own database's key.
    const ownLine = (await run('cat /etc/pgdb/server.key')).split('\n')[2];
    assert.match(await run(`grep -rIlsF -e ${ownLine} /etc /var/lib /tmp /home /root /run /usr/local; true`), /\/etc\/pgdb\/server\.key/);

    // With its own key, straight to the gateway (the host reaches it at the same address as containers do).
    const gateway = { host: option('repo1-s3-endpoint')!, port: Number(option('repo1-storage-port')), ca: await run('cat /etc/pgdb/s3-ca.pem') };
    const credentials = { accessKeyId: option('repo1-s3-key')!, secretAccessKey: option('repo1-s3-key-secret')! };
    const send = (method: string, path: string, body?: string, headers?: Record<string, string>) =>
      signedRequest(gateway, credentials, store.region, method, path, body, headers);
    const victimPrefix = `pgdb/${victim.backup.stanza}/`;
    const victimKeys = (await store.listObjects(victimPrefix)).map((o) => o.key);
    assert.ok(victimKeys.length > 0);
    const attempts = {
      'read another stanza': await send('GET', `/${store.bucket}/${victimPrefix}backup/${victim.backup.stanza}/backup.info`),
      'overwrite another stanza': await send('PUT', `/${store.bucket}/${victimPrefix}backup/${victim.backup.stanza}/backup.info`, 'gone'),
      'delete another stanza': await send('DELETE', `/${store.bucket}/${victimKeys[0]}`),
      'bulk-delete another stanza': await send('POST', `/${store.bucket}?delete`,
        `<Delete><Object><Key>pgdb/${thief.backup.stanza}/x</Key></Object><Object><Key>${victimKeys[0]}</Key></Object></Delete>`),
      'read the server record': await send('GET', `/${store.bucket}/${RECORD_KEY}`),
      'list the bucket': await send('GET', `/${store.bucket}?list-type=2&prefix=pgdb%2F`),
      'walk out of its prefix': await send('GET', `/${store.bucket}/pgdb/${thief.backup.stanza}/..%2F${victim.backup.stanza}/backup/${victim.backup.stanza}/backup.info`),
      'copy the server record into its own stanza': await send('PUT', `/${store.bucket}/pgdb/${thief.backup.stanza}/stolen`, '',
        { 'x-amz-copy-source': `/${store.bucket}/${RECORD_KEY}` }),
    };
    for (const [attack, response] of Object.entries(attempts)) {
      assert.equal(response.status, 403, `${attack}: HTTP ${response.status} ${response.body}`);
    }
    assert.deepEqual((await store.listObjects(victimPrefix)).map((o) => o.key), victimKeys, 'the other stanza is untouched');
    // Positive control: the same key lists its own stanza (once the daemon has made it there).
    await eventually('the thief\'s own stanza, listed with its key', 120_000, async () => {
      const own = await send('GET', `/${store.bucket}?list-type=2&prefix=${encodeURIComponent(`pgdb/${thief.backup.stanza}/`)}`);
      assert.equal(own.status, 200, own.body);
      return own.body.includes(`<Key>pgdb/${thief.backup.stanza}/`) ? true : undefined;
    });

    // Holding connections to the gateway (here from the host's address, as a flooding container would
    // from its own) locks out no other address: the victim's container still reads its repository.
    const held: Socket[] = [];
    for (let i = 0; i < 24; i++) {
      const socket = connect(gateway.port, gateway.host);
      socket.on('error', () => undefined);
      held.push(socket);
    }
    await sleep(500);
    const closed = held.filter((socket) => socket.destroyed || socket.readyState === 'closed').length;
    assert.ok(closed >= 8, `the gateway closed the connections beyond 16 from one address (closed: ${closed} of 24)`);
    const info = docker('exec', '-u', 'postgres', victim.container_id, 'pgbackrest', '--config=/etc/pgdb/pgbackrest.conf', `--stanza=${victim.backup.stanza}`, '--output=json', 'info');
    assert.match(info, /"status":\{"code":0/, 'the victim reaches its repository through the gateway meanwhile');
    for (const socket of held) socket.destroy();

    // Its own backups go with it, through the gateway too (stanza-delete in a task container).
    assert.equal((await daemon.api('DELETE', '/v1/db/thief?delete_backups=true')).status, 200);
    assert.deepEqual(await store.listObjects(`pgdb/${thief.backup.stanza}/`), []);
  });

  test('a container made before the backup gateway (the server\'s keys in its pgbackrest.conf) holds only its stanza\'s credential after the daemon\'s next start, and archives through the gateway', async () => {
    const cloud = daemon.record('cloud');
    // What a release before the gateway wrote: the store's endpoint and the server's keys.
    const conf = docker('exec', cloud.container_id, 'cat', '/etc/pgdb/pgbackrest.conf');
    const legacy = conf
      .replace(/^repo1-s3-key=.*$/m, `repo1-s3-key=${store.accessKey}`)
      .replace(/^repo1-s3-key-secret=.*$/m, `repo1-s3-key-secret=${store.secretKey}`);
    execFileSync('docker', ['exec', '-i', cloud.container_id, 'sh', '-c', 'cat > /etc/pgdb/pgbackrest.conf'], { input: legacy });
    assert.match(docker('exec', cloud.container_id, 'cat', '/etc/pgdb/pgbackrest.conf'), new RegExp(store.secretKey));

    await daemon.restart();
    await eventually('the server\'s keys gone from the container', 60_000, async () => {
      const now = docker('exec', cloud.container_id, 'cat', '/etc/pgdb/pgbackrest.conf');
      return now.includes(store.secretKey) || now.includes(store.accessKey) ? undefined : now;
    });
    const url = (await daemon.api('GET', '/v1/db/cloud/url')).body.database_url;
    const [{ wal }] = await query<{ wal: string }>(url, "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) AS wal");
    await query(url, 'INSERT INTO items SELECT generate_series(100001, 100010)');
    docker('exec', cloud.container_id, 'psql', '-X', '-q', '-h', '/var/run/postgresql', '-U', 'pgdb_admin', '-d', 'postgres', '-c', 'SELECT pg_switch_wal()');
    await eventually(`WAL segment ${wal} archived through the gateway`, 90_000, async () =>
      (await store.listObjects(`pgdb/${cloud.backup.stanza}/archive/`)).some((o) => o.key.includes(`/${wal}-`)) ? true : undefined);
    await query(url, 'DELETE FROM items WHERE id > 100000');
  });

  test('point-in-time restore through S3 on 15 and 18 too (pgBackRest 2.45 and 2.60 speak S3 differently)', async () => {
    const majors = [15, 18];
    const urls = await Promise.all(majors.map(async (major) => {
      const deployed = await daemon.api('POST', '/v1/deploy', { name: `cloud${major}`, version: major });
      assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
      const url = deployed.body.database_url;
      await query(url, 'CREATE TABLE items (id int PRIMARY KEY)');
      await query(url, 'INSERT INTO items SELECT generate_series(1, 100)');
      return url as string;
    }));
    await Promise.all(majors.map((major) => eventually(`first backup of cloud${major} in S3`, 300_000, async () => {
      const response = await daemon.api('GET', `/v1/db/cloud${major}/backups`);
      return response.status === 200 && response.body.backups.length > 0 ? true : undefined;
    })));
    await Promise.all(urls.map((url) => query(url, 'INSERT INTO items SELECT generate_series(101, 150)')));
    await sleep(1100);
    const t = new Date().toISOString();
    await sleep(1100);
    await Promise.all(urls.map((url) => query(url, 'INSERT INTO items SELECT generate_series(151, 170)')));
    for (const [i, major] of majors.entries()) {
      const copy = await daemon.api('POST', `/v1/db/cloud${major}/restore`, { as: `cloud${major}-copy`, time: t });
      assert.equal(copy.status, 201, `${major}: ${JSON.stringify(copy.body)}`);
      assert.equal(await count(copy.body.database_url), 150, `${major}: exactly the rows before T`);
      assert.equal(await count(urls[i]), 170);
    }
  });

  test('the store goes away: archiving fails loudly, writes go on, and nothing is lost once it is back', async () => {
    const url = (await daemon.api('GET', '/v1/db/cloud/url')).body.database_url;
    await store.stop();
    try {
      await query(url, 'INSERT INTO items SELECT generate_series(1001, 1100)');
      // A full WAL segment's worth of writes, so that one is due for archiving at once.
      await query(url, 'CREATE TABLE filler AS SELECT g, md5(g::text) AS m FROM generate_series(1, 250000) g');
      // A push to an unreachable store fails after about 50 s (io-timeout 5 s); the daemon looks every 30 s.
      const degraded = await eventually('health degraded, archiving of "cloud" named, while S3 is down', 180_000, async () => {
        const health = await daemon.api('GET', '/v1/health');
        return health.body.problems.some((p: string) => /WAL archiving of "cloud" fails/.test(p)) ? health.body : undefined;
      });
      assert.equal(degraded.status, 'degraded');
      await query(url, 'INSERT INTO items SELECT generate_series(1101, 1150)');
    } finally {
      await store.start();
    }
    await eventually('health ok after S3 is back', 240_000, async () => {
      const health = await daemon.api('GET', '/v1/health', undefined, null);
      return health.body.status === 'ok' ? true : undefined;
    });
    const now = await daemon.api('POST', '/v1/db/cloud/restore', { as: 'cloud-now' });
    assert.equal(now.status, 201, JSON.stringify(now.body));
    assert.equal(await count(now.body.database_url), 600, 'every committed row, the ones written while S3 was down too');
  });

  test('a lost server is rebuilt from the bucket and the backup key: a new daemon lists its databases and restores one; a wrong key is refused and changes nothing', async () => {
    const printed = await daemon.api('GET', '/v1/backups/key');
    assert.equal(printed.status, 200, JSON.stringify(printed.body));
    assert.match(printed.body.key, /^pgdb-backup-key-1:[A-Za-z0-9_-]{43}$/);
    const key = parseBackupKey(printed.body.key);
    const url = (await daemon.api('GET', '/v1/db/cloud/url')).body.database_url;
    const rows = await count(url);
    // Everything committed is in the repository once a backup has finished.
    const backup = await daemon.api('POST', '/v1/db/cloud/backups', { type: 'incr' });
    assert.equal(backup.status, 201, JSON.stringify(backup.body));
    const record = await eventually('the server record in the bucket lists cloud-now', 60_000, async () => {
      const sealed = await store.getObject(RECORD_KEY).catch(() => undefined);
      if (!sealed) return undefined;
      const opened = openServerRecord(sealed, key);
      return opened.registry.items.some((i) => i.name === 'cloud-now') ? opened : undefined;
    });
    const cloud = record.registry.items.find((i) => i.name === 'cloud')!;
    assert.ok(!(await store.getObject(RECORD_KEY)).toString('latin1').includes(cloud.backup!.cipher_pass), 'the passphrases in the bucket are sealed');

    // The server is lost: its containers, volumes and data directory (registry, key file) are gone.
    await daemon.destroyAll();
    const sealedBefore = await store.getObject(RECORD_KEY);

    writeFileSync(join(secrets, 'wrong.key'), 'pgdb-backup-key-1:' + Buffer.alloc(32, 7).toString('base64url') + '\n', { mode: 0o600 });
    const wrong = await new TestDaemon({ portRange: PORT_RANGE, env: { ...s3Env(), PGDB_BACKUP_KEY_FILE: join(secrets, 'wrong.key') } }).start();
    try {
      const health = await eventually('health names the key', 60_000, async () => {
        const response = await wrong.api('GET', '/v1/health');
        return response.body.problems.some((p: string) => /backup key does not open/.test(p)) ? response.body : undefined;
      });
      assert.equal(health.status, 'degraded');
      const listed = await wrong.api('GET', '/v1/backups/destroyed');
      assert.equal(listed.status, 409);
      assert.equal(listed.body.error.code, 'BACKUP_KEY_MISMATCH');
      assert.match(listed.body.error.message, /pgdb backup key/);
      const deployed = await wrong.api('POST', '/v1/deploy', { name: 'other' });
      assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    } finally {
      await wrong.destroyAll();
    }
    assert.deepEqual(await store.getObject(RECORD_KEY), sealedBefore, 'a wrong key leaves the record as it was');

    writeFileSync(join(secrets, 'saved.key'), `${printed.body.key}\n`, { mode: 0o600 });
    daemon = await new TestDaemon({ portRange: PORT_RANGE, env: { ...s3Env(), PGDB_BACKUP_KEY_FILE: join(secrets, 'saved.key') } }).start();
    const destroyed = await eventually('the rebuilt server lists the lost databases', 60_000, async () => {
      const response = await daemon.api('GET', '/v1/backups/destroyed');
      return response.status === 200 && response.body.items.length > 0 ? response.body.items : undefined;
    });
    assert.deepEqual(
      destroyed.map((d: any) => [d.name, d.recovered]).sort(),
      ['cloud', 'cloud-copy', 'cloud-now', 'cloud15', 'cloud15-copy', 'cloud18', 'cloud18-copy'].map((name) => [name, true]),
    );
    const back = await daemon.api('POST', '/v1/db/cloud/restore', { as: 'cloud' });
    assert.equal(back.status, 201, JSON.stringify(back.body));
    assert.equal(await count(back.body.database_url), rows, 'every row the lost server had');
  });
});

describe('backups to S3 with a wrong secret key', { timeout: 300_000 }, () => {
  let store: S3Store;
  let daemon: TestDaemon;
  let secrets: string;

  before(async () => {
    requireDockerAndImages([17]);
    const gateway = bridgeAddressOf();
    store = await new S3Store({ bindAddress: gateway, dnsNames: ['s3.test'] }).start();
    secrets = mkdtempSync(join(tmpdir(), 'pgdb-s3keys-'));
    writeFileSync(join(secrets, 'access'), `${store.accessKey}\n`, { mode: 0o600 });
    writeFileSync(join(secrets, 'secret'), 'not-the-secret-key\n', { mode: 0o600 });
    daemon = await new TestDaemon({
      portRange: ports.range(10),
      env: store.daemonEnv(secrets),
    }).start();
  });

  after(async () => {
    await daemon?.destroyAll();
    await store?.destroy();
    if (secrets) rmSync(secrets, { recursive: true, force: true });
  });

  test('is named in health at start, with the store\'s own answer, and nothing is written to the bucket', async () => {
    const health = await eventually('health names the refused S3 request', 60_000, async () => {
      const response = await daemon.api('GET', '/v1/health');
      return response.body.problems.some((p: string) => /cannot be read/.test(p)) ? response.body : undefined;
    });
    assert.equal(health.status, 'degraded');
    assert.ok(health.problems.some((p: string) => /HTTP 403 SignatureDoesNotMatch/.test(p)), JSON.stringify(health.problems));
    assert.deepEqual(await store.listObjects('pgdb/'), [], 'nothing reached the bucket');
  });
});

describe('upgrade with the repository in S3', { timeout: 900_000 }, () => {
  let store: S3Store;
  let daemon: TestDaemon;
  let secrets: string;
  /** The newest backup of `name` once one finished after `after` (ISO). */
  const backupAfter = (name: string, after: string) =>
    eventually(`a backup of ${name} after ${after}`, 300_000, async () => {
      const listed = await daemon.api('GET', `/v1/db/${name}/backups`);
      const newest = listed.status === 200 ? listed.body.backups.at(-1) : undefined;
      return newest && newest.finished_at > after ? listed.body : undefined;
    });
  /** A moment between two writes, a second clear of each. */
  const moment = async () => {
    await sleep(1100);
    const t = new Date().toISOString();
    await sleep(1100);
    return t;
  };
  const keys = async (stanza: string) => (await store.listObjects(`pgdb/${stanza}/`)).map((o) => o.key);

  before(async () => {
    requireDockerAndImages([15, 17]);
    const gateway = bridgeAddressOf();
    store = await new S3Store({ bindAddress: gateway, dnsNames: ['s3.test'] }).start();
    secrets = mkdtempSync(join(tmpdir(), 'pgdb-s3keys-'));
    writeFileSync(join(secrets, 'access'), `${store.accessKey}\n`, { mode: 0o600 });
    writeFileSync(join(secrets, 'secret'), `${store.secretKey}\n`, { mode: 0o600 });
    daemon = await new TestDaemon({ portRange: ports.range(20), env: store.daemonEnv(secrets) }).start();
  });

  after(async () => {
    await daemon?.destroyAll();
    await store?.destroy();
    if (secrets) rmSync(secrets, { recursive: true, force: true });
  });

  test('15 -> 17: the new cluster backs up into a stanza of its own in the bucket; PITR after the upgrade and before it; finish --delete-backups empties the old stanza', async () => {
    const started = new Date().toISOString();
    const deployed = await daemon.api('POST', '/v1/deploy', { name: 'cloudup', version: 15 });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const url: string = deployed.body.database_url;
    await query(url, 'CREATE TABLE items (id int PRIMARY KEY)');
    await query(url, 'INSERT INTO items SELECT generate_series(1, 200)');
    await backupAfter('cloudup', started);
    const beforeUpgrade = await moment();
    await query(url, 'INSERT INTO items SELECT generate_series(201, 260)');
    const oldStanza: string = daemon.record('cloudup').backup.stanza;

    const upgradedAt = new Date().toISOString();
    const upgraded = await daemon.api('POST', '/v1/db/cloudup/upgrade', { version: 17 });
    assert.equal(upgraded.status, 200, JSON.stringify(upgraded.body));
    assert.deepEqual([upgraded.body.from_version, upgraded.body.to_version, upgraded.body.rows], [15, 17, 260]);
    const newStanza: string = daemon.record('cloudup').backup.stanza;
    assert.notEqual(newStanza, oldStanza, 'the new major has a stanza of its own');
    const first = await backupAfter('cloudup', upgradedAt);
    assert.equal(first.repository.kind, 's3');
    assert.deepEqual(first.backups.map((b: { type: string }) => b.type), ['full'], "the new stanza holds the new cluster's backups only");
    const objects = await keys(newStanza);
    assert.ok(objects.some((key) => key.includes('/backup/')) && objects.some((key) => key.includes('/archive/')), `the new stanza is in the bucket: ${objects.length} objects`);
    assert.ok((await keys(oldStanza)).some((key) => key.includes('/backup/')), "the old cluster's backups stay in the bucket until finish");

    // After the upgrade, from the new stanza: exactly the rows committed before T.
    await query(url, 'INSERT INTO items SELECT generate_series(261, 300)');
    const t = await moment();
    await query(url, 'INSERT INTO items SELECT generate_series(301, 320)');
    const later = await daemon.api('POST', '/v1/db/cloudup/restore', { as: 'cloudup-later', time: t });
    assert.equal(later.status, 201, JSON.stringify(later.body));
    assert.equal(later.body.postgres_version, 17);
    assert.equal(await count(later.body.database_url), 300);
    // Before the upgrade: from the old cluster's stanza in the bucket, on its major.
    const early = await daemon.api('POST', '/v1/db/cloudup/restore', { as: 'cloudup-early', time: beforeUpgrade });
    assert.equal(early.status, 201, JSON.stringify(early.body));
    assert.equal(early.body.postgres_version, 15);
    assert.equal(await count(early.body.database_url), 200);
    assert.equal(await count(url), 320, 'the source is untouched');

    // Finish, deleting the old cluster's backups: its objects leave the bucket; the new stanza's stay.
    const finished = await daemon.api('POST', '/v1/db/cloudup/upgrade/finish?delete_backups=true');
    assert.equal(finished.status, 200, JSON.stringify(finished.body));
    assert.deepEqual([finished.body.postgres_version, finished.body.backups_kept], [17, false]);
    assert.deepEqual(await keys(oldStanza), [], "the old stanza's objects are gone");
    assert.ok((await keys(newStanza)).some((key) => key.includes('/backup/')), "the new stanza's backups are still there");
    const kept = await daemon.api('GET', '/v1/backups/destroyed');
    assert.ok(!kept.body.items.some((d: { name: string; postgres_version: number }) => d.name === 'cloudup' && d.postgres_version === 15), JSON.stringify(kept.body));
    // And the database backs up on, into its stanza.
    const taken = await daemon.api('POST', '/v1/db/cloudup/backups', { type: 'incr' });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    assert.equal(await count(url), 320);
  });
});
