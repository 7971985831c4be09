/**
 * `npm run docs`: writes the generated references, docs/reference/cli.md
 * (from the CLI's own help) and docs/reference/api.md (from the daemon's
 * OpenAPI document). tools/docs/docs.spec.ts generates both again and fails
 * when the committed files differ.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { normaliseDocument, openApiDocument, renderApiReference } from './api-reference.js';
import { helpPages, pgdbRunner, renderCliReference } from './cli-reference.js';
import { ROOT } from './paths.js';

export const CLI_REFERENCE = 'docs/reference/cli.md';
export const API_REFERENCE = 'docs/reference/api.md';

/** The generated files' text, by path relative to the checkout. */
export async function generateReferences(): Promise<Record<string, string>> {
  const pgdb = pgdbRunner();
  let cli: string;
  try {
    cli = renderCliReference(helpPages(pgdb.run));
  } finally {
    pgdb.close();
  }
  const { document, versions } = await openApiDocument();
  return { [CLI_REFERENCE]: cli, [API_REFERENCE]: renderApiReference(normaliseDocument(document, versions)) };
}

async function main(): Promise<void> {
  for (const [path, text] of Object.entries(await generateReferences())) {
    mkdirSync(dirname(join(ROOT, path)), { recursive: true });
    writeFileSync(join(ROOT, path), text);
    process.stdout.write(`wrote ${path}\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
