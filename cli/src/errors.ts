/**
 * Errors the CLI reports, and the one wrapper that turns the outcome of a
 * command into an exit code. Nothing else in the CLI exits the process.
 */

export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorDetails {
  /** What the user can do about it; printed under the message. */
  hint?: string;
  /** Extra context printed only with --verbose. */
  detail?: string;
  cause?: unknown;
}

/** A failure the user can act on: one message line, an optional hint. */
export class CliError extends Error {
  readonly hint?: string;
  readonly detail?: string;
  readonly exitCode: ExitCode = ExitCode.Failure;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { cause: details.cause });
    this.name = new.target.name;
    this.hint = details.hint;
    this.detail = details.detail;
  }
}

/** The command line itself is wrong; exits 2, optionally after the command's help. */
export class UsageError extends CliError {
  override readonly exitCode = ExitCode.Usage;
  readonly help?: string;

  constructor(message: string, details: ErrorDetails & { help?: string } = {}) {
    super(message, details);
    this.help = details.help;
  }
}

export interface ErrorSink {
  /** Asked for only when there is a failure to report. */
  stderr: () => NodeJS.WritableStream;
  /** Read after the failure, so a --verbose parsed by then is honoured. */
  isVerbose: () => boolean;
}

/** Runs the command and decides its exit code; failures are reported on stderr. */
export async function settle(action: () => Promise<void>, sink: ErrorSink): Promise<ExitCode> {
  try {
    await action();
    return ExitCode.Ok;
  } catch (error) {
    sink.stderr().write(formatError(error, sink.isVerbose()));
    return error instanceof CliError ? error.exitCode : ExitCode.Failure;
  }
}

function formatError(error: unknown, verbose: boolean): string {
  if (!(error instanceof CliError)) {
    return unexpected(error, verbose);
  }
  const lines = error instanceof UsageError && error.help ? [error.help, ''] : [];
  lines.push(`error: ${error.message}`);
  if (error.hint) {
    lines.push(`hint: ${error.hint}`);
  }
  if (verbose) {
    lines.push(...verboseLines(error));
  }
  return `${lines.join('\n')}\n`;
}

function verboseLines(error: CliError): string[] {
  const lines = error.detail ? [`detail: ${error.detail}`] : [];
  for (let cause = error.cause; cause !== undefined; cause = (cause as Error).cause) {
    lines.push(`cause: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`);
    if (!(cause instanceof Error)) {
      break;
    }
  }
  return lines;
}

function unexpected(error: unknown, verbose: boolean): string {
  const message = error instanceof Error ? error.message : String(error);
  const stack = verbose && error instanceof Error && error.stack ? `${error.stack}\n` : '';
  const hint = verbose ? '' : 'hint: this is a bug in pgdb; run again with --verbose and report the output\n';
  return `error: unexpected failure: ${message}\n${hint}${stack}`;
}

/** Waits until `outputs` have flushed, then ends the process with `code`. */
export async function exitProcess(code: ExitCode, outputs: NodeJS.WriteStream[]): Promise<never> {
  await Promise.all(outputs.map(flush));
  // Exit explicitly: an idle keep-alive socket would otherwise hold the
  // process open for a moment after the output.
  process.exit(code);
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}
