/**
 * The environment the CLI runs in. This is the only CLI module that reads
 * `process.env`; it imports nothing heavy, since every start reads it.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Environment {
  /** PGDB_TOKEN: the daemon's bearer token; wins over stored tokens. */
  token?: string;
  /** PGDB_SERVER_URL: replaces the default server's URL. */
  serverUrl?: string;
  configPath: string;
  /** What `pgdb infra` reads; only it uses these. */
  infra?: InfraEnvironment;
}

export interface InfraEnvironment {
  /** HCLOUD_TOKEN: wins over the stored hcloud.token. */
  hcloudToken?: string;
  /** HCLOUD_ENDPOINT: another Hetzner Cloud API (the provider reads it too). */
  hcloudEndpoint?: string;
  /** PULUMI_BACKEND_URL: where Pulumi state lives instead of the config directory. */
  backendUrl?: string;
  /** PULUMI_CONFIG_PASSPHRASE(_FILE): instead of the passphrase pgdb generates. */
  passphrase?: string;
  passphraseFile?: string;
  /** PGDB_PULUMI: a pulumi binary to use instead of the one on PATH. */
  pulumiBinary?: string;
  path?: string;
  /** `$XDG_CACHE_HOME/pgdb` (default ~/.cache/pgdb): the Pulumi CLI pgdb installs, release archives. */
  cacheDir: string;
}

export function processEnvironment(): Environment {
  const env = process.env;
  const configHome = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return {
    token: env.PGDB_TOKEN || undefined,
    serverUrl: env.PGDB_SERVER_URL || undefined,
    configPath: join(configHome, 'pgdb', 'config.json'),
    infra: {
      hcloudToken: env.HCLOUD_TOKEN || undefined,
      hcloudEndpoint: env.HCLOUD_ENDPOINT || undefined,
      backendUrl: env.PULUMI_BACKEND_URL || undefined,
      passphrase: env.PULUMI_CONFIG_PASSPHRASE,
      passphraseFile: env.PULUMI_CONFIG_PASSPHRASE_FILE || undefined,
      pulumiBinary: env.PGDB_PULUMI || undefined,
      path: env.PATH,
      cacheDir: join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'pgdb'),
    },
  };
}
