/**
 * Whether the CLI may talk to a server, and which certificate it accepts.
 *
 * - `http://` only to a loopback address, unless --insecure: decided before
 *   any connection, so a refused token never leaves the machine.
 * - `https://`: the CLI pins, per server, the key the API serves with (like
 *   SSH's known_hosts) and, where the server has one, its own CA
 *   (kubeconfig-style, in the config file). A certificate is accepted when
 *   its chain verifies (to the pinned CA, or to the system's roots) and its
 *   key is the pinned one. The same CA signs the databases' certificates,
 *   each with a key of its own, so a database's key (which a tenant that
 *   became superuser could read) never passes for the API.
 * - The key is pinned at the first verified contact: one that chains to the
 *   pinned CA and carries the API's mark (API_CERTIFICATE_UNIT), which that
 *   CA gives the API's certificate and no database's; or, with no CA pinned,
 *   one the system's roots verify (an ACME or operator certificate: trust on
 *   first use, said on stderr). A new key is accepted only when the pinned
 *   CA vouches for it (GET /v1/api-certificate); the system's roots never
 *   stand in for a pinned CA or key.
 * - The CA is pinned when the user accepts its fingerprint: on a terminal by
 *   answering, in scripts with --trust-fingerprint or --ca-file.
 */
import type { PeerCertificate } from 'node:tls';
import { ROUTES } from '../../contract/api.js';
import { readConfig, withPin, writeConfig } from './config.js';
import type { Context } from './context.js';
import { CliError, UsageError } from './errors.js';
import { learnCa, probeWithCa, type TlsTrust } from './http.js';
import { describeSlot, type Target } from './servers.js';
import { KEY_ON_SERVER } from './fingerprint.js';
import {
  certificateProblem,
  fingerprintOf,
  isApiSubject,
  isLoopbackHost,
  keyRefusal,
  leafProblem,
  parseCertificate,
  publicKeyFingerprint,
  type PinnedCa,
  type ServerPin,
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
  /** The CA pinned for the server (PEM), stored or just accepted. */
  private pinnedCa: string | undefined;
  /** The API key pinned for the server (`sha256:<hex>` of its DER public key). */
  private apiKey: string | undefined;
  /** The key of the last certificate that passed the identity check, for pinning it. */
  private seenKey: string | undefined;
  private triedRoots = false;
  private triedOwnCa = false;
  /** What this run stored in the slot so far. */
  private saved: ServerPin = {};

  private constructor(
    private readonly context: Context,
    readonly target: Target,
    readonly options: TrustOptions,
    /** The CA the next connection must chain to; undefined: the system's roots (or plain HTTP). */
    public ca: string | undefined,
    private readonly log: (line: string) => void,
  ) {
    this.apiKey = target.pin?.api_key;
  }

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
    if (trust.apiKey === undefined) await trust.pinKey();
    return trust;
  }

  /**
   * node:tls's check of a certificate whose chain verified: the host name,
   * then the key. A refusal ends the handshake; nothing is sent.
   */
  readonly checkServerIdentity = (hostname: string, certificate: PeerCertificate): Error | undefined => {
    const identity = process.getBuiltinModule('node:tls').checkServerIdentity(hostname, certificate);
    if (identity) return identity;
    const key = publicKeyFingerprint(new (process.getBuiltinModule('node:crypto').X509Certificate)(certificate.raw));
    if (this.apiKey !== undefined) {
      return key === this.apiKey ? undefined : keyRefusal('key-mismatch', `the server's key ${key} is not the pinned ${this.apiKey}`);
    }
    if (this.ca !== undefined && !isApiSubject(certificate.subject?.OU)) {
      return keyRefusal('not-api', "a certificate of the pinned CA that is not the API's");
    }
    this.seenKey = key;
    return undefined;
  };

  private async choose(): Promise<void> {
    const { options, target } = this;
    const pin = target.pin;
    if (options.caFile !== undefined) {
      return this.pinFromFile(options.caFile);
    }
    if (options.trustFingerprint !== undefined) {
      const wanted = options.trustFingerprint;
      if (pin?.ca_cert && fingerprintOf(parseCertificate(pin.ca_cert)!.certificate) === wanted) {
        this.ca = this.pinnedCa = pin.ca_cert;
        this.log(`TLS: CA ${wanted} pinned in ${target.pinSource}`);
        return;
      }
      return this.learnAndPin(wanted, '--trust-fingerprint');
    }
    if (pin?.ca_cert) {
      this.ca = this.pinnedCa = pin.ca_cert;
      this.log(`TLS: CA ${pinFingerprint(pin)} pinned in ${target.pinSource}${this.apiKey ? `, API key ${this.apiKey}` : ''}`);
      return;
    }
    if (pin?.ca_fingerprint) {
      // A fingerprint written by hand: the first connection fetches the CA it names.
      return this.learnAndPin(pin.ca_fingerprint, target.pinSource ?? 'the config');
    }
    this.log(this.apiKey ? `TLS: API key ${this.apiKey} pinned in ${target.pinSource}` : "TLS: nothing pinned; verifying against the system's roots");
  }

  /**
   * The first verified contact without a pinned key: one request that
   * carries no token, whose certificate passes checkServerIdentity (the
   * API's mark under the pinned CA, or the system's roots), then its key is
   * pinned.
   */
  private async pinKey(): Promise<void> {
    for (;;) {
      try {
        await probeWithCa(this.target, this.ca, this.checkServerIdentity);
        break;
      } catch (error) {
        if (!certificateProblem(error)) throw error;
        await this.recover(error as Error);
        if (this.apiKey !== undefined) return;
      }
    }
    const key = this.seenKey;
    if (key === undefined) throw new CliError(`${this.target.url}: the TLS handshake gave no certificate to check; nothing was sent`);
    const how = this.ca !== undefined ? 'marked as the API by the pinned CA' : "verified by the system's roots on this first contact: compare it with api_key_fingerprint on the server";
    await this.save({ api_key: key }, `pinned the API key ${key} of ${this.target.url} (${how})`);
    this.apiKey = key;
  }

  /** The handshake failed over the certificate; nothing was sent. */
  async recover(error: Error): Promise<void> {
    const problem = certificateProblem(error);
    const { target } = this;
    const host = new URL(target.url).hostname;
    if (problem === 'not-api') throw notTheApi(target, this.pinnedCa);
    if (problem === 'key-mismatch') {
      // A new key for the API (a new operator certificate, a wiped key file): only if the pinned CA vouches for it.
      if (this.pinnedCa !== undefined && (await this.endorsed())) return;
      throw keyMismatch(target, this.apiKey!, this.pinnedCa !== undefined);
    }
    if (problem === 'untrusted' && this.ca === undefined && this.pinnedCa === undefined && this.apiKey === undefined) {
      // Neither pinned nor publicly trusted: its own CA, not seen before.
      return this.learnAndPin(undefined, undefined);
    }
    if (problem === 'untrusted' && this.ca !== undefined && this.pinnedCa !== undefined) {
      // Not the pinned CA's certificate: pgdbd's ACME source serves a public one. Accepted when the
      // system's roots verify it and its key is the pinned one, or one the pinned CA vouches for.
      if (this.triedRoots) throw pinMismatch(target, this.pinnedCa);
      this.triedRoots = true;
      if (this.apiKey === undefined && !(await this.endorsed())) throw pinMismatch(target, this.pinnedCa);
      this.ca = undefined;
      this.log(`TLS: ${host} presents a certificate of another CA; accepted if the system's roots verify it and its key is the pinned ${this.apiKey}`);
      return;
    }
    if (problem === 'untrusted' && this.pinnedCa !== undefined) throw pinMismatch(target, this.pinnedCa);
    if (problem === 'untrusted') {
      // A key pinned over a public certificate, and now a certificate of the server's own CA (an ACME
      // fallback): that CA, learnt without trusting it, for the pinned key only.
      if (this.triedOwnCa) throw keyMismatch(target, this.apiKey!, false);
      this.triedOwnCa = true;
      const learnt = await learnCa(target);
      const parsed = learnt.status === 200 ? parseCertificate(learnt.text) : undefined;
      if (!parsed) throw keyMismatch(target, this.apiKey!, false);
      this.ca = parsed.pem;
      this.log(`TLS: ${host} presents a certificate of its own CA; accepted if its key is the pinned ${this.apiKey}`);
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

  /**
   * Whether the pinned CA vouches for the key the server presents: its
   * certificate for the API's key (GET /v1/api-certificate, fetched without
   * trusting the server and without a token) is the CA's, marked as the
   * API's, and for the key presented on that same connection. Then that key
   * is pinned.
   */
  private async endorsed(): Promise<boolean> {
    const { target } = this;
    const learnt = await learnCa(target, ROUTES.apiCertificate);
    const endorsement = learnt.status === 200 ? parseCertificate(learnt.text) : undefined;
    const ca = parseCertificate(this.pinnedCa!)!.certificate;
    if (!endorsement || !learnt.leaf) return false;
    if (leafProblem(endorsement.certificate, ca, new URL(target.url).hostname) !== undefined) return false;
    const key = publicKeyFingerprint(learnt.leaf);
    if (publicKeyFingerprint(endorsement.certificate) !== key) return false;
    const replaced = this.apiKey;
    this.apiKey = key;
    await this.save({ api_key: key }, `pinned the API key ${key} of ${target.url} (the pinned CA vouches for it${replaced ? `; it replaces ${replaced}` : ''})`);
    return true;
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
    // The key pinned before belongs to the pin this replaces; the file's CA (and its mark) decide anew.
    const previousKey = this.apiKey;
    this.apiKey = undefined;
    this.ca = parsed.pem;
    try {
      await probeWithCa(this.target, parsed.pem, this.checkServerIdentity);
    } catch (error) {
      const problem = certificateProblem(error);
      if (problem === 'untrusted' || problem === 'not-api') {
        const what = problem === 'untrusted' ? `is not issued by the CA in ${path} (${fingerprint})` : `is one of the CA's in ${path} but not the API's (a database's certificate?)`;
        throw new CliError(`the certificate of ${this.target.url} ${what}; nothing was sent and nothing was pinned`, {
          hint: `check that ${path} is this server's /var/lib/pgdb/tls/ca.crt; someone may be intercepting the connection`,
          cause: error,
        });
      }
      this.ca = this.pinnedCa = parsed.pem;
      this.apiKey = previousKey;
      await this.save({ ca_cert: parsed.pem, ca_fingerprint: fingerprint });
      return this.recover(error as Error);
    }
    this.ca = this.pinnedCa = parsed.pem;
    await this.save({ ca_cert: parsed.pem, ca_fingerprint: fingerprint, api_key: this.seenKey });
    this.apiKey = this.seenKey;
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
      // A pgdbd from before the split of keys, with the operator's certificate, serves no CA.
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
    if (problem && learnt.leaf && expected !== undefined && !learnt.leaf.checkIssued(parsed.certificate)) {
      // Another CA's certificate (pgdbd's ACME source): the CA the user vouched for is pinned, and
      // with it the key it vouches for; the system's roots must verify that certificate too.
      this.pinnedCa = parsed.pem;
      await this.save({ ca_cert: parsed.pem, ca_fingerprint: fingerprint });
      this.apiKey = undefined;
      if (!(await this.endorsed())) {
        throw new CliError(`${target.url} presents a certificate whose key its CA ${fingerprint} does not vouch for as the API's; nothing was sent`, {
          hint: 'this may be an attack (a database\'s key served as the API), or a daemon older than this CLI (upgrade pgdbd)',
        });
      }
      this.ca = undefined;
      this.triedRoots = true;
      this.log(`TLS: ${target.url} presents a certificate of another CA; its key is the one its own CA vouches for`);
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
    const key = publicKeyFingerprint(learnt.leaf!);
    this.ca = this.pinnedCa = parsed.pem;
    this.apiKey = key;
    await this.save({ ca_cert: parsed.pem, ca_fingerprint: fingerprint, api_key: key });
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

  /**
   * Stores `pin` in the target's slot, over what is there: a new CA replaces
   * the old CA and its key (the new key, if known, comes with it); a key alone
   * keeps the CA. Says so on stderr (`message` for a key alone).
   */
  private async save(pin: ServerPin, message?: string): Promise<void> {
    const { context, target } = this;
    const path = context.environment.configPath;
    const config = await readConfig(path);
    const own = target.pin && target.pinSource === describeSlot(target.pinSlot) ? target.pin : undefined;
    const current: ServerPin = { ...own, ...this.saved };
    const next: ServerPin = pin.ca_cert !== undefined ? { ca_cert: pin.ca_cert, ca_fingerprint: pin.ca_fingerprint, ...(pin.api_key ? { api_key: pin.api_key } : {}) } : { ...current, ...pin };
    const sameCa = pinFingerprint(current) === next.ca_fingerprint;
    if (sameCa && current.api_key === next.api_key) return;
    await writeConfig(path, withPin(config, target.pinSlot, next));
    this.saved = next;
    const slot = describeSlot(target.pinSlot);
    if (pin.ca_cert !== undefined && !sameCa) {
      const previous = pinFingerprint(current);
      const replaced = previous ? `, replacing ${previous}` : '';
      context.stderr.write(`pinned the CA ${next.ca_fingerprint} of ${target.url} in ${slot} (${path})${replaced}\n`);
    }
    if (next.api_key !== undefined && next.api_key !== current.api_key) {
      context.stderr.write(`${message ?? `pinned the API key ${next.api_key} of ${target.url}`} in ${slot}\n`);
    }
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


/** How to forget a server's pin, for hints. */
function forgetHint(target: Target): string {
  return 'alias' in target.pinSlot
    ? `\`pgdb config unset server.${target.pinSlot.alias}.ca\``
    : `removing pins["${target.pinSlot.origin}"] from the config file`;
}

/** The pinned CA's certificate, but not the API's: what a database's key served over HTTPS looks like. */
function notTheApi(target: Target, pinnedPem: string | undefined): CliError {
  const pinned = pinFingerprint({ ca_cert: pinnedPem }) ?? 'the pinned CA';
  return new CliError(
    `REFUSED: ${target.url} presents a certificate of the CA pinned for it (${pinned}) that is not the API's: a database's certificate, where the API should answer. ` +
      'This may be an attack (a database\'s key served as the API). Nothing was sent.',
    { hint: 'check what answers at that address; a pgdbd older than this CLI does not mark its API certificate either: upgrade it (install.sh)' },
  );
}

/** The loud refusal: the server presents another key than the API's pinned one, and no pinned CA vouches for it. */
function keyMismatch(target: Target, pinnedKey: string, caPinned: boolean): CliError {
  return new CliError(
    `REFUSED: ${target.url} presents another key than the API key pinned for it in ${target.pinSource ?? describeSlot(target.pinSlot)} (${pinnedKey})` +
      `${caPinned ? ', and the pinned CA does not vouch for the new one' : ''}. ` +
      "This may be an attack (a database's key served as the API, or someone intercepting the connection). Nothing was sent.",
    {
      hint: `if the server's key was replaced on purpose (a new operator certificate with a new key), compare the new one with the server's (${KEY_ON_SERVER}) and forget the old pin with ${forgetHint(target)}`,
    },
  );
}
