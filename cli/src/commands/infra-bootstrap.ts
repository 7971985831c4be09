import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import {
  checkStackName,
  DAEMON_ENV_ALLOWED,
  parseDaemonEnv,
  readBackupSecrets,
  SERVER_BACKUP_KEY_FILE,
  SERVER_S3_ACCESS_KEY_FILE,
  SERVER_S3_SECRET_KEY_FILE,
} from '../../../infra/options.js';
import type { Context } from '../context.js';
import { withInfra } from '../infra.js';
import { formatJson } from '../output.js';
import { withStackOption } from './infra.js';
import type { GlobalOptions } from './options.js';

interface BootstrapOptions extends GlobalOptions {
  name: string;
  'daemon-env'?: string[];
  's3-access-key-file'?: string;
  's3-secret-key-file'?: string;
  'backup-key-file'?: string;
  json: boolean;
}

export function infraBootstrapCommand(context: Context): CommandModule<GlobalOptions, BootstrapOptions> {
  return {
    command: 'bootstrap',
    describe: "install (or upgrade) pgdbd on the stack's server over SSH, and store it as a server alias",
    builder: (yargs: Argv<GlobalOptions>) =>
      withStackOption(yargs)
        .option('daemon-env', {
          type: 'string',
          array: true,
          requiresArg: true,
          describe: `extra pgdbd settings for install.sh, KEY=VALUE (${DAEMON_ENV_ALLOWED.join(', ')}) [default: as before]`,
        })
        .option('s3-access-key-file', {
          type: 'string',
          requiresArg: true,
          describe: `local file with the S3 access key: written to ${SERVER_S3_ACCESS_KEY_FILE} (0600) on the server [default: as before]`,
        })
        .option('s3-secret-key-file', {
          type: 'string',
          requiresArg: true,
          describe: `local file with the S3 secret key: written to ${SERVER_S3_SECRET_KEY_FILE} (0600) on the server [default: as before]`,
        })
        .option('backup-key-file', {
          type: 'string',
          requiresArg: true,
          describe: `local file with a backup key (\`pgdb backup key\` of a lost server): written to ${SERVER_BACKUP_KEY_FILE} when absent; a different key there is refused`,
        })
        .option('json', { type: 'boolean', default: false, describe: 'print one JSON document on stdout (includes the token)' })
        .check((argv) => {
          checkStackName(argv.name);
          readBackupSecrets(secretFiles(argv), parseDaemonEnv(argv['daemon-env'] ?? []));
          return true;
        })
        .example('$0 infra bootstrap', 'install pgdbd on the server of the stack "pgdb"; then `pgdb deploy --server pgdb`')
        .example(
          '$0 infra bootstrap --daemon-env PGDB_BACKUP_S3_ENDPOINT=fsn1.your-objectstorage.com --daemon-env PGDB_BACKUP_S3_BUCKET=pgdb-backups --daemon-env PGDB_BACKUP_S3_REGION=fsn1 --s3-access-key-file s3.access --s3-secret-key-file s3.secret',
          'backups to Hetzner Object Storage; the keys are copied to the server',
        )
        .strict(),
    handler: (argv) => bootstrap(context, argv),
  };
}

async function bootstrap(context: Context, argv: ArgumentsCamelCase<BootstrapOptions>): Promise<void> {
  const daemonEnv = argv['daemon-env'] === undefined ? undefined : parseDaemonEnv(argv['daemon-env']);
  const secrets = readBackupSecrets(secretFiles(argv), daemonEnv);
  const result = await withInfra(context, argv.verbose, ({ infra, context: infraContext }) =>
    infra.bootstrap(infraContext, { stack: argv.name, daemonEnv, secrets }),
  );
  const path = context.environment.configPath;
  const entry = {
    url: result.url,
    token: result.token,
    ...(result.caCert ? { ca_cert: result.caCert, ca_fingerprint: result.caFingerprint } : {}),
  };
  const { readConfig, setServer, writeConfig } = await import('../config.js');
  await writeConfig(path, setServer(await readConfig(path), argv.name, entry));
  if (argv.json) {
    context.stdout.write(
      formatJson({
        ...result.outputs,
        alias: argv.name,
        url: result.url,
        token: result.token,
        ca_fingerprint: result.caFingerprint ?? null,
        release: result.releaseId,
        s3_key_files: result.secretFiles.s3Keys ?? null,
        backup_key_file: result.secretFiles.backupKey ?? null,
        changes: result.changes,
      }),
    );
    return;
  }
  context.stdout.write(
    [
      `pgdbd answers on ${result.url} (release ${result.releaseId}; ${result.summary})`,
      ...(result.caFingerprint ? [`its CA: ${result.caFingerprint}`] : []),
      ...(result.secretFiles.s3Keys ? [`S3 keys on the server: ${result.secretFiles.s3Keys.join(' and ')} (0600)`] : []),
      ...(result.secretFiles.backupKey ? [`backup key on the server: ${result.secretFiles.backupKey} (0600)`] : []),
      `saved as server "${argv.name}" (URL and token) in ${path}`,
      `next: pgdb deploy --server ${argv.name}`,
      '',
    ].join('\n'),
  );
}

function secretFiles(argv: Pick<BootstrapOptions, 's3-access-key-file' | 's3-secret-key-file' | 'backup-key-file'>) {
  return { s3AccessKeyFile: argv['s3-access-key-file'], s3SecretKeyFile: argv['s3-secret-key-file'], backupKeyFile: argv['backup-key-file'] };
}
