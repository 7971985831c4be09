/** One database as stored in `registry.json`. */
export interface RegistryRecord {
  name: string;
  container_id: string;
  volume_name: string;
  host_port: number;
  db: string;
  user: string;
  created_at: string;
  postgres_version: number;
  host: string;
  password: string;
  size_gb: number;
  /** Container memory limit in MiB; absent in records from before limits existed. */
  memory_mb?: number;
  /** CPUs the container may use (Docker's NanoCpus / 1e9); absent: no limit. */
  cpus?: number;
  /**
   * Password of the daemon's own superuser (pgdb_admin) in this database.
   * Never returned by the API. Absent only in records from before roles were
   * split, where `user` itself is the superuser (see `layout`).
   */
  admin_password?: string;
  /**
   * 2: TLS only, the tenant's role is not a superuser, limits and an
   * isolated network. Absent: created by a release before that, upgraded in
   * place when the daemon starts.
   */
  layout?: 2;
  /** When the database's server certificate expires (ISO 8601); renewed before. */
  tls_not_after?: string;
  /**
   * Set while a deploy or destroy is in flight. A record still carrying it
   * when the daemon starts belongs to an operation a crash interrupted.
   */
  pending?: 'creating' | 'destroying';
  /** With `pending: 'destroying'`: whether the volume is to be kept. */
  keep_data?: boolean;
  /** With `pending: 'destroying'`: set when `--delete-backups` asked to delete its backups too. */
  delete_backups?: true;
  /**
   * Set by `pgdb stop`, cleared by `start`: the container is stopped on
   * purpose, and reconciliation must neither start nor re-create it.
   */
  stopped?: true;
  /**
   * A credentials rotation in flight: written before the role's password is
   * changed, promoted to `password` after. A record carrying it at start
   * belongs to a rotation a crash interrupted (see Day2Service).
   */
  next_password?: string;
  /** Its pgBackRest stanza and encryption passphrase; absent in records from before backups. */
  backup?: BackupIdentity;
  /**
   * Set with `backup` on a database made before backups, until its
   * container has been re-created with archiving (see LegacyUpgrade).
   */
  archiving_pending?: true;
  /**
   * A major upgrade in flight: the new cluster being filled. The record's
   * own fields still describe the old cluster, which is what serves. A record
   * carrying it at start belongs to an upgrade a crash interrupted, which is
   * rolled back (see UpgradeService).
   */
  upgrading?: ClusterRecord;
  /**
   * While the admin's password is being replaced (see
   * ReconcileService.retireExposedPassword): the one Postgres may still have.
   * A start that finds it finishes the change.
   */
  admin_password_previous?: string;
  /**
   * After an upgrade switched over: the old cluster, kept stopped until
   * `upgrade --finish` removes it or `upgrade --rollback` switches back.
   */
  previous?: ClusterRecord;
}

/** One Postgres cluster of a database in a major upgrade: its container and volume. */
export interface ClusterRecord {
  /** Empty until the container exists. */
  container_id: string;
  volume_name: string;
  postgres_version: number;
  admin_password: string;
  tls_not_after?: string;
  /** While copying: the temporary host port the new cluster listens on. */
  host_port?: number;
  /** Its own backup stanza: a new major is a new cluster, whose WAL cannot go into the old one's. */
  backup?: BackupIdentity;
}

/**
 * A database's place in the backup repository: its stanza (its volume's
 * name, unique and stable for its whole life, warm-pool standby included)
 * and the passphrase its backups and WAL are encrypted with (aes-256-cbc).
 */
export interface BackupIdentity {
  stanza: string;
  cipher_pass: string;
}

/**
 * A destroyed database whose backups are kept until they expire: what
 * `pgdb restore <name> --as <new>` needs to bring it back.
 */
export interface DestroyedRecord {
  name: string;
  postgres_version: number;
  backup: BackupIdentity;
  destroyed_at: string;
  size_gb: number;
  memory_mb?: number;
  /**
   * Found in the repository's server record, not destroyed here: the
   * database of a server whose registry was lost. `destroyed_at` is when
   * that record was written.
   */
  recovered?: true;
}

/**
 * A warm-pool standby: a Postgres of one major, initialised, started and
 * ready, with the daemon's own superuser only. No tenant role exists in it
 * until a deploy claims it, which turns it into a RegistryRecord in one
 * registry write.
 */
export interface StandbyRecord {
  id: string;
  /** Empty until the container exists. */
  container_id: string;
  volume_name: string;
  host_port: number;
  postgres_version: number;
  /** The database the image created; the tenant's, once claimed. */
  db: string;
  admin_password: string;
  memory_mb: number;
  /** The CPU limit its container was made with (PGDB_DEFAULT_CPUS then); none when absent. */
  cpus?: number;
  /** The enforced size its volume was made with (GiB); absent: a volume from before sizes, or sizes off. */
  size_gb?: number;
  tls_not_after?: string;
  created_at: string;
  /** `filling` until Postgres accepts the admin's connection. */
  state: 'filling' | 'ready';
  /** Carried into the record of the database that claims it. */
  backup?: BackupIdentity;
}

export interface RegistryFile {
  version: 1;
  /** Labels every Docker object of this data directory, so two daemons never claim each other's. */
  instance_id: string;
  items: RegistryRecord[];
  /** Absent in files from before the warm pool. */
  standbys?: StandbyRecord[];
  /** Destroyed databases whose backups are kept (newest last); absent in files from before backups. */
  destroyed?: DestroyedRecord[];
}
