/**
 * "Hetzner servers" for the fake cloud (fake-hcloud.ts): each one a systemd
 * Debian container (scripts/build-infra-test-image.sh) on the host's network
 * and Docker engine, with sshd listening on a loopback address of its own,
 * 127.0.0.N, which the fake API returns as the server's public IPv4. pgdbd
 * and the databases are then bound to that address by bootstrap.
 *
 * Volumes are sparse files on the host, formatted like Hetzner formats them
 * (ext4) and attached as loop devices: the container gets the block device
 * (/dev/hc/volume-<id>) at the path Hetzner uses,
 * /dev/disk/by-id/scsi-0HC_Volume_<id>, so bootstrap mounts a real file
 * system. Both folders are the host's, so they outlive a power cycle
 * (`docker stop`, `docker start`), after which the test image's
 * pgdb-test-volumes.service mounts what /etc/fstab lists, as systemd does at
 * boot on a real server.
 *
 * All traffic stays on loopback addresses.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Machines } from './fake-hcloud.js';
import { eventually } from './eventually.js';

const run = promisify(execFile);
export const INFRA_TEST_IMAGE = process.env.PGDB_INFRA_TEST_IMAGE ?? 'pgdb-test/infra-server:12';
export const MACHINE_LABEL = 'pgdb.test=infra-e2e';
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

async function sh(command: string, args: string[], input?: string): Promise<string> {
  const child = run(command, args, { maxBuffer: 64 * 1024 * 1024 });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  const { stdout } = await child;
  return stdout.trim();
}

export class DockerMachines implements Machines {
  private readonly containers = new Map<number, { name: string; ipv4: string }>();
  private readonly loops = new Map<number, string>();
  private nextHost: number;

  constructor(
    private readonly workDir: string,
    firstHost = 20 + Math.floor(Math.random() * 200),
  ) {
    this.nextHost = firstHost;
  }

  /** The container that plays server `id`. */
  container(serverId: number): string {
    const found = this.containers.get(serverId);
    if (!found) throw new Error(`no machine for server ${serverId}`);
    return found.name;
  }

  async exec(serverId: number, script: string): Promise<string> {
    return sh('docker', ['exec', this.container(serverId), 'bash', '-c', script]);
  }

  async create(server: { id: number; name: string; authorizedKeys: string[] }): Promise<{ ipv4: string }> {
    const ipv4 = `127.0.0.${this.nextHost}`;
    this.nextHost = this.nextHost >= 250 ? 20 : this.nextHost + 1;
    const name = `pgdb-infra-e2e-${server.id}`;
    const args = ['run', '-d', '--name', name, '--label', MACHINE_LABEL, '--hostname', server.name];
    args.push('--network', 'host', '--cgroupns=private', '--cap-add', 'SYS_ADMIN', '--security-opt', 'seccomp=unconfined');
    args.push('--tmpfs', '/run', '--tmpfs', '/run/lock', '--tmpfs', '/tmp');
    // Loop block devices (major 7) may be created and mounted: the attached volumes.
    args.push('--device-cgroup-rule', 'b 7:* rmw');
    args.push('-v', '/var/run/docker.sock:/var/run/docker.sock');
    // The attached volumes' device nodes and by-id links, kept across a power cycle.
    for (const folder of ['hc', 'by-id']) await mkdir(join(this.workDir, `machine-${server.id}`, folder), { recursive: true });
    args.push('-v', `${join(this.workDir, `machine-${server.id}`, 'hc')}:/dev/hc`, '-v', `${join(this.workDir, `machine-${server.id}`, 'by-id')}:/dev/disk/by-id`);
    if (existsSync(CA_BUNDLE)) args.push('-v', `${CA_BUNDLE}:${CA_BUNDLE}:ro`);
    await sh('docker', [...args, INFRA_TEST_IMAGE]);
    this.containers.set(server.id, { name, ipv4 });
    await this.waitForSystemd(name);
    // What Hetzner's cloud-init does with the server's SSH keys, and sshd on the server's own address.
    await sh('docker', ['exec', '-i', name, 'bash', '-c', 'install -d -m 0700 /root/.ssh && cat >/root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys'], `${server.authorizedKeys.join('\n')}\n`);
    await sh('docker', [
      'exec',
      name,
      'bash',
      '-c',
      `printf 'ListenAddress ${ipv4}\\nPasswordAuthentication no\\nPermitRootLogin prohibit-password\\n' >/etc/ssh/sshd_config.d/pgdb-test.conf && ssh-keygen -A >/dev/null && systemctl enable --now ssh.service >/dev/null 2>&1`,
    ]);
    return { ipv4 };
  }

  private async waitForSystemd(name: string): Promise<void> {
    await eventually(`systemd in ${name} finishing its boot`, 60_000, async () => {
      const state = await sh('docker', ['exec', name, 'systemctl', 'is-system-running']).catch((error: { stdout?: string }) => String(error.stdout ?? '').trim());
      if (state === 'running' || state === 'degraded') return state;
      throw new Error(`systemctl is-system-running: ${state}`);
    }, 200);
  }

  async remove(serverId: number): Promise<void> {
    const found = this.containers.get(serverId);
    if (!found) return;
    await sh('docker', ['rm', '-f', '-v', found.name]).catch(() => undefined);
    await rm(join(this.workDir, `machine-${serverId}`), { recursive: true, force: true });
    this.containers.delete(serverId);
  }

  /**
   * Off: an ACPI shutdown is `docker stop` (systemd shuts down, SIGKILL after
   * 30 s), a cut power `docker kill`. On: `docker start`, then systemd's boot:
   * the volumes, sshd and pgdbd (when installed) start as on a real server.
   */
  async power(serverId: number, on: boolean, graceful = false): Promise<void> {
    const name = this.container(serverId);
    if (!on) {
      await sh('docker', graceful ? ['stop', '-t', '30', name] : ['kill', name]).catch(() => undefined);
      return;
    }
    await sh('docker', ['start', name]);
    await this.waitForSystemd(name);
  }

  private volumeFile(volumeId: number): string {
    return join(this.workDir, `volume-${volumeId}.img`);
  }

  async createVolume(volume: { id: number; sizeGb: number; format: string | null }): Promise<void> {
    await mkdir(this.workDir, { recursive: true });
    const file = this.volumeFile(volume.id);
    await sh('truncate', ['-s', `${volume.sizeGb}G`, file]);
    if (volume.format) await sh(`mkfs.${volume.format}`, ['-q', file]);
  }

  async deleteVolume(volumeId: number): Promise<void> {
    await rm(this.volumeFile(volumeId), { force: true });
  }

  async attach(volumeId: number, serverId: number): Promise<void> {
    const loop = await sh('losetup', ['-f', '--show', this.volumeFile(volumeId)]);
    this.loops.set(volumeId, loop);
    const minor = loop.replace('/dev/loop', '');
    await this.exec(
      serverId,
      `rm -f /dev/hc/volume-${volumeId} && mknod /dev/hc/volume-${volumeId} b 7 ${minor} && ln -sfn /dev/hc/volume-${volumeId} /dev/disk/by-id/scsi-0HC_Volume_${volumeId}`,
    );
  }

  async detach(volumeId: number, serverId: number): Promise<void> {
    if (this.containers.has(serverId)) {
      await this.exec(serverId, `rm -f /dev/disk/by-id/scsi-0HC_Volume_${volumeId} /dev/hc/volume-${volumeId}`).catch(() => undefined);
    }
    const loop = this.loops.get(volumeId);
    if (loop) {
      // A device still mounted in a container is freed when that mount goes (autoclear).
      await sh('losetup', ['-d', loop]).catch(() => undefined);
      this.loops.delete(volumeId);
    }
  }

  /** Removes every machine and loop device this instance made, and the volume files. */
  async cleanup(): Promise<void> {
    for (const id of [...this.containers.keys()]) await this.remove(id);
    for (const loop of this.loops.values()) await sh('losetup', ['-d', loop]).catch(() => undefined);
    this.loops.clear();
    await rm(this.workDir, { recursive: true, force: true });
  }
}
