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
  /**
   * Set by `pgdb stop`, cleared by `start`: the container is stopped on
   * purpose, and reconciliation must neither start nor re-create it.
   */
  stopped?: true;
  /**
   * A credentials rotation in flight: written before the role's password is
   * changed, promoted to `password` after. A record carrying it at start
   * belongs to a rotation a crash interrupted (see LifecycleService).
   */
  next_password?: string;
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
  tls_not_after?: string;
  created_at: string;
  /** `filling` until Postgres accepts the admin's connection. */
  state: 'filling' | 'ready';
}

export interface RegistryFile {
  version: 1;
  /** Labels every Docker object of this data directory, so two daemons never claim each other's. */
  instance_id: string;
  items: RegistryRecord[];
  /** Absent in files from before the warm pool. */
  standbys?: StandbyRecord[];
}
