/**
 * Which daemon a command talks to, and with which token.
 *
 * URL: `--server <alias|url>`, else PGDB_SERVER_URL, else `server.default`.
 * Token: PGDB_TOKEN, else the token stored for a server with that same URL,
 * so a stored token is never sent to a URL it was not stored for.
 */
import { DEFAULT_ALIAS, normalizeServerUrl, readConfig, serverEntry, type ConfigFile, type Environment } from './config.js';
import { CliError } from './errors.js';

export interface Server {
  url: string;
  token: string;
  /** Where the URL came from, for messages: `--server prod`, `PGDB_SERVER_URL`, ... */
  urlSource: string;
  /** Where the token came from, for messages: `PGDB_TOKEN` or `server.prod.token`. */
  tokenSource: string;
  /** The alias to suggest in hints. */
  alias: string;
}

type Target = Omit<Server, 'token' | 'tokenSource'>;

export async function resolveServer(environment: Environment, option: string | undefined): Promise<Server> {
  const config = lazily(() => readConfig(environment.configPath));
  const target = await resolveTarget(environment, option, config);
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

async function resolveTarget(
  environment: Environment,
  option: string | undefined,
  config: () => Promise<ConfigFile>,
): Promise<Target> {
  if (option !== undefined && /^https?:\/\//i.test(option)) {
    return { url: normalizeServerUrl(option, '--server'), urlSource: '--server', alias: DEFAULT_ALIAS };
  }
  if (option !== undefined) {
    return fromAlias(await config(), option, environment.configPath);
  }
  if (environment.serverUrl) {
    const url = normalizeServerUrl(environment.serverUrl, 'PGDB_SERVER_URL');
    return { url, urlSource: 'PGDB_SERVER_URL', alias: DEFAULT_ALIAS };
  }
  return fromAlias(await config(), DEFAULT_ALIAS, environment.configPath);
}

function fromAlias(config: ConfigFile, alias: string, configPath: string): Target {
  const entry = serverEntry(config, alias);
  if (entry) {
    const source = `server.${alias}`;
    return { url: normalizeServerUrl(entry.url, `${source} in ${configPath}`), urlSource: source, alias };
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
