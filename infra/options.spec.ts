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
  parseDaemonEnv,
  settingsToConfig,
} from './options.js';

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
});
