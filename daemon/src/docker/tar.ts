import { posix } from 'node:path';
import { pack } from 'tar-stream';
import type { ContainerFile } from './docker.gateway.js';

/**
 * A tar archive of `files` (paths relative to `/`), with each parent
 * directory as an entry of its own, root-owned and 0755, so the engine
 * creates them when they are missing.
 */
export async function tarOf(files: ContainerFile[]): Promise<Buffer> {
  const archive = pack();
  const directories = new Set<string>();
  for (const file of files) {
    if (!posix.isAbsolute(file.path)) throw new Error(`container file path must be absolute: ${file.path}`);
    const parts = posix.dirname(file.path).split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) directories.add(parts.slice(0, i).join('/'));
  }
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    archive.on('data', (chunk) => chunks.push(chunk as Buffer));
    archive.on('end', () => resolve(Buffer.concat(chunks)));
    archive.on('error', reject);
  });
  for (const name of [...directories].sort()) {
    archive.entry({ name: `${name}/`, type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  }
  for (const file of files) {
    archive.entry({ name: file.path.slice(1), mode: file.mode, uid: file.uid, gid: file.gid }, file.content);
  }
  archive.finalize();
  return done;
}
