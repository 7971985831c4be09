/**
 * The CLI's one way into infra/: a dynamic import() of infra/commands.js,
 * made only when an infra command runs, so that `pgdb --help` and the other
 * commands never load Pulumi. Errors from infra become CLI errors here.
 */

/**
 * In the bundle, the executable's own import() (cli/bin/pgdb.cts): node:vm,
 * which runs the bundle, gives its code no import() of its own. Undefined in
 * tsc's output. A specifier relative to dist/cli/bin, where both live.
 */
declare const __pgdb_import: ((specifier: string) => Promise<unknown>) | undefined;
import { dirname } from 'node:path';
import type * as Infra from '../../infra/commands.js';
import type { Context } from './context.js';
import { CliError } from './errors.js';

export type InfraModule = typeof Infra;

export interface InfraRun {
  infra: InfraModule;
  context: Infra.InfraContext;
  /** Where the token came from, for messages. */
  tokenSource?: string;
}

/** Loads infra and runs `action`; its failures come out as one CliError with a hint. */
export async function withInfra<T>(context: Context, verbose: boolean, action: (run: InfraRun) => Promise<T>): Promise<T> {
  let infra: InfraModule;
  try {
    // ../../infra/commands.js is the same file from dist/cli/src (this module in tsc's output) and from dist/cli/bin.
    infra = typeof __pgdb_import === 'function' ? ((await __pgdb_import('../../infra/commands.js')) as InfraModule) : await import('../../infra/commands.js');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && /@pulumi\//.test((error as Error).message)) {
      throw new CliError('pgdb infra needs the Pulumi packages, which are not installed', {
        hint: 'they are optional dependencies: install the CLI with them (`npm install -g --include=optional pgdb-<version>.tgz`), or run `npm install --include=optional` in a checkout',
        cause: error,
      });
    }
    throw error;
  }
  const environment = context.environment;
  const infraEnv = environment.infra ?? { cacheDir: `${dirname(environment.configPath)}/cache` };
  let hcloudToken = infraEnv.hcloudToken;
  let tokenSource = hcloudToken ? 'HCLOUD_TOKEN' : undefined;
  if (!hcloudToken) {
    const { readConfig } = await import('./config.js');
    hcloudToken = (await readConfig(environment.configPath)).hcloud?.token;
    tokenSource = hcloudToken ? 'hcloud.token' : undefined;
  }
  const run: InfraRun = {
    infra,
    tokenSource,
    context: {
      env: {
        configDir: dirname(environment.configPath),
        cacheDir: infraEnv.cacheDir,
        path: infraEnv.path,
        pulumiBinary: infraEnv.pulumiBinary,
        backendUrl: infraEnv.backendUrl,
        passphrase: infraEnv.passphrase,
        passphraseFile: infraEnv.passphraseFile,
        hcloudToken,
        hcloudEndpoint: infraEnv.hcloudEndpoint,
      },
      io: { log: (line) => void context.stderr.write(`${line}\n`), verbose },
    },
  };
  try {
    return await action(run);
  } catch (error) {
    if (error instanceof infra.InfraError) {
      throw new CliError(error.message, { hint: error.hint, detail: error.detail });
    }
    throw error;
  }
}
