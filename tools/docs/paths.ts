import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: these files run as dist/tools/docs/*.js. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
