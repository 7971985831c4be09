import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A unix-socket relay to the real Docker socket. Pointing the daemon at it
 * lets a test take the engine away from pgdbd (and give it back) without
 * stopping the machine's Docker engine, which other tests share.
 */
export class DockerSocketProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Relay to the engine, or accept and never answer (an engine that hangs). */
  private mode: 'relay' | 'silent' = 'relay';

  constructor(
    readonly path: string,
    private readonly target = '/var/run/docker.sock',
  ) {}

  /** Starts relaying; does nothing when already up. */
  async up(): Promise<void> {
    this.mode = 'relay';
    if (this.server) return;
    rmSync(this.path, { force: true });
    const server = createServer((client) => {
      this.track(client);
      if (this.mode === 'silent') {
        client.resume();
        return;
      }
      const upstream = connect(this.target);
      this.track(upstream);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.path, resolve));
    this.server = server;
  }

  /** The engine hangs: open connections drop, new ones are accepted and never answered. */
  async hang(): Promise<void> {
    await this.up();
    this.mode = 'silent';
    for (const socket of this.sockets) socket.destroy();
  }

  /** Connections the proxy holds open right now (silent ones included). */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** The engine "stops": open connections drop and the socket disappears. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
    rmSync(this.path, { force: true });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
  }
}
