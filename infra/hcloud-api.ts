/**
 * The few Hetzner Cloud API calls pgdb makes itself, beside the provider: a
 * resize shuts the server down cleanly before the provider changes its type
 * (the provider would cut the power), and starts it again after (the
 * provider leaves it off). Plain fetch; HCLOUD_ENDPOINT as the provider reads it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InfraError } from './failures.js';

export const DEFAULT_ENDPOINT = 'https://api.hetzner.cloud/v1';

interface Action {
  id: number;
  status: 'running' | 'success' | 'error';
  error?: { code: string; message: string } | null;
}

export class HcloudApi {
  constructor(
    private readonly token: string,
    private readonly endpoint: string = DEFAULT_ENDPOINT,
    private readonly pollMs = 1_000,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.endpoint.replace(/\/$/, '')}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new InfraError(`cannot reach the Hetzner Cloud API: ${(error as Error).message}`, 'check the network, and run the same command again');
    }
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!response.ok) {
      const error = parsed.error as { code?: string; message?: string } | undefined;
      throw new InfraError(`Hetzner Cloud refused ${method} ${path}: ${error?.message ?? response.status} (${error?.code ?? response.status})`, 'run the same command again; see the Hetzner Cloud console for the server');
    }
    return parsed as T;
  }

  async status(serverId: number): Promise<string> {
    const { server } = await this.call<{ server: { status: string } }>('GET', `/servers/${serverId}`);
    return server.status;
  }

  private async waitFor(action: Action, what: string, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    let current = action;
    while (current.status === 'running') {
      if (Date.now() > deadline) throw new InfraError(`Hetzner Cloud did not finish ${what} in ${Math.round(deadlineMs / 1000)} s`, 'see the Hetzner Cloud console for the server');
      await sleep(this.pollMs);
      current = (await this.call<{ action: Action }>('GET', `/actions/${action.id}`)).action;
    }
    if (current.status === 'error') throw new InfraError(`Hetzner Cloud could not finish ${what}: ${current.error?.message ?? 'error'}`, 'see the Hetzner Cloud console for the server');
  }

  /**
   * An ACPI shutdown (systemd stops Docker, so Postgres stops cleanly), then
   * waits until the server is off. False when it is not off in time: the
   * provider then cuts the power.
   */
  async shutdown(serverId: number, deadlineMs: number): Promise<boolean> {
    const deadline = Date.now() + deadlineMs;
    if ((await this.status(serverId)) === 'off') return true;
    const { action } = await this.call<{ action: Action }>('POST', `/servers/${serverId}/actions/shutdown`, {});
    // One deadline for both: the action, then the server's own state.
    await this.waitFor(action, 'the shutdown', deadlineMs);
    while (Date.now() < deadline) {
      if ((await this.status(serverId)) === 'off') return true;
      await sleep(this.pollMs);
    }
    return false;
  }

  /** Powers the server on, unless it runs. */
  async powerOn(serverId: number, deadlineMs: number): Promise<void> {
    if ((await this.status(serverId)) === 'running') return;
    const { action } = await this.call<{ action: Action }>('POST', `/servers/${serverId}/actions/poweron`, {});
    await this.waitFor(action, 'powering the server on', deadlineMs);
  }
}
