/**
 * Stand-in for the `command` provider plugin in tests (the real one cannot be
 * had here): what infra/ uses of `command:remote:Command` and
 * `command:remote:CopyToRemote`, over real SSH (ssh2). As the real provider
 * (command 1.2.1) does: a dial is retried on any error, 100 ms after the
 * first try and 1.5 times longer each time up to 5 s, and given up when
 * `dialErrorLimit` retries failed ("after N failed attempts: <error>");
 * only `triggers` replaces a resource, any other changed input updates it in
 * place, which runs `update`, or `create` again when there is none (a copy
 * is made again when its source or path changed); `delete` runs on delete;
 * stdout/stderr are reported.
 */
import { readFile } from 'node:fs/promises';
import { main, type Provider } from '@pulumi/pulumi/provider/index.js';
import { Client, type ConnectConfig } from 'ssh2';
import { diffResult, pluginVersion, reveal, typeOf } from './protocol.js';

type Json = Record<string, any>;

const ASSET_SIG = 'c44067f5952c0a294b673a41bacd8c17';

interface Connection {
  host: string;
  port?: number;
  user?: string;
  privateKey?: string;
  password?: string;
  dialErrorLimit?: number;
  perDialTimeout?: number;
}

async function connect(connection: Connection): Promise<Client> {
  const port = connection.port ?? 22;
  const limit = connection.dialErrorLimit ?? 10;
  // Retries as the real provider counts them: the first dial, then one per
  // failure until more than `limit` dials failed; -1 means no limit.
  for (let tries = 0; ; tries += 1) {
    try {
      return await dialOnce(connection, port);
    } catch (error) {
      if (limit >= 0 && tries + 1 > limit) throw new Error(`after ${tries} failed attempts: ${(error as Error).message}`);
      // Pulumi's retry.Until defaults, which the real provider keeps: 100 ms, times 1.5 each try, at most 5 s.
      await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 1.5 ** tries, 5000)));
    }
  }
}

function dialOnce(connection: Connection, port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const config: ConnectConfig = {
      host: connection.host,
      port,
      username: connection.user ?? 'root',
      privateKey: connection.privateKey,
      password: connection.password,
      readyTimeout: (connection.perDialTimeout ?? 15) * 1000,
    };
    client.once('ready', () => resolve(client));
    client.once('error', (error: Error & { code?: string; level?: string }) => {
      client.end();
      // Go's wording, as the real provider reports it.
      if (error.code === 'ECONNREFUSED') reject(new Error(`dial tcp ${connection.host}:${port}: connect: connection refused`));
      else if (error.code === 'ETIMEDOUT' || /Timed out/.test(error.message)) reject(new Error(`dial tcp ${connection.host}:${port}: i/o timeout`));
      else if (error.level === 'client-authentication') reject(new Error('ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain'));
      else reject(error);
    });
    client.connect(config);
  });
}

function run(client: Client, command: string, stdin?: string): Promise<{ code: number; stdout: string; stderr: string; both: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, stream) => {
      if (error) return reject(error);
      let stdout = '';
      let stderr = '';
      // Both streams in the order they arrived, as the real provider keeps them for its error.
      let both = '';
      stream.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        both += chunk.toString('utf8');
      });
      stream.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        both += chunk.toString('utf8');
      });
      stream.on('close', (code: number | null) => resolve({ code: code ?? -1, stdout, stderr, both }));
      stream.end(stdin ?? '');
    });
  });
}

/** A string as Go's %q writes it (for the ASCII and UTF-8 text of scripts: JSON's escapes are Go's, bar a few it never meets here). */
function goQuoted(text: string): string {
  return JSON.stringify(text).replace(/\\u00([0-7][0-9a-f])/g, '\\x$1');
}

async function runCommand(connection: Connection, command: string, stdin?: string): Promise<{ stdout: string; stderr: string }> {
  const client = await connect(connection);
  try {
    const result = await run(client, command, stdin);
    if (result.code !== 0) {
      // The real provider's shape (observed with command 1.2.1): Go's ssh error, the command
      // Go-quoted (%q), then all of the output. The command is in it, secrets or not.
      throw new Error(`Process exited with status ${result.code}: running ${goQuoted(command)}:\n${result.both}`);
    }
    return { stdout: result.stdout.replace(/\n$/, ''), stderr: result.stderr.replace(/\n$/, '') };
  } finally {
    client.end();
  }
}

async function upload(connection: Connection, localPath: string, remotePath: string): Promise<void> {
  const data = await readFile(localPath);
  const client = await connect(connection);
  try {
    await new Promise<void>((resolve, reject) => {
      client.sftp((error, sftp) => {
        if (error) return reject(error);
        sftp.writeFile(remotePath, data, { mode: 0o600 }, (writeError) => (writeError ? reject(writeError) : resolve()));
      });
    });
  } finally {
    client.end();
  }
}

function assetPath(source: Json): string {
  if (!source || source['4dabf18193072939515e22adb298388d'] !== ASSET_SIG || typeof source.path !== 'string') {
    throw new Error('the command stand-in copies file assets (pulumi.asset.FileAsset) only');
  }
  return source.path;
}

/** Only `triggers` is `replaceOnChanges` in the real provider's schema; the rest update in place. */
const REPLACING = ['triggers'];
const COMMAND_UPDATING = ['connection', 'create', 'update', 'delete', 'stdin', 'environment', 'logging', 'addPreviousOutputInEnv'];
const COPY_UPDATING = ['connection', 'source', 'remotePath'];

const provider: Provider = {
  version: pluginVersion('@pulumi/command'),
  async check(urn, _olds, news) {
    const type = typeOf(urn);
    if (type !== 'command:remote:Command' && type !== 'command:remote:CopyToRemote') {
      throw new Error(`the command stand-in does not implement ${type}`);
    }
    return { inputs: news };
  },
  async diff(_id, urn, olds, news) {
    const updating = typeOf(urn) === 'command:remote:Command' ? COMMAND_UPDATING : COPY_UPDATING;
    return diffResult(reveal(olds), reveal(news), updating, REPLACING);
  },
  async create(urn, inputs) {
    const plain = reveal(inputs) as Json;
    const id = `${Date.now()}${Math.floor(Math.random() * 1000)}`;
    if (typeOf(urn) === 'command:remote:CopyToRemote') {
      await upload(plain.connection, assetPath(plain.source), plain.remotePath);
      return { id, outs: inputs };
    }
    const output = plain.create ? await runCommand(plain.connection, plain.create, plain.stdin) : { stdout: '', stderr: '' };
    return { id, outs: { ...inputs, ...output } };
  },
  async read(id, _urn, props) {
    return { id, props, inputs: props };
  },
  async update(_id, urn, olds, news) {
    const plain = reveal(news) as Json;
    if (typeOf(urn) === 'command:remote:CopyToRemote') {
      const old = reveal(olds) as Json;
      if (JSON.stringify(old.source) !== JSON.stringify(plain.source) || old.remotePath !== plain.remotePath) {
        await upload(plain.connection, assetPath(plain.source), plain.remotePath);
      }
      return { outs: news };
    }
    const script = plain.update ?? plain.create;
    if (script) return { outs: { ...news, ...(await runCommand(plain.connection, script, plain.stdin)) } };
    return { outs: { ...news, stdout: olds.stdout ?? '', stderr: olds.stderr ?? '' } };
  },
  async delete(_id, urn, props) {
    const plain = reveal(props) as Json;
    if (typeOf(urn) === 'command:remote:Command' && plain.delete) await runCommand(plain.connection, plain.delete);
  },
};

await main(provider, process.argv.slice(2));
