import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkLocation,
  checkPortRange,
  checkSshPublicKey,
  checkStackName,
  checkVolumeSize,
  DEFAULTS,
  firewallRules,
  InvalidOption,
  normalizeCidr,
  normalizeCidrs,
  checkBackupKey,
  missingS3Settings,
  parseDaemonEnv,
  readBackupSecrets,
  readSecretFile,
  settingsToConfig,
} from './options.js';

const KEY = `pgdb-backup-key-1:${Buffer.alloc(32, 1).toString('base64url')}`;

/** A stand-in file system: path -> content, or an error code. */
function files(entries: Record<string, string | { code: string }>): (path: string) => string {
  return (path) => {
    const entry = entries[path];
    if (entry === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    if (typeof entry !== 'string') throw Object.assign(new Error(entry.code), { code: entry.code });
    return entry;
  };
}

describe('infra options', () => {
  it('normalises IPv4 and IPv6 CIDRs: host bits cleared, bare addresses become /32 or /128', () => {
    assert.equal(normalizeCidr('--allow-api', '203.0.113.7/24'), '203.0.113.0/24');
    assert.equal(normalizeCidr('--allow-api', '203.0.113.7'), '203.0.113.7/32');
    assert.equal(normalizeCidr('--allow-api', '0.0.0.0/0'), '0.0.0.0/0');
    assert.equal(normalizeCidr('--allow-api', '2001:DB8::1/32'), '2001:db8::/32');
    assert.equal(normalizeCidr('--allow-api', '::/0'), '::/0');
    assert.equal(normalizeCidr('--allow-api', '2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1/128');
    assert.deepEqual(normalizeCidrs('--allow-ssh', ['10.0.0.1/8', '10.0.0.0/8']), ['10.0.0.0/8']);
  });

  it('rejects what is not a CIDR, naming the flag', () => {
    for (const bad of ['', '300.1.1.1/8', '10.0.0.0/33', '1.2.3/24', 'example.com', '2001:db8::/129', '1::2::3/64', '10.0.0.0/8/1']) {
      assert.throws(() => normalizeCidr('--allow-postgres', bad), (error: Error) => error instanceof InvalidOption && /^--allow-postgres /.test(error.message), bad);
    }
  });

  it('checks stack names, locations, sizes, port ranges and SSH keys', () => {
    assert.equal(checkStackName('prod-1'), 'prod-1');
    for (const bad of ['Prod', '-a', 'a-', 'a_b', 'x'.repeat(41)]) assert.throws(() => checkStackName(bad), InvalidOption);
    assert.throws(() => checkLocation('mars1'), /unknown location "mars1": Hetzner Cloud locations are fsn1/);
    assert.throws(() => checkVolumeSize(9), /from 10 to 10240/);
    assert.throws(() => checkVolumeSize(10.5), InvalidOption);
    assert.throws(() => checkPortRange('8000-9000'), /must not include the API port 8080/);
    assert.throws(() => checkPortRange('2000-1000'), InvalidOption);
    assert.equal(checkSshPublicKey('k', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3x user@host\n'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3x user@host');
    assert.throws(() => checkSshPublicKey('id_ed25519', '-----BEGIN OPENSSH PRIVATE KEY-----'), /id_ed25519 is not an OpenSSH public key/);
  });

  it('builds one inbound TCP rule per opened port from the flags, leaving closed ports out', () => {
    const rules = firewallRules({ allowSsh: ['198.51.100.0/24'], allowApi: ['203.0.113.7/32', '2001:db8::/32'], allowPostgres: [], postgresPorts: '15432-16431' });
    assert.deepEqual(rules, [
      { direction: 'in', protocol: 'tcp', port: '22', sourceIps: ['198.51.100.0/24'], description: 'SSH' },
      { direction: 'in', protocol: 'tcp', port: '8080', sourceIps: ['203.0.113.7/32', '2001:db8::/32'], description: 'pgdbd API' },
      { direction: 'in', protocol: 'tcp', port: '80', sourceIps: ['0.0.0.0/0', '::/0'], description: 'ACME http-01 (pgdbd certificates)' },
      { direction: 'in', protocol: 'tcp', port: '443', sourceIps: ['0.0.0.0/0', '::/0'], description: 'ACME tls-alpn-01 (pgdbd certificates, when port 80 is held)' },
    ]);
    const defaults = firewallRules({ ...DEFAULTS, allowSsh: [...DEFAULTS.allowSsh], allowApi: [...DEFAULTS.allowApi], allowPostgres: ['192.0.2.0/24'] });
    assert.deepEqual(defaults.map((rule) => [rule.port, rule.sourceIps]), [
      ['22', ['0.0.0.0/0', '::/0']],
      ['8080', ['0.0.0.0/0', '::/0']],
      ['15432-16431', ['192.0.2.0/24']],
      ['80', ['0.0.0.0/0', '::/0']],
      ['443', ['0.0.0.0/0', '::/0']],
    ]);
  });

  it('writes settings as the strings `pulumi config set` stores (lists as JSON)', () => {
    const config = settingsToConfig({
      location: 'nbg1',
      serverType: 'cpx21',
      image: 'debian-12',
      volumeSizeGb: 40,
      sshPublicKey: 'ssh-ed25519 AAAA',
      allowSsh: ['10.0.0.0/8'],
      allowApi: [],
      allowPostgres: [],
      postgresPorts: '15432-16431',
    });
    assert.equal(config['pgdb:volumeSizeGb'], '40');
    assert.equal(config['pgdb:allowSsh'], '["10.0.0.0/8"]');
    assert.equal(config['pgdb:allowApi'], '[]');
    assert.ok(Object.values(config).every((value) => typeof value === 'string'));
  });

  it('accepts only known, one-word daemon settings for install.sh', () => {
    assert.deepEqual(parseDaemonEnv(['PGDB_IMAGE_TEMPLATE=registry.example/postgres:{major}', 'PGDB_DEFAULT_VERSION=17']), {
      PGDB_IMAGE_TEMPLATE: 'registry.example/postgres:{major}',
      PGDB_DEFAULT_VERSION: '17',
    });
    assert.throws(() => parseDaemonEnv(['PGDB_TOKEN=x']), /PGDB_TOKEN is not accepted/);
    assert.throws(() => parseDaemonEnv(['PGDB_LOG_LEVEL=info; rm -rf /']), /one word/);
    assert.throws(() => parseDaemonEnv(['nonsense']), /KEY=VALUE/);
  });

  it('reads a secret file: one value on one line; missing, unreadable, empty, several lines or spaces get one clear error without the content', () => {
    const read = files({
      ok: 'AKIA123\n',
      crlf: 'AKIA123\r\n',
      bare: 'AKIA123',
      empty: '',
      blank: '\n',
      two: 'secret-one\nsecret-two\n',
      spaced: 'secret one',
      locked: { code: 'EACCES' },
      dir: { code: 'EISDIR' },
    });
    assert.equal(readSecretFile('--s3-access-key-file', 'ok', read), 'AKIA123');
    assert.equal(readSecretFile('--s3-access-key-file', 'crlf', read), 'AKIA123');
    assert.equal(readSecretFile('--s3-access-key-file', 'bare', read), 'AKIA123');
    const cases: Array<[string, RegExp]> = [
      ['gone', /^--s3-secret-key-file gone: no such file$/],
      ['locked', /^--s3-secret-key-file locked cannot be read \(EACCES\)$/],
      ['dir', /^--s3-secret-key-file dir is a directory, not a file$/],
      ['empty', /^--s3-secret-key-file empty is empty$/],
      ['blank', /^--s3-secret-key-file blank is empty$/],
      ['two', /^--s3-secret-key-file two has more than one line/],
      ['spaced', /^--s3-secret-key-file spaced holds spaces/],
    ];
    for (const [path, expected] of cases) {
      assert.throws(
        () => readSecretFile('--s3-secret-key-file', path, read),
        (error: Error) => error instanceof InvalidOption && expected.test(error.message) && !/secret-one|secret one/.test(error.message),
        path,
      );
    }
  });

  it('accepts a backup key as `pgdb backup key` prints it, and nothing else, never echoing the value', () => {
    assert.equal(checkBackupKey('k', KEY), KEY);
    const bad = [KEY.slice(0, -1), `${KEY}A`, KEY.replace('pgdb-backup-key-1:', 'pgdb-backup-key-2:'), KEY.replace(/.$/, '+'), ` ${KEY}`];
    for (const value of bad) {
      assert.throws(() => checkBackupKey('--backup-key-file k.txt', value), (error: Error) => /^--backup-key-file k\.txt holds no backup key/.test(error.message) && !error.message.includes(value.trim()));
    }
    // 43 characters of base64url hold 32 bytes and 2 spare bits, which must be zero.
    const nonCanonical = `pgdb-backup-key-1:${'A'.repeat(42)}B`;
    assert.throws(() => checkBackupKey('k', nonCanonical), /holds no backup key/);
  });

  it('reads the secret files bootstrap carries: the S3 keys together, never with key files named on the server', () => {
    const read = files({ '/k/access': 'AK\n', '/k/secret': 'SK\n', '/k/backup': `${KEY}\n`, '/k/notakey': 'hello\n' });
    assert.deepEqual(readBackupSecrets({ s3AccessKeyFile: '/k/access', s3SecretKeyFile: '/k/secret', backupKeyFile: '/k/backup' }, {}, read), {
      s3AccessKey: 'AK',
      s3SecretKey: 'SK',
      backupKey: KEY,
    });
    assert.deepEqual(readBackupSecrets({}, {}, read), {});
    assert.throws(() => readBackupSecrets({ s3AccessKeyFile: '/k/access' }, {}, read), /: --s3-access-key-file and --s3-secret-key-file go together: --s3-secret-key-file is missing$/);
    assert.throws(() => readBackupSecrets({ s3SecretKeyFile: '/k/secret' }, {}, read), /go together: --s3-access-key-file is missing/);
    assert.throws(
      () => readBackupSecrets({ s3AccessKeyFile: '/k/access', s3SecretKeyFile: '/k/secret' }, { PGDB_BACKUP_S3_SECRET_KEY_FILE: '/root/s' }, read),
      /--daemon-env PGDB_BACKUP_S3_SECRET_KEY_FILE names key files already on the server.*give one or the other/,
    );
    assert.throws(() => readBackupSecrets({ backupKeyFile: '/k/notakey' }, {}, read), /--backup-key-file \/k\/notakey holds no backup key/);
    assert.throws(() => readBackupSecrets({ backupKeyFile: '/k/none' }, {}, read), /--backup-key-file \/k\/none: no such file/);
    // Key files already on the server stay accepted on their own.
    assert.deepEqual(parseDaemonEnv(['PGDB_BACKUP_S3_ACCESS_KEY_FILE=/root/a', 'PGDB_BACKUP_S3_SECRET_KEY_FILE=/root/s']), {
      PGDB_BACKUP_S3_ACCESS_KEY_FILE: '/root/a',
      PGDB_BACKUP_S3_SECRET_KEY_FILE: '/root/s',
    });
  });

  it('names what S3 backups still miss: endpoint, bucket, region and both keys', () => {
    const where = { PGDB_BACKUP_S3_ENDPOINT: 's3.example', PGDB_BACKUP_S3_BUCKET: 'b', PGDB_BACKUP_S3_REGION: 'r' };
    assert.equal(missingS3Settings({}, false), undefined);
    assert.equal(missingS3Settings({ PGDB_LOG_LEVEL: 'info' }, false), undefined);
    assert.equal(missingS3Settings(where, true), undefined);
    assert.equal(missingS3Settings({ ...where, PGDB_BACKUP_S3_ACCESS_KEY_FILE: '/a', PGDB_BACKUP_S3_SECRET_KEY_FILE: '/s' }, false), undefined);
    assert.equal(missingS3Settings({}, true), 'S3 backups need the endpoint, bucket, region and both keys; missing: --daemon-env PGDB_BACKUP_S3_ENDPOINT, --daemon-env PGDB_BACKUP_S3_BUCKET, --daemon-env PGDB_BACKUP_S3_REGION');
    assert.equal(missingS3Settings(where, false), 'S3 backups need the endpoint, bucket, region and both keys; missing: --s3-access-key-file and --s3-secret-key-file');
    assert.match(missingS3Settings({ ...where, PGDB_BACKUP_S3_ACCESS_KEY_FILE: '/a' }, false)!, /missing: --daemon-env PGDB_BACKUP_S3_SECRET_KEY_FILE$/);
  });
});
