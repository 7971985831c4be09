/**
 * What `npm run bench:cli` times as the floor of a yargs CLI: `status
 * --json` written plainly with yargs. One command with pgdb's global and
 * server options, strict, with help; its handler is the bare GET of
 * /v1/status, printed. The bench bundles it the way the build bundles the
 * CLI (cli/build/bundle.ts, with the same stand-ins) and runs it through the
 * same executable and code cache, so that the rows differ by pgdb's own code.
 * (pgdb does one thing less than this: it turns off yargs' laying out of a
 * command's help ahead of its handler, see cli/src/main.ts.)
 */
import yargs from 'yargs';

/** The entry point, as cli/bin/entry.ts's. */
export async function run(): Promise<void> {
  await yargs()
    .scriptName('pgdb')
    .option('verbose', { type: 'boolean', default: false, global: true })
    .version(false)
    .help()
    .strict()
    .exitProcess(false)
    .command(
      'status',
      'list the databases on a server',
      (command) =>
        command
          .option('server', { type: 'string', requiresArg: true })
          .option('json', { type: 'boolean', default: false })
          .option('trust-fingerprint', { type: 'string', requiresArg: true })
          .option('ca-file', { type: 'string', requiresArg: true })
          .option('insecure', { type: 'boolean', default: false }),
      () => getStatus(process.env.PGDB_SERVER_URL ?? '', process.env.PGDB_TOKEN ?? ''),
    )
    .parseAsync(process.argv.slice(2));
}

function getStatus(base: string, token: string): Promise<void> {
  const http = process.getBuiltinModule('node:http');
  return new Promise((resolve) => {
    const request = http.get(`${base}/v1/status`, { headers: { authorization: `Bearer ${token}` } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        process.stdout.write(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
        resolve();
      });
    });
    request.on('error', (error) => {
      process.stderr.write(`error: cannot reach pgdbd at ${base}: ${error.message}\n`);
      process.exitCode = 1;
      resolve();
    });
  });
}
