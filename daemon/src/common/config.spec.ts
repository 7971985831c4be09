import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, imageFor, loadConfig } from './config.js';

const TOKEN = 'a-token-of-enough-length';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({ PGDB_TOKEN: TOKEN });
    assert.equal(config.listenHost, '0.0.0.0');
    assert.equal(config.listenPort, 8080);
    assert.equal(config.dataDir, '/var/lib/pgdb');
    assert.equal(config.imageTemplate, 'postgres:{major}');
    assert.deepEqual(config.versions, [14, 15, 16, 17, 18]);
    assert.equal(config.defaultVersion, 17);
    assert.deepEqual(config.portRange, { first: 15432, last: 16431 });
    assert.equal(config.dockerSocket, '/var/run/docker.sock');
    assert.equal(config.dockerTimeoutMs, 30_000);
    assert.equal(config.statusCacheMs, 30_000);
    assert.equal(imageFor(config, 15), 'postgres:15');
  });

  it('parses every PGDB_LISTEN form', () => {
    assert.deepEqual(pick(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_LISTEN: '127.0.0.1:9000' })), ['127.0.0.1', 9000]);
    assert.deepEqual(pick(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_LISTEN: '[::1]:9001' })), ['::1', 9001]);
    assert.deepEqual(pick(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_LISTEN: '9002' })), ['0.0.0.0', 9002]);
  });

  it('reads the token from PGDB_TOKEN_FILE', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pgdb-cfg-')), 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    assert.equal(loadConfig({ PGDB_TOKEN_FILE: file }).token, TOKEN);
  });

  it('refuses a token file that group or others can read', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pgdb-cfg-')), 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o640 });
    const problems = problemsOf({ PGDB_TOKEN_FILE: file });
    assert.equal(problems.length, 1);
    assert.match(problems[0], /readable by group or others \(mode 640\); run: chmod 600/);
  });

  it('refuses weak tokens: one repeated character, non-printable or non-ASCII characters', () => {
    assert.match(problemsOf({ PGDB_TOKEN: 'a'.repeat(32) })[0], /one character repeated/);
    assert.match(problemsOf({ PGDB_TOKEN: `${TOKEN}\u0007` })[0], /printable ASCII/);
    assert.match(problemsOf({ PGDB_TOKEN: `${TOKEN}é` })[0], /printable ASCII/);
  });

  it('serves the API over HTTPS by default unless it listens on loopback only', () => {
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN }).apiTls, true);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_LISTEN: '203.0.113.10:8080' }).apiTls, true);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_LISTEN: '127.0.0.1:8080' }).apiTls, false);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_LISTEN: '[::1]:8080' }).apiTls, false);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_LISTEN: '127.0.0.1:8080', PGDB_API_TLS: 'on' }).apiTls, true);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_API_TLS: 'off' }).apiTls, false);
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_API_TLS: 'yes' })[0], /PGDB_API_TLS must be auto, on or off/);
  });

  it('limits each database to one CPU by default; PGDB_DEFAULT_CPUS takes a number or none, never more than the host has', () => {
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN }).defaultCpus, Math.min(1, availableParallelism()));
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_DEFAULT_CPUS: '0.5' }).defaultCpus, 0.5);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_DEFAULT_CPUS: 'none' }).defaultCpus, undefined);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_DEFAULT_CPUS: '4096' }).defaultCpus, availableParallelism());
    for (const bad of ['0', '-1', 'two', '0.001', '1e3', '']) {
      assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_DEFAULT_CPUS: bad })[0], /PGDB_DEFAULT_CPUS must be none or a number of CPUs/, bad);
    }
  });

  it('validates the memory default and the operator certificate variables', () => {
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN }).defaultMemoryMb, 512);
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_DEFAULT_MEMORY_MB: '64' })[0], /PGDB_DEFAULT_MEMORY_MB must be between/);
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_TLS_CERT_FILE: '/etc/ssl/x.pem' })[0], /must be set together/);
    assert.match(
      problemsOf({ PGDB_TOKEN: TOKEN, PGDB_TLS_CERT_FILE: '/nonexistent/cert.pem', PGDB_TLS_KEY_FILE: '/nonexistent/key.pem' })[0],
      /PGDB_TLS_CERT_FILE \/nonexistent\/cert.pem cannot be read/,
    );
  });

  it('names every bad variable at once', () => {
    const problems = problemsOf({
      PGDB_LISTEN: 'nope',
      PGDB_DATA_DIR: 'relative/dir',
      PGDB_IMAGE_TEMPLATE: 'postgres:latest',
      PGDB_POSTGRES_VERSIONS: '15,x',
      PGDB_PORT_RANGE: '2000-1000',
      PGDB_READY_TIMEOUT_MS: 'soon',
      PGDB_LOG_LEVEL: 'loud',
      PGDB_DOCKER_SOCKET: 'docker.sock',
      PGDB_DOCKER_TIMEOUT_MS: '10',
      PGDB_STATUS_CACHE_MS: '-1',
    });
    for (const name of [
      'PGDB_TOKEN',
      'PGDB_LISTEN',
      'PGDB_DATA_DIR',
      'PGDB_IMAGE_TEMPLATE',
      'PGDB_POSTGRES_VERSIONS',
      'PGDB_PORT_RANGE',
      'PGDB_READY_TIMEOUT_MS',
      'PGDB_LOG_LEVEL',
      'PGDB_DOCKER_SOCKET',
      'PGDB_DOCKER_TIMEOUT_MS',
      'PGDB_STATUS_CACHE_MS',
    ]) {
      assert.ok(problems.some((p) => p.startsWith(name)), `${name} missing from ${JSON.stringify(problems)}`);
    }
  });

  it('rejects a short token, an unreadable token file and a default version outside the list', () => {
    assert.match(problemsOf({ PGDB_TOKEN: 'short' })[0], /at least 16/);
    assert.match(problemsOf({ PGDB_TOKEN_FILE: '/nonexistent/token' })[0], /cannot be read/);
    assert.match(
      problemsOf({ PGDB_TOKEN: TOKEN, PGDB_POSTGRES_VERSIONS: '15,16', PGDB_DEFAULT_VERSION: '17' })[0],
      /PGDB_DEFAULT_VERSION 17 is not in/,
    );
  });

  it('never echoes the token in its messages', () => {
    const secret = 'secret with spaces inside it';
    assert.ok(problemsOf({ PGDB_TOKEN: secret }).every((p) => !p.includes(secret)));
  });

  it('checks PGDB_PUBLIC_HOST and that PGDB_POSTGRES_BIND is an address of this host', () => {
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: 'https://db.example.com:5432' })[0], /PGDB_PUBLIC_HOST must be an IP address or a DNS name/);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: 'db.example.com' }).publicHost, 'db.example.com');
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: '2001:db8::1' }).publicHost, '2001:db8::1');
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_POSTGRES_BIND: '203.0.113.77' })[0], /PGDB_POSTGRES_BIND 203.0.113.77 is not an address of this host/);
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_POSTGRES_BIND: 'localhost' })[0], /must be an IP address/);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_POSTGRES_BIND: '127.0.0.5' }).postgresBind, '127.0.0.5');
  });

  it('PGDB_TLS: acme by default for a public IP or DNS name, own CA for private and loopback hosts', () => {
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN }).acme, undefined, 'loopback (the default public host)');
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: '10.1.2.3' }).acme, undefined);
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: 'db.internal' }).acme, undefined);
    const ip = loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: '198.51.99.7' }).acme;
    assert.deepEqual(ip, {
      directory: 'https://acme-v02.api.letsencrypt.org/directory',
      identifier: '198.51.99.7',
      profile: 'shortlived',
      email: undefined,
      httpPort: 80,
      tlsPort: 443,
      hostAddress: undefined,
    });
    const name = loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: 'db.example.com', PGDB_ACME_EMAIL: 'ops@example.com' }).acme;
    assert.equal(name?.profile, undefined, "a DNS name gets the CA's default profile");
    assert.equal(name?.email, 'ops@example.com');
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: '198.51.99.7', PGDB_TLS: 'own-ca' }).acme, undefined);
  });

  it('PGDB_DOMAIN names the certificate and the URLs, over PGDB_PUBLIC_HOST', () => {
    const config = loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: '198.51.99.7', PGDB_DOMAIN: 'db.example.com' });
    assert.equal(config.publicHost, 'db.example.com');
    assert.equal(config.acme?.identifier, 'db.example.com');
    assert.equal(config.acme?.hostAddress, '198.51.99.7', 'the address the domain is checked against besides the interfaces');
    assert.equal(loadConfig({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: 'host.example.com', PGDB_DOMAIN: 'db.example.com' }).acme?.hostAddress, undefined);
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_DOMAIN: '198.51.99.7' })[0], /PGDB_DOMAIN must be a DNS name/);
  });

  it('PGDB_TLS=acme on a loopback or private host needs PGDB_ACME_DIRECTORY (an ACME server that can reach it)', () => {
    assert.match(
      problemsOf({ PGDB_TOKEN: TOKEN, PGDB_TLS: 'acme' })[0],
      /PGDB_TLS=acme: 127\.0\.0\.1 is a private or loopback address, which a public ACME CA \(Let's Encrypt\) cannot validate; use PGDB_TLS=own-ca, or set PGDB_ACME_DIRECTORY/,
    );
    const config = loadConfig({ PGDB_TOKEN: TOKEN, PGDB_TLS: 'acme', PGDB_ACME_DIRECTORY: 'https://127.0.0.1:14000/dir', PGDB_ACME_HTTP_PORT: '5002' });
    assert.deepEqual([config.acme?.identifier, config.acme?.directory, config.acme?.httpPort], ['127.0.0.1', 'https://127.0.0.1:14000/dir', 5002]);
  });

  it('names each bad ACME setting', () => {
    assert.match(problemsOf({ PGDB_TOKEN: TOKEN, PGDB_TLS: 'letsencrypt' })[0], /PGDB_TLS must be auto, acme or own-ca, got "letsencrypt"/);
    const problems = problemsOf({
      PGDB_TOKEN: TOKEN,
      PGDB_PUBLIC_HOST: '198.51.99.7',
      PGDB_ACME_DIRECTORY: 'http://acme.example.com/dir',
      PGDB_ACME_EMAIL: 'not-an-email',
      PGDB_ACME_PROFILE: 'short lived',
      PGDB_ACME_HTTP_PORT: '0',
      PGDB_ACME_TLS_PORT: '70000',
    });
    assert.equal(problems.length, 5, problems.join('\n'));
    assert.match(problems.join('\n'), /PGDB_ACME_TLS_PORT must be between 1 and 65535/);
    assert.match(
      problemsOf({ PGDB_TOKEN: TOKEN, PGDB_PUBLIC_HOST: '198.51.99.7', PGDB_ACME_HTTP_PORT: '8443', PGDB_ACME_TLS_PORT: '8443' })[0],
      /PGDB_ACME_HTTP_PORT and PGDB_ACME_TLS_PORT must differ, both are 8443/,
    );
    assert.match(problems.join('\n'), /PGDB_ACME_DIRECTORY must be an https:\/\/ URL/);
    assert.match(problems.join('\n'), /PGDB_ACME_EMAIL must be an email address/);
    assert.match(problems.join('\n'), /PGDB_ACME_PROFILE must be a profile name/);
    assert.match(problems.join('\n'), /PGDB_ACME_HTTP_PORT must be between 1 and 65535/);
    const tmp = mkdtempSync(join(tmpdir(), 'pgdb-config-'));
    writeFileSync(join(tmp, 'c.pem'), 'x');
    assert.match(
      problemsOf({ PGDB_TOKEN: TOKEN, PGDB_TLS: 'acme', PGDB_PUBLIC_HOST: '198.51.99.7', PGDB_TLS_CERT_FILE: join(tmp, 'c.pem'), PGDB_TLS_KEY_FILE: join(tmp, 'c.pem') })[0],
      /PGDB_TLS=acme cannot be combined with PGDB_TLS_CERT_FILE/,
    );
  });
});

function pick(config: { listenHost: string; listenPort: number }) {
  return [config.listenHost, config.listenPort];
}
