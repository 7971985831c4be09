/**
 * Waiting for the installed daemon: GET /v1/health (no token needed: the
 * answer is then its status and TLS summary, without version or problems), over
 * https pinned to the daemon's own CA when it has one, else over http. Plain
 * code.
 */
import { X509Certificate } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Health {
  url: string;
  body: { status?: string; docker?: string; version?: string; tls?: { api?: boolean; ca_fingerprint?: string } };
}

/** "sha256:<lowercase hex of the DER's SHA-256>", as the CLI config stores it. */
export function caFingerprint(pem: string): string {
  return `sha256:${new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase()}`;
}

/** One GET of /v1/health; resolves with the status and parsed body, rejects on a network error. */
export function getHealth(url: string, ca: string | undefined, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  return getJson(`${url}/v1/health`, ca, timeoutMs);
}

/** One GET, with the daemon's token when given; resolves with the status and parsed body, rejects on a network error. */
export function getJson(url: string, ca: string | undefined, timeoutMs: number, token?: string): Promise<{ status: number; body: unknown }> {
  const https = url.startsWith('https:');
  const send = https ? httpsRequest : httpRequest;
  // The daemon's certificate names its IP address: a pinned CA, and the usual host name check.
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const options = https ? { ca, timeout: timeoutMs, headers } : { timeout: timeoutMs, headers };
  return new Promise((resolve, reject) => {
    const req = send(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls until /v1/health answers 200 on `host:port`: https with `ca` when the
 * daemon has a CA, else http. Returns the URL that answered and the body.
 */
export async function waitForHealth(host: string, port: number, ca: string | undefined, deadlineMs: number): Promise<Health> {
  const deadline = Date.now() + deadlineMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const result = await probeHealth(host, port, ca);
    if ('body' in result) return result;
    last = result.problem;
    await sleep(1_000);
  }
  throw new Error(last);
}

/** One try: https (pinned to `ca`) when the daemon has a CA, then http. */
export async function probeHealth(host: string, port: number, ca: string | undefined): Promise<Health | { problem: string }> {
  const urls = [...(ca ? [`https://${host}:${port}`] : []), `http://${host}:${port}`];
  let problem = 'no answer';
  for (const url of urls) {
    try {
      const { status, body } = await getHealth(url, ca, 5_000);
      if (status === 200 && body && typeof body === 'object') return { url, body: body as Health['body'] };
      problem = `${url}/v1/health answered ${status}`;
    } catch (error) {
      problem = `${url}/v1/health: ${(error as Error).message}`;
    }
  }
  return { problem };
}

/**
 * Polls GET /v1/status until every database the daemon lists runs (after a
 * restart of the server). Returns how many there are; throws naming the
 * ones that do not run by the deadline.
 */
export async function waitForDatabases(url: string, ca: string | undefined, token: string, deadlineMs: number): Promise<number> {
  const deadline = Date.now() + deadlineMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const { status, body } = await getJson(`${url}/v1/status`, ca, 10_000, token);
      const items = (body as { items?: Array<{ name: string; state: string }> } | undefined)?.items;
      if (status === 200 && items) {
        const down = items.filter((item) => item.state !== 'running');
        if (down.length === 0) return items.length;
        last = down.map((item) => `${item.name} (${item.state})`).join(', ');
      } else {
        last = `${url}/v1/status answered ${status}`;
      }
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(1_000);
  }
  throw new Error(`not running: ${last}`);
}
