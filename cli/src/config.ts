/**
 * The CLI's settings: the environment it runs in (environment.ts) and the
 * config file (`$XDG_CONFIG_HOME/pgdb/config.json`, default
 * `~/.config/pgdb/config.json`).
 *
 * The file is read
 * strictly (a corrupt file is an error naming its path, never replaced) and
 * written atomically with mode 0600, since it may hold tokens.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CliError, UsageError } from './errors.js';
import { KEY_ON_SERVER, normalizeFingerprint } from './fingerprint.js';
import { fingerprintOf, parseCertificate, pinProblem, type ServerPin } from './tls.js';

export { processEnvironment, type Environment, type InfraEnvironment } from './environment.js';

export interface ServerEntry {
  url: string;
  token?: string;
  /** The CA pinned for this server (PEM), kubeconfig-style; only that CA is trusted over https. */
  ca_cert?: string;
  /** `sha256:<hex>` of `ca_cert`. Alone (no `ca_cert`), the next connection completes the pin. */
  ca_fingerprint?: string;
  /** `sha256:<hex>` of the API's DER public key: the only key accepted for this server (see trust.ts). */
  api_key?: string;
}

export interface ConfigFile {
  servers: Record<string, ServerEntry>;
  /** `pgdb infra`'s Hetzner Cloud API token (`pgdb config set hcloud.token -`). */
  hcloud?: { token?: string };
  /**
   * CAs pinned for servers used by URL (`--server https://...`, PGDB_SERVER_URL)
   * rather than by alias, keyed by the URL's origin (`https://host:port`).
   */
  pins?: Record<string, ServerPin>;
  /** Keys written by other pgdb versions are kept as they are. */
  [key: string]: unknown;
}

export type ConfigKey = { alias: string; field: 'url' | 'token' | 'ca' | 'api_key' } | { alias?: undefined; field: 'hcloud.token' };

/** Where a server's pinned CA is stored: in its alias's entry, or under `pins` by origin. */
export type PinSlot = { alias: string } | { origin: string };

export const DEFAULT_ALIAS = 'default';
const ALIAS_PATTERN = /^[A-Za-z0-9_-]+$/;
const KEY_PATTERN = /^server\.([^.]+)(?:\.(token|ca|api_key))?$/;

function emptyConfig(): ConfigFile {
  return { servers: {} };
}

/** Reads the config file; a missing file is an empty config, anything unreadable is an error. */
export async function readConfig(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    // Read at every start: node:fs/promises, loaded only for writes, would cost more than this small read.
    text = readFileSync(path, 'utf8');
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
    for (const field of ['token', 'ca_cert', 'ca_fingerprint', 'api_key'] as const) {
      if (entry[field] !== undefined && typeof entry[field] !== 'string') {
        return `servers.${alias}.${field} must be a string`;
      }
    }
    const problem = pinProblem(entry);
    if (problem) {
      return `servers.${alias}: ${problem}`;
    }
  }
  if (data.pins !== undefined) {
    if (!isObject(data.pins)) {
      return '"pins" must be an object';
    }
    for (const [origin, pin] of Object.entries(data.pins)) {
      const fields = ['ca_cert', 'ca_fingerprint', 'api_key'] as const;
      const wellFormed =
        isObject(pin) &&
        fields.every((field) => pin[field] === undefined || typeof pin[field] === 'string') &&
        (pin.ca_cert === undefined) === (pin.ca_fingerprint === undefined) &&
        (pin.ca_cert !== undefined || pin.api_key !== undefined);
      if (!wellFormed) {
        return `pins["${origin}"] must be an object with string "ca_cert" and "ca_fingerprint", or "api_key"`;
      }
      const problem = pinProblem(pin);
      if (problem) {
        return `pins["${origin}"]: ${problem}`;
      }
    }
  }
  if (data.hcloud !== undefined && (!isObject(data.hcloud) || (data.hcloud.token !== undefined && typeof data.hcloud.token !== 'string'))) {
    return '"hcloud" must be an object with a string "token"';
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Replaces the file atomically (temp file + rename) with mode 0600, in a 0700 directory. */
export async function writeConfig(path: string, config: ConfigFile): Promise<void> {
  const { mkdir, rename, unlink, writeFile } = process.getBuiltinModule('node:fs/promises');
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // node:crypto is loaded here, not at start: reading the config needs none of it.
  const temp = `${path}.${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}.tmp`;
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
  if (key === 'hcloud.token') {
    return { field: 'hcloud.token' };
  }
  const match = KEY_PATTERN.exec(key);
  if (!match || !ALIAS_PATTERN.test(match[1])) {
    throw new UsageError(`unknown config key "${key}"`, {
      hint: 'keys are server.<alias> (a URL), server.<alias>.token, server.<alias>.ca (the pinned CA), server.<alias>.api_key (the pinned API key) and hcloud.token; an alias uses letters, digits, "-" and "_"',
    });
  }
  const field = match[2] === 'token' || match[2] === 'ca' || match[2] === 'api_key' ? match[2] : 'url';
  return { alias: match[1], field };
}

export function formatKey(key: ConfigKey): string {
  if (key.field === 'hcloud.token') return 'hcloud.token';
  return key.field === 'url' ? `server.${key.alias}` : `server.${key.alias}.${key.field}`;
}

/** Returns a new config with `key` set; a URL is validated and normalised first. */
export function setValue(config: ConfigFile, key: ConfigKey, value: string): ConfigFile {
  if (key.field === 'hcloud.token') {
    return { ...config, hcloud: { ...config.hcloud, token: value } };
  }
  const current = serverEntry(config, key.alias);
  let entry: ServerEntry;
  if (key.field === 'ca') {
    throw new UsageError(`${formatKey(key)} is set by connecting, not by \`config set\``, {
      hint: `run \`pgdb status --server ${key.alias} --ca-file <ca.pem>\` or \`--trust-fingerprint sha256:...\`; \`pgdb config unset ${formatKey(key)}\` forgets it`,
    });
  }
  if (key.field === 'url') {
    const url = normalizeServerUrl(value, formatKey(key));
    entry = { ...current, url };
    if (current && origin(current.url) !== origin(url)) {
      // The pin vouches for the server at the old address only, and the
      // token was meant for it: neither goes to a new address.
      delete entry.ca_cert;
      delete entry.ca_fingerprint;
      delete entry.api_key;
      delete entry.token;
    }
  } else if (current && key.field === 'api_key') {
    entry = { ...current, api_key: apiKeyFingerprint(value, formatKey(key)) };
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
  if (key.field === 'hcloud.token') {
    const { token: _token, ...hcloud } = config.hcloud ?? {};
    return { ...config, hcloud };
  }
  const servers = { ...config.servers };
  const current = serverEntry(config, key.alias);
  if (key.field === 'url') {
    delete servers[key.alias];
  } else if (current) {
    const entry = { ...current };
    if (key.field === 'token') {
      delete entry.token;
    } else if (key.field === 'api_key') {
      delete entry.api_key;
    } else {
      delete entry.ca_cert;
      delete entry.ca_fingerprint;
      delete entry.api_key;
    }
    servers[key.alias] = entry;
  }
  return { ...config, servers };
}

/** `server.<alias>.ca` reads as the pinned CA's fingerprint. */
export function getValue(config: ConfigFile, key: ConfigKey): string | undefined {
  if (key.field === 'hcloud.token') return config.hcloud?.token;
  const entry = serverEntry(config, key.alias);
  switch (key.field) {
    case 'url':
      return entry?.url;
    case 'token':
      return entry?.token;
    case 'ca':
      return entry?.ca_fingerprint ?? pinFingerprint(entry?.ca_cert);
    case 'api_key':
      return entry?.api_key;
  }
}

/**
 * An API key's fingerprint set by hand (as install.sh prints it, from
 * `api_key_fingerprint`, or from `sha256sum` on the server: `<hex>  -`).
 */
function apiKeyFingerprint(value: string, key: string): string {
  const fingerprint = normalizeFingerprint(value.replace(/\s+-$/, ''));
  if (!fingerprint) {
    throw new UsageError(`${key} must be sha256:<64 hex digits>, the SHA-256 of the API's public key, got "${value}"`, {
      hint: `read it from the server: ${KEY_ON_SERVER}`,
    });
  }
  return fingerprint;
}

/** Every stored key with its value, servers in file order: URL, token, pinned CA's fingerprint, pinned API key. */
export function listEntries(config: ConfigFile): Array<[string, string]> {
  const entries = Object.entries(config.servers).flatMap(([alias]) =>
    (['url', 'token', 'ca', 'api_key'] as const).flatMap((field): Array<[string, string]> => {
      const value = getValue(config, { alias, field });
      return value === undefined ? [] : [[formatKey({ alias, field }), value]];
    }),
  );
  if (config.hcloud?.token !== undefined) entries.push(['hcloud.token', config.hcloud.token]);
  return entries;
}

/** Stores what `pgdb infra bootstrap` learnt about a server under `alias`, replacing what was there. */
export function setServer(config: ConfigFile, alias: string, entry: ServerEntry): ConfigFile {
  if (!ALIAS_PATTERN.test(alias)) throw new UsageError(`invalid server alias "${alias}"`);
  return { ...config, servers: { ...config.servers, [alias]: { ...entry, url: normalizeServerUrl(entry.url, `server.${alias}`) } } };
}

export function removeServer(config: ConfigFile, alias: string): ConfigFile {
  const servers = { ...config.servers };
  delete servers[alias];
  return { ...config, servers };
}

function pinFingerprint(pem: string | undefined): string | undefined {
  const parsed = pem === undefined ? undefined : parseCertificate(pem);
  return parsed && fingerprintOf(parsed.certificate);
}

/** The pin stored in `slot`, if any. */
export function pinAt(config: ConfigFile, slot: PinSlot): ServerPin | undefined {
  if ('alias' in slot) {
    const entry = serverEntry(config, slot.alias);
    return entry?.ca_fingerprint === undefined && entry?.ca_cert === undefined && entry?.api_key === undefined
      ? undefined
      : { ca_cert: entry.ca_cert, ca_fingerprint: entry.ca_fingerprint, api_key: entry.api_key };
  }
  return config.pins && Object.hasOwn(config.pins, slot.origin) ? config.pins[slot.origin] : undefined;
}

/** Returns a new config with `pin` stored in `slot` (replacing what was there). */
export function withPin(config: ConfigFile, slot: PinSlot, pin: ServerPin): ConfigFile {
  const fields: ServerPin = {};
  for (const field of ['ca_cert', 'ca_fingerprint', 'api_key'] as const) if (pin[field] !== undefined) fields[field] = pin[field];
  if ('origin' in slot) {
    return { ...config, pins: { ...config.pins, [slot.origin]: fields } };
  }
  const entry = serverEntry(config, slot.alias);
  if (!entry) {
    throw new CliError(`server "${slot.alias}" disappeared from the config file while pgdb ran`);
  }
  const { ca_cert: _cert, ca_fingerprint: _fingerprint, api_key: _key, ...rest } = entry;
  return { ...config, servers: { ...config.servers, [slot.alias]: { ...rest, ...fields } } };
}

/** `https://host:port` of a server URL: what a TLS pin vouches for (the path does not matter). */
export function origin(url: string): string {
  return new URL(url).origin;
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
