/**
 * The CLI's settings: the environment it runs in and the config file
 * (`$XDG_CONFIG_HOME/pgdb/config.json`, default `~/.config/pgdb/config.json`).
 *
 * This is the only CLI module that reads `process.env`. The file is read
 * strictly (a corrupt file is an error naming its path, never replaced) and
 * written atomically with mode 0600, since it may hold tokens.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError, UsageError } from './errors.js';

export interface Environment {
  /** PGDB_TOKEN: the daemon's bearer token; wins over stored tokens. */
  token?: string;
  /** PGDB_SERVER_URL: replaces the default server's URL. */
  serverUrl?: string;
  configPath: string;
}

export interface ServerEntry {
  url: string;
  token?: string;
}

export interface ConfigFile {
  servers: Record<string, ServerEntry>;
  /** Keys written by other pgdb versions are kept as they are. */
  [key: string]: unknown;
}

export type ConfigKey = { alias: string; field: 'url' | 'token' };

export const DEFAULT_ALIAS = 'default';
const ALIAS_PATTERN = /^[A-Za-z0-9_-]+$/;
const KEY_PATTERN = /^server\.([^.]+)(\.token)?$/;

export function processEnvironment(): Environment {
  const env = process.env;
  const configHome = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return {
    token: env.PGDB_TOKEN || undefined,
    serverUrl: env.PGDB_SERVER_URL || undefined,
    configPath: join(configHome, 'pgdb', 'config.json'),
  };
}

function emptyConfig(): ConfigFile {
  return { servers: {} };
}

/** Reads the config file; a missing file is an empty config, anything unreadable is an error. */
export async function readConfig(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return emptyConfig();
    }
    throw new CliError(`cannot read config file ${path}: ${(error as Error).message}`, {
      hint: 'check the file permissions',
      cause: error,
    });
  }
  return parseConfig(text, path);
}

function parseConfig(text: string, path: string): ConfigFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw corrupt(path, `not valid JSON (${(error as Error).message})`, error);
  }
  const problem = shapeProblem(data);
  if (problem) {
    throw corrupt(path, problem);
  }
  return data as ConfigFile;
}

function corrupt(path: string, problem: string, cause?: unknown): CliError {
  return new CliError(`config file ${path} is corrupt: ${problem}`, {
    hint: `fix or delete it by hand; pgdb will not overwrite it (expected {"servers": {"default": {"url": "http://host:port"}}})`,
    cause,
  });
}

function shapeProblem(data: unknown): string | undefined {
  if (!isObject(data)) {
    return 'the top level must be a JSON object';
  }
  if (!isObject(data.servers)) {
    return '"servers" must be an object';
  }
  for (const [alias, entry] of Object.entries(data.servers)) {
    if (!isObject(entry) || typeof entry.url !== 'string') {
      return `servers.${alias} must be an object with a string "url"`;
    }
    if (entry.token !== undefined && typeof entry.token !== 'string') {
      return `servers.${alias}.token must be a string`;
    }
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Replaces the file atomically (temp file + rename) with mode 0600, in a 0700 directory. */
export async function writeConfig(path: string, config: ConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new CliError(`cannot write config file ${path}: ${(error as Error).message}`, {
      hint: 'check that the directory is writable',
      cause: error,
    });
  }
}

/** The entry stored under `alias`, ignoring anything inherited from Object.prototype. */
export function serverEntry(config: ConfigFile, alias: string): ServerEntry | undefined {
  return Object.hasOwn(config.servers, alias) ? config.servers[alias] : undefined;
}

export function parseKey(key: string): ConfigKey {
  const match = KEY_PATTERN.exec(key);
  if (!match || !ALIAS_PATTERN.test(match[1])) {
    throw new UsageError(`unknown config key "${key}"`, {
      hint: 'keys are server.<alias> (a URL) and server.<alias>.token; an alias uses letters, digits, "-" and "_"',
    });
  }
  return { alias: match[1], field: match[2] ? 'token' : 'url' };
}

export function formatKey({ alias, field }: ConfigKey): string {
  return field === 'url' ? `server.${alias}` : `server.${alias}.token`;
}

/** Returns a new config with `key` set; a URL is validated and normalised first. */
export function setValue(config: ConfigFile, key: ConfigKey, value: string): ConfigFile {
  const current = serverEntry(config, key.alias);
  let entry: ServerEntry;
  if (key.field === 'url') {
    entry = { ...current, url: normalizeServerUrl(value, formatKey(key)) };
  } else if (current) {
    entry = { ...current, token: value };
  } else {
    throw new CliError(`server "${key.alias}" has no URL yet`, {
      hint: `run \`pgdb config set server.${key.alias} <url>\` first`,
    });
  }
  return { ...config, servers: { ...config.servers, [key.alias]: entry } };
}

/** Returns a new config without `key`; removing a server's URL removes the server. */
export function unsetValue(config: ConfigFile, key: ConfigKey): ConfigFile {
  const servers = { ...config.servers };
  const current = serverEntry(config, key.alias);
  if (key.field === 'url') {
    delete servers[key.alias];
  } else if (current) {
    servers[key.alias] = { url: current.url };
  }
  return { ...config, servers };
}

export function getValue(config: ConfigFile, key: ConfigKey): string | undefined {
  const entry = serverEntry(config, key.alias);
  return key.field === 'url' ? entry?.url : entry?.token;
}

/** Every stored key with its value, servers in file order, each URL before its token. */
export function listEntries(config: ConfigFile): Array<[string, string]> {
  return Object.entries(config.servers).flatMap(([alias, entry]): Array<[string, string]> => {
    const url: [string, string] = [formatKey({ alias, field: 'url' }), entry.url];
    return entry.token === undefined ? [url] : [url, [formatKey({ alias, field: 'token' }), entry.token]];
  });
}

/** Accepts http(s) URLs only; drops a trailing slash so URLs compare equal. */
export function normalizeServerUrl(raw: string, source: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidUrl(raw, source);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash) {
    throw invalidUrl(raw, source);
  }
  return url.href.replace(/\/+$/, '');
}

function invalidUrl(raw: string, source: string): CliError {
  return new UsageError(`${source} is not a valid server URL: "${raw}"`, {
    hint: "use the daemon's base URL, e.g. http://203.0.113.10:8080",
  });
}
