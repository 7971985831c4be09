import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DAEMON_CONFIG, type DaemonConfig } from '../common/config.js';
import { ROOT_LOGGER, type Logger } from '../common/logger.js';
import { Alerts, type ProblemEntry } from '../common/alerts.js';
import { BackupEvents } from '../database/backup-events.js';
import { TLS_SERVICE, type TlsService } from '../tls/tls.service.js';
import { DeployService } from './deploy.service.js';

/** How often the problem set is compared for alerts, besides the changes its parts announce. */
const CHECK_MS = 30_000;

/**
 * The health problem set, the one source of truth for `/v1/health` and
 * for PGDB_ALERT_WEBHOOK: Docker unreachable, every backup problem, and an
 * ACME certificate that could not be had or renewed. The webhook hears of
 * each problem that appears or clears: checked every 30 s, and at once when
 * a backup, a drill or an ACME attempt ends.
 */
@Injectable()
export class HealthService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly alerts: Alerts;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> = Promise.resolve();
  private stopped = false;
  private unsubscribe: () => void = () => undefined;

  constructor(
    @Inject(DAEMON_CONFIG) config: DaemonConfig,
    private readonly deployService: DeployService,
    private readonly backupEvents: BackupEvents,
    @Inject(TLS_SERVICE) private readonly tls: TlsService,
    @Inject(ROOT_LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ module: 'health' });
    this.alerts = new Alerts({ url: config.backup.alertWebhook, server: config.publicHost }, logger.child({ module: 'alerts' }));
    backupEvents.onProblemsChanged(() => this.check());
  }

  onApplicationBootstrap(): void {
    this.unsubscribe = this.tls.onAcmeAttempt(() => this.check());
    this.schedule(5_000);
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unsubscribe();
  }

  /** Whether Docker answers, and every problem with the database it is about (null: the server). */
  async problems(): Promise<{ dockerReachable: boolean; entries: ProblemEntry[] }> {
    const [dockerReachable, backups] = await Promise.all([
      this.deployService.dockerReachable(),
      this.backupEvents
        .problemEntries()
        .catch((error: Error): ProblemEntry[] => [{ database: null, kind: 'backup-state', problem: `backup state unavailable: ${error.message}` }]),
    ]);
    const acme = this.tls.acmeProblem();
    const entries: ProblemEntry[] = [
      ...(dockerReachable ? [] : [{ database: null, kind: 'docker', problem: 'the Docker engine does not answer' }]),
      ...backups,
      ...(acme ? [{ database: null, kind: 'acme', problem: acme }] : []),
    ];
    return { dockerReachable, entries };
  }

  /** Compares the problem set with the last one seen; the webhook hears of each change (in the background). Checks run one at a time. */
  check(): void {
    this.checking = this.checking.then(() =>
      this.problems().then(
        ({ entries }) => this.alerts.observe(entries),
        (error: Error) => this.logger.warn({ err: error.message }, 'could not check the problems for alerts'),
      ),
    );
  }

  /** Resolves when the checks asked for so far have run (their deliveries go on: `alerts.settled()`). */
  checked(): Promise<void> {
    return this.checking;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.check();
      this.schedule(CHECK_MS);
    }, delayMs);
    this.timer.unref();
  }
}
