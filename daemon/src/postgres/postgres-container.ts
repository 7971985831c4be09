/**
 * Everything pgdb knows about running Postgres in a container, in one place:
 * the image contract (port, environment, data directory per major, the
 * postgres uid), the TLS files and pg_hba rules, the container's limits, the
 * roles (the daemon's administrative superuser and the tenant's owner role),
 * and how the daemon connects. The Docker gateway stays generic; the deploy
 * service composes these pieces.
 */
import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { LABELS, type BindMount, type ContainerFile, type ContainerSpec } from '../docker/docker.gateway.js';
import type { KeyPair } from '../tls/certificates.js';
import type { ClientTls, ConnectionTarget } from './postgres.client.js';
import { scramVerifier } from './scram.js';

export const POSTGRES_PORT = 5432;
/** `postgres`'s uid and gid in the official Debian-based images (and pgdb's test images). */
export const POSTGRES_UID = 999;
/** The daemon's own superuser in every database; the bootstrap superuser of new clusters. */
export const ADMIN_USER = 'pgdb_admin';
/** What the bootstrap superuser of a database from before roles were split is renamed to. */
export const LEGACY_BOOTSTRAP_USER = 'pgdb_bootstrap';

const CONFIG_DIR = '/etc/pgdb';
/** Where the server's unix socket is, in the official image and pgdb's test images. */
export const SOCKET_DIR = '/var/run/postgresql';
export const CERT_PATH = `${CONFIG_DIR}/server.crt`;
export const KEY_PATH = `${CONFIG_DIR}/server.key`;
export const HBA_PATH = `${CONFIG_DIR}/pg_hba.conf`;
const MIB = 1024 * 1024;
/** Postgres runs a process per connection: 100 connections and its workers fit with room to spare. */
const PIDS_LIMIT = 512;
const MAX_SHM_BYTES = 256 * MIB;

/**
 * What the entrypoint needs as root before it drops to `postgres`: chown and
 * chmod of the data directory (CHOWN, DAC_OVERRIDE, FOWNER) and the switch of
 * user (SETUID, SETGID). Everything else of Docker's default set is dropped.
 */
const CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID'];

/**
 * Inside the container (unix socket) the entrypoint's own set-up connects
 * without a password; over the network only TLS with a SCRAM password. The
 * daemon's superuser only from `adminSources`: the addresses the daemon's
 * own connections arrive from (see adminSources()), not from the Internet
 * even with its password.
 */
export function pgHba(adminSources: string[] | undefined): string {
  return [
    '# Written by pgdb. Network connections need TLS and a password (scram-sha-256).',
    'local all all trust',
    // pg_basebackup by the operator (docker exec), over the socket only.
    'local replication all trust',
    ...(adminSources ?? []).map((address) => `hostssl all ${ADMIN_USER} ${address}/${isIP(address) === 6 ? 128 : 32} scram-sha-256`),
    ...(adminSources ? [`host all ${ADMIN_USER} all reject`] : []),
    'hostssl all all all scram-sha-256',
    'hostnossl all all all reject',
    '',
  ].join('\n');
}

/**
 * Where the daemon's connections to a database come from, as the container
 * sees them: through docker-proxy or Docker's loopback NAT (a published port
 * on a loopback address or on all of them, which the daemon reaches on
 * loopback), the network's gateway; with the port published on one other
 * address of the host, which the daemon then connects to, that address
 * (Docker's DNAT keeps the source) as well. Loopback inside the container
 * for tools there (they use the socket today). Undefined (no restriction)
 * when the network names no gateway: better open than locked out.
 */
export function adminSources(gateways: string[], bindAddress: string): string[] | undefined {
  const known = gateways.filter((gateway) => isIP(gateway) !== 0);
  if (known.length === 0) return undefined;
  const bare = bindAddress.replace(/^\[(.*)\]$/, '$1');
  const loopbackOrAll = ['0.0.0.0', '::', ''].includes(bare) || bare === '::1' || bare.startsWith('127.');
  return [...new Set(['127.0.0.1', '::1', ...known, ...(loopbackOrAll ? [] : [bare])])];
}

/** The parts of a database record the container recipe needs. */
export interface PostgresInstance {
  name: string;
  volume_name: string;
  host_port: number;
  db: string;
  user: string;
  password: string;
  admin_password: string;
  postgres_version: number;
  memory_mb: number;
  /** CPUs the container may use; no limit when absent. */
  cpus?: number;
}

/** The official image keeps data under /var/lib/postgresql/<major>/docker from 18 on. */
export function mountPathFor(major: number): string {
  return major >= 18 ? '/var/lib/postgresql' : '/var/lib/postgresql/data';
}

/** What continuous archiving adds to the recipe (see BackupRepository.containerParts). */
export interface ArchivingParts {
  command: string[];
  files: ContainerFile[];
  binds: BindMount[];
  env: Record<string, string>;
}

export function postgresContainer(
  instance: PostgresInstance,
  options: {
    image: string;
    bindAddress: string;
    network: string;
    /** The network's gateway addresses: where the daemon's connections come from (adminSources). */
    gateways: string[];
    labels: Record<string, string>;
    tls: KeyPair;
    archiving?: ArchivingParts;
  },
): ContainerSpec {
  const memoryBytes = instance.memory_mb * MIB;
  return {
    // Container and volume share the unique name pgdb-<name>-<suffix>.
    containerName: instance.volume_name,
    image: options.image,
    command: [
      'postgres',
      '-c', 'ssl=on',
      '-c', `ssl_cert_file=${CERT_PATH}`,
      '-c', `ssl_key_file=${KEY_PATH}`,
      '-c', `hba_file=${HBA_PATH}`,
      ...(options.archiving?.command ?? []),
    ],
    volumeName: instance.volume_name,
    mountPath: mountPathFor(instance.postgres_version),
    bindAddress: options.bindAddress,
    hostPort: instance.host_port,
    containerPort: POSTGRES_PORT,
    // Used by the image only to initialise an empty volume. Not the admin's password: the
    // container's environment is readable inside it (/proc/1/environ), so it holds a password
    // that is replaced right after initialisation (initialPassword, setAdminPassword).
    env: { POSTGRES_USER: ADMIN_USER, POSTGRES_PASSWORD: initialPassword(instance.admin_password), POSTGRES_DB: instance.db, ...options.archiving?.env },
    labels: { ...options.labels, [LABELS.bind]: options.bindAddress },
    healthcheck: ['pg_isready', '-q', '-h', '127.0.0.1', '-p', String(POSTGRES_PORT), '-U', ADMIN_USER, '-d', ADMIN_DATABASE],
    files: [...tlsFiles(options.tls), { path: HBA_PATH, content: pgHba(adminSources(options.gateways, options.bindAddress)), mode: 0o644, uid: 0, gid: 0 }, ...(options.archiving?.files ?? [])],
    binds: options.archiving?.binds ?? [],
    network: options.network,
    limits: {
      memoryBytes,
      pidsLimit: PIDS_LIMIT,
      shmBytes: Math.min(MAX_SHM_BYTES, Math.floor(memoryBytes / 2)),
      ...(instance.cpus ? { nanoCpus: Math.round(instance.cpus * 1e9) } : {}),
    },
    capabilities: CAPABILITIES,
  };
}

/**
 * The password a new cluster's admin starts with, in the container's
 * environment: derived from the admin's real password (so the daemon needs
 * to record nothing more) by a one-way function (so reading it reveals nothing
 * of that password), and useless once setAdminPassword has replaced it.
 */
export function initialPassword(adminPassword: string): string {
  return createHmac('sha256', adminPassword).update('pgdb: the initial password of pgdb_admin').digest('base64url');
}

/**
 * Whether a container's environment holds the admin's real password: a
 * container made by a release before initialPassword() did that, and the
 * environment is readable inside it (/proc/1/environ).
 */
export function exposesAdminPassword(env: string[] | undefined, adminPassword: string): boolean {
  return (env ?? []).includes(`POSTGRES_PASSWORD=${adminPassword}`);
}

/** Gives the admin its real password, in a new cluster whose admin still has initialPassword(). */
export function setAdminPassword(adminPassword: string): string {
  return `ALTER ROLE ${ADMIN_USER} PASSWORD ${literal(scramVerifier(adminPassword))}`;
}

/** The server certificate and key, as Postgres wants them: the key owned by postgres, mode 0600. */
export function tlsFiles(tls: KeyPair): ContainerFile[] {
  return [
    { path: CERT_PATH, content: tls.cert, mode: 0o644, uid: POSTGRES_UID, gid: POSTGRES_UID },
    { path: KEY_PATH, content: tls.key, mode: 0o600, uid: POSTGRES_UID, gid: POSTGRES_UID },
  ];
}

/**
 * Where the daemon's superuser works: the cluster's maintenance database,
 * owned by that superuser and never by a tenant. A tenant owns its own
 * database, and with it that database's settings (ALTER DATABASE ... SET
 * search_path) and public schema: a superuser session there could be made
 * to call the tenant's functions. Cluster-wide views and functions
 * (pg_stat_archiver, pg_stat_activity, pg_reload_conf) answer the same from
 * any database, so they are read here.
 */
export const ADMIN_DATABASE = 'postgres';

/**
 * Start-up options of every session the daemon (or a script it runs) opens
 * as its superuser: libpq's `options` (node-postgres) or PGOPTIONS (psql,
 * pg_dump, pg_amcheck). Given at start-up they override the database's and
 * role's settings, which a later SET would only follow. Only pg_catalog and
 * the session's own temporary schema are searched, pg_temp last, so no
 * tenant object can stand in for a catalog function, view or operator.
 */
export const ADMIN_SESSION_OPTIONS = '-c search_path=pg_catalog,pg_temp';

/** The environment of psql and the other client tools the daemon runs as its superuser. */
export const ADMIN_CLIENT_ENV: Readonly<Record<string, string>> = { PGOPTIONS: ADMIN_SESSION_OPTIONS };

/** Re-reads the certificate files (and the rest of the configuration); open connections stay. */
export const RELOAD_CONFIGURATION = 'SELECT pg_catalog.pg_reload_conf()';

/** The daemon's superuser in the maintenance database: for everything but work inside the tenant's database. */
export function adminTarget(instance: PostgresInstance, host: string, tls: ClientTls): ConnectionTarget {
  return { host, port: instance.host_port, user: ADMIN_USER, password: instance.admin_password, database: ADMIN_DATABASE, tls };
}

/**
 * The daemon's superuser in the tenant's own database, for what can only be
 * done there: setting up a cluster no tenant has used yet, the one-time
 * demotion of a legacy tenant, an upgrade's row counts. Such SQL qualifies
 * every name and reads only catalogs and base tables.
 */
export function adminInDatabaseTarget(instance: PostgresInstance, host: string, tls: ClientTls): ConnectionTarget {
  return { ...adminTarget(instance, host, tls), database: instance.db };
}

export function tenantTarget(instance: PostgresInstance, host: string, tls: ClientTls): ConnectionTarget {
  return { host, port: instance.host_port, user: instance.user, password: instance.password, database: instance.db, tls };
}

/**
 * Run as the admin in the tenant's database: the tenant's role owns the
 * database and its `public` schema, may create databases, and is nothing
 * more: not a superuser, no CREATEROLE, REPLICATION or BYPASSRLS, and none of
 * the server-file or server-program roles. The password is sent as a SCRAM
 * verifier, never in clear.
 */
export function tenantSetup(instance: Pick<PostgresInstance, 'user' | 'password' | 'db'>): string[] {
  const user = ident(instance.user);
  return [
    `CREATE ROLE ${user} LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${literal(scramVerifier(instance.password))}`,
    `ALTER DATABASE ${ident(instance.db)} OWNER TO ${user}`,
    `ALTER SCHEMA public OWNER TO ${user}`,
  ];
}

/**
 * Disables every event trigger of the current database. Only a superuser can
 * make one, and DDL run by the daemon's superuser (ALTER ... OWNER, CREATE
 * EXTENSION) would run its function with the superuser's rights; commands on
 * event triggers fire none themselves.
 */
export const DISABLE_EVENT_TRIGGERS = `DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger WHERE evtenabled <> 'D' LOOP
    EXECUTE pg_catalog.format('ALTER EVENT TRIGGER %I DISABLE', r.evtname);
  END LOOP;
END$$`;

/**
 * Run as the daemon's superuser in every database of a cluster that comes
 * from somewhere the daemon did not watch (an adopted volume, a restored
 * backup), after containTenantRoles: what a role made while it was a
 * superuser stays, but can no longer act for a superuser.
 *
 * - Functions in C or `internal` outside an extension (a C function can call
 *   anything in a library, e.g. libc's system(); an `internal` one can alias
 *   a built-in whose only guard is its own EXECUTE grant, e.g.
 *   pg_read_file), and SECURITY DEFINER functions a superuser owns: the
 *   daemon's superuser takes them over, with no EXECUTE for anyone else and
 *   SECURITY INVOKER.
 * - Event triggers (only a superuser can make one, and they run for whoever
 *   runs DDL, the daemon included): disabled first, and owned by the
 *   daemon's superuser so that no tenant can enable them again.
 * - Settings given to the daemon's superuser in this database: removed (its
 *   sessions set what matters at start-up anyway, ADMIN_SESSION_OPTIONS).
 *
 * Objects that belong to an extension are left alone: their scripts come
 * from the image. Idempotent.
 */
export const NEUTRALISE_SUPERUSER_OBJECTS = `DO $$
DECLARE r record;
BEGIN
  -- First: the ALTER FUNCTIONs below are DDL, which an enabled event trigger would run as this superuser.
  FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger LOOP
    EXECUTE pg_catalog.format('ALTER EVENT TRIGGER %I DISABLE', r.evtname);
    EXECUTE pg_catalog.format('ALTER EVENT TRIGGER %I OWNER TO ${ADMIN_USER}', r.evtname);
  END LOOP;
  FOR r IN SELECT p.oid::pg_catalog.regprocedure AS signature, p.prosecdef AS definer, a.grantee
      FROM pg_catalog.pg_proc p
      JOIN pg_catalog.pg_language l ON l.oid = p.prolang
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      JOIN pg_catalog.pg_roles o ON o.oid = p.proowner
      LEFT JOIN LATERAL (SELECT DISTINCT x.grantee FROM pg_catalog.aclexplode(p.proacl) x WHERE x.grantee <> 0) a ON true
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
          WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
        AND (l.lanname IN ('c', 'internal') OR (p.prosecdef AND o.rolsuper)) LOOP
    EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO ${ADMIN_USER}', r.signature);
    IF r.definer THEN
      EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY INVOKER', r.signature);
    END IF;
    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.signature);
    IF r.grantee IS NOT NULL AND r.grantee <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = '${ADMIN_USER}') THEN
      EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', r.signature, pg_catalog.pg_get_userbyid(r.grantee));
    END IF;
  END LOOP;
  EXECUTE pg_catalog.format('ALTER ROLE ${ADMIN_USER} IN DATABASE %I RESET ALL', pg_catalog.current_database());
  ALTER ROLE ${ADMIN_USER} RESET ALL;
END$$`;

/** Predefined roles that reach beyond the cluster (server files, programs, outgoing connections) or stop others' work. */
const SERVER_ROLES = ['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files', 'pg_create_subscription', 'pg_signal_backend', 'pg_checkpoint'];

/**
 * Run as the daemon's superuser in the maintenance database whenever a
 * cluster comes from somewhere the daemon did not watch (an adopted volume,
 * a restored backup, an upgrade's copy, an imported archive): whatever a
 * role became there, only the daemon's superuser (and a legacy cluster's
 * bootstrap role, which cannot log in) stays one. Every other role loses
 * SUPERUSER, CREATEROLE, REPLICATION and BYPASSRLS, and its membership in a
 * superuser or a server role; the bootstrap role of a legacy cluster stays
 * unable to log in. Idempotent; the same statement for every major
 * (from 16 on a membership is revoked as its grantor gave it).
 */
export function containTenantRoles(): string[] {
  const daemonRoles = `(${literal(ADMIN_USER)}, ${literal(LEGACY_BOOTSTRAP_USER)})`;
  return [
    `DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT rolname FROM pg_catalog.pg_roles
      WHERE oid >= 16384 AND rolname NOT IN ${daemonRoles} AND (rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls) LOOP
    EXECUTE pg_catalog.format('ALTER ROLE %I NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS', r.rolname);
  END LOOP;
  FOR r IN SELECT g.rolname AS granted, m.rolname AS member, gr.rolname AS grantor
      FROM pg_catalog.pg_auth_members a
      JOIN pg_catalog.pg_roles g ON g.oid = a.roleid
      JOIN pg_catalog.pg_roles m ON m.oid = a.member
      LEFT JOIN pg_catalog.pg_roles gr ON gr.oid = a.grantor
      WHERE m.rolname NOT IN ${daemonRoles} AND (g.rolsuper OR g.rolname IN (${SERVER_ROLES.map(literal).join(', ')})) LOOP
    IF pg_catalog.current_setting('server_version_num')::int >= 160000 AND r.grantor IS NOT NULL THEN
      EXECUTE pg_catalog.format('REVOKE %I FROM %I GRANTED BY %I CASCADE', r.granted, r.member, r.grantor);
    ELSE
      EXECUTE pg_catalog.format('REVOKE %I FROM %I CASCADE', r.granted, r.member);
    END IF;
  END LOOP;
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(LEGACY_BOOTSTRAP_USER)} AND rolcanlogin) THEN
    ALTER ROLE ${LEGACY_BOOTSTRAP_USER} NOLOGIN PASSWORD NULL;
  END IF;
END$$`,
  ];
}

/**
 * For a database created before roles were split, where the tenant's role is
 * the cluster's bootstrap superuser. Step one, as that role: give the daemon
 * its own superuser (idempotent).
 */
export function legacyAdminSetup(adminPassword: string): string[] {
  return [
    `DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(ADMIN_USER)}) THEN CREATE ROLE ${ADMIN_USER} SUPERUSER LOGIN; END IF; END$$`,
    `ALTER ROLE ${ADMIN_USER} SUPERUSER LOGIN PASSWORD ${literal(scramVerifier(adminPassword))}`,
  ];
}

/**
 * Step two, as the daemon's superuser, in one transaction: the bootstrap
 * role (which cannot stop being a superuser) is renamed and can no longer
 * log in; a plain role with the tenant's name and password takes over the
 * database and everything the tenant created in it.
 */
export function legacyTenantDemotion(instance: Pick<PostgresInstance, 'user' | 'password' | 'db'>): string[] {
  const owner = literal(LEGACY_BOOTSTRAP_USER);
  const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;
  return [
    'BEGIN',
    `ALTER ROLE ${ident(instance.user)} RENAME TO ${LEGACY_BOOTSTRAP_USER}`,
    `ALTER ROLE ${LEGACY_BOOTSTRAP_USER} NOLOGIN PASSWORD NULL`,
    // Event triggers exist only because the tenant was a superuser; the DDL below would run them as the daemon's.
    DISABLE_EVENT_TRIGGERS,
    ...tenantSetup(instance),
    `DO $$
DECLARE
  r record;
  target text := ${literal(instance.user)};
BEGIN
  FOR r IN SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspowner = ${owner}::regrole AND ${userSchemas} LOOP
    EXECUTE pg_catalog.format('ALTER SCHEMA %I OWNER TO %I', r.nspname, target);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS rel, c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relowner = ${owner}::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ${userSchemas} LOOP
    EXECUTE pg_catalog.format('ALTER %s %s OWNER TO %I',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
      r.rel, target);
  END LOOP;
  -- Sequences owned by a column followed their table; these are the others.
  FOR r IN SELECT c.oid::regclass AS rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relowner = ${owner}::regrole AND c.relkind = 'S' AND ${userSchemas} LOOP
    EXECUTE pg_catalog.format('ALTER SEQUENCE %s OWNER TO %I', r.rel, target);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS fn, p.prokind FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE p.proowner = ${owner}::regrole AND ${userSchemas} AND NOT EXISTS
        (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e') LOOP
    EXECUTE pg_catalog.format('ALTER %s %s OWNER TO %I',
      CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, r.fn, target);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS ty, t.typtype FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      WHERE t.typowner = ${owner}::regrole AND ${userSchemas}
        AND (t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c'))
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid AND d.deptype = 'e') LOOP
    EXECUTE pg_catalog.format('ALTER %s %s OWNER TO %I', CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.ty, target);
  END LOOP;
END$$`,
    'COMMIT',
  ];
}

/**
 * A database name as a client tool's `-d` argument. psql, pg_dump and
 * pg_restore read a `-d` value that holds `=` (or starts with postgres://)
 * as a whole connection string; a name quoted as `dbname='...'` is only ever
 * a name.
 */
export function dbnameArgument(db: string): string {
  return `dbname='${db.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** A double-quoted SQL identifier. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A single-quoted SQL string literal (standard_conforming_strings is on in every supported major). */
export function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
