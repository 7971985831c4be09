/**
 * The Automation API driver: opens the stack (file backend under the CLI's
 * config directory unless PULUMI_BACKEND_URL is set), sets its config, runs
 * up / refresh / destroy with the program in program.ts, and turns engine
 * events into progress lines and failures into one clear error.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { delimiter, dirname, isAbsolute } from 'node:path';
import {
  LocalWorkspace,
  type ConfigMap,
  type EngineEvent,
  type OutputMap,
  type Stack,
} from '@pulumi/pulumi/automation/index.js';
import { explainFailure, InfraError, redact } from './failures.js';
import { PROJECT } from './options.js';
import { pgdbProgram, readProgramConfig } from './program.js';
import { ProgressDisplay, summarizeChanges } from './progress.js';
import { pulumiCommand } from './pulumi-cli.js';
import { removeStaleLocks, stackLocks, stateSettings, type StateSettings } from './state.js';

export interface DriverEnvironment {
  configDir: string;
  cacheDir: string;
  path?: string;
  pulumiBinary?: string;
  backendUrl?: string;
  passphrase?: string;
  passphraseFile?: string;
  /** The Hetzner token: passed to the engine (and so the provider) as HCLOUD_TOKEN. */
  hcloudToken?: string;
  /** HCLOUD_ENDPOINT: the API pgdb calls itself (a resize); the provider reads the same variable. */
  hcloudEndpoint?: string;
}

export interface DriverIo {
  /** A progress or notice line on stderr. */
  log: (line: string) => void;
  /** --verbose: the engine's whole output goes to `log` too. */
  verbose: boolean;
}

/** Provider plugins the program needs: the versions the npm packages ask for. */
export const PLUGINS = pluginsOf(['@pulumi/hcloud', '@pulumi/command']);

export function pluginsOf(packages: string[]): Array<{ name: string; version: string }> {
  const require = createRequire(import.meta.url);
  return packages.map((name) => {
    const { pulumi } = require(`${name}/package.json`) as { pulumi: { name: string; version: string } };
    return { name: pulumi.name, version: pulumi.version };
  });
}

export interface OpenStack {
  stack: Stack;
  state: StateSettings;
  secrets: string[];
}

export async function openStack(name: string, env: DriverEnvironment, io: DriverIo, secrets: string[] = []): Promise<OpenStack> {
  const state = await stateSettings({
    configDir: env.configDir,
    backendUrl: env.backendUrl,
    passphrase: env.passphrase,
    passphraseFile: env.passphraseFile,
  });
  const command = await pulumiCommand({ path: env.path, pulumiBinary: env.pulumiBinary, cacheDir: env.cacheDir, log: io.log });
  const envVars: Record<string, string> = { PULUMI_SKIP_UPDATE_CHECK: 'true' };
  if (state.passphrase !== undefined) envVars.PULUMI_CONFIG_PASSPHRASE = state.passphrase;
  if (state.passphraseFile) envVars.PULUMI_CONFIG_PASSPHRASE_FILE = state.passphraseFile;
  if (env.hcloudToken) envVars.HCLOUD_TOKEN = env.hcloudToken;
  if (state.backendDir) {
    const removed = await removeStaleLocks(state.backendDir, name);
    for (const lock of removed) {
      io.log(`removed the lock left by an interrupted run (pid ${lock.pid} on this machine)`);
    }
  }
  const allSecrets = [...secrets, ...(env.hcloudToken ? [env.hcloudToken] : []), ...(state.passphrase ? [state.passphrase] : [])];
  try {
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName: name, projectName: PROJECT, program: async () => pgdbProgram(readProgramConfig()) },
      {
        workDir: state.workDir,
        pulumiCommand: command,
        envVars,
        secretsProvider: 'passphrase',
        projectSettings: { name: PROJECT, runtime: 'nodejs', backend: { url: state.backendUrl } },
      },
    );
    return { stack, state, secrets: allSecrets };
  } catch (error) {
    throw failure(error, [], name, allSecrets);
  }
}

/** Installs the provider plugins the npm packages ask for, unless present. */
export async function ensurePlugins(open: OpenStack, io: DriverIo): Promise<void> {
  const installed = await open.stack.workspace.listPlugins();
  for (const plugin of PLUGINS) {
    if (installed.some((p) => p.name === plugin.name && p.kind === 'resource' && p.version === plugin.version)) continue;
    io.log(`installing the Pulumi plugin ${plugin.name} v${plugin.version} (once)`);
    try {
      await open.stack.workspace.installPlugin(plugin.name, `v${plugin.version}`);
    } catch (error) {
      throw new InfraError(
        `cannot install the Pulumi plugin ${plugin.name} v${plugin.version}`,
        `run \`pulumi plugin install resource ${plugin.name} v${plugin.version}\` and try again`,
        redact(String(error), open.secrets),
      );
    }
  }
}

/** Plain values in one `pulumi config set-all`; secrets one by one through standard input (setSecretConfig). */
export async function setConfig(open: OpenStack, config: ConfigMap): Promise<void> {
  const plain = Object.fromEntries(Object.entries(config).filter(([, value]) => !value.secret));
  if (Object.keys(plain).length > 0) await open.stack.setAllConfig(plain);
  for (const [key, value] of Object.entries(config)) {
    if (value.secret) await setSecretConfig(open, key, value.value);
  }
}

/**
 * Sets one secret config value through `pulumi config set --secret` reading
 * standard input: the Automation API's setAllConfig puts values on the
 * engine's command line, where any local user sees them in the process list.
 */
export async function setSecretConfig(open: OpenStack, key: string, value: string): Promise<void> {
  const workspace = open.stack.workspace as LocalWorkspace;
  const binary = workspace.pulumiCommand.command;
  const env: NodeJS.ProcessEnv = { ...process.env, ...(workspace.pulumiHome ? { PULUMI_HOME: workspace.pulumiHome } : {}), ...workspace.envVars };
  // As the Automation API runs it: the bundled plugins beside the binary come first.
  if (isAbsolute(binary)) env.PATH = `${dirname(binary)}${delimiter}${env.PATH ?? ''}`;
  env.PULUMI_AUTOMATION_API = 'true';
  const args = ['config', 'set', '--secret', key, '--stack', open.stack.name, '--non-interactive'];
  await new Promise<void>((resolve, reject) => {
    const child = execFile(binary, args, { cwd: workspace.workDir, env, maxBuffer: 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) reject(new InfraError(`cannot store ${key} in the stack's config`, 'run again with --verbose', redact(`${stderr}`, [value, ...open.secrets])));
      else resolve();
    });
    child.stdin?.end(value);
  });
}

export async function removeConfig(open: OpenStack, keys: string[]): Promise<void> {
  if (keys.length > 0) await open.stack.removeAllConfig(keys);
}

export async function getConfig(open: OpenStack): Promise<ConfigMap> {
  return open.stack.getAllConfig();
}

export interface RunResult {
  outputs: OutputMap;
  changes: Record<string, number>;
  summary: string;
}

export async function up(open: OpenStack, io: DriverIo): Promise<RunResult> {
  return run(open, io, async (onEvent, onOutput) => {
    const result = await open.stack.up({ onEvent, onOutput, color: 'never' });
    return { outputs: result.outputs, changes: result.summary.resourceChanges ?? {} };
  });
}

export async function refresh(open: OpenStack, io: DriverIo): Promise<RunResult> {
  return run(open, io, async (onEvent, onOutput) => {
    const result = await open.stack.refresh({ onEvent, onOutput, color: 'never' });
    return { outputs: await open.stack.outputs(), changes: result.summary.resourceChanges ?? {} };
  });
}

/** Destroys everything, or only the resources whose URNs `target` lists. */
export async function destroy(open: OpenStack, io: DriverIo, target?: string[]): Promise<RunResult> {
  return run(open, io, async (onEvent, onOutput) => {
    const result = await open.stack.destroy({ onEvent, onOutput, color: 'never', target, targetDependents: target !== undefined });
    return { outputs: {}, changes: result.summary.resourceChanges ?? {} };
  });
}

/** The URNs and types of the resources in the stack's state. */
export async function resources(open: OpenStack): Promise<Array<{ urn: string; type: string }>> {
  const state = await open.stack.exportStack();
  const list = (state.deployment as { resources?: Array<{ urn: string; type: string }> }).resources ?? [];
  return list.map(({ urn, type }) => ({ urn, type }));
}

/** Clears `retainOnDelete` on the resources of `type` in the state, so that destroy deletes them. */
export async function releaseRetained(open: OpenStack, type: string): Promise<void> {
  const state = await open.stack.exportStack();
  const deployment = state.deployment as { resources?: Array<{ type: string; retainOnDelete?: boolean }> };
  let changed = false;
  for (const resource of deployment.resources ?? []) {
    if (resource.type === type && resource.retainOnDelete) {
      resource.retainOnDelete = false;
      changed = true;
    }
  }
  if (changed) await open.stack.importStack(state);
}

async function run(
  open: OpenStack,
  io: DriverIo,
  action: (onEvent: (event: EngineEvent) => void, onOutput: (text: string) => void) => Promise<Omit<RunResult, 'summary'>>,
): Promise<RunResult> {
  const progress = new ProgressDisplay(io.log);
  const onOutput = (text: string) => {
    if (io.verbose) io.log(redact(text.replace(/\n$/, ''), open.secrets));
  };
  try {
    const result = await action((event) => progress.onEvent(event as never), onOutput);
    return { ...result, summary: summarizeChanges(result.changes) };
  } catch (error) {
    throw await lockedOrFailure(open, error, progress);
  }
}

async function lockedOrFailure(open: OpenStack, error: unknown, progress: ProgressDisplay): Promise<InfraError> {
  const explained = failure(error, progress.errors, open.stack.name, open.secrets, progress.failedAfterMs.at(-1));
  if (/is locked/.test(explained.message) && open.state.backendDir) {
    const locks = await stackLocks(open.state.backendDir, open.stack.name);
    const holder = locks.find((lock) => lock.pid !== undefined);
    if (holder) {
      return new InfraError(
        explained.message,
        `a run with pid ${holder.pid} on ${holder.hostname} holds it; wait for it, or if that process is gone remove ${holder.path} and run again`,
        explained.detail,
      );
    }
  }
  return explained;
}

function failure(error: unknown, diagnostics: string[], stack: string, secrets: string[], failedAfterMs?: number): InfraError {
  if (error instanceof InfraError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return explainFailure([...diagnostics, message], { stack, secrets, failedAfterMs });
}
