/**
 * The SSH key bootstrap logs in with: the user's (--ssh-key <path.pub>, its
 * private half beside it), or one pgdb generates per stack with ssh-keygen
 * under the config directory (0600). Plain code.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { InfraError } from './failures.js';
import { checkSshPublicKey } from './options.js';

export interface SshKeyPair {
  publicKey: string;
  privateKeyPath: string;
}

export async function readPublicKey(path: string): Promise<SshKeyPair> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InfraError(`cannot read the SSH public key ${path}: ${(error as Error).message}`, 'pass --ssh-key with the path of a .pub file');
  }
  const publicKey = checkSshPublicKey(path, text);
  return { publicKey, privateKeyPath: path.replace(/\.pub$/, '') };
}

/** `<configDir>/infra/keys/<stack>/id_ed25519`, created on first use. */
export async function stackKey(configDir: string, stack: string): Promise<SshKeyPair> {
  const privateKeyPath = join(configDir, 'infra', 'keys', stack, 'id_ed25519');
  if (!existsSync(privateKeyPath)) {
    await mkdir(dirname(privateKeyPath), { recursive: true, mode: 0o700 });
    try {
      await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `pgdb-${stack}`, '-f', privateKeyPath]);
    } catch (error) {
      throw new InfraError(
        `cannot generate an SSH key with ssh-keygen: ${(error as Error).message.split('\n')[0]}`,
        'install OpenSSH (ssh-keygen), or pass --ssh-key ~/.ssh/id_ed25519.pub',
      );
    }
  }
  return readPublicKey(`${privateKeyPath}.pub`);
}

export async function readPrivateKey(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new InfraError(
      `cannot read the SSH private key ${path}: ${(error as Error).message}`,
      'bootstrap logs in with the private half of the --ssh-key given to `pgdb infra init`; it must sit beside the .pub file, unencrypted',
    );
  }
}
