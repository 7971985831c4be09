/**
 * Turns what the engine and the providers report into one clear line and a
 * hint. Plain code: tested without an engine.
 */

export class InfraError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'InfraError';
  }
}

export interface FailureContext {
  stack: string;
  serverType?: string;
  location?: string;
  image?: string;
  /** Secrets that must never appear in a message. */
  secrets: string[];
  /** How long the failed step ran (ms), when known: an SSH failure says how long it tried. */
  failedAfterMs?: number;
}

/**
 * Picks the most telling engine/provider message and explains it. `messages`
 * are the error diagnostics of the run, in order, then the engine's own error.
 */
export function explainFailure(messages: string[], context: FailureContext): InfraError {
  const text = redact(withoutCommands(messages.join('\n')), context.secrets);
  const detail = text.trim() || undefined;
  const tokenHint = 'set HCLOUD_TOKEN, or store the token with `pgdb config set hcloud.token -` (it reads standard input)';

  // Before the token: Go's SSH error holds "unable to authenticate" too.
  if (/ssh: handshake failed|unable to authenticate, attempted methods/i.test(text)) {
    return new InfraError('the server refused the SSH key', 'bootstrap logs in as root with the key given to `pgdb infra init --ssh-key` (or the one pgdb generated)', detail);
  }
  if (/\(unauthorized[,)]|unable to authenticate/i.test(text)) {
    return new InfraError('Hetzner Cloud rejected the API token (401 unauthorized)', `check the token's project and that it is not revoked; ${tokenHint}`, detail);
  }
  // The real hcloud provider: "could not validate provider configuration: entered token is invalid (must be exactly 64 characters long)".
  if (/token is invalid \(must be exactly 64 characters|token must be exactly 64 characters|invalid token/i.test(text)) {
    return new InfraError('the Hetzner Cloud API token is malformed (it must be 64 characters)', tokenHint, detail);
  }
  if (/\(forbidden[,)]/i.test(text)) {
    return new InfraError('the Hetzner Cloud API token may only read (403 forbidden)', 'create a token with "Read & Write" permission in the Hetzner Cloud console', detail);
  }
  const serverType = /server type "?([^"\s]+)"? not found|invalid input in field 'server_type'/i.exec(text);
  if (serverType) {
    const name = serverType[1] ?? context.serverType ?? '';
    return new InfraError(`unknown Hetzner server type "${name}"`, 'pass --type with an existing type, e.g. cx22, cpx21 or cax11', detail);
  }
  const image = /image "?([^"\s]+)"? (?:for architecture \S+ )?not found|invalid input in field 'image'/i.exec(text);
  if (image) {
    return new InfraError(`unknown Hetzner image "${image[1] ?? context.image ?? ''}"`, 'pass --image with an existing image, e.g. debian-12', detail);
  }
  const location = /location "?([^"\s]+)"? not found|invalid input in field 'location'/i.exec(text);
  if (location) {
    return new InfraError(`unknown Hetzner location "${location[1] ?? context.location ?? ''}"`, 'pass --location fsn1, nbg1, hel1, ash, hil or sin', detail);
  }
  // The command provider retries a dial (backoff up to 5 s) and then says
  // "after 30 failed attempts: dial tcp 203.0.113.10:22: connect: connection refused".
  const dial = /(?:after (\d+) failed attempts: )?dial(?:ing)? tcp ([^\s:]+|\[[^\]]+\]):(\d+): ?(?:connect: )?([^\n]*)/i.exec(text);
  if (dial) {
    const [, attempts, host, port, reason] = dial;
    const tried = [attempts && `${attempts} attempts`, context.failedAfterMs !== undefined && `in ${duration(context.failedAfterMs)}`].filter(Boolean).join(' ');
    return new InfraError(
      `cannot reach SSH on ${host} port ${port}: ${reason.trim() || 'no connection'}${tried ? ` (${tried})` : ''}`,
      'check that the server is running and that the firewall allows SSH from this machine (pgdb infra init --allow-ssh <your-ip>/32)',
      detail,
    );
  }
  if (/the stack is currently locked|currently locked by/i.test(text)) {
    return new InfraError(
      `the stack "${context.stack}" is locked by another pgdb or pulumi run`,
      'wait for it to finish; if it was interrupted, run the same command again with --unlock',
      detail,
    );
  }
  const refused = /\[pgdb-bootstrap\] ERROR: ([^\n]+)/.exec(text);
  if (refused) {
    return new InfraError(refused[1], 'give the key this server already has (`pgdb backup key` prints it), or leave --backup-key-file out', detail);
  }
  const install = /\[pgdb-install\] ERROR: ([^\n]+)/.exec(text);
  if (install) {
    return new InfraError(`install.sh failed on the server: ${install[1]}`, 'run again with --verbose for its whole output', detail);
  }
  const diagnostic = messages
    .slice(0, -1)
    .map((message) => redact(withoutCommands(message), context.secrets).trim())
    .find((message) => message && !/^(error: )?update failed$/i.test(message));
  const error = diagnostic?.split('\n')[0].slice(0, 300) ?? lastErrorLine(text);
  return new InfraError(error ? `the Pulumi run failed: ${error}` : 'the Pulumi run failed', 'run again with --verbose for the engine\'s whole output', detail);
}

/** 1 min 52 s; 45 s. */
function duration(ms: number): string {
  const total = Math.round(ms / 1000);
  return total >= 60 ? `${Math.floor(total / 60)} min ${total % 60} s` : `${total} s`;
}

function lastErrorLine(text: string): string | undefined {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !/^(error: )?update failed$/i.test(line) && !/^at /.test(line));
  const errors = lines.filter((line) => /error/i.test(line));
  const pick = errors.at(-1) ?? lines.at(-1);
  return pick?.replace(/^error:\s*/i, '').slice(0, 300);
}

/**
 * The command provider reports a failed remote command as
 * `<error>: running "<the command, Go-quoted>":\n<its output>`. The command
 * is pgdb's own script (which may carry encoded secrets, and whose text
 * names the errors it can print): only the output says what happened.
 */
export function withoutCommands(text: string): string {
  return text.replace(/: running "(?:[^"\\]|\\.)*":(\n|\\n)/g, ': running [the command]:$1');
}

/** The forms a secret can travel in: as it is, and in base64 or base64url (alone or with the newline a file adds), padded or not. */
function encodedForms(secret: string): string[] {
  const forms = new Set([secret]);
  for (const value of [secret, `${secret}\n`]) {
    const bytes = Buffer.from(value, 'utf8');
    for (const encoded of [bytes.toString('base64'), bytes.toString('base64url')]) {
      forms.add(encoded);
      forms.add(encoded.replace(/=+$/, ''));
    }
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

/** Replaces every secret, in each of its encoded forms, with "[secret]". */
export function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret || secret.length < 6) continue;
    for (const form of encodedForms(secret)) out = out.split(form).join('[secret]');
  }
  return out;
}
