import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { LOGS_TAIL_DEFAULT, parseSince, parseTail, type LogsQuery } from '../../../contract/api.js';
import type { Context } from '../context.js';
import { formatJson } from '../output.js';
import { ControlEscaper } from '../terminal-safe.js';
import { checkName, connect, withServerOptions, type GlobalOptions, type ServerOptions } from './options.js';

interface LogsOptions extends GlobalOptions, ServerOptions {
  name: string;
  tail?: string;
  since?: string;
  follow: boolean;
  raw: boolean;
}

export function logsCommand(context: Context): CommandModule<GlobalOptions, LogsOptions> {
  return {
    command: 'logs <name>',
    describe: "print a database's log (Postgres's own output: errors, slow queries, restarts)",
    builder: (yargs: Argv<GlobalOptions>) =>
      withServerOptions(yargs)
        .positional('name', { type: 'string', demandOption: true, describe: 'the database' })
        .option('tail', { alias: 'n', type: 'string', requiresArg: true, describe: `lines of backlog, or all [default: ${LOGS_TAIL_DEFAULT}]` })
        .option('since', { type: 'string', requiresArg: true, describe: 'only lines since: 90s, 10m, 2h, 1d, an RFC 3339 time or Unix seconds' })
        .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing new lines until Ctrl-C (or the database stops)' })
        .option('raw', {
          type: 'boolean',
          default: false,
          describe: 'on a terminal, print control characters as they are (by default they are shown escaped, e.g. \\x1b)',
        })
        .check((argv) => checkName(argv.name) && checkTail(argv.tail) && checkSince(argv.since))
        .example('$0 logs shop --since 10m', 'the last ten minutes')
        .example('$0 logs shop -f --tail 0', 'only new lines, as they come')
        .strict(),
    handler: (argv) => logs(context, argv),
  };
}

function checkTail(tail: string | undefined): true {
  const parsed = tail === undefined ? undefined : parseTail(tail);
  if (parsed && 'problem' in parsed) throw new Error(`--${parsed.problem}`);
  return true;
}

function checkSince(since: string | undefined): true {
  const parsed = since === undefined ? undefined : parseSince(since);
  if (parsed && 'problem' in parsed) throw new Error(`--${parsed.problem}`);
  return true;
}

async function logs(context: Context, argv: ArgumentsCamelCase<LogsOptions>): Promise<void> {
  const { client } = await connect(context, argv);
  const query: LogsQuery = { tail: argv.tail, since: argv.since, follow: argv.follow ? 'true' : undefined };
  const stop = new AbortController();
  const interrupt = () => stop.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  // A database's log is the tenant's text: on a terminal its escape sequences are shown, not obeyed.
  const escaper = !argv.json && !argv.raw && (context.stdout as { isTTY?: boolean }).isTTY === true ? new ControlEscaper() : undefined;
  escaper?.pipe(context.stdout, { end: false });
  const sink = argv.json ? new JsonLines(context.stdout, argv.follow) : (escaper ?? context.stdout);
  try {
    await client.logs(argv.name, query, sink, stop.signal);
  } finally {
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
    if (escaper) {
      escaper.end();
      await finished(escaper).catch(() => undefined);
    }
  }
  if (sink instanceof JsonLines) sink.finish(argv.name);
}

/**
 * --json: without --follow one document, `{ name, lines }`; with --follow
 * (which has no end to wait for) one `{ "line": ... }` object per line.
 */
class JsonLines extends Writable {
  private partial = '';
  private readonly lines: string[] = [];

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly streaming: boolean,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    const parts = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.add(line);
    done();
  }

  finish(name: string): void {
    if (this.partial) this.add(this.partial);
    this.partial = '';
    if (!this.streaming) this.out.write(formatJson({ name, lines: this.lines }));
  }

  private add(line: string): void {
    if (this.streaming) this.out.write(`${JSON.stringify({ line })}\n`);
    else this.lines.push(line);
  }
}
