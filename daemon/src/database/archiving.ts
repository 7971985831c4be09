import type { BindMount, ContainerFile, IsolatedNetwork } from '../docker/docker.gateway.js';
import type { ArchivingParts } from '../postgres/postgres-container.js';
import type { BackupIdentity } from '../registry/registry.types.js';

/** What a task container (a deletion, a restore, a listing) runs from: the database's image and this daemon's labels. */
export interface TaskContext {
  major: number;
  image: string;
  instanceLabels: Record<string, string>;
}

/** What an image must carry for archiving: the label that says it does, and how to add it to one that does not. */
export interface ImageNeeds {
  label: string;
  /** The label's value on an image pgdb derives. */
  labelValue: string;
  /** A shell command (a Dockerfile RUN) that installs it on the base image, and checks that it runs. */
  install: string;
}

/**
 * The port through which a database's runtime archives: the backup module
 * implements it (backup/backup-repository.ts), so that the database core
 * does not depend on how or where backups are kept. Everything here is
 * about one stanza (a database's archive), never about schedules or
 * restores, which build on the core instead.
 */
export abstract class Archiving {
  /** False with PGDB_BACKUP=off: no identity, no parts, nothing to delete. */
  abstract readonly enabled: boolean;
  /** What a database's image needs when archiving is on (undefined: any image will do). */
  abstract imageNeeds(): ImageNeeds | undefined;
  /** Tells the archiver where the databases' network comes from (the runtime owns it). */
  abstract useNetwork(network: () => Promise<IsolatedNetwork>): void;
  /** Ports on the host that the databases' containers must reach for archiving (the walls let them through). */
  abstract hostPorts(): number[];
  /** A new database's stanza (named after its volume) and passphrase; undefined when archiving is off. */
  abstract newIdentity(volumeName: string): BackupIdentity | undefined;
  /** Makes what a stanza needs before its container first runs. */
  abstract prepare(identity: BackupIdentity): Promise<void>;
  /** What a database's container needs to archive into its stanza. */
  abstract containerParts(identity: BackupIdentity, major: number): Promise<ArchivingParts>;
  /** The stanza's files in a container (rewritten by the reconciliation when they change). */
  abstract files(identity: BackupIdentity, major: number): Promise<ContainerFile[]>;
  /** The stanza's binds in a container. */
  abstract binds(identity: BackupIdentity): BindMount[];
  /** Run in a database's container: switches WAL and waits until the segment is archived. */
  abstract flushCommand(identity: BackupIdentity): string[];
  /** Deletes a stanza's archive for good. */
  abstract delete(identity: BackupIdentity, task: TaskContext): Promise<void>;
}
