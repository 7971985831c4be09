import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import type { ConfigFile } from '../config.js';
import type { Context } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { formatTable } from '../output.js';
import type { GlobalOptions } from './options.js';

type KeyOptions = GlobalOptions & { key: string };
type SetOptions = KeyOptions & { value: string };
type GetOptions = GlobalOptions & { key?: string };

const KEYS_HELP =
  'keys: server.<alias> (the daemon URL; "default" is used without --server), server.<alias>.token, server.<alias>.ca (the pinned CA: get and unset only), server.<alias>.api_key (the pinned API key, sha256:...), and hcloud.token (for pgdb infra)';

export function configCommand(context: Context): CommandModule<GlobalOptions, GlobalOptions> {
  return {
    command: 'config',
    describe: 'show or change the servers and tokens the CLI uses',
    builder: (yargs: Argv<GlobalOptions>) =>
      yargs
        .command(setCommand(context))
        .command(getCommand(context))
        .command(listCommand(context))
        .command(unsetCommand(context))
        .demandCommand(1, 'choose a config command')
        .epilogue(`${KEYS_HELP}\nfile: ${context.environment.configPath}`)
        .strict(),
    handler: () => undefined,
  };
}

function setCommand(context: Context): CommandModule<GlobalOptions, SetOptions> {
  return {
    command: 'set <key> <value>',
    describe: 'store a server URL or token',
    builder: (yargs: Argv<GlobalOptions>) =>
      yargs
        .positional('key', { type: 'string', demandOption: true, describe: KEYS_HELP })
        .positional('value', { type: 'string', demandOption: true, describe: 'a URL, or a token; "-" reads it from standard input' })
        .example('$0 config set server.default http://203.0.113.10:8080', 'the server used without --server')
        .example('$0 config set server.prod.token - <token-file', 'store the token for "prod" (file mode 0600), off the command line')
        .example('$0 config set hcloud.token -', 'paste the Hetzner Cloud API token for pgdb infra')
        .strict(),
    handler: (argv) => set(context, argv),
  };
}

function getCommand(context: Context): CommandModule<GlobalOptions, GetOptions> {
  return {
    command: 'get [key]',
    describe: 'print one stored value, or all of them',
    builder: (yargs: Argv<GlobalOptions>) =>
      yargs.positional('key', { type: 'string', describe: KEYS_HELP }).strict(),
    handler: (argv) => (argv.key === undefined ? list(context) : get(context, argv.key)),
  };
}

function listCommand(context: Context): CommandModule<GlobalOptions, GlobalOptions> {
  return {
    command: 'list',
    describe: 'print every stored value (tokens hidden)',
    builder: (yargs: Argv<GlobalOptions>) => yargs.strict(),
    handler: () => list(context),
  };
}

function unsetCommand(context: Context): CommandModule<GlobalOptions, KeyOptions> {
  return {
    command: 'unset <key>',
    describe: 'remove a stored value (removing server.<alias> removes its token too)',
    builder: (yargs: Argv<GlobalOptions>) =>
      yargs.positional('key', { type: 'string', demandOption: true, describe: KEYS_HELP }).strict(),
    handler: (argv) => unset(context, argv),
  };
}

/** The config file's module (with crypto and tls for pins), loaded when a config command runs. */
const settings = () => import('../config.js');

async function set(context: Context, argv: ArgumentsCamelCase<SetOptions>): Promise<void> {
  const { formatKey, parseKey, readConfig, setValue, writeConfig } = await settings();
  const key = parseKey(argv.key);
  const path = context.environment.configPath;
  // yargs hands a lone "-" over as "" (an empty value is never valid anyway).
  const fromStdin = argv.value === '-' || argv.value === '';
  const value = fromStdin ? await readValue(context, formatKey(key)) : argv.value;
  await writeConfig(path, setValue(await readConfig(path), key, value));
  context.stdout.write(`saved ${formatKey(key)} in ${path}\n`);
  if (key.field === 'token' && context.environment.token) {
    context.stderr.write('warning: PGDB_TOKEN is set and takes precedence over stored tokens\n');
  }
  if (key.field === 'hcloud.token' && context.environment.infra?.hcloudToken) {
    context.stderr.write('warning: HCLOUD_TOKEN is set and takes precedence over the stored hcloud.token\n');
  }
}

/**
 * The value of `config set <key> -`: standard input without its final line
 * break (on a terminal, the first line typed). Secrets then stay off the
 * command line and out of the shell's history.
 */
async function readValue(context: Context, key: string): Promise<string> {
  const { stdin } = context;
  let text: string;
  if (stdin.isTTY) {
    context.stderr.write(`${key}: `);
    text = await firstLine(stdin);
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
    text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  if (text.trim() === '' || text.includes('\n')) {
    throw new UsageError(`${key}: standard input must hold one non-empty line`, {
      hint: `e.g. printf '%s' "$VALUE" | pgdb config set ${key} -`,
    });
  }
  return text.trim();
}

async function firstLine(input: NodeJS.ReadableStream): Promise<string> {
  // Loaded when a value is read from stdin; the bundle cannot import() (see cli/bin/pgdb.cts).
  const { createInterface } = process.getBuiltinModule('node:readline');
  const readline = createInterface({ input, terminal: false });
  try {
    for await (const line of readline) return line;
    return '';
  } finally {
    readline.close();
  }
}

async function get(context: Context, rawKey: string): Promise<void> {
  const { getValue, parseKey, readConfig } = await settings();
  const key = parseKey(rawKey);
  const value = getValue(await readConfig(context.environment.configPath), key);
  if (value === undefined) {
    throw notSet(rawKey, context);
  }
  context.stdout.write(`${value}\n`);
}

async function list(context: Context): Promise<void> {
  const { listEntries, readConfig } = await settings();
  const { configPath, serverUrl, token } = context.environment;
  const entries = listEntries(await readConfig(configPath)).map(([key, value]) => [
    key,
    key.endsWith('.token') ? '(hidden)' : value,
  ]);
  context.stdout.write(entries.length ? formatTable(['KEY', 'VALUE'], entries) : `nothing stored in ${configPath}\n`);
  if (serverUrl) {
    context.stderr.write(`note: PGDB_SERVER_URL=${serverUrl} replaces server.default\n`);
  }
  if (token) {
    context.stderr.write('note: PGDB_TOKEN is set and takes precedence over stored tokens\n');
  }
}

async function unset(context: Context, argv: ArgumentsCamelCase<KeyOptions>): Promise<void> {
  const { formatKey, getValue, parseKey, readConfig, unsetValue, writeConfig } = await settings();
  const key = parseKey(argv.key);
  const path = context.environment.configPath;
  const config: ConfigFile = await readConfig(path);
  if (getValue(config, key) === undefined) {
    throw notSet(argv.key, context);
  }
  await writeConfig(path, unsetValue(config, key));
  context.stdout.write(`removed ${formatKey(key)} from ${path}\n`);
}

function notSet(key: string, context: Context): CliError {
  return new CliError(`${key} is not set`, {
    hint: `\`pgdb config list\` shows what ${context.environment.configPath} holds`,
  });
}
