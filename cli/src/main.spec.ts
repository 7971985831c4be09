import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { MEMORY_MB_MAX, MEMORY_MB_MIN } from '../../contract/api.js';
import { PassThrough } from 'node:stream';
import { COMMAND_NAMES } from './commands/index.js';
import { writeConfig, type Environment } from './config.js';
import type { Context } from './context.js';
import { buildParser } from './main.js';
import { closedPortUrl, FakeDaemon } from './testing/fake-daemon.js';
import { runPgdb, tempConfigPath, type MemoryOptions } from './testing/memory-context.js';

const TOKEN = 'test-token';

describe('argument parsing', () => {
  it('prints help on stdout and exits 0 for --help', async () => {
    const run = await runPgdb(['--help']);
    assert.equal(run.code, 0);
    assert.equal(run.stderr, '');
    for (const command of ['deploy', 'status', 'destroy <name>', 'ca', 'config', 'completion']) {
      assert.match(run.stdout, new RegExp(`pgdb ${command} `));
    }
  });

  it("prints a command's own help", async () => {
    const run = await runPgdb(['deploy', '--help']);
    assert.equal(run.code, 0);
    for (const option of ['--name', '--size', '--version', '--memory', '--verify', '--server', '--json', '--verbose', '--insecure', '--trust-fingerprint', '--ca-file']) {
      assert.match(run.stdout, new RegExp(`${option} `));
    }
  });

  it('prints a bash completion script', async () => {
    const run = await runPgdb(['completion']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /complete .* pgdb/);
  });

  const usageErrors: Array<[string[], RegExp]> = [
    [[], /error: choose a command/],
    [['deplyo'], /error: Did you mean deploy\?/],
    [['deploy', '--bogus'], /error: Unknown argument: bogus/],
    [['deploy', 'shop', 'extra'], /error: Unknown argument: extra/],
    [['deploy', 'shop', '--name', 'other'], /error: the name is given twice \(shop and other\): give it as the argument or with --name, once/],
    [['deploy', 'Bad_Name'], /error: invalid database name "Bad_Name"/],
    [['deploy', '--size', 'abc'], /error: --size must be a whole number of GB from 1 to 16384/],
    [['deploy', '--size', '0'], /error: --size must be a whole number/],
    [['deploy', '--size', '1.5'], /error: --size must be a whole number/],
    [['deploy', '--version', 'latest'], /error: --version must be a Postgres major version/],
    [['deploy', '--memory', String(MEMORY_MB_MIN - 1)], new RegExp(`error: --memory must be a whole number of MiB from ${MEMORY_MB_MIN} to ${MEMORY_MB_MAX}`)],
    [['deploy', '--memory', String(MEMORY_MB_MAX + 1)], /error: --memory must be a whole number of MiB/],
    [['deploy', '--memory', '512.5'], /error: --memory must be a whole number of MiB/],
    [['deploy', '--memory', 'lots'], /error: --memory must be a whole number of MiB/],
    [['ca', '--out'], /error: Not enough arguments following: out/],
    [['deploy', '--name'], /error: Not enough arguments following: name/],
    [['deploy', '--name', 'Bad_Name'], /error: invalid database name "Bad_Name"/],
    [['destroy'], /error: Not enough non-option arguments/],
    [['destroy', 'a', 'b'], /error: Unknown argument: b/],
    [['status', '--server'], /error: Not enough arguments following: server/],
    [['config'], /error: choose a config command/],
    [['config', 'set', 'server.default'], /error: Not enough non-option arguments/],
    [['info'], /error: Not enough non-option arguments/],
    [['url', 'Bad_Name'], /error: invalid database name "Bad_Name"/],
    [['logs', 'shop', '--since', 'yesterday'], /error: --since "yesterday" is not a duration/],
    [['logs', 'shop', '--since', '10x'], /error: --since "10x" is not a duration/],
    [['logs', 'shop', '--tail', '10001'], /error: --tail must be a whole number of lines from 0 to 10000, or all/],
    [['logs', 'shop', '--tail', 'some'], /error: --tail must be a whole number/],
    [['stop'], /error: Not enough non-option arguments/],
    [['restart', 'a', 'b'], /error: Unknown argument: b/],
    [['credentials'], /error: choose a credentials command/],
    [['credentials', 'rotate'], /error: Not enough non-option arguments/],
    [['credentials', 'rotate', 'shop', '--keep'], /error: Unknown argument: keep/],
    [['resize', 'shop'], /error: give --memory-mb, --cpus, --size or several of them/],
    [['resize', 'shop', '--cpus', '0'], /error: --cpus must be a number from 0.01/],
    [['export', 'shop', '--json'], /error: --json needs --output/],
    [['resize', 'shop', '--memory-mb', '0'], /error: --memory-mb must be a whole number of MiB from 256/],
    [['resize', 'shop', '--memory-mb', '1.5'], /error: --memory-mb must be a whole number of MiB/],
    [['resize', 'shop', '--memory-mb', 'lots'], /error: --memory-mb must be a whole number of MiB/],
    [['version', '--bogus'], /error: Unknown argument: bogus/],
  ];
  for (const [args, message] of usageErrors) {
    it(`exits 2 with help on stderr for: pgdb ${args.join(' ')}`, async () => {
      const run = await runPgdb(args);
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, message);
      assert.match(run.stderr, /--help/);
    });
  }
});

/** What yargs keeps of the parser pgdb builds: the internals these tests look at. */
interface YargsInternals {
  getInternalMethods(): {
    getCommandInstance(): { getCommands(): string[] };
    getUsageInstance(): { help(): string };
  };
}

describe('the parser pgdb builds', () => {
  const context = (environment: Partial<Environment> = {}): Context => ({
    stdout: new PassThrough(),
    stderr: new PassThrough(),
    stdin: new PassThrough(),
    environment: { configPath: '/nonexistent/pgdb/config.json', ...environment },
  });
  const internals = async (args: string[], environment: Partial<Environment> = {}) => {
    const parser = await buildParser(context(environment), args);
    return { parser, methods: (parser as unknown as YargsInternals).getInternalMethods() };
  };

  it('holds only the command a command line starts with, and every command otherwise', async () => {
    const registered = async (args: string[]) => (await internals(args)).methods.getCommandInstance().getCommands();
    assert.deepEqual(await registered(['status', '--json']), ['status', 'completion']);
    assert.deepEqual(await registered(['config', 'set', 'server.default', 'prod']), ['config', 'completion']);
    assert.deepEqual(await registered(['stop', 'shop']), ['stop', 'completion']);
    for (const args of [[], ['--help'], ['--verbose', 'status'], ['deplyo'], ['completion'], ['--get-yargs-completions', 'de']]) {
      assert.equal((await registered(args)).length, COMMAND_NAMES.length + 1, `pgdb ${args.join(' ')}`);
    }
  });

  it('prints the same help for a command held alone as among all (an option first makes it hold all)', async () => {
    const options = { environment: { configPath: await tempConfigPath() } };
    for (const name of COMMAND_NAMES) {
      const alone = await runPgdb([name, '--help'], options);
      assert.equal(alone.code, 0, alone.stderr);
      assert.match(alone.stdout, new RegExp(`^pgdb ${name}\\b`));
      assert.deepEqual(alone, await runPgdb(['--verbose', name, '--help'], options), `pgdb ${name} --help`);
    }
  });

  it("renders no help as a command's handler starts, and still for a usage error", async () => {
    const daemon = await new FakeDaemon(TOKEN).start();
    try {
      const renders = async (args: string[]) => {
        const { parser, methods } = await internals(args, { token: TOKEN, serverUrl: daemon.url });
        const usage = methods.getUsageInstance();
        const help = usage.help.bind(usage);
        let count = 0;
        usage.help = () => {
          count += 1;
          return help();
        };
        try {
          await parser.parseAsync(args, {}, () => undefined);
        } catch {
          // a usage error: failUsage() throws it
        }
        return count;
      };
      assert.equal(await renders(['status', '--json']), 0);
      assert.equal(daemon.requests.length, 1, 'the command ran');
      assert.ok((await renders(['status', '--bogus'])) > 0, 'a usage error shows help');
    } finally {
      await daemon.stop();
    }
  });
});

describe('commands against a daemon', () => {
  let daemon: FakeDaemon;
  let environment: Partial<Environment>;
  const pgdb = (args: string[], options: MemoryOptions = {}) =>
    runPgdb(args, { ...options, environment: { ...environment, ...options.environment } });

  before(async () => {
    daemon = await new FakeDaemon(TOKEN).start();
  });
  after(() => daemon.stop());
  beforeEach(() => {
    daemon.items.length = 0;
    daemon.detached.length = 0;
    daemon.requests.length = 0;
    environment = { token: TOKEN, serverUrl: daemon.url };
  });

  it('deploys and prints the connection lines, sending the options and the token', async () => {
    const run = await pgdb(['deploy', '--name', 'shop', '--size', '5', '--version', '16']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.deepEqual(
      run.stdout.split('\n').map((line) => line.split(':')[0]),
      ['name', 'host', 'port', 'db', 'user', 'password', 'DATABASE_URL', ''],
    );
    assert.match(run.stdout, /^name: shop$/m);
    const [request] = daemon.requests;
    assert.deepEqual(
      [request.method, request.url, request.authorization, request.body],
      ['POST', '/v1/deploy', `Bearer ${TOKEN}`, { name: 'shop', size_gb: 5, version: 16 }],
    );
  });

  it('takes the name as the argument too, as destroy and info do (pgdb deploy shop)', async () => {
    const run = await pgdb(['deploy', 'shop', '--size', '5', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(daemon.requests[0].body, { name: 'shop', size_gb: 5 });
  });

  it("restore --json prints deploy's shape (DATABASE_URL) and what a restore adds", async () => {
    const deployed = JSON.parse((await pgdb(['deploy', 'shop', '--json'])).stdout);
    const run = await pgdb(['restore', 'shop', '--as', 'shop-back', '--time', '2026-11-29T10:15:00Z', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const restored = JSON.parse(run.stdout);
    assert.deepEqual(Object.keys(restored), [...Object.keys(deployed), 'postgres_version', 'restored_from', 'target_time', 'target_backup']);
    assert.match(restored.DATABASE_URL, /^postgres(ql)?:\/\/.*sslmode=require/);
    assert.deepEqual([restored.name, restored.restored_from, restored.target_time, restored.target_backup], ['shop-back', 'shop', '2026-11-29T10:15:00Z', null]);
  });

  it('deploy --memory sends memory_mb', async () => {
    const run = await pgdb(['deploy', '--name', 'big', '--memory', '2048', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(daemon.requests[0].body, { name: 'big', memory_mb: 2048 });
  });

  it('lets the daemon choose what deploy leaves out', async () => {
    assert.equal((await pgdb(['deploy'])).code, 0);
    assert.deepEqual(daemon.requests[0].body, {});
  });

  it('deploy --json prints one JSON object with the documented keys and nothing else', async () => {
    const run = await pgdb(['deploy', '--name', 'shop', '--json']);
    assert.equal(run.code, 0);
    const json = JSON.parse(run.stdout);
    assert.deepEqual(Object.keys(json), ['name', 'host', 'port', 'db', 'user', 'password', 'DATABASE_URL']);
    assert.match(json.DATABASE_URL, /^postgres:\/\//);
  });

  it("status prints a table, and --json the daemon's answer", async () => {
    await pgdb(['deploy', '--name', 'shop']);
    const table = await pgdb(['status']);
    assert.match(table.stdout, /^NAME\s+VERSION\s+PORT\s+STATE\s+SIZE\s+CREATED$/m);
    assert.match(table.stdout, /^shop\s+17\s+40000\s+running\s+42 MB \/ 10 GB\s+2025-11-29 02:29 UTC$/m);
    const json = JSON.parse((await pgdb(['status', '--json'])).stdout);
    assert.deepEqual(json.items.map((item: { name: string }) => item.name), ['shop']);
    assert.deepEqual(json.detached_volumes, []);
  });

  it('destroy --yes removes the database; --keep-data asks the daemon to keep the volume', async () => {
    await pgdb(['deploy', '--name', 'shop']);
    const run = await pgdb(['destroy', 'shop', '--yes', '--keep-data', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { ok: true, name: 'shop', keep_data: true, backups_kept: false });
    assert.equal(daemon.requests.at(-1)?.url, '/v1/db/shop?keep_data=true');
    assert.match((await pgdb(['status'])).stdout, /kept data volumes[^]*pgdb-data-shop/);
  });

  it('destroy refuses without --yes when stdin is not a terminal, and with --json', async () => {
    await pgdb(['deploy', '--name', 'shop']);
    for (const [args, typed] of [[['destroy', 'shop'], undefined], [['destroy', 'shop', '--json'], ['shop']]] as const) {
      const run = await pgdb([...args], { typed: typed && [...typed] });
      assert.equal(run.code, 2);
      assert.match(run.stderr, /error: refusing to destroy "shop" without --yes/);
    }
    assert.equal(daemon.items.length, 1);
  });

  it('destroy on a terminal asks for the name and goes ahead only when it matches', async () => {
    await pgdb(['deploy', '--name', 'shop']);
    const wrong = await pgdb(['destroy', 'shop'], { typed: ['shp'] });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /ALL ITS DATA\.\nType the name to confirm: /);
    assert.match(wrong.stderr, /error: aborted/);
    assert.equal(daemon.items.length, 1);

    const noAnswer = await pgdb(['destroy', 'shop'], { typed: [] });
    assert.equal(noAnswer.code, 1);

    const right = await pgdb(['destroy', 'shop'], { typed: ['shop'] });
    assert.equal(right.code, 0, right.stderr);
    assert.equal(right.stdout, 'destroyed shop\n');
    assert.equal(daemon.items.length, 0);
  });

  it('selects a server by alias with --server', async () => {
    const other = await new FakeDaemon('other-token').start();
    try {
      const configPath = await tempConfigPath();
      await writeConfig(configPath, {
        servers: { default: { url: daemon.url }, other: { url: other.url, token: 'other-token' } },
      });
      const run = await pgdb(['deploy', '--server', 'other', '--name', 'there'], {
        environment: { configPath, token: undefined, serverUrl: undefined },
      });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(other.items.map((item) => item.name), ['there']);
      assert.equal(daemon.requests.length, 0);
    } finally {
      await other.stop();
    }
  });

  it('--verbose logs the requests on stderr and keeps stdout clean', async () => {
    const run = await pgdb(['status', '--json', '--verbose']);
    assert.equal(run.code, 0);
    assert.match(run.stderr, /^pgdb: server http:\/\/127\.0\.0\.1:\d+ \(from PGDB_SERVER_URL\), token from PGDB_TOKEN$/m);
    assert.match(run.stderr, /^pgdb: GET http:\/\/127\.0\.0\.1:\d+\/v1\/status answered 200 in \d+ ms$/m);
    assert.doesNotMatch(run.stderr, new RegExp(TOKEN));
    JSON.parse(run.stdout);
  });
});

describe('errors from the daemon', () => {
  let daemon: FakeDaemon;
  let environment: Partial<Environment>;
  const pgdb = (args: string[], overrides: Partial<Environment> = {}) =>
    runPgdb(args, { environment: { ...environment, ...overrides } });

  before(async () => {
    daemon = await new FakeDaemon(TOKEN).start();
    environment = { token: TOKEN, serverUrl: daemon.url };
  });
  after(() => daemon.stop());

  function assertFailure(run: { code: number; stdout: string; stderr: string }, message: string, hint: RegExp) {
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    const [first, second, ...rest] = run.stderr.split('\n');
    assert.equal(first, `error: ${message}`);
    assert.match(second, hint);
    assert.deepEqual(rest, ['']);
  }

  it('401: says the token does not match', async () => {
    const run = await pgdb(['status', '--json'], { token: 'wrong' });
    assertFailure(run, "unauthorized: PGDB_TOKEN does not match the server's", /^hint: the token came from PGDB_TOKEN/);
  });

  it("404: passes on the daemon's message and suggests pgdb status", async () => {
    const run = await pgdb(['destroy', 'ghost', '--yes']);
    assertFailure(run, 'database "ghost" does not exist', /^hint: run `pgdb status`/);
  });

  it('409: suggests another name', async () => {
    daemon.nextError = { status: 409, code: 'DB_ALREADY_EXISTS', message: 'database "shop" already exists' };
    const run = await pgdb(['deploy', '--name', 'shop', '--json']);
    assertFailure(run, 'database "shop" already exists', /^hint: choose another --name/);
  });

  it('503 and 504: point at Docker and the daemon log', async () => {
    daemon.nextError = { status: 503, code: 'DOCKER_UNAVAILABLE', message: 'Docker is not reachable' };
    assertFailure(await pgdb(['deploy']), 'Docker is not reachable', /docker ps/);
    daemon.nextError = { status: 504, code: 'POSTGRES_NOT_READY', message: 'Postgres did not become ready in 60 s' };
    assertFailure(await pgdb(['deploy']), 'Postgres did not become ready in 60 s', /journalctl -u pgdbd/);
  });

  it('--verbose adds the request and the status to an error', async () => {
    daemon.nextError = { status: 503, code: 'NO_FREE_PORT', message: 'no free port' };
    const run = await pgdb(['deploy', '--verbose']);
    assert.match(run.stderr, /^detail: POST http:\/\/127\.0\.0\.1:\d+\/v1\/deploy answered HTTP 503 \(NO_FREE_PORT\)$/m);
  });

  it('connection refused: names the URL and suggests checking the daemon and the firewall', async () => {
    const url = await closedPortUrl();
    const run = await pgdb(['status'], { serverUrl: url });
    assertFailure(run, `cannot reach pgdbd at ${url}: connection refused`, /systemctl status pgdbd.*firewall/);
  });

  it('a server that is not pgdbd', async () => {
    const proxy = createServer((_request, response) => response.writeHead(502).end('<html>Bad Gateway</html>'));
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const run = await pgdb(['status'], { serverUrl: url });
      assertFailure(run, `${url} did not answer like pgdbd`, /points at pgdbd's API port/);
    } finally {
      proxy.close();
    }
  });
});
