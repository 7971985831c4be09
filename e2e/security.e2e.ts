/**
 * Secure defaults, proven against the real daemon, Docker and Postgres: TLS
 * to every database and to the API, tenants without superuser, limited and
 * isolated containers, and the in-place upgrade of a database made the way
 * the previous release made it.
 *
 * The daemon here runs as a server would: listening on every address (so the
 * API speaks HTTPS) and with the default PGDB_POSTGRES_BIND (0.0.0.0).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './support/eventually.js';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { bridgeAddressOf, docker, query, requireDockerAndImages, TEST_IMAGE_REPO, TestDaemon } from './support/daemon.js';
import { bounds, testPorts } from './support/ports.js';

const ports = testPorts(import.meta.url);

const PORT_RANGE = ports.range(100);

/** Runs psql with a connection string; returns its exit status and output. */
function psql(url: string, sql: string): { status: number | null; out: string } {
  const result = spawnSync('psql', [url, '-XAtc', sql], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, out: `${result.stdout}${result.stderr}`.trim() };
}

function withoutQuery(url: string): string {
  return url.slice(0, url.indexOf('?'));
}

/** Inside a container: can it open a TCP connection to host:port and get any bytes back within 3 s? */
function reachableFrom(container: string, host: string, port: number): boolean {
  const script = `exec 3<>/dev/tcp/${host}/${port} || exit 1; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; head -c 1 <&3 | grep -q . `;
  const result = spawnSync('docker', ['exec', container, 'timeout', '3', 'bash', '-c', script], { encoding: 'utf8' });
  return result.status === 0;
}

function containerOf(name: string, instance: string): string {
  return docker('ps', '-q', '--filter', `label=pgdb.instance=${instance}`, '--filter', `label=pgdb.name=${name}`);
}

describe('secure by default', () => {
  let daemon: TestDaemon;
  let shop: any;

  before(async () => {
    requireDockerAndImages([15, 17]);
    daemon = await new TestDaemon({ portRange: PORT_RANGE, public: true, unset: ['PGDB_POSTGRES_BIND'] }).start();
    const res = await daemon.api('POST', '/v1/deploy', { name: 'shop', memory_mb: 300 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    shop = res.body;
  });
  after(async () => daemon?.destroyAll());

  describe('TLS to every database', () => {
    it('returns a URL with sslmode=require that psql connects with, encrypted', () => {
      assert.match(shop.database_url, /\?sslmode=require$/);
      const result = psql(shop.database_url, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      assert.deepEqual(result, { status: 0, out: 't' });
    });

    it('refuses a connection without TLS, even with the right password', async () => {
      const plain = `${withoutQuery(shop.database_url)}?sslmode=disable`;
      assert.match(psql(plain, 'SELECT 1').out, /pg_hba.conf rejects connection .* no encryption/);
      await assert.rejects(query(plain, 'SELECT 1'), /no encryption/);
    });

    it('verifies with the CA (verify-full) and fails for a host name the certificate does not name', () => {
      const caFile = join(mkdtempSync(join(tmpdir(), 'pgdb-ca-')), 'ca.pem');
      writeFileSync(caFile, daemon.caCertificate());
      const verified = `${withoutQuery(shop.database_url)}?sslmode=verify-full&sslrootcert=${caFile}`;
      assert.deepEqual(psql(verified, 'SELECT 1'), { status: 0, out: '1' });
      const wrongHost = verified.replace('@127.0.0.1:', '@localhost:');
      assert.match(psql(wrongHost, 'SELECT 1').out, /does not match host name "localhost"/);
    });

    it("gives each database its own certificate for the public host, issued by the daemon's CA", () => {
      const container = containerOf('shop', daemon.instanceId());
      const pem = execFileSync('docker', ['exec', container, 'cat', '/etc/pgdb/server.crt'], { encoding: 'utf8' });
      const cert = new X509Certificate(pem);
      assert.ok(cert.checkIssued(new X509Certificate(daemon.caCertificate())));
      assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
      const key = spawnSync('docker', ['exec', container, 'stat', '-c', '%a %u', '/etc/pgdb/server.key'], { encoding: 'utf8' });
      assert.equal(key.stdout.trim(), '600 999');
    });
  });

  describe('the API over HTTPS', () => {
    it('serves health and the CA over HTTPS; the fingerprint is that of the CA it serves', async () => {
      const health = await daemon.api('GET', '/v1/health', undefined, null);
      assert.equal(health.status, 200);
      assert.equal(health.body.tls.api, true);
      assert.equal(health.body.tls.source, 'own-ca');
      const ca = await daemon.api('GET', '/v1/ca', undefined, null);
      assert.equal(ca.status, 200);
      assert.equal(ca.body, daemon.caCertificate());
      const der = new X509Certificate(ca.body).raw;
      assert.equal(health.body.tls.ca_fingerprint, `sha256:${createHash('sha256').update(der).digest('hex')}`);
    });

    it('does not answer plain HTTP on its port', async () => {
      const port = Number(new URL(daemon.url).port);
      const answer = await new Promise<string>((resolve) => {
        const outgoing = httpRequest({ host: '127.0.0.1', port, path: '/v1/health', timeout: 3000 }, (response) =>
          resolve(`HTTP ${response.statusCode}`),
        );
        outgoing.on('error', (error) => resolve(error.message));
        outgoing.on('timeout', () => outgoing.destroy(new Error('timeout')));
        outgoing.end();
      });
      // Node answers a plain request on a TLS port by closing the connection.
      assert.doesNotMatch(answer, /HTTP 200/);
    });
  });

  describe('tenants are not superusers', () => {
    it('has none of the dangerous attributes or roles, and COPY ... TO PROGRAM fails', async () => {
      const [role] = await query(
        shop.database_url,
        `SELECT rolsuper, rolcreaterole, rolreplication, rolbypassrls,
                pg_has_role(current_user, 'pg_execute_server_program', 'member') AS program,
                pg_has_role(current_user, 'pg_read_server_files', 'member') AS read_files,
                pg_has_role(current_user, 'pg_write_server_files', 'member') AS write_files
           FROM pg_roles WHERE rolname = current_user`,
      );
      assert.deepEqual(role, {
        rolsuper: false,
        rolcreaterole: false,
        rolreplication: false,
        rolbypassrls: false,
        program: false,
        read_files: false,
        write_files: false,
      });
      await assert.rejects(query(shop.database_url, "COPY (SELECT 1) TO PROGRAM 'id'"), /permission denied/);
    });

    it('can create a schema, a table and a trusted extension', async () => {
      await query(shop.database_url, 'CREATE SCHEMA app');
      await query(shop.database_url, 'CREATE TABLE app.orders (id bigserial PRIMARY KEY, total numeric NOT NULL)');
      await query(shop.database_url, 'CREATE EXTENSION pgcrypto');
      const [row] = await query(shop.database_url, "INSERT INTO app.orders (total) VALUES (9.5) RETURNING id, length(gen_random_uuid()::text) AS uuid");
      assert.deepEqual(row, { id: '1', uuid: 36 });
      const [owner] = await query(shop.database_url, 'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()');
      assert.equal(owner.owner, shop.user);
    });
  });

  describe('limited, isolated containers', () => {
    it('shows the security options and limits in docker inspect, with the memory limit asked for', () => {
      const inspect = JSON.parse(docker('inspect', containerOf('shop', daemon.instanceId())))[0];
      const host = inspect.HostConfig;
      assert.deepEqual(host.CapDrop, ['ALL']);
      assert.deepEqual([...host.CapAdd].sort(), ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID']);
      assert.ok(host.SecurityOpt.includes('no-new-privileges:true'));
      assert.equal(host.Memory, 300 * 1024 * 1024);
      assert.equal(host.MemorySwap, 300 * 1024 * 1024);
      assert.equal(host.PidsLimit, 512);
      assert.equal(host.ShmSize, 150 * 1024 * 1024);
      assert.deepEqual(host.LogConfig, { Type: 'json-file', Config: { 'max-file': '3', 'max-size': '10m' } });
      // The default PGDB_POSTGRES_BIND publishes on every address.
      assert.equal(host.PortBindings['5432/tcp'][0].HostIp, '0.0.0.0');
    });

    it('uses the daemon default memory limit when the deploy names none', async () => {
      const res = await daemon.api('POST', '/v1/deploy', { name: 'small', version: 15 });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.memory_mb, 512);
      const inspect = JSON.parse(docker('inspect', containerOf('small', daemon.instanceId())))[0];
      assert.equal(inspect.HostConfig.Memory, 512 * 1024 * 1024);
    });

    it("keeps a database from reaching another's container and the daemon's API", async () => {
      const instance = daemon.instanceId();
      const shopContainer = containerOf('shop', instance);
      const inspect = JSON.parse(docker('inspect', containerOf('small', instance)))[0];
      const [network] = Object.keys(inspect.NetworkSettings.Networks);
      const smallAddress = inspect.NetworkSettings.Networks[network].IPAddress;
      const gateway = bridgeAddressOf(network);
      const apiPort = Number(new URL(daemon.url).port);
      // Positive control: the host reaches the same container address.
      assert.ok(await tcpAnswers(smallAddress, 5432), 'the host should reach the container directly');
      assert.equal(reachableFrom(shopContainer, smallAddress, 5432), false, 'one database reached another over the Docker network');
      assert.equal(reachableFrom(shopContainer, gateway, apiPort), false, "a database reached the daemon's API");
    });
  });
});

/** Whether something answers a TCP connection from the host (any bytes back, or an accepted connection). */
async function tcpAnswers(host: string, port: number): Promise<boolean> {
  const client = new pg.Client({ host, port, user: 'nobody', password: 'x', database: 'x', ssl: false, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch (error) {
    // Postgres answered (here: it refused the unencrypted login), so the address is reachable.
    return /pg_hba|password|does not exist|no encryption/.test((error as Error).message);
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('upgrade of a database made by the previous release', () => {
  let daemon: TestDaemon;
  // The legacy container's own port, beside the range of the daemon that takes it over.
  const [port] = bounds(ports.range(1));
  const suffix = randomBytes(3).toString('hex');
  const legacy = {
    name: 'legacy',
    volume: `pgdb-legacy-${suffix}`,
    user: 'u_legacy0001',
    db: 'pg_legacy0001',
    password: randomBytes(24).toString('base64url'),
  };
  const plainUrl = `postgres://${legacy.user}:${legacy.password}@127.0.0.1:${port}/${legacy.db}?sslmode=disable`;

  before(async () => {
    requireDockerAndImages([17]);
    // What the previous release left: a registry record without the new
    // fields, and a container with the tenant as bootstrap superuser, no TLS,
    // on the default bridge.
    const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-e2e-legacy-'));
    const instance = randomBytes(6).toString('hex');
    const labels = ['pgdb.managed=true', `pgdb.instance=${instance}`, `pgdb.name=${legacy.name}`, 'pgdb.postgres_version=17'];
    docker('volume', 'create', ...labels.flatMap((l) => ['--label', l]), legacy.volume);
    const containerId = docker(
      'run', '-d', '--name', legacy.volume,
      ...labels.flatMap((l) => ['--label', l]),
      '-e', `POSTGRES_USER=${legacy.user}`, '-e', `POSTGRES_PASSWORD=${legacy.password}`, '-e', `POSTGRES_DB=${legacy.db}`,
      '-p', `127.0.0.1:${port}:5432`, '--mount', `type=volume,src=${legacy.volume},dst=/var/lib/postgresql/data`,
      '--restart', 'unless-stopped', `${TEST_IMAGE_REPO}:17`,
    );
    const record = {
      name: legacy.name, container_id: containerId, volume_name: legacy.volume, host_port: port, db: legacy.db,
      user: legacy.user, created_at: new Date().toISOString(), postgres_version: 17, host: '127.0.0.1',
      password: legacy.password, size_gb: 10,
    };
    writeFileSync(join(dataDir, 'registry.json'), JSON.stringify({ version: 1, instance_id: instance, items: [record] }), { mode: 0o600 });
    await eventually('the legacy container to accept connections', 30_000, () => query(plainUrl, 'SELECT 1'), 200);
    await query(plainUrl, 'CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)');
    await query(plainUrl, "INSERT INTO notes (body) SELECT 'row ' || g FROM generate_series(1, 500) g");
    await query(plainUrl, 'CREATE VIEW recent AS SELECT * FROM notes WHERE id > 490');
    await query(plainUrl, 'CREATE SEQUENCE tickets');
    await query(plainUrl, 'CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 * 2 $$');
    assert.deepEqual(await query(plainUrl, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user'), [{ rolsuper: true }]);

    daemon = await new TestDaemon({ portRange: ports.range(10), dataDir, env: { PGDB_POSTGRES_BIND: '127.0.0.1' } });
    await daemon.start();
  });
  after(async () => {
    await daemon?.destroyAll();
  });

  it('keeps every row and the URL, and then accepts only TLS, as a role that is no superuser', async () => {
    const status = await daemon.api('GET', '/v1/status?show_secrets=true');
    const [item] = status.body.items;
    assert.equal(item.state, 'running');
    assert.equal(item.host_port, port);
    assert.equal(item.database_url, plainUrl.replace('sslmode=disable', 'sslmode=require'));
    assert.deepEqual(await query(item.database_url, 'SELECT count(*)::int AS n FROM notes'), [{ n: 500 }]);
    assert.deepEqual(await query(item.database_url, 'SELECT count(*)::int AS n FROM recent'), [{ n: 10 }]);
    await assert.rejects(query(plainUrl, 'SELECT 1'), /no encryption/);
    assert.deepEqual(await query(item.database_url, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user'), [{ rolsuper: false }]);
    // What the tenant made is still the tenant's: it can change and drop it.
    await query(item.database_url, 'ALTER TABLE notes ADD COLUMN seen boolean');
    await query(item.database_url, "INSERT INTO notes (body) VALUES ('after the upgrade')");
    assert.deepEqual(await query(item.database_url, "SELECT nextval('tickets')::int AS n, twice(21) AS t"), [{ n: 1, t: 42 }]);
    await query(item.database_url, 'DROP VIEW recent');
  });

  it('survives a second start without changing anything', async () => {
    const before = (await daemon.api('GET', '/v1/status')).body.items[0].container_id;
    await daemon.restart();
    const [item] = (await daemon.api('GET', '/v1/status?show_secrets=true')).body.items;
    assert.equal(item.container_id, before);
    assert.deepEqual(await query(item.database_url, 'SELECT count(*)::int AS n FROM notes'), [{ n: 501 }]);
  });
});

