import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bootstrapScript, bootstrapStdin, carried, type BootstrapSecrets } from './bootstrap-script.js';

const input = {
  device: '/dev/disk/by-id/scsi-0HC_Volume_42',
  archivePath: '/root/pgdb-release-abc.tar.gz',
  releaseId: 'abc',
  publicHost: '203.0.113.10',
  bindAddress: '203.0.113.10',
  postgresPorts: '15432-16431',
  daemonEnv: { PGDB_DEFAULT_VERSION: '17' },
};

const KEY = `pgdb-backup-key-1:${Buffer.alloc(32, 7).toString('base64url')}`;

const TOKEN = 'a'.repeat(64);

describe('infra bootstrap script', () => {
  it('mounts the volume for the data directory and Docker, then runs install.sh with the values inline and the token from standard input', () => {
    const script = bootstrapScript(input);
    assert.match(script, /^dev=\/dev\/disk\/by-id\/scsi-0HC_Volume_42$/m);
    assert.match(script, /for pair in pgdb:\/var\/lib\/pgdb docker:\/var\/lib\/docker; do/);
    assert.match(script, /x-systemd\.requires-mounts-for=\$mnt/);
    const install = script.trim().split('\n').at(-1)!;
    assert.equal(
      install,
      `PGDB_TOKEN="$(unpack "$token")" PGDB_LISTEN=203.0.113.10:8080 PGDB_PUBLIC_HOST=203.0.113.10 PGDB_PORT_RANGE=15432-16431 PGDB_POSTGRES_BIND=203.0.113.10 PGDB_DEFAULT_VERSION=17 bash /opt/pgdb-src/abc/scripts/install.sh`,
    );
    assert.match(bootstrapScript({ ...input, bindAddress: '' }), /PGDB_LISTEN=:8080 PGDB_PUBLIC_HOST/);
  });

  it('keeps pgdbd and Docker from starting without the volume (RequiresMountsFor drop-ins, before install.sh)', () => {
    const script = bootstrapScript(input);
    const loop = script.indexOf('for unit in pgdbd docker; do');
    assert.ok(loop > script.indexOf('mount "$dst"') && loop < script.indexOf('install.sh'));
    const result = spawnSync('bash', ['-c', `unit=pgdbd; echo "$([ "$unit" = pgdbd ] && echo '/var/lib/pgdb /var/lib/docker' || echo '/var/lib/docker')"`], { encoding: 'utf8' });
    assert.equal(result.stdout, '/var/lib/pgdb /var/lib/docker\n');
    assert.match(script, /printf '\[Unit\]\\nRequiresMountsFor=%s\\n' .*\/etc\/systemd\/system\/\$unit\.service\.d\/pgdb-volume\.conf"$/m);
  });

  it('refuses values that would not be one shell word', () => {
    assert.throws(() => bootstrapStdin({ daemonToken: 'x; reboot' }), /the daemon token is not one plain word/);
    assert.throws(() => bootstrapScript({ ...input, device: '/dev/$(id)' }), /device is not one plain word/);
  });

  it('without backup secrets, writes no secret file and passes no S3 key setting', () => {
    const script = bootstrapScript(input);
    assert.doesNotMatch(script, /s3-access-key|backup\.key|umask 077|\bput /);
    assert.equal(bootstrapStdin({ daemonToken: TOKEN }), `token ${Buffer.from(`${TOKEN}\n`).toString('base64')}\n`);
  });

  it('holds no secret: the token and the backup secrets travel on standard input, in base64, one line each', () => {
    const secrets = { s3AccessKey: 'AKIAUNIT', s3SecretKey: 'unit-secret-key', backupKey: KEY };
    const script = bootstrapScript({ ...input, carries: carried(secrets) });
    const stdin = bootstrapStdin({ daemonToken: TOKEN, secrets });
    for (const value of [TOKEN, ...Object.values(secrets)]) {
      const encoded = Buffer.from(`${value}\n`).toString('base64');
      assert.equal(script.includes(value) || script.includes(encoded), false, value);
      assert.ok(stdin.includes(encoded), value);
    }
    assert.deepEqual(stdin.trim().split('\n').map((line) => line.split(' ')[0]), ['token', 's3-access-key', 's3-secret-key', 'backup-key']);
  });

  it('stops before it changes anything when standard input lacks a secret it expects', () => {
    const script = bootstrapScript({ ...input, carries: { backupKey: true } });
    const head = script.slice(0, script.indexOf('dev='));
    const result = spawnSync('bash', ['-c', head], { input: bootstrapStdin({ daemonToken: TOKEN }), encoding: 'utf8' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^\[pgdb-bootstrap\] ERROR: the secrets did not arrive on standard input$/m);
  });

  it('writes the S3 keys (base64, umask 077, 0600) before install.sh, which gets their paths', () => {
    const script = bootstrapScript({ ...input, daemonEnv: { PGDB_BACKUP_S3_ENDPOINT: 's3.example' }, carries: { s3: true } });
    assert.match(script, /^\(\numask 077\n/m);
    assert.match(script, /^  chmod 0600 "\$1\.new"$/m);
    assert.match(script, /^put \/etc\/pgdb\/s3-access-key "\$s3_access"$/m);
    assert.ok(script.indexOf('put /etc/pgdb/s3-secret-key') < script.indexOf('install.sh'));
    const install = script.trim().split('\n').at(-1)!;
    assert.match(install, / PGDB_BACKUP_S3_ACCESS_KEY_FILE=\/etc\/pgdb\/s3-access-key PGDB_BACKUP_S3_ENDPOINT=s3\.example PGDB_BACKUP_S3_SECRET_KEY_FILE=\/etc\/pgdb\/s3-secret-key bash /);
  });

  it('checks the backup key before writing anything, and writes it only when absent', () => {
    const script = bootstrapScript({ ...input, carries: { backupKey: true } });
    const check = script.indexOf('holds another backup key');
    assert.ok(check > script.indexOf('mount "$dst"') && check < script.indexOf('umask 077'), 'after the volume is mounted, before any write');
    assert.match(script, /^if \[ ! -e "\$key" \]; then put "\$key" "\$want"; fi$/m);
    assert.match(script, /^key=\/var\/lib\/pgdb\/backup\.key$/m);
  });

  it('refuses S3 keys both copied and named on the server, a lone S3 key, and a value that is no backup key', () => {
    assert.throws(() => bootstrapScript({ ...input, daemonEnv: { PGDB_BACKUP_S3_SECRET_KEY_FILE: '/root/k' }, carries: { s3: true } }), /not both/);
    assert.throws(() => bootstrapStdin({ daemonToken: TOKEN, secrets: { s3AccessKey: 'a' } }), /go together/);
    assert.throws(() => bootstrapStdin({ daemonToken: TOKEN, secrets: { backupKey: 'pgdb-backup-key-1:short' } }), /not one/);
  });

  describe('the secrets part, run by bash in a scratch directory standing for /', () => {
    const root = mkdtempSync(join(tmpdir(), 'pgdb-bootstrap-secrets-'));
    const etc = join(root, 'etc/pgdb');
    const data = join(root, 'data');
    const run = (secrets: BootstrapSecrets['secrets']) => {
      const script = bootstrapScript({ ...input, carries: carried(secrets) });
      // The part that reads standard input, then the part that writes the files.
      const head = script.slice(0, script.indexOf('dev='));
      const start = script.indexOf('systemctl daemon-reload\n') + 'systemctl daemon-reload\n'.length;
      const part = script.slice(start, script.indexOf('rm -rf /opt/pgdb-src')).replaceAll('/etc/pgdb', etc).replaceAll('/var/lib/pgdb', data);
      // chown needs root: stand in for it when the tests run as another user.
      const prelude = process.getuid?.() === 0 ? '' : 'chown() { :; }\n';
      return spawnSync('bash', ['-c', `${head}umask 022\n${prelude}${part}`], { encoding: 'utf8', input: bootstrapStdin({ daemonToken: TOKEN, secrets }) });
    };
    const mode = (path: string) => statSync(path).mode & 0o777;

    it('writes the S3 keys and an absent backup key as 0600 files of one line', () => {
      rmSync(root, { recursive: true, force: true });
      mkdirSync(data, { recursive: true });
      const result = run({ s3AccessKey: 'AK1', s3SecretKey: 'SK/1+x=', backupKey: KEY });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(readFileSync(join(etc, 's3-access-key'), 'utf8'), 'AK1\n');
      assert.equal(readFileSync(join(etc, 's3-secret-key'), 'utf8'), 'SK/1+x=\n');
      assert.equal(readFileSync(join(data, 'backup.key'), 'utf8'), `${KEY}\n`);
      for (const file of [join(etc, 's3-access-key'), join(etc, 's3-secret-key'), join(data, 'backup.key')]) assert.equal(mode(file), 0o600, file);
      assert.equal(mode(etc), 0o700);
    });

    it('run again with the same secrets, changes no file', () => {
      const before = [join(etc, 's3-access-key'), join(data, 'backup.key')].map((file) => statSync(file).ino);
      const result = run({ s3AccessKey: 'AK1', s3SecretKey: 'SK/1+x=', backupKey: KEY });
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual([join(etc, 's3-access-key'), join(data, 'backup.key')].map((file) => statSync(file).ino), before);
      assert.equal(existsSync(join(etc, 's3-access-key.new')), false);
    });

    it('replaces a changed S3 key', () => {
      const result = run({ s3AccessKey: 'AK2', s3SecretKey: 'SK2' });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(readFileSync(join(etc, 's3-access-key'), 'utf8'), 'AK2\n');
      assert.equal(mode(join(etc, 's3-access-key')), 0o600);
    });

    it('accepts the same key written by the daemon (a final newline), and refuses another key, changing nothing', () => {
      writeFileSync(join(data, 'backup.key'), `${KEY}\n`, { mode: 0o600 });
      assert.equal(run({ backupKey: KEY }).status, 0);
      const other = `pgdb-backup-key-1:${randomBytes(32).toString('base64url')}`;
      const result = run({ s3AccessKey: 'AK3', s3SecretKey: 'SK3', backupKey: other });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /^\[pgdb-bootstrap\] ERROR: .*backup\.key on the server holds another backup key than --backup-key-file; a server's key is never overwritten, and nothing was changed$/m);
      assert.equal(result.stderr.includes(other) || result.stderr.includes(KEY), false, 'no key in the message');
      assert.equal(readFileSync(join(data, 'backup.key'), 'utf8'), `${KEY}\n`);
      assert.equal(readFileSync(join(etc, 's3-access-key'), 'utf8'), 'AK2\n', 'the S3 keys are not written either');
      rmSync(root, { recursive: true, force: true });
    });
  });
});
