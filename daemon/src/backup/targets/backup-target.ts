import type { BackupTargetKind } from '../../../../contract/api.js';
import type { BindMount, ContainerFile, ExecResult, IsolatedNetwork } from '../../docker/docker.gateway.js';
import type { BackupIdentity } from '../../registry/registry.types.js';
import type { ServerRecordStore } from '../server-record-store.js';

/** How a stanza's repository is reached from its containers: the `repo1-*` lines of its pgbackrest.conf and the files they need. */
export interface RepositoryAccess {
  lines: string[];
  files: ContainerFile[];
  /** The network task containers join to reach it ('none': the repository is a bind). */
  taskNetwork: string;
}

/**
 * Where backups are kept. One file per target (local.ts, s3.ts): a new
 * target (another object store, SFTP) is one more file that implements
 * this, and one more entry in the configuration (common/backup-config.ts)
 * and in `backupTarget()` (backup-repository.ts).
 */
export interface BackupTarget {
  readonly kind: BackupTargetKind;
  /** Where the backups are, and what they protect against, for status. */
  describe(): { location: string; note: string };
  /** Makes the stanza's place before a container first archives into it. */
  prepare(identity: BackupIdentity): Promise<void>;
  /** What a container needs to reach the stanza's repository. */
  access(identity: BackupIdentity): Promise<RepositoryAccess>;
  /** The stanza's directories bound into its containers. */
  binds(identity: BackupIdentity): BindMount[];
  /** Deletes the stanza's repository; `run` runs a shell command in a task container that has it (as access() says). */
  deleteStanza(identity: BackupIdentity, run: (script: string) => Promise<ExecResult>): Promise<void>;
  /** Where the server record is kept, beside the stanzas. */
  recordStore(): ServerRecordStore;
  /** Ports on the host that containers must reach (the backup gateway's). */
  hostPorts(): number[];
  /** Where the databases' network comes from (the runtime owns it), for a target that serves containers on it. */
  useNetwork(network: () => Promise<IsolatedNetwork>): void;
}
