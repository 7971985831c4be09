/**
 * What `pgdb infra init|bootstrap|status|destroy` do, on top of the driver.
 * The CLI loads this module with its one dynamic import(), after checking
 * the flags with options.ts; it loads Pulumi.
 */
import { randomBytes } from 'node:crypto';
import type { ConfigMap, OutputMap } from '@pulumi/pulumi/automation/index.js';
import * as driver from './driver.js';
import { InfraError } from './failures.js';
import { caFingerprint, probeHealth, waitForDatabases, waitForHealth } from './health.js';
import { DEFAULT_ENDPOINT, HcloudApi } from './hcloud-api.js';
import {
  API_PORT,
  CONFIG_KEYS,
  DEFAULTS,
  missingS3Settings,
  RESIZE_DOWNTIME,
  SERVER_BACKUP_KEY_FILE,
  SERVER_S3_ACCESS_KEY_FILE,
  SERVER_S3_SECRET_KEY_FILE,
  settingsToConfig,
  type BackupSecrets,
  type InfraSettings,
} from './options.js';
import { buildRelease } from './release.js';
import { readPrivateKey, readPublicKey, stackKey } from './ssh-key.js';

export { InfraError } from './failures.js';

export interface InfraContext {
  env: driver.DriverEnvironment;
  io: driver.DriverIo;
}

/** Flags of `pgdb infra init`; undefined means "as before, else the default". */
export interface InitRequest {
  stack: string;
  location?: string;
  serverType?: string;
  image?: string;
  volumeSizeGb?: number;
  sshKeyPath?: string;
  allowSsh?: string[];
  allowApi?: string[];
  allowPostgres?: string[];
  /** Agreed to resize an existing server (`--yes`): a new --type powers it off for a while. */
  resize?: boolean;
}

/** What a resize did: the types, and how long the server (and pgdbd, when installed) was down. */
export interface ResizeReport {
  from: string;
  to: string;
  /** From the shutdown until pgdbd answered and every database ran (or the server was on, without pgdbd). */
  downtime_ms: number;
  /** The databases found running again; null without pgdbd. */
  databases: number | null;
  /** Whether the shutdown was clean (ACPI); false when the provider had to cut the power. */
  clean_shutdown: boolean;
}

export interface InfraOutputs {
  stack: string;
  server_id?: number;
  server_name?: string;
  ipv4?: string;
  ipv6?: string;
  location?: string;
  server_type?: string;
  volume_id?: number;
  volume_device?: string;
  firewall_id?: number;
  api_url?: string;
  bootstrapped: boolean;
}

export interface RunSummary {
  changes: Record<string, number>;
  summary: string;
}

function requireToken(ctx: InfraContext): string {
  if (!ctx.env.hcloudToken) {
    throw new InfraError('no Hetzner Cloud API token', 'set HCLOUD_TOKEN, or store it once with `pgdb config set hcloud.token -` (reads standard input)');
  }
  return ctx.env.hcloudToken;
}

function plain(config: ConfigMap, key: string): string | undefined {
  return config[key]?.value;
}

function list(config: ConfigMap, key: string): string[] | undefined {
  const value = plain(config, key);
  return value === undefined ? undefined : (JSON.parse(value) as string[]);
}

export async function init(ctx: InfraContext, request: InitRequest): Promise<{ outputs: InfraOutputs; resize?: ResizeReport } & RunSummary> {
  const token = requireToken(ctx);
  const open = await driver.openStack(request.stack, ctx.env, ctx.io);
  const current = await driver.getConfig(open);
  let key: { publicKey: string; privateKeyPath: string };
  if (request.sshKeyPath) {
    key = await readPublicKey(request.sshKeyPath);
  } else if (plain(current, CONFIG_KEYS.sshPublicKey) && plain(current, CONFIG_KEYS.sshPrivateKeyPath)) {
    key = { publicKey: plain(current, CONFIG_KEYS.sshPublicKey)!, privateKeyPath: plain(current, CONFIG_KEYS.sshPrivateKeyPath)! };
  } else {
    key = await stackKey(ctx.env.configDir, request.stack);
  }
  const settings: InfraSettings = {
    location: request.location ?? plain(current, CONFIG_KEYS.location) ?? DEFAULTS.location,
    serverType: request.serverType ?? plain(current, CONFIG_KEYS.serverType) ?? DEFAULTS.serverType,
    image: request.image ?? plain(current, CONFIG_KEYS.image) ?? DEFAULTS.image,
    volumeSizeGb: request.volumeSizeGb ?? Number(plain(current, CONFIG_KEYS.volumeSizeGb) ?? DEFAULTS.volumeSizeGb),
    sshPublicKey: key.publicKey,
    allowSsh: request.allowSsh ?? list(current, CONFIG_KEYS.allowSsh) ?? [...DEFAULTS.allowSsh],
    allowApi: request.allowApi ?? list(current, CONFIG_KEYS.allowApi) ?? [...DEFAULTS.allowApi],
    allowPostgres: request.allowPostgres ?? list(current, CONFIG_KEYS.allowPostgres) ?? [...DEFAULTS.allowPostgres],
    postgresPorts: plain(current, CONFIG_KEYS.postgresPorts) ?? DEFAULTS.postgresPorts,
  };
  const before = await open.stack.outputs();
  const serverId = before.serverId?.value as number | undefined;
  const oldType = before.serverType?.value as string | undefined;
  const resizing = serverId !== undefined && oldType !== undefined && oldType !== settings.serverType;
  if (resizing && !request.resize) {
    throw new InfraError(
      `--type ${settings.serverType} resizes the server of stack "${request.stack}" (now ${oldType}) in place: it is shut down, its type changed, and started again; pgdbd and its databases are down meanwhile (${RESIZE_DOWNTIME})`,
      `run again with --yes to resize; nothing was changed`,
    );
  }
  const configure = async () => {
    await driver.setConfig(open, stackConfig(settings, key.privateKeyPath, token));
    await driver.ensurePlugins(open, ctx.io);
  };
  if (!resizing) {
    await configure();
    const result = await driver.up(open, ctx.io);
    return { outputs: toOutputs(request.stack, result.outputs), changes: result.changes, summary: result.summary };
  }
  const resized = await resize(ctx, open, configure, { serverId: serverId!, from: oldType!, to: settings.serverType, token, daemonToken: current[CONFIG_KEYS.daemonToken]?.value });
  return { outputs: toOutputs(request.stack, resized.result.outputs), changes: resized.result.changes, summary: resized.result.summary, resize: resized.report };
}

/**
 * A new server type on an existing server: shut it down cleanly (the provider
 * would cut the power) before the stack changes at all, then store the new
 * settings and let the provider change the type (it leaves the server off),
 * start the server again whatever happened, and wait for pgdbd and every
 * database when pgdbd is installed.
 */
async function resize(
  ctx: InfraContext,
  open: driver.OpenStack,
  configure: () => Promise<void>,
  request: { serverId: number; from: string; to: string; token: string; daemonToken?: string },
): Promise<{ result: driver.RunResult; report: ResizeReport }> {
  const cloud = new HcloudApi(request.token, ctx.env.hcloudEndpoint ?? DEFAULT_ENDPOINT);
  const started = Date.now();
  ctx.io.log(`resizing the server from ${request.from} to ${request.to}: shutting it down`);
  let clean: boolean;
  try {
    clean = await cloud.shutdown(request.serverId, 120_000);
  } catch (error) {
    // Nothing of the stack changed yet; the server may be on its way down: start it.
    await cloud.powerOn(request.serverId, 300_000).catch(() => undefined);
    throw error;
  }
  if (!clean) ctx.io.log('the server did not shut down within 2 minutes: the provider cuts its power');
  let result: driver.RunResult;
  try {
    await configure();
    result = await driver.up(open, ctx.io);
  } finally {
    // The provider leaves a resized server off; a failed run must not leave it off either.
    ctx.io.log('starting the server');
    await cloud.powerOn(request.serverId, 300_000);
  }
  const outputs = toOutputs(open.stack.name, result.outputs);
  const caCert = String(result.outputs.caCert?.value ?? '').trim() || undefined;
  let databases: number | null = null;
  if (outputs.bootstrapped && outputs.ipv4 && request.daemonToken) {
    ctx.io.log(`waiting for pgdbd on ${outputs.ipv4}:${API_PORT} and its databases`);
    const ca = caCert ? `${caCert}\n` : undefined;
    try {
      const health = await waitForHealth(outputs.ipv4, API_PORT, ca, 300_000);
      databases = await waitForDatabases(health.url, ca, request.daemonToken, 300_000);
    } catch (error) {
      throw new InfraError(
        `the server runs as ${request.to}, but pgdbd or a database did not come back: ${(error as Error).message}`,
        `see \`pgdb status --server ${open.stack.name}\` and \`journalctl -u pgdbd\` on the server`,
      );
    }
  }
  return { result, report: { from: request.from, to: request.to, downtime_ms: Date.now() - started, databases, clean_shutdown: clean } };
}

/** The stack config `init` writes: the settings in plain text, the Hetzner token only as a secret. */
export function stackConfig(settings: InfraSettings, privateKeyPath: string, token: string): ConfigMap {
  const config: ConfigMap = {};
  for (const [key, value] of Object.entries(settingsToConfig(settings))) config[key] = { value, secret: false };
  config[CONFIG_KEYS.sshPrivateKeyPath] = { value: privateKeyPath, secret: false };
  config[CONFIG_KEYS.hcloudToken] = { value: token, secret: true };
  return config;
}

export interface BootstrapResult extends RunSummary {
  outputs: InfraOutputs;
  url: string;
  token: string;
  caCert?: string;
  caFingerprint?: string;
  releaseId: string;
  health: unknown;
  /** Where the backup secrets the stack carries are on the server. */
  secretFiles: { s3Keys?: [string, string]; backupKey?: string };
}

const SECRET_CONFIG: Record<keyof BackupSecrets, string> = {
  s3AccessKey: CONFIG_KEYS.s3AccessKey,
  s3SecretKey: CONFIG_KEYS.s3SecretKey,
  backupKey: CONFIG_KEYS.backupKey,
};
const S3_KEY_FILE_SETTINGS = ['PGDB_BACKUP_S3_ACCESS_KEY_FILE', 'PGDB_BACKUP_S3_SECRET_KEY_FILE'];

/**
 * The daemon settings and backup secrets a bootstrap runs with: the flags
 * given now over what the stack stored before. S3 keys given as files replace
 * key files named on the server before, and the other way round.
 */
export function bootstrapSettings(
  stored: { daemonEnv: Record<string, string>; secrets: BackupSecrets },
  request: { daemonEnv?: Record<string, string>; secrets?: BackupSecrets },
): { daemonEnv: Record<string, string>; secrets: BackupSecrets; dropped: Array<keyof BackupSecrets> } {
  const daemonEnv = { ...(request.daemonEnv ?? stored.daemonEnv) };
  const secrets: BackupSecrets = { ...stored.secrets };
  const dropped: Array<keyof BackupSecrets> = [];
  const given = request.secrets ?? {};
  if (given.s3AccessKey !== undefined && given.s3SecretKey !== undefined) {
    secrets.s3AccessKey = given.s3AccessKey;
    secrets.s3SecretKey = given.s3SecretKey;
    for (const key of S3_KEY_FILE_SETTINGS) delete daemonEnv[key];
  } else if (secrets.s3AccessKey !== undefined && S3_KEY_FILE_SETTINGS.some((key) => request.daemonEnv?.[key])) {
    delete secrets.s3AccessKey;
    delete secrets.s3SecretKey;
    dropped.push('s3AccessKey', 's3SecretKey');
  }
  if (given.backupKey !== undefined) secrets.backupKey = given.backupKey;
  const missing = missingS3Settings(daemonEnv, secrets.s3AccessKey !== undefined);
  if (missing) {
    throw new InfraError(missing, 'pass --daemon-env PGDB_BACKUP_S3_ENDPOINT=<host> --daemon-env PGDB_BACKUP_S3_BUCKET=<name> --daemon-env PGDB_BACKUP_S3_REGION=<region> with --s3-access-key-file <file> --s3-secret-key-file <file>; nothing was changed');
  }
  return { daemonEnv, secrets, dropped };
}

export async function bootstrap(
  ctx: InfraContext,
  request: { stack: string; daemonEnv?: Record<string, string>; secrets?: BackupSecrets },
): Promise<BootstrapResult> {
  const token = requireToken(ctx);
  const open = await driver.openStack(request.stack, ctx.env, ctx.io);
  const current = await driver.getConfig(open);
  const before = await open.stack.outputs();
  if (!plain(current, CONFIG_KEYS.sshPublicKey) || !before.ipv4?.value) {
    throw new InfraError(`stack "${request.stack}" has no server yet`, `run \`pgdb infra init --name ${request.stack}\` first`);
  }
  const privateKeyPath = plain(current, CONFIG_KEYS.sshPrivateKeyPath);
  if (!privateKeyPath) {
    throw new InfraError(`stack "${request.stack}" does not say which SSH key to use`, `run \`pgdb infra init --name ${request.stack} --ssh-key <path.pub>\` again`);
  }
  const storedEnvText = plain(current, CONFIG_KEYS.daemonEnv);
  const storedSecrets: BackupSecrets = {};
  for (const [name, key] of Object.entries(SECRET_CONFIG) as Array<[keyof BackupSecrets, string]>) {
    if (current[key]?.value !== undefined) storedSecrets[name] = current[key].value;
  }
  open.secrets.push(...Object.values(storedSecrets), ...Object.values(request.secrets ?? {}).filter((v): v is string => v !== undefined));
  const settings = bootstrapSettings(
    { daemonEnv: storedEnvText ? (JSON.parse(storedEnvText) as Record<string, string>) : {}, secrets: storedSecrets },
    request,
  );
  const privateKey = await readPrivateKey(privateKeyPath);
  const daemonToken = current[CONFIG_KEYS.daemonToken]?.value ?? randomBytes(32).toString('hex');
  ctx.io.log('packing the release');
  const release = await buildRelease(ctx.env.cacheDir);
  const config: ConfigMap = {
    [CONFIG_KEYS.bootstrap]: { value: 'true', secret: false },
    [CONFIG_KEYS.sshPrivateKey]: { value: privateKey, secret: true },
    [CONFIG_KEYS.daemonToken]: { value: daemonToken, secret: true },
    [CONFIG_KEYS.releaseArchive]: { value: release.archive, secret: false },
    [CONFIG_KEYS.releaseId]: { value: release.id, secret: false },
    [CONFIG_KEYS.hcloudToken]: { value: token, secret: true },
  };
  const envText = JSON.stringify(settings.daemonEnv);
  if (request.daemonEnv || (storedEnvText !== undefined && envText !== storedEnvText)) {
    config[CONFIG_KEYS.daemonEnv] = { value: envText, secret: false };
  }
  await driver.setConfig(open, config);
  open.secrets.push(daemonToken, privateKey);
  // The backup secrets go through standard input (never a command line); only the changed ones.
  const changed = (Object.keys(SECRET_CONFIG) as Array<keyof BackupSecrets>).filter((name) => settings.secrets[name] !== storedSecrets[name]);
  const restore = async () => {
    for (const name of changed) {
      const previous = storedSecrets[name];
      if (previous === undefined) await driver.removeConfig(open, [SECRET_CONFIG[name]]);
      else await driver.setSecretConfig(open, SECRET_CONFIG[name], previous);
    }
  };
  for (const name of changed) {
    const value = settings.secrets[name];
    if (value !== undefined) await driver.setSecretConfig(open, SECRET_CONFIG[name], value);
  }
  await driver.removeConfig(
    open,
    settings.dropped.map((name) => SECRET_CONFIG[name]),
  );
  if (settings.dropped.length > 0) ctx.io.log('the S3 keys stored before are dropped: --daemon-env names key files on the server');
  await driver.ensurePlugins(open, ctx.io);
  let result: driver.RunResult;
  try {
    result = await driver.up(open, ctx.io);
  } catch (error) {
    // A failed run leaves the stack's secrets as they were (a refused backup key is not kept).
    await restore().catch(() => undefined);
    throw error;
  }
  const outputs = toOutputs(request.stack, result.outputs);
  const caCert = String(result.outputs.caCert?.value ?? '').trim() || undefined;
  ctx.io.log(`waiting for pgdbd on ${outputs.ipv4}:${API_PORT}`);
  let health;
  try {
    health = await waitForHealth(outputs.ipv4!, API_PORT, caCert ? `${caCert}\n` : undefined, 120_000);
  } catch (error) {
    throw new InfraError(
      `pgdbd on ${outputs.ipv4}:${API_PORT} does not answer: ${(error as Error).message}`,
      `check that the firewall allows the API from this machine (pgdb infra init --allow-api <your-ip>/32), and see \`journalctl -u pgdbd\` on the server`,
    );
  }
  return {
    outputs,
    changes: result.changes,
    summary: result.summary,
    url: health.url,
    token: daemonToken,
    caCert: caCert ? `${caCert}\n` : undefined,
    caFingerprint: caCert ? caFingerprint(caCert) : undefined,
    releaseId: release.id,
    health: health.body,
    secretFiles: {
      ...(settings.secrets.s3AccessKey !== undefined ? { s3Keys: [SERVER_S3_ACCESS_KEY_FILE, SERVER_S3_SECRET_KEY_FILE] as [string, string] } : {}),
      ...(settings.secrets.backupKey !== undefined ? { backupKey: SERVER_BACKUP_KEY_FILE } : {}),
    },
  };
}

export interface StatusResult {
  outputs: InfraOutputs;
  daemon: { url: string; answers: boolean; detail: string };
  drift?: RunSummary;
}

export async function status(ctx: InfraContext, request: { stack: string; refresh: boolean }): Promise<StatusResult> {
  const open = await driver.openStack(request.stack, ctx.env, ctx.io);
  let drift: RunSummary | undefined;
  let outputMap = await open.stack.outputs();
  if (Object.keys(outputMap).length === 0) {
    throw new InfraError(`stack "${request.stack}" has no server`, `create one with \`pgdb infra init --name ${request.stack}\``);
  }
  if (request.refresh) {
    requireToken(ctx);
    await driver.ensurePlugins(open, ctx.io);
    const result = await driver.refresh(open, ctx.io);
    const { same: _same, ...changed } = result.changes;
    drift = { changes: changed, summary: Object.values(changed).some((n) => n > 0) ? result.summary : 'no drift' };
    outputMap = result.outputs;
  }
  const outputs = toOutputs(request.stack, outputMap);
  const caCert = String(outputMap.caCert?.value ?? '').trim();
  let daemon = { url: `http://${outputs.ipv4}:${API_PORT}`, answers: false, detail: 'not installed (run pgdb infra bootstrap)' };
  if (outputs.bootstrapped && outputs.ipv4) {
    const result = await probeHealth(outputs.ipv4, API_PORT, caCert ? `${caCert}\n` : undefined);
    daemon =
      'body' in result
        ? { url: result.url, answers: true, detail: result.body.version ? `healthy, version ${result.body.version}` : 'healthy' }
        : { url: daemon.url, answers: false, detail: result.problem };
  }
  return { outputs, daemon, drift };
}

/** Types destroy removes by default: everything but the volume. */
const KEPT_TYPES = new Set(['hcloud:index/volume:Volume', 'pulumi:pulumi:Stack']);

export async function destroy(
  ctx: InfraContext,
  request: { stack: string; deleteVolume: boolean },
): Promise<RunSummary & { volume_kept: boolean; api_url?: string }> {
  const token = requireToken(ctx);
  const open = await driver.openStack(request.stack, ctx.env, ctx.io);
  const outputs = await open.stack.outputs();
  const apiUrl = outputs.apiUrl?.value as string | undefined;
  await driver.setConfig(open, { [CONFIG_KEYS.hcloudToken]: { value: token, secret: true } });
  await driver.ensurePlugins(open, ctx.io);
  let result: driver.RunResult;
  if (request.deleteVolume) {
    // The volume is retained on delete: lift that in the state (running the
    // program could fail, e.g. after an unknown --type), then remove everything.
    await driver.setConfig(open, { [CONFIG_KEYS.deleteVolume]: { value: 'true', secret: false } });
    await driver.releaseRetained(open, 'hcloud:index/volume:Volume');
    result = await driver.destroy(open, ctx.io);
  } else {
    const targets = (await driver.resources(open))
      .filter(({ type }) => !KEPT_TYPES.has(type) && !type.startsWith('pulumi:providers:'))
      .map(({ urn }) => urn);
    result = targets.length ? await driver.destroy(open, ctx.io, targets) : { outputs: {}, changes: {}, summary: 'nothing to remove' };
  }
  // A later init creates a server only; bootstrap installs pgdbd again.
  await driver.setConfig(open, { [CONFIG_KEYS.bootstrap]: { value: 'false', secret: false } });
  return { changes: result.changes, summary: result.summary, volume_kept: !request.deleteVolume, api_url: apiUrl };
}

function toOutputs(stack: string, outputs: OutputMap): InfraOutputs {
  const value = <T>(name: string) => outputs[name]?.value as T | undefined;
  return {
    stack,
    server_id: value<number>('serverId'),
    server_name: value<string>('serverName'),
    ipv4: value<string>('ipv4'),
    ipv6: value<string>('ipv6'),
    location: value<string>('location'),
    server_type: value<string>('serverType'),
    volume_id: value<number>('volumeId'),
    volume_device: value<string>('volumeDevice'),
    firewall_id: value<number>('firewallId'),
    api_url: value<string>('apiUrl'),
    bootstrapped: value<boolean>('bootstrapped') === true,
  };
}
