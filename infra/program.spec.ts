/**
 * The program with `pulumi.runtime.setMocks`: the resources it declares, with
 * which inputs and options, read from the config keys `pulumi config set`
 * writes. No engine, no cloud.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { MockMonitor } from '@pulumi/pulumi/runtime/mocks.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNYc1DQbNW3iAe2f2f0uUjAF0vwH0Fh0v9f0e7W0Cq0 test@pgdb';

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  raw: Record<string, any>;
  retainOnDelete: boolean;
}

let registered: Registered[] = [];
let nextId = 100;

function outputsOf(type: string, inputs: Record<string, any>): Record<string, any> {
  switch (type) {
    case 'hcloud:index/server:Server':
      return { ...inputs, ipv4Address: '203.0.113.10', ipv6Address: '2001:db8::1', status: 'running' };
    case 'hcloud:index/volume:Volume':
      return { ...inputs, linuxDevice: `/dev/disk/by-id/scsi-0HC_Volume_${nextId}` };
    case 'command:remote:Command':
      return { ...inputs, stdout: String(reveal(inputs.create)).startsWith('cat ') ? '' : 'installed', stderr: '' };
    default:
      return inputs;
  }
}

/** The value inside a secret wrapper (mocks see secrets wrapped). */
function reveal(value: any): any {
  return isSecret(value) ? value.value : value;
}

/** Waits until every output of the program has resolved, so that every resource is registered. */
async function settle(outputs: object): Promise<void> {
  await Promise.all(Object.values(outputs).map((output) => value(output)));
}

const value = <T>(output: pulumi.Input<T> | undefined): Promise<T> =>
  new Promise((done) => pulumi.output(output as pulumi.Input<T>).apply((v) => done(v as T)));

/** Sets the stack config as `pulumi config set` would (strings; lists as JSON), replacing what was set before. */
function setConfig(values: Record<string, string>, secrets: string[] = []): void {
  pulumi.runtime.setAllConfig(values, secrets);
}


function byType(type: string): Registered[] {
  return registered.filter((r) => r.type === type);
}

function isSecret(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && (raw as Record<string, unknown>)['4dabf18193072939515e22adb298388d'] === SECRET_SIG;
}

describe('the pgdb infra program (mocks)', () => {
  let program: typeof import('./program.js');

  before(async () => {
    const original = MockMonitor.prototype.registerResource;
    MockMonitor.prototype.registerResource = function (req: any, callback: any) {
      registered.push({
        type: req.getType(),
        name: req.getName(),
        inputs: {},
        raw: req.getObject()?.toJavaScript() ?? {},
        retainOnDelete: req.getRetainondelete() === true,
      });
      return original.call(this, req, callback);
    };
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          const match = [...registered].reverse().find((r) => r.type === args.type && r.name === args.name);
          if (match) match.inputs = args.inputs;
          return { id: String(nextId++), state: outputsOf(args.type, args.inputs) };
        },
        call: () => ({}),
      },
      'pgdb',
      'unit',
    );
    // Imported after setMocks: the program has no side effects at import.
    program = await import('./program.js');
  });

  it('declares the SSH key, the firewall with the rules from the config, the server behind it, and the volume attached separately', async () => {
    registered = [];
    setConfig({
      'pgdb:sshPublicKey': SSH_KEY,
      'pgdb:location': 'nbg1',
      'pgdb:serverType': 'cpx21',
      'pgdb:volumeSizeGb': '40',
      'pgdb:allowSsh': '["198.51.100.0/24"]',
      'pgdb:allowApi': '["203.0.113.7/32"]',
      'pgdb:allowPostgres': '["192.0.2.0/24"]',
    });
    const outputs = program.pgdbProgram(program.readProgramConfig());
    await settle(outputs);
    assert.equal(await value(outputs.ipv4), '203.0.113.10');
    assert.equal(await value(outputs.apiUrl), 'http://203.0.113.10:8080');

    assert.deepEqual(registered.map((r) => r.type).sort(), [
      'hcloud:index/firewall:Firewall',
      'hcloud:index/server:Server',
      'hcloud:index/sshKey:SshKey',
      'hcloud:index/volume:Volume',
      'hcloud:index/volumeAttachment:VolumeAttachment',
    ]);
    const [key] = byType('hcloud:index/sshKey:SshKey');
    const [firewall] = byType('hcloud:index/firewall:Firewall');
    const [server] = byType('hcloud:index/server:Server');
    const [volume] = byType('hcloud:index/volume:Volume');
    const [attachment] = byType('hcloud:index/volumeAttachment:VolumeAttachment');
    assert.equal(key.inputs.publicKey, SSH_KEY);
    assert.deepEqual(
      firewall.inputs.rules.map((rule: any) => [rule.port, rule.sourceIps]),
      [
        ['22', ['198.51.100.0/24']],
        ['8080', ['203.0.113.7/32']],
        ['15432-16431', ['192.0.2.0/24']],
        ['80', ['0.0.0.0/0', '::/0']],
        ['443', ['0.0.0.0/0', '::/0']],
      ],
    );
    assert.deepEqual(
      { type: server.inputs.serverType, location: server.inputs.location, image: server.inputs.image, name: server.inputs.name },
      { type: 'cpx21', location: 'nbg1', image: 'debian-12', name: 'pgdb-unit' },
    );
    assert.equal(server.inputs.firewallIds.length, 1);
    assert.equal(typeof server.inputs.firewallIds[0], 'number');
    assert.equal(server.inputs.sshKeys.length, 1);
    // The volume belongs to a location, not to a server: it survives a server replacement.
    assert.equal(volume.inputs.location, 'nbg1');
    assert.equal(volume.inputs.size, 40);
    assert.equal(volume.inputs.format, 'ext4');
    assert.equal(volume.inputs.serverId, undefined);
    assert.equal(attachment.inputs.serverId, Number(await value(outputs.serverId)));
    assert.equal(attachment.inputs.volumeId, Number(await value(outputs.volumeId)));
    assert.equal(attachment.inputs.automount, false);
  });

  it('retains the volume when the stack is destroyed, unless pgdb:deleteVolume is true', async () => {
    registered = [];
    setConfig({ 'pgdb:sshPublicKey': SSH_KEY });
    await settle(program.pgdbProgram(program.readProgramConfig()));
    assert.equal(byType('hcloud:index/volume:Volume')[0].retainOnDelete, true);
    assert.equal(byType('hcloud:index/server:Server')[0].retainOnDelete, false);

    registered = [];
    setConfig({ 'pgdb:sshPublicKey': SSH_KEY, 'pgdb:deleteVolume': 'true' });
    await settle(program.pgdbProgram(program.readProgramConfig()));
    assert.equal(byType('hcloud:index/volume:Volume')[0].retainOnDelete, false);
  });

  it('uses the documented defaults: SSH and API open, Postgres closed, cx22 in fsn1 with debian-12 and 20 GB', async () => {
    registered = [];
    setConfig({ 'pgdb:sshPublicKey': SSH_KEY });
    const config = program.readProgramConfig();
    assert.deepEqual(
      [config.location, config.serverType, config.image, config.volumeSizeGb, config.allowSsh, config.allowApi, config.allowPostgres],
      ['fsn1', 'cx22', 'debian-12', 20, ['0.0.0.0/0', '::/0'], ['0.0.0.0/0', '::/0'], []],
    );
    await settle(program.pgdbProgram(config));
    assert.deepEqual(byType('hcloud:index/firewall:Firewall')[0].inputs.rules.map((rule: any) => rule.port), ['22', '8080', '80', '443']);
  });

  it('rejects a bad CIDR in the config with the key named', () => {
    setConfig({ 'pgdb:sshPublicKey': SSH_KEY, 'pgdb:allowApi': '["not-a-cidr"]' });
    assert.throws(() => program.readProgramConfig(), /pgdb:allowApi "not-a-cidr" is not a CIDR/);
  });

  it('bootstraps over SSH with the key as a secret, a script that holds no secret, and the token on standard input (a secret)', async () => {
    registered = [];
    const privateKey = '-----BEGIN OPENSSH PRIVATE KEY-----\nunit\n-----END OPENSSH PRIVATE KEY-----\n';
    const token = 'f'.repeat(64);
    setConfig(
      {
        'pgdb:sshPublicKey': SSH_KEY,
        'pgdb:bootstrap': 'true',
        'pgdb:sshPrivateKey': privateKey,
        'pgdb:daemonToken': token,
        'pgdb:releaseArchive': '/tmp/release.tar.gz',
        'pgdb:releaseId': '0123456789abcdef',
        'pgdb:daemonEnv': '{"PGDB_DEFAULT_VERSION":"17"}',
      },
      ['pgdb:sshPrivateKey', 'pgdb:daemonToken'],
    );
    const outputs = program.pgdbProgram(program.readProgramConfig());
    await settle(outputs);
    const commands = byType('command:remote:Command');
    assert.deepEqual(commands.map((c) => c.name).sort(), ['install', 'read-ca']);
    const install = commands.find((c) => c.name === 'install')!;
    assert.ok(isSecret(install.raw.connection?.privateKey) || isSecret(install.raw.connection), 'the private key is a secret');
    assert.ok(isSecret(install.raw.stdin), 'standard input (it holds the token) is a secret');
    assert.equal(isSecret(install.raw.create), false, 'the script is plain: it holds no secret');
    const script = install.inputs.create as string;
    assert.equal(script.includes(token) || script.includes(Buffer.from(`${token}\n`).toString('base64')), false);
    assert.match(reveal(install.inputs.stdin), new RegExp(`^token ${Buffer.from(`${token}\n`).toString('base64')}$`, 'm'));
    assert.match(script, /PGDB_LISTEN=203\.0\.113\.10:8080 PGDB_PUBLIC_HOST=203\.0\.113\.10 /);
    assert.match(script, /PGDB_DEFAULT_VERSION=17 bash \/opt\/pgdb-src\/0123456789abcdef\/scripts\/install\.sh/);
    const connection = reveal(install.inputs.connection);
    assert.equal(connection.host, '203.0.113.10');
    assert.equal(connection.user, 'root');
    const [copy] = byType('command:remote:CopyToRemote');
    assert.equal(copy.inputs.remotePath, '/root/pgdb-release-0123456789abcdef.tar.gz');
    assert.equal(await (copy.inputs.source as pulumi.asset.FileAsset).path, '/tmp/release.tar.gz');
  });

  it('carries the backup secrets only on standard input; the CA is read again whenever the install runs, by a digest that reveals no secret', async () => {
    const key = `pgdb-backup-key-1:${Buffer.alloc(32, 9).toString('base64url')}`;
    const base = {
      'pgdb:sshPublicKey': SSH_KEY,
      'pgdb:bootstrap': 'true',
      'pgdb:sshPrivateKey': 'k',
      'pgdb:daemonToken': 'f'.repeat(64),
      'pgdb:releaseArchive': '/tmp/release.tar.gz',
      'pgdb:releaseId': '0123456789abcdef',
      'pgdb:daemonEnv': '{"PGDB_BACKUP_S3_ENDPOINT":"s3.example","PGDB_BACKUP_S3_BUCKET":"b","PGDB_BACKUP_S3_REGION":"r"}',
    };
    const secretKeys = ['pgdb:sshPrivateKey', 'pgdb:daemonToken', 'pgdb:s3AccessKey', 'pgdb:s3SecretKey', 'pgdb:backupKey'];
    const commandsOf = async (extra: Record<string, string>) => {
      registered = [];
      setConfig({ ...base, ...extra }, secretKeys);
      await settle(program.pgdbProgram(program.readProgramConfig()));
      const commands = byType('command:remote:Command');
      return { install: commands.find((c) => c.name === 'install')!, readCa: commands.find((c) => c.name === 'read-ca')! };
    };
    const secrets = { 'pgdb:s3AccessKey': 'AKIAUNIT', 'pgdb:s3SecretKey': 'unit-secret-key', 'pgdb:backupKey': key };
    const { install, readCa } = await commandsOf(secrets);
    const script = install.inputs.create as string;
    const stdin = reveal(install.inputs.stdin) as string;
    for (const value of ['AKIAUNIT', 'unit-secret-key', key]) {
      const encoded = Buffer.from(`${value}\n`).toString('base64');
      assert.equal(script.includes(value) || script.includes(encoded), false, value);
      assert.ok(stdin.includes(encoded), value);
    }
    assert.match(script, / PGDB_BACKUP_S3_ACCESS_KEY_FILE=\/etc\/pgdb\/s3-access-key .*PGDB_BACKUP_S3_SECRET_KEY_FILE=\/etc\/pgdb\/s3-secret-key bash /);
    // Only what the command's inputs do not show replaces it: the release, the server, the attachment.
    assert.equal((reveal(install.inputs.triggers) as unknown[]).length, 3);
    const digest = reveal((reveal(readCa.inputs.triggers) as unknown[])[1]);
    assert.match(String(digest), /^sha256:[0-9a-f]{64}$/);
    assert.equal(isSecret((readCa.raw.triggers as unknown[])[1]), false);
    assert.equal(digest, program.installDigest(script, stdin));
    // Another secret, another digest: the CA is read again after the install ran again.
    const changed = await commandsOf({ ...secrets, 'pgdb:s3SecretKey': 'unit-secret-key-2' });
    assert.notEqual(reveal((reveal(changed.readCa.inputs.triggers) as unknown[])[1]), digest);
    // Another port range changes the script (the install runs again in place), and so the digest.
    const ports = await commandsOf({ ...secrets, 'pgdb:postgresPorts': '20000-20999' });
    assert.notEqual(ports.install.inputs.create, script);
    assert.notEqual(reveal((reveal(ports.readCa.inputs.triggers) as unknown[])[1]), digest);
    const without = await commandsOf({});
    assert.doesNotMatch(without.install.inputs.create as string, /s3-access-key|backup\.key/);
  });

  it('rejects a lone S3 key in the config', () => {
    const base = { 'pgdb:sshPublicKey': SSH_KEY, 'pgdb:bootstrap': 'true', 'pgdb:sshPrivateKey': 'k', 'pgdb:daemonToken': 't', 'pgdb:releaseArchive': '/a', 'pgdb:releaseId': 'r' };
    setConfig({ ...base, 'pgdb:s3AccessKey': 'a' }, ['pgdb:sshPrivateKey', 'pgdb:daemonToken', 'pgdb:s3AccessKey']);
    assert.throws(() => program.readProgramConfig(), /pgdb:s3AccessKey and pgdb:s3SecretKey go together/);
  });

  it('runs from the module Pulumi.yaml names, with the config keys `pulumi config set` writes', async () => {
    const yaml = readFileSync(join(ROOT, 'Pulumi.yaml'), 'utf8');
    assert.match(yaml, /^runtime:\n  name: nodejs/m);
    const main = /^main: (\S+)$/m.exec(yaml)?.[1];
    assert.ok(main, 'Pulumi.yaml names a main module');
    registered = [];
    setConfig({ 'pgdb:sshPublicKey': SSH_KEY, 'pgdb:volumeSizeGb': '10', 'pgdb:allowApi': '["203.0.113.0/24"]' });
    const entry = (await import(pathToFileURL(join(ROOT, main)).href)) as { default: () => Record<string, pulumi.Output<unknown>> };
    const outputs = entry.default();
    await settle(outputs);
    assert.equal(await value(outputs.ipv4), '203.0.113.10');
    assert.equal(byType('hcloud:index/volume:Volume')[0].inputs.size, 10);
    assert.deepEqual(byType('hcloud:index/firewall:Firewall')[0].inputs.rules[1].sourceIps, ['203.0.113.0/24']);
  });
});
