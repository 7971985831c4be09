/** A PGDB_ALERT_WEBHOOK receiver on loopback for the e2e tier. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  status: number;
  body: any;
  path: string;
}

/** Records every request (its JSON body and path), and answers 500 to the next `failNext` ones. */
export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  failNext = 0;
  private server: Server | undefined;
  url = '';

  /** `secret`: the last path segment of its URL (a token, which the daemon must never log). */
  constructor(private readonly secret: string) {}

  async start(): Promise<this> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const status = this.failNext > 0 ? 500 : 204;
        if (this.failNext > 0) this.failNext--;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = Buffer.concat(chunks).toString('utf8');
        }
        this.deliveries.push({ status, body, path: request.url ?? '' });
        response.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/${this.secret}`;
    return this;
  }

  /** Deliveries of one event kind about one database (null: the server). */
  about(database: string | null, event: 'problem' | 'resolved'): Delivery[] {
    return this.deliveries.filter((d) => d.body?.database === database && d.body?.event === event);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
