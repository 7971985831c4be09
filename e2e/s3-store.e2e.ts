/**
 * The S3 store the backup tests write to (e2e/support/s3-store.ts): a real
 * SeaweedFS over HTTPS. Proves what those tests rely on: signed requests
 * store, list and return objects; a wrong key is refused; a corrupted object
 * differs by one byte; objects survive the store going down and coming back;
 * and a database container on an isolated Docker bridge reaches the store by
 * a DNS name its certificate carries.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { bridgeAddressOf, docker, requireDockerAndImages, TEST_IMAGE_REPO } from './support/daemon.js';
import { S3Store } from './support/s3-store.js';

/** A TLS handshake with `servername`, verified against `ca`; resolves with the HTTP status or rejects with the TLS error. */
function handshake(port: number, servername: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest({ host: '127.0.0.1', port, servername, ca, method: 'GET', path: '/', agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('S3 store (SeaweedFS) on loopback', () => {
  const store = new S3Store();
  const big = randomBytes(3 * 1024 * 1024 + 17);

  before(async () => {
    await store.start();
  });
  after(async () => {
    await store.destroy();
  });

  it('stores, lists by prefix and returns objects through signed HTTPS requests', async () => {
    assert.equal(store.endpoint, `localhost:${store.port}`);
    await store.putObject('db1/archive/000000010000000000000001', big);
    await store.putObject('db1/backup/backup.info', 'backup info\n');
    await store.putObject('db1/backup/odd name+1.txt', 'odd');
    await store.putObject('db2/backup/backup.info', 'other database\n');

    assert.deepEqual(await store.listObjects('db1/'), [
      { key: 'db1/archive/000000010000000000000001', size: big.length },
      { key: 'db1/backup/backup.info', size: 12 },
      { key: 'db1/backup/odd name+1.txt', size: 3 },
    ]);
    assert.deepEqual(await store.listObjects('db2/'), [{ key: 'db2/backup/backup.info', size: 15 }]);
    assert.deepEqual(await store.listObjects('db3/'), []);
    assert.ok((await store.getObject('db1/archive/000000010000000000000001')).equals(big));
    assert.equal((await store.getObject('db1/backup/odd name+1.txt')).toString(), 'odd');
    const missing = await store.request('GET', store.bucket, 'db1/none');
    assert.equal(missing.status, 404);
  });

  it('refuses a wrong secret key, and its certificate names localhost and nothing else', async () => {
    const forged = await store.request('GET', store.bucket, '', { query: { 'list-type': '2' }, secretKey: 'not-the-key' });
    assert.equal(forged.status, 403, forged.body.toString());
    assert.match(forged.body.toString(), /SignatureDoesNotMatch/);
    const ca = store.caPem();
    assert.equal(await handshake(store.port, 'localhost', ca), 403);
    await assert.rejects(handshake(store.port, 's3.example.test', ca), /ERR_TLS_CERT_ALTNAME_INVALID|does not match/);
  });

  it('corruptObject changes exactly one byte and keeps the size', async () => {
    const offset = await store.corruptObject('db1/archive/000000010000000000000001');
    const after = await store.getObject('db1/archive/000000010000000000000001');
    assert.equal(after.length, big.length);
    const differing = [...after.keys()].filter((i) => after[i] !== big[i]);
    assert.deepEqual(differing, [offset]);
    assert.equal(after[offset], big[offset] ^ 0xff);
    await assert.rejects(store.corruptObject('db1/archive/000000010000000000000001', big.length), /outside/);
  });

  it('refuses connections while stopped, and keeps every object across stop and start on the same endpoint', async () => {
    const endpoint = store.endpoint;
    const before = await store.listObjects();
    await store.stop();
    await assert.rejects(store.listObjects(), /ECONNREFUSED/);
    await store.start();
    assert.equal(store.endpoint, endpoint);
    assert.deepEqual(await store.listObjects(), before);
    assert.equal((await store.getObject('db2/backup/backup.info')).toString(), 'other database\n');
    await store.putObject('db2/after-restart', 'written after the restart');
    assert.equal((await store.getObject('db2/after-restart')).toString(), 'written after the restart');
  });

  it('deleteObject removes one object and leaves the others', async () => {
    await store.deleteObject('db2/after-restart');
    assert.deepEqual(await store.listObjects('db2/'), [{ key: 'db2/backup/backup.info', size: 15 }]);
  });
});

describe('S3 store: mistakes the harness refuses', () => {
  it('a certificate name that is an IP address, or no name at all', () => {
    assert.throws(() => new S3Store({ dnsNames: ['127.0.0.1'] }), /127\.0\.0\.1 is an IP address; pgBackRest only matches DNS names/);
    assert.throws(() => new S3Store({ dnsNames: [] }), /needs at least one DNS name/);
  });

  it('a weed binary that is not there, with the script that builds it', async () => {
    const store = new S3Store({ weed: '/nonexistent/weed' });
    try {
      await assert.rejects(store.start(), /cannot run \/nonexistent\/weed \(run scripts\/build-seaweedfs\.sh, or set PGDB_TEST_WEED\)/);
    } finally {
      await store.destroy();
    }
  });
});

describe('S3 store on the Docker bridge gateway, reached from a container on an isolated bridge', () => {
  const network = `pgdb-s3-e2e-${randomBytes(4).toString('hex')}`;
  let store: S3Store;
  let gateway: string;

  before(async () => {
    requireDockerAndImages([17]);
    // The default bridge's gateway: the address Docker's `host-gateway` stands for.
    gateway = bridgeAddressOf();
    store = new S3Store({ bindAddress: gateway, dnsNames: ['s3.test'] });
    await store.start();
    // Like the daemon's database networks: a user bridge with no traffic between containers.
    docker('network', 'create', '--label', 'pgdb.test=s3-store-e2e', '-o', 'com.docker.network.bridge.enable_icc=false', network);
  });
  after(async () => {
    await store?.destroy();
    try {
      docker('network', 'rm', network);
    } catch {
      // never created
    }
  });

  /** openssl s_client in a database container on the isolated bridge, with s3.test mapped to the host. */
  function connectFromContainer(verifyName: string): { code: number; output: string } {
    try {
      const output = docker(
        'run', '--rm', '--network', network, '--add-host', 's3.test:host-gateway',
        '-v', `${store.caFile}:/ca.pem:ro`, '--entrypoint', 'sh', `${TEST_IMAGE_REPO}:17`, '-c',
        `printf 'GET / HTTP/1.0\\r\\nHost: ${store.endpoint}\\r\\n\\r\\n' | openssl s_client -quiet -connect ${store.endpoint} ` +
          `-servername s3.test -verify_hostname ${verifyName} -CAfile /ca.pem -verify_return_error 2>&1`,
      );
      return { code: 0, output };
    } catch (error) {
      const failed = error as { status: number; stdout: string; stderr: string };
      return { code: failed.status, output: `${failed.stdout}${failed.stderr}` };
    }
  }

  it('the harness itself stores and lists through the gateway address', async () => {
    assert.equal(store.endpoint, `s3.test:${store.port}`);
    await store.putObject('from-host', 'hello');
    assert.deepEqual(await store.listObjects(), [{ key: 'from-host', size: 5 }]);
  });

  it('a container with --add-host s3.test:host-gateway verifies the certificate for s3.test and gets an S3 answer', () => {
    const ok = connectFromContainer('s3.test');
    assert.equal(ok.code, 0, ok.output);
    assert.match(ok.output, /^HTTP\/1\.[01] \d{3}/m);
    const wrongName = connectFromContainer('localhost');
    assert.notEqual(wrongName.code, 0, wrongName.output);
    assert.match(wrongName.output, /hostname mismatch|verify error/i);
  });
});
