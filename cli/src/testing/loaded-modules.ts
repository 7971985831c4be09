/**
 * Loaded with `node --import <this file's URL>?out=<file>` by
 * cli/bin/pgdb.spec.ts: appends to <file>, one per line, the URL of every
 * module the process loads. ES modules are recorded as they are resolved (the
 * main script included), CommonJS modules at exit from the require cache.
 * Node's own modules (node:...) and this probe are left out.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const self = new URL(import.meta.url);
const out = self.searchParams.get('out');
if (!out) {
  throw new Error('loaded-modules: give the output file as ?out=<file>');
}
self.search = '';

const hook = `import { appendFileSync } from 'node:fs';
let out;
export function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (!result.url.startsWith('node:') && !result.url.startsWith('data:') && !result.url.startsWith(${JSON.stringify(self.href)})) {
    appendFileSync(out, result.url + '\\n');
  }
  return result;
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`, { data: { out } });

process.on('exit', () => {
  const cache = createRequire(import.meta.url).cache;
  for (const path of Object.keys(cache)) {
    appendFileSync(out, `${pathToFileURL(path).href}\n`);
  }
});
