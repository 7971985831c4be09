/**
 * Loaded with `node --import` by cli/bin/pgdb.spec.ts: from then on, resolving
 * any module of a @pulumi package fails with "pulumi module loaded: <url>".
 */
import { register } from 'node:module';

const hook = `export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (result.url.includes('/node_modules/@pulumi/')) throw new Error('pulumi module loaded: ' + result.url);
  return result;
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);
