import { readFileSync } from 'node:fs';

/** The version in package.json, which sits four levels above this file once built (dist/daemon/src/common). */
export const DAEMON_VERSION: string = JSON.parse(
  readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8'),
).version;
