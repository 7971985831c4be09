/**
 * A real S3 store for the backup tests: SeaweedFS (`weed server`, built by
 * scripts/build-seaweedfs.sh) as one process, serving S3 over HTTPS with a
 * certificate from a CA made for the test, one generated access key, and one
 * bucket. The data stays in a temporary folder across stop() and start(), so a
 * test can take the store down and bring it back; destroy() removes it.
 *
 * By default the store listens on 127.0.0.1 and its certificate names
 * `localhost`, for pgBackRest on the host or in a container on the host's
 * network. A database container on a Docker bridge cannot reach the host's
 * loopback: bind the store to an address of the host that the container can
 * reach (the bridge's gateway, e.g. 172.17.0.1) and give the certificate a DNS
 * name that the container maps to that address (`--add-host s3.test:172.17.0.1`,
 * or ExtraHosts in the container's HostConfig). pgBackRest 2.45 checks DNS
 * names only, never IP addresses, in the certificate.
 *
 * The helpers talk S3 themselves (AWS Signature Version 4 over node:https) so
 * the tests need no SDK; the store checks every signature against the key.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueServerCertificate } from '../../daemon/src/tls/certificates.js';
import { freePort } from './daemon.js';
import { eventually, GaveUp } from './eventually.js';

/** Where scripts/build-seaweedfs.sh caches the binary (scripts/test.sh exports the path it printed). */
export const WEED =
  process.env.PGDB_TEST_WEED ??
  join(process.env.PGDB_BUILD_CACHE ?? '/var/cache/pgdb-build', 'seaweedfs', 'v0.0.0-20261109003541-7506e5f91cd6', 'weed');

const START_TIMEOUT_MS = 60_000;
/** weed server ignores SIGTERM for a long time: it gets this long, then SIGKILL. */
const STOP_GRACE_MS = 1_000;
/** A bucket of the harness's own, where start() proves that writes and reads work. */
const PROBE_BUCKET = 'harness-probe';

export interface S3StoreOptions {
  /** Address the store listens on (default 127.0.0.1); 0.0.0.0 listens everywhere. */
  bindAddress?: string;
  /** DNS names in the server certificate; the first one is the endpoint's host (default ['localhost']). */
  dnsNames?: string[];
  /** Bucket created at the first start (default `pgdb-backups`). */
  bucket?: string;
  region?: string;
  /** The weed binary (default WEED). */
  weed?: string;
}

export interface S3Object {
  key: string;
  size: number;
}

export interface S3Response {
  status: number;
  body: Buffer;
}

export class S3Store {
  readonly bucket: string;
  readonly region: string;
  readonly accessKey = `PGDBTEST${randomBytes(6).toString('hex').toUpperCase()}`;
  readonly secretKey = randomBytes(30).toString('base64url');
  /** The temporary folder holding the data, the TLS files, the identities and weed's log. */
  readonly root: string;
  private readonly bindAddress: string;
  private readonly dnsNames: string[];
  private readonly weed: string;
  private ports: { s3: number; master: number; volume: number; filer: number; grpc: number[] } | undefined;
  private child: ChildProcess | undefined;
  private bucketCreated = false;

  constructor(options: S3StoreOptions = {}) {
    this.bindAddress = options.bindAddress ?? '127.0.0.1';
    this.dnsNames = options.dnsNames ?? ['localhost'];
    if (this.dnsNames.length === 0) throw new Error('S3Store: the certificate needs at least one DNS name');
    for (const name of this.dnsNames) {
      if (isIP(name)) throw new Error(`S3Store: ${name} is an IP address; pgBackRest only matches DNS names`);
    }
    this.bucket = options.bucket ?? 'pgdb-backups';
    this.region = options.region ?? 'us-east-1';
    this.weed = options.weed ?? WEED;
    this.root = mkdtempSync(join(tmpdir(), 'pgdb-s3store-'));
  }

  /** `host:port` as pgBackRest's repo1-s3-endpoint wants it (the certificate's first DNS name). */
  get endpoint(): string {
    return `${this.dnsNames[0]}:${this.port}`;
  }

  get host(): string {
    return this.dnsNames[0];
  }

  get port(): number {
    if (!this.ports) throw new Error('S3Store: not started');
    return this.ports.s3;
  }

  /** The test CA's certificate (PEM): pgBackRest's repo1-storage-ca-file. */
  get caFile(): string {
    return join(this.root, 'tls', 'ca.pem');
  }

  /** A daemon backing up into this store, with the key files in `secrets` (`access`, `secret`). */
  daemonEnv(secrets: string): Record<string, string> {
    return {
      PGDB_BACKUP: 'on',
      PGDB_BACKUP_S3_ENDPOINT: this.endpoint,
      PGDB_BACKUP_S3_BUCKET: this.bucket,
      PGDB_BACKUP_S3_REGION: this.region,
      PGDB_BACKUP_S3_ACCESS_KEY_FILE: join(secrets, 'access'),
      PGDB_BACKUP_S3_SECRET_KEY_FILE: join(secrets, 'secret'),
      PGDB_BACKUP_S3_CA_FILE: this.caFile,
      PGDB_BACKUP_S3_ADDRESS: 'host-gateway',
    };
  }

  /** The test CA's certificate itself (PEM). */
  caPem(): string {
    return readFileSync(this.caFile, 'utf8');
  }

  /** weed's own output, for failure messages. */
  log(): string {
    try {
      return readFileSync(join(this.root, 'weed.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Starts weed and resolves when S3 answers over HTTPS and an object can be
   * written and read back. The first start makes the CA, the certificate, the
   * key and the bucket; later starts reuse the same data, files and ports.
   */
  async start(): Promise<this> {
    if (this.child) throw new Error('S3Store: already running');
    if (!this.ports) await this.prepare();
    const ports = this.ports!;
    const data = join(this.root, 'data');
    const [masterGrpc, volumeGrpc, filerGrpc, s3Grpc] = ports.grpc;
    const args = [
      'server',
      `-dir=${data}`,
      `-ip=${this.advertisedAddress()}`,
      `-ip.bind=${this.bindAddress}`,
      `-master.port=${ports.master}`,
      `-master.port.grpc=${masterGrpc}`,
      '-master.volumeSizeLimitMB=256',
      // A restarted master waits this long for a raft election before it serves (default 10 s, 30 s seen).
      '-master.electionTimeout=1s',
      '-master.telemetry=false',
      `-volume.port=${ports.volume}`,
      `-volume.port.grpc=${volumeGrpc}`,
      '-volume.max=100',
      '-filer',
      `-filer.port=${ports.filer}`,
      `-filer.port.grpc=${filerGrpc}`,
      '-s3',
      `-s3.port=${ports.s3}`,
      `-s3.port.grpc=${s3Grpc}`,
      // Listeners on fixed default ports that the tests do not use: off.
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      `-s3.config=${join(this.root, 'identities.json')}`,
      `-s3.cert.file=${join(this.root, 'tls', 'server.pem')}`,
      `-s3.key.file=${join(this.root, 'tls', 'server.key')}`,
    ];
    const log = openSync(join(this.root, 'weed.log'), 'a');
    try {
      // weed writes log files to the temporary directory: keep them in the store's folder.
      this.child = spawn(this.weed, args, { stdio: ['ignore', log, log], env: { ...process.env, TMPDIR: join(this.root, 'tmp') } });
    } finally {
      closeSync(log);
    }
    const child = this.child;
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => reject(new Error(`S3Store: cannot run ${this.weed} (run scripts/build-seaweedfs.sh, or set PGDB_TEST_WEED): ${error.message}`)));
    });
    try {
      await spawned;
      await this.waitUntilReady();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.bucketCreated = true;
    return this;
  }

  /** Stops weed (SIGTERM, then SIGKILL after a short wait) and keeps its data. Stopping a stopped store is no error. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    // No pid: it never started (the binary is missing), so there is no exit to wait for.
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    this.removeSockets();
  }

  /** weed leaves Unix sockets named by port in /tmp (whatever TMPDIR says): remove the ones for this store's ports. */
  private removeSockets(): void {
    if (!this.ports) return;
    const ours = new Set([this.ports.master, this.ports.volume, this.ports.filer, this.ports.s3, ...this.ports.grpc].map(String));
    for (const name of readdirSync('/tmp')) {
      const found = /^seaweedfs-[a-z0-9]+(?:-grpc)?-(\d+)\.sock$/.exec(name);
      if (found && ours.has(found[1])) rmSync(join('/tmp', name), { force: true });
    }
  }

  /** Stops weed and removes its data, certificates and log. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.root, { recursive: true, force: true });
  }

  /** Every object under `prefix` in the bucket, in key order. */
  async listObjects(prefix = ''): Promise<S3Object[]> {
    const objects: S3Object[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { 'list-type': '2', prefix };
      if (token) query['continuation-token'] = token;
      const xml = (await this.expect('GET', this.bucket, '', { query }, 200)).toString('utf8');
      for (const [, entry] of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        objects.push({ key: xmlText(entry, 'Key'), size: Number(xmlText(entry, 'Size')) });
      }
      token = xmlText(xml, 'IsTruncated') === 'true' ? xmlText(xml, 'NextContinuationToken') : undefined;
    } while (token);
    return objects;
  }

  async getObject(key: string): Promise<Buffer> {
    return this.expect('GET', this.bucket, key, {}, 200);
  }

  async putObject(key: string, body: Buffer | string): Promise<void> {
    await this.expect('PUT', this.bucket, key, { body: Buffer.from(body) }, 200);
  }

  async deleteObject(key: string): Promise<void> {
    await this.expect('DELETE', this.bucket, key, {}, 204);
  }

  /**
   * Damages a stored object the way a bad disk would: reads it, inverts the
   * bits of one byte (the middle one unless `offset` is given) and stores it
   * back under the same key and size. Returns the offset it changed.
   */
  async corruptObject(key: string, offset?: number): Promise<number> {
    const body = await this.getObject(key);
    if (body.length === 0) throw new Error(`S3Store: ${key} is empty; there is no byte to change`);
    const at = offset ?? Math.floor(body.length / 2);
    if (!Number.isInteger(at) || at < 0 || at >= body.length) throw new Error(`S3Store: offset ${at} is outside ${key} (${body.length} bytes)`);
    body[at] ^= 0xff;
    await this.putObject(key, body);
    return at;
  }

  /**
   * One signed S3 request. `bucket` and `key` make the path (path style);
   * `secretKey` overrides the store's key (to prove that a wrong one is refused).
   */
  request(
    method: string,
    bucket: string,
    key: string,
    options: { query?: Record<string, string>; body?: Buffer; secretKey?: string } = {},
  ): Promise<S3Response> {
    const body = options.body ?? Buffer.alloc(0);
    const path = `/${[bucket, ...(key ? key.split('/') : [])].map(uriEncode).join('/')}`;
    const query = Object.entries(options.query ?? {})
      .map(([name, value]) => [uriEncode(name), uriEncode(value)])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => `${name}=${value}`)
      .join('&');
    const headers = signV4({
      method,
      path,
      query,
      host: this.endpoint,
      body,
      region: this.region,
      accessKey: this.accessKey,
      secretKey: options.secretKey ?? this.secretKey,
    });
    return new Promise((resolve, reject) => {
      const outgoing = httpsRequest(
        {
          // Connect to the address weed listens on; verify the certificate for the DNS name.
          host: this.bindAddress === '0.0.0.0' ? '127.0.0.1' : this.bindAddress,
          servername: this.host,
          port: this.port,
          method,
          path: query ? `${path}?${query}` : path,
          headers: { ...headers, 'content-length': String(body.length) },
          ca: this.caPem(),
          timeout: 30_000,
          agent: false,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
        },
      );
      outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  private async expect(method: string, bucket: string, key: string, options: { query?: Record<string, string>; body?: Buffer }, status: number): Promise<Buffer> {
    const response = await this.request(method, bucket, key, options);
    if (response.status !== status) {
      throw new Error(`S3 ${method} /${bucket}/${key}: HTTP ${response.status} (expected ${status}): ${response.body.toString('utf8').slice(0, 500)}`);
    }
    return response.body;
  }

  /** First start only: ports, folders, the CA and server certificate, the identities file. */
  private async prepare(): Promise<void> {
    const ports: number[] = [];
    while (ports.length < 8) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const [s3, master, volume, filer, ...grpc] = ports;
    mkdirSync(join(this.root, 'data'), { recursive: true });
    mkdirSync(join(this.root, 'tls'), { recursive: true });
    mkdirSync(join(this.root, 'tmp'), { recursive: true });
    const ca = await createCertificateAuthority('pgdb test S3 CA');
    const ip = this.bindAddress === '0.0.0.0' ? '127.0.0.1' : this.bindAddress;
    const server = await issueServerCertificate(ca, [...this.dnsNames, ip]);
    writeFileSync(this.caFile, ca.cert, { mode: 0o644 });
    writeFileSync(join(this.root, 'tls', 'server.pem'), server.cert, { mode: 0o644 });
    writeFileSync(join(this.root, 'tls', 'server.key'), server.key, { mode: 0o600 });
    const identities = {
      identities: [
        {
          name: 'pgdb-test',
          credentials: [{ accessKey: this.accessKey, secretKey: this.secretKey }],
          actions: ['Admin', 'Read', 'List', 'Tagging', 'Write'],
        },
      ],
    };
    writeFileSync(join(this.root, 'identities.json'), JSON.stringify(identities, null, 2), { mode: 0o600 });
    this.ports = { s3, master, volume, filer, grpc };
  }

  /** The address weed tells its own parts to use: the bind address, or loopback when it listens everywhere. */
  private advertisedAddress(): string {
    return this.bindAddress === '0.0.0.0' ? '127.0.0.1' : this.bindAddress;
  }

  /** Until S3 answers, the buckets exist, and an object round-trips (the volume server has registered). */
  private async waitUntilReady(): Promise<void> {
    await eventually('S3Store: S3 working', START_TIMEOUT_MS, async () => {
      const child = this.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) throw new GaveUp(`S3Store: weed exited (${child?.exitCode ?? child?.signalCode})`);
      await this.ensureBucket(PROBE_BUCKET);
      if (!this.bucketCreated) await this.ensureBucket(this.bucket);
      const probe = randomBytes(16);
      const put = await this.request('PUT', PROBE_BUCKET, 'probe', { body: probe });
      if (put.status !== 200) throw new Error(`probe PUT: HTTP ${put.status} ${put.body.toString('utf8').slice(0, 300)}`);
      const got = await this.request('GET', PROBE_BUCKET, 'probe');
      if (got.status !== 200 || !got.body.equals(probe)) throw new Error(`probe GET: HTTP ${got.status}`);
      return true;
    }, 250).catch((error: Error) => {
      throw new Error(`${error.message}:\n${this.log().slice(-4000)}`);
    });
  }

  private async ensureBucket(bucket: string): Promise<void> {
    const head = await this.request('HEAD', bucket, '');
    if (head.status === 200) return;
    const created = await this.request('PUT', bucket, '');
    if (created.status !== 200) throw new Error(`CreateBucket ${bucket}: HTTP ${created.status} ${created.body.toString('utf8').slice(0, 300)}`);
  }
}

/** The headers that sign a request with AWS Signature Version 4 (service s3, payload hashed). */
function signV4(request: {
  method: string;
  path: string;
  query: string;
  host: string;
  body: Buffer;
  region: string;
  accessKey: string;
  secretKey: string;
}): Record<string, string> {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = sha256(request.body);
  const headers: Record<string, string> = { host: request.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  const names = Object.keys(headers).sort();
  const canonical = [
    request.method,
    request.path,
    request.query,
    ...names.map((name) => `${name}:${headers[name]}`),
    '',
    names.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${day}/${request.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(Buffer.from(canonical))].join('\n');
  let key: Buffer = Buffer.from(`AWS4${request.secretKey}`);
  for (const part of [day, request.region, 's3', 'aws4_request']) key = hmac(key, part);
  const signature = hmac(key, toSign).toString('hex');
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${request.accessKey}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** RFC 3986 encoding as SigV4 wants it: everything but unreserved characters. */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The text of the first <tag> in `xml`, entities decoded ('' when absent). */
function xmlText(xml: string, tag: string): string {
  const found = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  if (!found) return '';
  return found[1].replace(/&(lt|gt|quot|apos|amp|#\d+|#x[0-9a-fA-F]+);/g, (_, entity: string) => {
    if (entity[0] === '#') return String.fromCodePoint(entity[1] === 'x' ? parseInt(entity.slice(2), 16) : Number(entity.slice(1)));
    return { lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' }[entity] as string;
  });
}
