import type { S3Repository } from '../../common/backup-config.js';
import type { DaemonConfig } from '../../common/config.js';
import type { BindMount, DockerGateway, ExecResult, IsolatedNetwork } from '../../docker/docker.gateway.js';
import type { BackupIdentity } from '../../registry/registry.types.js';
import { CONFIG_PATH, S3_CA_PATH, shellQuote } from '../pgbackrest.js';
import { S3_PREFIX, s3ConnectAddress, type S3Gateway } from '../s3-gateway.js';
import { S3RecordStore, type ServerRecordStore } from '../server-record-store.js';
import type { BackupTarget, RepositoryAccess } from './backup-target.js';

/**
 * An S3-compatible store: one prefix per stanza under `pgdb/` in the bucket.
 * Containers never hold the server's keys: they reach the store through the
 * backup gateway (s3-gateway.ts) with their stanza's own credential.
 */
export class S3Target implements BackupTarget {
  readonly kind = 's3';

  constructor(
    private readonly config: DaemonConfig,
    private readonly s3: S3Repository,
    private readonly gateway: S3Gateway,
    private readonly docker: DockerGateway,
  ) {}

  describe(): { location: string; note: string } {
    return { location: `s3://${this.s3.bucket} at ${this.s3.endpoint}`, note: 'backups are off this server: they survive the loss of its disk' };
  }

  prepare(): Promise<void> {
    return Promise.resolve();
  }

  /** The gateway as the stanza's endpoint, its CA, and the stanza's credential for it. */
  async access(identity: BackupIdentity): Promise<RepositoryAccess> {
    const gateway = await this.gateway.endpoint();
    const credentials = this.gateway.credentials(identity.stanza);
    return {
      lines: s3RepositoryLines(identity.stanza, {
        endpoint: gateway.host,
        port: gateway.port,
        bucket: this.s3.bucket,
        region: this.s3.region,
        accessKey: credentials.accessKey,
        secretKey: credentials.secretKey,
        uriStyle: 'path',
        caFile: S3_CA_PATH,
      }),
      files: [{ path: S3_CA_PATH, content: gateway.caPem, mode: 0o644, uid: 0, gid: 0 }],
      // Only the backup gateway, on the databases' bridge, is reachable.
      taskNetwork: gateway.network,
    };
  }

  async deleteStanza(identity: BackupIdentity, run: (script: string) => Promise<ExecResult>): Promise<void> {
    const pgbackrest = `pgbackrest --config=${CONFIG_PATH} --stanza=${shellQuote(identity.stanza)}`;
    const result = await run(`${pgbackrest} stop --force >/dev/null 2>&1; ${pgbackrest} stanza-delete --force`);
    if (result.exitCode !== 0) throw new Error(`deleting the backups of stanza ${identity.stanza} failed: ${result.stdout.trim()}`);
  }

  binds(): BindMount[] {
    return [];
  }

  recordStore(): ServerRecordStore {
    return new S3RecordStore(this.s3, S3_PREFIX, () => s3ConnectAddress(this.config, this.docker));
  }

  hostPorts(): number[] {
    return [this.config.backup.gatewayPort];
  }

  useNetwork(network: () => Promise<IsolatedNetwork>): void {
    this.gateway.useNetwork(network);
  }
}

/** The `repo1-*` lines of an S3 repository: the stanza's own path under S3_PREFIX. */
export function s3RepositoryLines(stanza: string, s3: S3Repository): string[] {
  const lines = [
    'repo1-type=s3',
    `repo1-path=/${S3_PREFIX}/${stanza}`,
    `repo1-s3-endpoint=${s3.endpoint}`,
    `repo1-s3-bucket=${s3.bucket}`,
    `repo1-s3-region=${s3.region}`,
    `repo1-s3-key=${s3.accessKey}`,
    `repo1-s3-key-secret=${s3.secretKey}`,
    `repo1-s3-uri-style=${s3.uriStyle}`,
    // Small files go into bundles: one request instead of one per file (about 1000 for an empty cluster),
    // which is most of a small backup's time against an object store, through the backup gateway all the more.
    'repo1-bundle=y',
  ];
  if (s3.port) lines.push(`repo1-storage-port=${s3.port}`);
  if (s3.caFile) lines.push(`repo1-storage-ca-file=${S3_CA_PATH}`);
  return lines;
}
