/**
 * Where the sealed server record lives: beside the stanzas of the local
 * repository (`<data dir>/backups/server.pgdb`), or as the object
 * `pgdb/server.pgdb` in the S3 bucket, next to the stanzas' prefixes.
 *
 * The daemon itself reads and writes that one object (pgBackRest has no
 * supported command to store a file of ours), signing with SigV4 through
 * `aws4` and checking the store's certificate against PGDB_BACKUP_S3_CA_FILE
 * like pgBackRest does.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import aws4 from 'aws4';
import { writeFileAtomically } from '../common/atomic-file.js';
import type { S3Repository } from '../common/backup-config.js';

export const RECORD_NAME = 'server.pgdb';
/** Requests to the store give up after this long; the next registry change or tick retries. */
const S3_TIMEOUT_MS = 30_000;

export interface ServerRecordStore {
  /** Where it is, for messages. */
  readonly location: string;
  /** The sealed record; undefined when there is none yet. */
  read(): Promise<Buffer | undefined>;
  write(sealed: Buffer): Promise<void>;
}

export class LocalRecordStore implements ServerRecordStore {
  readonly location: string;

  constructor(private readonly root: string) {
    this.location = join(root, RECORD_NAME);
  }

  async read(): Promise<Buffer | undefined> {
    return readFile(this.location).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
  }

  /** Atomically, 0600. */
  async write(sealed: Buffer): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await writeFileAtomically(this.location, sealed);
  }
}

export class S3RecordStore implements ServerRecordStore {
  readonly location: string;
  private readonly host: string;
  private readonly path: string;

  /** `address`: where to connect instead of resolving the endpoint (PGDB_BACKUP_S3_ADDRESS, resolved). */
  constructor(
    private readonly s3: S3Repository,
    prefix: string,
    private readonly address: () => Promise<string | undefined>,
  ) {
    const key = `${prefix}/${RECORD_NAME}`;
    this.host = s3.uriStyle === 'host' ? `${s3.bucket}.${s3.endpoint}` : s3.endpoint;
    this.path = s3.uriStyle === 'host' ? `/${key}` : `/${s3.bucket}/${key}`;
    this.location = `s3://${s3.bucket}/${key} at ${s3.endpoint}`;
  }

  async read(): Promise<Buffer | undefined> {
    const response = await this.send('GET');
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw new Error(`reading ${this.location} failed: HTTP ${response.status} ${s3Error(response.body)}`);
    return response.body;
  }

  async write(sealed: Buffer): Promise<void> {
    const response = await this.send('PUT', sealed);
    if (response.status !== 200) throw new Error(`writing ${this.location} failed: HTTP ${response.status} ${s3Error(response.body)}`);
  }

  private async send(method: 'GET' | 'PUT', body?: Buffer): Promise<{ status: number; body: Buffer }> {
    const ca = this.s3.caFile ? await readFile(this.s3.caFile, 'utf8') : undefined;
    const address = await this.address();
    const signed = aws4.sign(
      {
        host: this.host,
        ...(this.s3.port ? { port: this.s3.port } : {}),
        path: this.path,
        method,
        service: 's3',
        region: this.s3.region,
        headers: body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) } : {},
        ...(body ? { body } : {}),
      },
      { accessKeyId: this.s3.accessKey, secretAccessKey: this.s3.secretKey },
    );
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: address ?? this.host,
          servername: isIP(this.host) ? undefined : this.host,
          port: this.s3.port ?? 443,
          path: this.path,
          method,
          headers: signed.headers as Record<string, string>,
          ...(ca ? { ca } : {}),
          timeout: S3_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${this.s3.endpoint} did not answer within ${S3_TIMEOUT_MS / 1000} s`)));
      req.on('error', (error) => reject(new Error(`${this.location}: ${error.message}`)));
      req.end(body);
    });
  }
}

/** The S3 error's code and message, from its XML body. */
function s3Error(body: Buffer): string {
  const text = body.toString('utf8');
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  return [code, message].filter(Boolean).join(': ') || text.slice(0, 200);
}
