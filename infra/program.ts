/**
 * The Pulumi program: a pgdb server on Hetzner Cloud, and optionally pgdbd
 * installed on it. No side effects at import: callers (the Automation API
 * driver, the Pulumi.yaml entry, tests with mocks) call `pgdbProgram()`.
 *
 * Settings come from `pulumi config` (keys in options.ts CONFIG_KEYS), so
 * `pulumi up` in a user's CI and `pgdb infra init` run the same program.
 */
import { createHash } from 'node:crypto';
import * as command from '@pulumi/command';
import * as hcloud from '@pulumi/hcloud';
import * as pulumi from '@pulumi/pulumi';
import { bootstrapScript, bootstrapStdin, READ_CA_SCRIPT } from './bootstrap-script.js';
import {
  API_PORT,
  checkBackupKey,
  CONFIG_KEYS,
  DEFAULTS,
  firewallRules,
  normalizeCidrs,
  checkPortRange,
  checkSshPublicKey,
  checkVolumeSize,
  type InfraSettings,
} from './options.js';

export interface ProgramConfig extends InfraSettings {
  stack: string;
  /** Keep the volume (and its data) when the stack is destroyed; the default. */
  retainVolume: boolean;
  bootstrap?: BootstrapConfig;
}

export interface BootstrapConfig {
  sshPrivateKey: pulumi.Output<string>;
  daemonToken: pulumi.Output<string>;
  releaseArchive: string;
  releaseId: string;
  daemonEnv: Record<string, string>;
  /** "" binds to every address; undefined binds to the server's public IPv4. */
  bindAddress?: string;
  /** Backup secrets the install command writes on the server (secret config). */
  secrets: { s3AccessKey?: pulumi.Output<string>; s3SecretKey?: pulumi.Output<string>; backupKey?: pulumi.Output<string> };
}

export interface ProgramOutputs {
  serverId: pulumi.Output<number>;
  serverName: pulumi.Output<string>;
  ipv4: pulumi.Output<string>;
  ipv6: pulumi.Output<string>;
  location: string;
  serverType: string;
  volumeId: pulumi.Output<number>;
  volumeDevice: pulumi.Output<string>;
  firewallId: pulumi.Output<number>;
  sshKeyId: pulumi.Output<number>;
  apiUrl: pulumi.Output<string>;
  bootstrapped: boolean;
  releaseId?: string;
  caCert?: pulumi.Output<string>;
}

function key(full: string): { namespace: string; name: string } {
  const [namespace, name] = full.split(':');
  return { namespace, name };
}

/** Reads the program's settings from the stack's config, with the documented defaults. */
export function readProgramConfig(): ProgramConfig {
  const get = (full: string) => new pulumi.Config(key(full).namespace).get(key(full).name);
  const getSecret = (full: string) => new pulumi.Config(key(full).namespace).getSecret(key(full).name);
  const list = (full: string, fallback: readonly string[]) => {
    const value = new pulumi.Config(key(full).namespace).getObject<string[]>(key(full).name);
    return [...(value ?? fallback)];
  };
  const sshPublicKey = new pulumi.Config('pgdb').require(key(CONFIG_KEYS.sshPublicKey).name);
  const config: ProgramConfig = {
    stack: pulumi.getStack(),
    location: get(CONFIG_KEYS.location) ?? DEFAULTS.location,
    serverType: get(CONFIG_KEYS.serverType) ?? DEFAULTS.serverType,
    image: get(CONFIG_KEYS.image) ?? DEFAULTS.image,
    volumeSizeGb: checkVolumeSize(Number(get(CONFIG_KEYS.volumeSizeGb) ?? DEFAULTS.volumeSizeGb)),
    sshPublicKey: checkSshPublicKey(CONFIG_KEYS.sshPublicKey, sshPublicKey),
    allowSsh: normalizeCidrs(CONFIG_KEYS.allowSsh, list(CONFIG_KEYS.allowSsh, DEFAULTS.allowSsh)),
    allowApi: normalizeCidrs(CONFIG_KEYS.allowApi, list(CONFIG_KEYS.allowApi, DEFAULTS.allowApi)),
    allowPostgres: normalizeCidrs(CONFIG_KEYS.allowPostgres, list(CONFIG_KEYS.allowPostgres, DEFAULTS.allowPostgres)),
    postgresPorts: checkPortRange(get(CONFIG_KEYS.postgresPorts) ?? DEFAULTS.postgresPorts),
    retainVolume: get(CONFIG_KEYS.deleteVolume) !== 'true',
  };
  if (get(CONFIG_KEYS.bootstrap) === 'true') {
    const sshPrivateKey = getSecret(CONFIG_KEYS.sshPrivateKey);
    const daemonToken = getSecret(CONFIG_KEYS.daemonToken);
    const releaseArchive = get(CONFIG_KEYS.releaseArchive);
    const releaseId = get(CONFIG_KEYS.releaseId);
    if (!sshPrivateKey || !daemonToken || !releaseArchive || !releaseId) {
      throw new Error(
        `${CONFIG_KEYS.bootstrap} is true, so ${CONFIG_KEYS.sshPrivateKey}, ${CONFIG_KEYS.daemonToken} (secrets), ${CONFIG_KEYS.releaseArchive} and ${CONFIG_KEYS.releaseId} must be set`,
      );
    }
    const s3AccessKey = getSecret(CONFIG_KEYS.s3AccessKey);
    const s3SecretKey = getSecret(CONFIG_KEYS.s3SecretKey);
    if ((s3AccessKey === undefined) !== (s3SecretKey === undefined)) {
      throw new Error(`${CONFIG_KEYS.s3AccessKey} and ${CONFIG_KEYS.s3SecretKey} go together (secrets)`);
    }
    const backupKey = getSecret(CONFIG_KEYS.backupKey)?.apply((text) => checkBackupKey(CONFIG_KEYS.backupKey, text));
    config.bootstrap = {
      sshPrivateKey,
      daemonToken,
      releaseArchive,
      releaseId,
      daemonEnv: new pulumi.Config('pgdb').getObject<Record<string, string>>(key(CONFIG_KEYS.daemonEnv).name) ?? {},
      bindAddress: get(CONFIG_KEYS.bindAddress),
      secrets: { s3AccessKey, s3SecretKey, backupKey },
    };
  }
  return config;
}

/** Declares the resources; returns the stack outputs. */
export function pgdbProgram(config: ProgramConfig): ProgramOutputs {
  const name = `pgdb-${config.stack}`;
  const labels = { 'managed-by': 'pgdb', 'pgdb-stack': config.stack };

  const sshKey = new hcloud.SshKey('ssh-key', { name, publicKey: config.sshPublicKey, labels });
  const firewall = new hcloud.Firewall('firewall', {
    name,
    labels,
    rules: firewallRules(config).map(({ direction, protocol, port, sourceIps, description }) => ({
      direction,
      protocol,
      port,
      sourceIps,
      description,
    })),
  });
  const server = new hcloud.Server('server', {
    name,
    serverType: config.serverType,
    image: config.image,
    location: config.location,
    sshKeys: [sshKey.id],
    // The only way to have the firewall in place before the first boot.
    firewallIds: [firewall.id.apply(Number)],
    publicNets: [{ ipv4Enabled: true, ipv6Enabled: true }],
    // A new type keeps the disk's size (the data lives on the volume), so a
    // smaller type stays possible later; without it the disk grows for good.
    keepDisk: true,
    labels,
  });
  // Created with a location, not a server, and attached separately: it then
  // survives replacing the server, and is kept when the stack is destroyed.
  const volume = new hcloud.Volume(
    'data',
    { name: `${name}-data`, size: config.volumeSizeGb, location: config.location, format: 'ext4', labels },
    { retainOnDelete: config.retainVolume },
  );
  const attachment = new hcloud.VolumeAttachment('data-attachment', {
    serverId: server.id.apply(Number),
    volumeId: volume.id.apply(Number),
    automount: false,
  });

  const outputs: ProgramOutputs = {
    serverId: server.id.apply(Number),
    serverName: server.name,
    ipv4: server.ipv4Address,
    ipv6: server.ipv6Address,
    location: config.location,
    serverType: config.serverType,
    volumeId: volume.id.apply(Number),
    volumeDevice: volume.linuxDevice,
    firewallId: firewall.id.apply(Number),
    sshKeyId: sshKey.id.apply(Number),
    apiUrl: pulumi.interpolate`http://${server.ipv4Address}:${API_PORT}`,
    bootstrapped: config.bootstrap !== undefined,
  };
  if (config.bootstrap) {
    const installed = bootstrap(config, config.bootstrap, server, volume, attachment);
    outputs.releaseId = config.bootstrap.releaseId;
    outputs.caCert = installed.caCert;
  }
  return outputs;
}

function bootstrap(
  config: ProgramConfig,
  settings: BootstrapConfig,
  server: hcloud.Server,
  volume: hcloud.Volume,
  attachment: hcloud.VolumeAttachment,
): { caCert: pulumi.Output<string> } {
  const connection: command.types.input.remote.ConnectionArgs = {
    host: server.ipv4Address,
    port: 22,
    user: 'root',
    privateKey: settings.sshPrivateKey,
    // A new server needs a while to boot and start sshd.
    dialErrorLimit: 30,
  };
  const archivePath = `/root/pgdb-release-${settings.releaseId}.tar.gz`;
  const copy = new command.remote.CopyToRemote(
    'release',
    {
      connection,
      source: new pulumi.asset.FileAsset(settings.releaseArchive),
      remotePath: archivePath,
      triggers: [settings.releaseId, server.id],
    },
    { dependsOn: [attachment] },
  );
  const { s3AccessKey, s3SecretKey, backupKey } = settings.secrets;
  // The script holds no secret (the command provider quotes it, unmasked, in a failure):
  // the token and the backup secrets travel on its standard input, a Pulumi secret.
  const carries = { s3: s3AccessKey !== undefined, backupKey: backupKey !== undefined };
  const script = pulumi.all([volume.linuxDevice, server.ipv4Address]).apply(([device, ipv4]) =>
    bootstrapScript({
      device,
      archivePath,
      releaseId: settings.releaseId,
      publicHost: ipv4,
      bindAddress: settings.bindAddress ?? ipv4,
      postgresPorts: config.postgresPorts,
      daemonEnv: settings.daemonEnv,
      carries,
    }),
  );
  const stdin = pulumi
    .all([settings.daemonToken, s3AccessKey, s3SecretKey, backupKey])
    .apply(([daemonToken, s3AccessKey, s3SecretKey, backupKey]) => bootstrapStdin({ daemonToken, secrets: { s3AccessKey, s3SecretKey, backupKey } }));
  // As the real command provider does: a change of `create` or `stdin` runs the
  // script again in place (same id); only the triggers replace it.
  const install = new command.remote.Command(
    'install',
    {
      connection,
      create: script,
      stdin: pulumi.secret(stdin),
      triggers: [settings.releaseId, server.id, attachment.id],
      // install.sh's own progress lines go to stderr; the token is never printed.
      logging: 'stderr',
    },
    { dependsOn: [copy, attachment] },
  );
  // An install run in place keeps its id: the CA is read again whenever the
  // install ran, so its triggers carry a digest of what the install ran (never a secret).
  const ran = pulumi.unsecret(pulumi.all([script, stdin]).apply(([text, input]) => installDigest(text, input)));
  const readCa = new command.remote.Command(
    'read-ca',
    { connection, create: READ_CA_SCRIPT, triggers: [install.id, ran] },
    { dependsOn: [install] },
  );
  return { caCert: readCa.stdout };
}

/** A digest of what the install command runs, for the triggers of the step after it: it changes when the script or a secret does, and reveals neither. */
export function installDigest(script: string, stdin: string): string {
  return `sha256:${createHash('sha256').update('pgdb-install\0').update(script).update('\0').update(stdin).digest('hex')}`;
}
