import { chmod, mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackupIdentity } from '../../registry/registry.types.js';
import type { BindMount, ExecResult } from '../../docker/docker.gateway.js';
import { REPO_MOUNT } from '../pgbackrest.js';
import { LocalRecordStore, type ServerRecordStore } from '../server-record-store.js';
import type { BackupTarget, RepositoryAccess } from './backup-target.js';

/**
 * The local repository: one directory per stanza, `<data dir>/backups/<stanza>`,
 * bind-mounted into that database's containers only.
 *
 * The daemon runs without capabilities (it cannot chown), so a stanza's
 * directory is made writable for the container's postgres user by mode
 * (inside the data directory, which is 0700 and root's), and everything
 * inside it, written by that user, is read and removed by pgBackRest or a
 * task container, never by the daemon itself.
 */
export class LocalTarget implements BackupTarget {
  readonly kind = 'local';

  constructor(private readonly root: string) {}

  describe(): { location: string; note: string } {
    return {
      location: this.root,
      note: 'backups are on this server\'s data volume: they protect against mistakes, not against losing that volume; set PGDB_BACKUP_S3_* to keep them elsewhere',
    };
  }

  private dir(stanza: string): string {
    return join(this.root, stanza);
  }

  async prepare(identity: BackupIdentity): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    const dir = this.dir(identity.stanza);
    await mkdir(dir, { recursive: true });
    // Written by the container's postgres user (uid 999); only reachable through the 0700 parents.
    await chmod(dir, 0o777);
  }

  access(): Promise<RepositoryAccess> {
    return Promise.resolve({
      lines: [`repo1-path=${REPO_MOUNT}`],
      files: [],
      taskNetwork: 'none',
    });
  }

  binds(identity: BackupIdentity): BindMount[] {
    return [{ source: this.dir(identity.stanza), target: REPO_MOUNT }];
  }

  /** The files (owned by the container's user) by a task container, then the emptied directory. */
  async deleteStanza(identity: BackupIdentity, run: (script: string) => Promise<ExecResult>): Promise<void> {
    // An empty directory (a deploy that failed before archiving anything) needs no task.
    const empty = await rmdir(this.dir(identity.stanza)).then(
      () => true,
      (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
    );
    if (empty) return;
    const result = await run(`find ${REPO_MOUNT} -mindepth 1 -delete`);
    if (result.exitCode !== 0) throw new Error(`deleting the backups of stanza ${identity.stanza} failed: ${result.stdout.trim()}`);
    await rmdir(this.dir(identity.stanza)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  recordStore(): ServerRecordStore {
    return new LocalRecordStore(this.root);
  }

  hostPorts(): number[] {
    return [];
  }

  useNetwork(): void {
    // Containers reach the repository through a bind: no network.
  }
}
