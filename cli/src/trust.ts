/**
 * Whether the CLI may talk to a server, and which certificate it accepts.
 *
 * - `http://` only to a loopback address, unless --insecure: decided before
 *   any connection, so a refused token never leaves the machine.
 * - `https://` with a pinned CA (kubeconfig-style, in the config file): the
 *   server must chain to that CA and nothing else. A server that does not is
 *   refused loudly; the pin changes only when the user says so
 *   (--trust-fingerprint, --ca-file, or `pgdb config unset server.<alias>.ca`).
 * - `https://` without a pin: the system's roots (an operator's certificate
 *   from a public CA needs no pin). If they do not vouch for the server, its
 *   CA is learnt from `GET /v1/ca` (no token sent), checked against the
 *   certificate the server presented, and pinned once the user accepts its
 *   fingerprint: on a terminal by answering, in scripts with
 *   --trust-fingerprint or --ca-file.
 */
import { readConfig, withPin, writeConfig } from './config.js';
import type { Context } from './context.js';
import { CliError, UsageError } from './errors.js';
import { learnCa, probeWithCa, type TlsTrust } from './http.js';
import { describeSlot, type Target } from './servers.js';
import {
  certificateProblem,
  fingerprintOf,
  isLoopbackHost,
  leafProblem,
  parseCertificate,
  type PinnedCa,
} from './tls.js';

export { checkFingerprintOption } from './fingerprint.js';

export interface TrustOptions {
  /** Allow plain HTTP to a host that is not loopback. */
  insecure: boolean;
  /** Pin the server's CA without asking if it has this fingerprint. */
  trustFingerprint?: string;
  /** Pin the CA in this file (the server must chain to it). */
  caFile?: string;
  /** Whether a question may be asked on the terminal (not with --json). */
  mayAsk: boolean;
}

/** How to read the CA's fingerprint on the server, for hints. */
export const FINGERPRINT_ON_SERVER = 'sudo openssl x509 -in /var/lib/pgdb/tls/ca.crt -noout -fingerprint -sha256';

export class ServerTrust implements TlsTrust {
  private constructor(
    private readonly context: Context,
    readonly target: Target,
    readonly options: TrustOptions,
    /** The CA the server must chain to, once pinned; undefined: the system's roots (or plain HTTP). */
    public ca: string | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** Decides how to reach `target`; throws, before any connection, when it must not be reached. */
  static async establish(
    context: Context,
    target: Target,
    options: TrustOptions,
    log: (line: string) => void = () => undefined,
  ): Promise<ServerTrust> {
    const url = new URL(target.url);
    if (url.protocol === 'http:') {
      if (!isLoopbackHost(url.hostname)) {
        if (!options.insecure) throw plainHttpRefused(target, url.hostname);
        context.stderr.write(`warning: --insecure: talking to ${target.url} over plain HTTP; the token crosses the network unencrypted\n`);
      }
      log(`plain HTTP to ${url.hostname}${options.insecure ? ' (--insecure)' : ' (loopback)'}`);
      return new ServerTrust(context, target, options, undefined, log);
    }
    const trust = new ServerTrust(context, target, options, undefined, log);
    await trust.choose();
    return trust;
  }

  private async choose(): Promise<void> {
    const { options, target } = this;
    const pin = target.pin;
    if (options.caFile !== undefined) {
      return this.pinFromFile(options.caFile);
    }
    if (options.trustFingerprint !== undefined) {
      const wanted = options.trustFingerprint;
      if (pin?.ca_cert && fingerprintOf(parseCertificate(pin.ca_cert)!.certificate) === wanted) {
        this.ca = pin.ca_cert;
        this.log(`TLS: CA ${wanted} pinned in ${target.pinSource}`);
        return;
      }
      return this.learnAndPin(wanted, '--trust-fingerprint');
    }
    if (pin?.ca_cert) {
      this.ca = pin.ca_cert;
      this.log(`TLS: CA ${pinFingerprint(pin)} pinned in ${target.pinSource}`);
      return;
    }
    if (pin?.ca_fingerprint) {
      // A fingerprint written by hand: the first connection fetches the CA it names.
      return this.learnAndPin(pin.ca_fingerprint, target.pinSource ?? 'the config');
    }
    this.log("TLS: no CA pinned; verifying against the system's roots");
  }

  /** The handshake failed over the certificate; nothing was sent. */
  async recover(error: Error): Promise<void> {
    const problem = certificateProblem(error);
    const { target } = this;
    const host = new URL(target.url).hostname;
    if (problem === 'untrusted' && this.ca === undefined) {
      // Neither pinned nor publicly trusted: its own CA, not seen before.
      return this.learnAndPin(undefined, undefined);
    }
    if (problem === 'untrusted') {
      // A pinned server whose certificate now comes from a public CA (pgdbd's ACME source):
      // accepted only when the system's roots vouch for it under this same host name. The pin
      // stays, for when the server falls back to its own CA.
      const publiclyTrusted = await probeWithCa(target, undefined).then(
        () => true,
        () => false,
      );
      if (!publiclyTrusted) throw pinMismatch(target, this.ca!);
      this.ca = undefined;
      this.log(`TLS: ${host} presents a certificate the system's roots verify; the pinned CA is kept for a fallback`);
      return;
    }
    if (problem === 'hostname') {
      throw new CliError(`the certificate of ${target.url} is not valid for "${host}"; nothing was sent`, {
        hint: `use a name or address the certificate names (pgdbd's certificate names PGDB_PUBLIC_HOST, its listen address, 127.0.0.1 and localhost), or set PGDB_PUBLIC_HOST on the server to "${host}"`,
        cause: error,
      });
    }
    throw new CliError(`the certificate of ${target.url} is ${problem === 'expired' ? 'expired' : 'not valid yet'}; nothing was sent`, {
      hint: "check this machine's clock; pgdbd renews its own certificates before they expire, so restart it (systemctl restart pgdbd) or renew the operator's certificate",
      cause: error,
    });
  }

  private async pinFromFile(path: string): Promise<void> {
    let text: string;
    try {
      text = await process.getBuiltinModule('node:fs/promises').readFile(path, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read --ca-file ${path}: ${(error as Error).message}`, { cause: error });
    }
    const parsed = parseCertificate(text);
    if (!parsed) {
      throw new UsageError(`--ca-file ${path} holds no PEM certificate`, {
        hint: "copy the server's /var/lib/pgdb/tls/ca.crt, or save it with `pgdb ca`",
      });
    }
    const fingerprint = fingerprintOf(parsed.certificate);
    if (this.options.trustFingerprint !== undefined && this.options.trustFingerprint !== fingerprint) {
      throw new UsageError(`--ca-file ${path} holds the CA ${fingerprint}, not the ${this.options.trustFingerprint} of --trust-fingerprint`);
    }
    try {
      await probeWithCa(this.target, parsed.pem);
    } catch (error) {
      if (certificateProblem(error) === 'untrusted') {
        throw new CliError(`the certificate of ${this.target.url} is not issued by the CA in ${path} (${fingerprint}); nothing was sent and nothing was pinned`, {
          hint: `check that ${path} is this server's /var/lib/pgdb/tls/ca.crt; someone may be intercepting the connection`,
          cause: error,
        });
      }
      this.ca = parsed.pem;
      return this.recover(error as Error);
    }
    await this.save({ ca_cert: parsed.pem, ca_fingerprint: fingerprint });
  }

  /**
   * Learns the server's CA and pins it: when it has the `expected`
   * fingerprint (given by `expectedFrom`), or else when the user accepts it.
   */
  private async learnAndPin(expected: string | undefined, expectedFrom: string | undefined): Promise<void> {
    const { target } = this;
    const learnt = await learnCa(target);
    const parsed = learnt.status === 200 ? parseCertificate(learnt.text) : undefined;
    if (!parsed && learnt.status === 404 && expected === undefined) {
      // pgdbd with the operator's certificate has no CA of its own to pin.
      throw new CliError(`the certificate of ${target.url} is not trusted by this machine's roots, and the server has no CA of its own to pin; nothing was sent`, {
        hint: "the server uses the operator's certificate (PGDB_TLS_CERT_FILE): use a certificate from a public CA there, or pass --ca-file <the CA that issued it>",
      });
    }
    if (!parsed) {
      throw new CliError(`${target.url} did not answer like pgdbd: GET /v1/ca gave no certificate (HTTP ${learnt.status})`, {
        hint: `check that ${target.urlSource} points at pgdbd's API port, and that the daemon is recent enough to serve its CA`,
      });
    }
    const fingerprint = fingerprintOf(parsed.certificate);
    if (expected !== undefined && fingerprint !== expected) {
      if (expectedFrom === '--trust-fingerprint') {
        throw new CliError(`${target.url} presents the CA ${fingerprint}, not the ${expected} given with --trust-fingerprint; nothing was sent and nothing was pinned`, {
          hint: `read the fingerprint on the server (${FINGERPRINT_ON_SERVER}); if it differs from both, someone may be intercepting the connection`,
        });
      }
      throw pinMismatch(target, undefined, expected);
    }
    const problem = learnt.leaf ? leafProblem(learnt.leaf, parsed.certificate, new URL(target.url).hostname) : 'it presented no certificate';
    if (problem && learnt.leaf && expected !== undefined && (await probeWithCa(target, undefined).then(() => true, () => false))) {
      // The server presents a public certificate (pgdbd's ACME source) that the system's roots
      // verify for this host: the CA the user vouched for is pinned, for when it falls back to it.
      await this.save({ ca_cert: parsed.pem, ca_fingerprint: fingerprint });
      this.ca = undefined;
      this.log(`TLS: ${target.url} presents a certificate the system's roots verify; its own CA is pinned for a fallback`);
      return;
    }
    if (problem) {
      throw new CliError(`${target.url} cannot be trusted: ${problem}; nothing was sent and nothing was pinned`, {
        hint: 'connect with the name or address the server was installed with (PGDB_PUBLIC_HOST), or check what answers at that address',
      });
    }
    if (expected === undefined) {
      await this.confirm(fingerprint);
    }
    await this.save({ ca_cert: parsed.pem, ca_fingerprint: fingerprint });
  }

  /** First use without a fingerprint to compare with: ask on a terminal, else explain the flags. */
  private async confirm(fingerprint: string): Promise<void> {
    const { context, target } = this;
    const slot = describeSlot(target.pinSlot);
    if (!this.options.mayAsk || context.stdin.isTTY !== true || context.stderr.isTTY !== true) {
      throw new CliError(`${target.url} presents a certificate authority pgdb does not trust yet (${fingerprint}); nothing was sent`, {
        hint: `compare that fingerprint with the one on the server (${FINGERPRINT_ON_SERVER}, or install.sh's output), then run again with --trust-fingerprint sha256:... , or with --ca-file <path> holding a copy of the server's /var/lib/pgdb/tls/ca.crt; on a terminal pgdb asks instead`,
      });
    }
    context.stderr.write(
      [
        `${target.url} presents a certificate authority (CA) that pgdb has not seen before. Its fingerprint:`,
        `  ${fingerprint}`,
        `Compare it with the one on the server (${FINGERPRINT_ON_SERVER}, or install.sh's output).`,
        '',
      ].join('\n'),
    );
    const { askYesNo } = await import('./prompt.js');
    if (!(await askYesNo(context.stdin, context.stderr, `Trust this CA for ${target.url} and pin it in ${slot}? [y/N] `))) {
      throw new CliError('not trusted: nothing was sent and nothing was pinned');
    }
  }

  private async save(pin: PinnedCa): Promise<void> {
    const { context, target } = this;
    const path = context.environment.configPath;
    const previous = target.pin && target.pinSource === describeSlot(target.pinSlot) ? pinFingerprint(target.pin) : undefined;
    this.ca = pin.ca_cert;
    if (previous === pin.ca_fingerprint) return;
    await writeConfig(path, withPin(await readConfig(path), target.pinSlot, pin));
    const slot = describeSlot(target.pinSlot);
    const replaced = previous ? `, replacing ${previous}` : '';
    context.stderr.write(`pinned the CA ${pin.ca_fingerprint} of ${target.url} in ${slot} (${path})${replaced}\n`);
  }
}

function pinFingerprint(pin: Partial<PinnedCa>): string | undefined {
  if (pin.ca_fingerprint) return pin.ca_fingerprint;
  const parsed = pin.ca_cert === undefined ? undefined : parseCertificate(pin.ca_cert);
  return parsed && fingerprintOf(parsed.certificate);
}

function plainHttpRefused(target: Target, host: string): CliError {
  return new CliError(`refusing to send the token to ${target.url} over plain HTTP: ${host} is not a loopback address; nothing was sent`, {
    hint: `use the daemon's https:// URL (pgdbd serves HTTPS when it listens beyond loopback), or pass --insecure to send it unencrypted anyway (only on a network you trust); the URL comes from ${target.urlSource}`,
  });
}

/** The loud refusal: the server no longer chains to the CA pinned for it. */
function pinMismatch(target: Target, pinnedPem: string | undefined, pinnedFingerprint?: string): CliError {
  const pinned = pinnedFingerprint ?? pinFingerprint({ ca_cert: pinnedPem }) ?? 'the pinned CA';
  const forget = 'alias' in target.pinSlot ? ` or forget the pin with \`pgdb config unset server.${target.pinSlot.alias}.ca\`` : '';
  return new CliError(
    `REFUSED: the certificate of ${target.url} is not issued by the CA pinned for it in ${target.pinSource ?? describeSlot(target.pinSlot)} (${pinned}). ` +
      'This may be an attack (someone intercepting the connection), or the server got a new CA. Nothing was sent.',
    {
      hint: `if the server's CA was replaced on purpose, read the new fingerprint on the server (${FINGERPRINT_ON_SERVER}) and run again with --trust-fingerprint sha256:<new> (or --ca-file <copy of its ca.crt>)${forget}`,
    },
  );
}

