/**
 * Which daemon a command talks to, and with which token.
 *
 * URL: `--server <alias|url>`, else PGDB_SERVER_URL, else `server.default`.
 * Token: PGDB_TOKEN, else the token stored for a server with that same URL,
 * so a stored token is never sent to a URL it was not stored for.
 */
import {
  DEFAULT_ALIAS,
  normalizeServerUrl,
  origin,
  pinAt,
  readConfig,
  serverEntry,
  type ConfigFile,
  type Environment,
  type PinSlot,
} from './config.js';
import { CliError } from './errors.js';
import type { ServerPin } from './tls.js';

/** A daemon to talk to, before any token is involved. */
export interface Target {
  url: string;
  /** Where the URL came from, for messages: `--server prod`, `PGDB_SERVER_URL`, ... */
  urlSource: string;
  /** The alias to suggest in hints. */
  alias: string;
  /** Where a CA pinned for this server is stored: its alias's entry, or `pins` by origin for a bare URL. */
  pinSlot: PinSlot;
  /** The pinned CA (https only): the slot's own, else one stored for the same origin. */
  pin?: ServerPin;
  /** Where `pin` came from, for messages: `server.prod` or `pins["https://..."]`. */
  pinSource?: string;
}

export interface Server extends Target {
  token: string;
  /** Where the token came from, for messages: `PGDB_TOKEN` or `server.prod.token`. */
  tokenSource: string;
}

export async function resolveServer(environment: Environment, option: string | undefined): Promise<Server> {
  const config = lazily(() => readConfig(environment.configPath));
  const target = await locate(environment, option, config);
  if (environment.token) {
    return { ...target, token: environment.token, tokenSource: 'PGDB_TOKEN' };
  }
  const stored = storedToken(await config(), target);
  if (!stored) {
    throw new CliError(`no token for ${target.url}`, {
      hint: `export PGDB_TOKEN=<the daemon's token>, or store it with \`pgdb config set server.${target.alias}.token <token>\``,
    });
  }
  return { ...target, token: stored.token, tokenSource: `server.${stored.alias}.token` };
}

/** The server a command talks to, without a token (`pgdb ca` needs none). */
export function resolveTarget(environment: Environment, option: string | undefined): Promise<Target> {
  return locate(environment, option, lazily(() => readConfig(environment.configPath)));
}

async function locate(environment: Environment, option: string | undefined, config: () => Promise<ConfigFile>): Promise<Target> {
  const target = await whichUrl(environment, option, config);
  return target.url.startsWith('https:') ? { ...target, ...findPin(await config(), target) } : target;
}

async function whichUrl(
  environment: Environment,
  option: string | undefined,
  config: () => Promise<ConfigFile>,
): Promise<Target> {
  if (option !== undefined && /^https?:\/\//i.test(option)) {
    return bareUrl(normalizeServerUrl(option, '--server'), '--server');
  }
  if (option !== undefined) {
    return fromAlias(await config(), option, environment.configPath);
  }
  if (environment.serverUrl) {
    return bareUrl(normalizeServerUrl(environment.serverUrl, 'PGDB_SERVER_URL'), 'PGDB_SERVER_URL');
  }
  return fromAlias(await config(), DEFAULT_ALIAS, environment.configPath);
}

function bareUrl(url: string, urlSource: string): Target {
  return { url, urlSource, alias: DEFAULT_ALIAS, pinSlot: { origin: origin(url) } };
}

/** The slot's own pin, else a pin stored for the same origin under another alias or under `pins`. */
function findPin(config: ConfigFile, target: Target): Pick<Target, 'pin' | 'pinSource'> {
  const own = pinAt(config, target.pinSlot);
  if (own) {
    return { pin: own, pinSource: describeSlot(target.pinSlot) };
  }
  const wanted = origin(target.url);
  const slots: PinSlot[] = [...Object.keys(config.servers).map((alias) => ({ alias })), { origin: wanted }];
  for (const slot of slots) {
    const entry = 'alias' in slot ? serverEntry(config, slot.alias) : undefined;
    if (entry && !sameOrigin(entry.url, wanted)) continue;
    const pin = pinAt(config, slot);
    if (pin) return { pin, pinSource: describeSlot(slot) };
  }
  return {};
}

export function describeSlot(slot: PinSlot): string {
  return 'alias' in slot ? `server.${slot.alias}` : `pins["${slot.origin}"]`;
}

function fromAlias(config: ConfigFile, alias: string, configPath: string): Target {
  const entry = serverEntry(config, alias);
  if (entry) {
    const source = `server.${alias}`;
    const url = normalizeServerUrl(entry.url, `${source} in ${configPath}`);
    return { url, urlSource: source, alias, pinSlot: { alias } };
  }
  if (alias === DEFAULT_ALIAS) {
    throw new CliError('no server configured', {
      hint: 'run `pgdb config set server.default http://<host>:8080`, set PGDB_SERVER_URL, or pass --server <url>',
    });
  }
  const known = Object.keys(config.servers);
  throw new CliError(`unknown server alias "${alias}"`, {
    hint: `${known.length ? `configured: ${known.join(', ')}; ` : ''}add it with \`pgdb config set server.${alias} <url>\``,
  });
}

/** The target alias's own token first, then any other alias stored with the same URL. */
function storedToken(config: ConfigFile, target: Target): { alias: string; token: string } | undefined {
  const aliases = [target.alias, ...Object.keys(config.servers).filter((alias) => alias !== target.alias)];
  for (const alias of aliases) {
    const entry = serverEntry(config, alias);
    if (entry?.token && sameUrl(entry.url, target.url)) {
      return { alias, token: entry.token };
    }
  }
  return undefined;
}

function sameOrigin(stored: string, wanted: string): boolean {
  try {
    return origin(normalizeServerUrl(stored, 'stored URL')) === wanted;
  } catch {
    return false;
  }
}

function sameUrl(stored: string, url: string): boolean {
  try {
    return normalizeServerUrl(stored, 'stored URL') === url;
  } catch {
    return false;
  }
}

/** Reads the config file at most once, and only if something needs it. */
function lazily<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => (pending ??= load());
}
