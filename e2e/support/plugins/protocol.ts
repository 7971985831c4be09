/**
 * What the stand-in provider plugins share: the values the engine sends
 * (secrets, unknowns and assets arrive as signed objects), and diffing.
 * Test support only: the product never loads the stand-ins.
 */
import { createRequire } from 'node:module';

const SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';
export const UNKNOWN = '04da6b54-80e4-46f7-96ec-b56ff0331ba9';

/** The plugin version the npm package asks for (its package.json `pulumi.version`). */
export function pluginVersion(npmPackage: string): string {
  const require = createRequire(import.meta.url);
  return (require(`${npmPackage}/package.json`) as { pulumi: { version: string } }).pulumi.version;
}

/** Replaces secret wrappers by their values, deeply. */
export function reveal<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reveal) as T;
  if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if (object[SIG_KEY] === SECRET_SIG) return reveal(object.value) as T;
    return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, reveal(v)])) as T;
  }
  return value;
}

export function hasUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(hasUnknown);
  if (value && typeof value === 'object') return Object.values(value).some(hasUnknown);
  return false;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
}

function normalize(value: unknown): unknown {
  value = reveal(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k, v]) => !k.startsWith('__') && v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, normalize(v)]),
    );
  }
  return value;
}

/**
 * Which of `keys` differ between the old state and the new inputs. A key the
 * new inputs leave out is not compared (the provider computes it).
 */
export function changedKeys(olds: Record<string, unknown>, news: Record<string, unknown>, keys: string[]): string[] {
  return keys.filter((key) => news[key] !== undefined && (hasUnknown(news[key]) || !same(olds[key], news[key])));
}

export function diffResult(olds: Record<string, unknown>, news: Record<string, unknown>, updatable: string[], replacing: string[]) {
  const updates = changedKeys(olds, news, updatable);
  const replaces = changedKeys(olds, news, replacing);
  return { changes: updates.length + replaces.length > 0, replaces, deleteBeforeReplace: false };
}

/** "urn:pulumi:stack::project::hcloud:index/server:Server::name" → "hcloud:index/server:Server". */
export function typeOf(urn: string): string {
  return urn.split('::')[2].split('$').at(-1)!;
}

/** Drops undefined values, which a protobuf Struct cannot hold. */
export function clean<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
