/**
 * The generated references are what `npm run docs` writes today, and every
 * relative link of the project's Markdown leads somewhere. Needs a build
 * (`npm run build`): the CLI reference runs dist/cli/bin/pgdb.cjs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { COMMAND_NAMES } from '../../cli/src/commands/index.js';
import { MEMORY_MB_MAX } from '../../contract/api.js';
import { machineValues, normaliseDocument, renderApiReference, type OpenApiDocument } from './api-reference.js';
import { commandEntries, helpPages, renderCliReference } from './cli-reference.js';
import { API_REFERENCE, CLI_REFERENCE, generateReferences } from './generate.js';
import { brokenLinks, diskTree, linkTargets, projectMarkdown, type Tree } from './links.js';
import { githubSlug, headingAnchors } from './markdown.js';
import { ROOT } from './paths.js';

/** Where two texts first differ, for the failure message. */
function firstDifference(committed: string, generated: string): string {
  const a = committed.split('\n');
  const b = generated.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `line ${i + 1}: committed ${JSON.stringify(a[i] ?? '(none)')}, generated ${JSON.stringify(b[i] ?? '(none)')}`;
  }
  return 'no difference';
}

function read(path: string): string {
  try {
    return readFileSync(join(ROOT, path), 'utf8');
  } catch {
    return '';
  }
}

describe('generated references (npm run docs)', () => {
  let generated: Record<string, string>;
  before(async () => {
    generated = await generateReferences();
  });

  for (const path of [CLI_REFERENCE, API_REFERENCE]) {
    it(`${path} is up to date`, () => {
      const committed = read(path);
      assert.ok(
        committed === generated[path],
        `${path} is out of date: run \`npm run docs\` and commit the result (${firstDifference(committed, generated[path])})`,
      );
    });
  }

  it("documents every command the CLI registers, found in the CLI's own help", () => {
    const documented = [...generated[CLI_REFERENCE].matchAll(/^## `pgdb ?(.*)`$/gm)].map((match) => match[1]);
    for (const name of [...COMMAND_NAMES, 'completion']) assert.ok(documented.includes(name), `pgdb ${name}`);
    for (const sub of ['infra init', 'infra bootstrap', 'infra status', 'infra destroy', 'config set', 'config unset', 'credentials rotate']) {
      assert.ok(documented.includes(sub), `pgdb ${sub}`);
    }
    assert.equal(documented[0], '', '`pgdb` itself first');
    assert.doesNotMatch(generated[CLI_REFERENCE], /pgdb-docs-home-/, "the empty HOME's path is written as ~");
  });

  it('holds no value of this machine', () => {
    const { memoryMb } = machineValues();
    if (memoryMb < MEMORY_MB_MAX) assert.doesNotMatch(generated[API_REFERENCE], new RegExp(`\\b${memoryMb}\\b`), "this machine's memory");
    assert.match(generated[API_REFERENCE], /the server's memory in MiB/);
    assert.match(generated[API_REFERENCE], /the server's CPU count/);
    assert.match(generated[API_REFERENCE], /by default 14, 15, 16, 17, 18/);
  });
});

describe('the generators', () => {
  it('read the commands of a help page, with summaries over several lines', () => {
    const help = [
      'pgdb infra',
      '',
      'Commands:',
      '  pgdb infra init       create or update the server',
      '                        and its volume',
      '  pgdb backup <name> [target]  take a backup',
      '',
      'Options:',
      '  --verbose',
    ].join('\n');
    assert.deepEqual(commandEntries(help), [
      { path: ['infra', 'init'], summary: 'create or update the server and its volume' },
      { path: ['backup'], summary: 'take a backup' },
    ]);
    assert.deepEqual(commandEntries('pgdb status\n\nOptions:\n  --json'), []);
  });

  it('follow the commands of each help, and mark what prints no help', () => {
    const pages: Record<string, string> = {
      '': 'pgdb <command>\n\nCommands:\n  pgdb a <x>  the a\n  pgdb b      the b\n  pgdb completion  script\n',
      a: 'pgdb a <x>\n\nthe a\n',
      b: 'pgdb b\n\nCommands:\n  pgdb b c  the c\n',
      'b c': 'pgdb b c\n',
      completion: '###-begin-pgdb-completions-###\n',
    };
    const seen = helpPages((args) => {
      assert.equal(args.at(-1), '--help');
      return pages[args.slice(0, -1).join(' ')];
    });
    assert.deepEqual(
      seen.map((page) => [page.path.join(' '), page.summary, page.help !== undefined]),
      [['', '', true], ['a', 'the a', true], ['b', 'the b', true], ['b c', 'the c', true], ['completion', 'script', false]],
    );
    assert.match(renderCliReference(seen), /`pgdb completion --help` prints no help page/);
  });

  it("write this machine's memory and CPU count, and the configured versions, as what they depend on", () => {
    const document: OpenApiDocument = {
      openapi: '3.0.0',
      info: { title: 'pgdbd' },
      paths: {},
      components: {
        schemas: {
          ResizeRequest: {
            type: 'object',
            additionalProperties: false,
            properties: { memory_mb: { type: 'integer', minimum: 256, maximum: 3000 }, cpus: { type: 'number', minimum: 0.01, maximum: 4 } },
          },
          DeployRequest: { type: 'object', additionalProperties: false, properties: { version: { type: 'integer', enum: [15, 17] } } },
        },
      },
    };
    const text = renderApiReference(normaliseDocument(document, [15, 17], { memoryMb: 3000, cpus: 4 }));
    assert.match(text, /256 to the server's memory in MiB \(at most 1048576\)/);
    assert.match(text, /0\.01 to the server's CPU count \(at most 1024\)/);
    assert.match(text, /a major of the daemon's `PGDB_POSTGRES_VERSIONS` \(by default 15, 17\)/);
    assert.doesNotMatch(text, /3000/);
    assert.equal(document.components.schemas.ResizeRequest.properties!.memory_mb.maximum, 3000, 'the document itself is left as it was');
  });

  it('refuse a schema keyword they cannot render', () => {
    const document: OpenApiDocument = {
      openapi: '3.0.0',
      info: { title: 'pgdbd' },
      paths: {},
      components: { schemas: { X: { type: 'object', properties: { a: { type: 'string', oneOf: [] } as never } } } },
    };
    assert.throws(() => renderApiReference(document), /cannot render the schema keyword "oneOf"/);
  });
});

describe('links in README.md, CONTRIBUTING.md and docs/', () => {
  it('point at files of the checkout, and at headings that exist', () => {
    const files = projectMarkdown(ROOT);
    assert.ok(files.includes('README.md') && files.includes('docs/reference/cli.md'), files.join(', '));
    const broken = brokenLinks(files, diskTree(ROOT)).map((link) => `${link.file}:${link.line}: (${link.target}) ${link.reason}`);
    assert.deepEqual(broken, []);
  });

  it('are named as GitHub names headings', () => {
    assert.equal(githubSlug('Security: pinning and `--insecure`'), 'security-pinning-and---insecure');
    assert.equal(githubSlug('Certificates every driver trusts (ACME)'), 'certificates-every-driver-trusts-acme');
    assert.equal(githubSlug('`GET /v1/status[?show_secrets=true]`'), 'get-v1statusshow_secretstrue');
    assert.equal(githubSlug('Backup secrets: S3 keys and the backup key'), 'backup-secrets-s3-keys-and-the-backup-key');
    assert.deepEqual([...headingAnchors('# A\n## Commands\n```\n# not a heading\n```\n### Commands\n')], ['a', 'commands', 'commands-1']);
  });

  it('are found outside code, and the check can fail', () => {
    assert.deepEqual(
      linkTargets('[a](x.md) `[b](code.md)`\n```\n[c](fence.md)\n```\n[d][]\n\n[d]: y.md#top\n![e](img.png "title")'),
      [
        { line: 1, target: 'x.md' },
        { line: 7, target: 'y.md#top' },
        { line: 8, target: 'img.png' },
      ],
    );
    const tree: Tree = {
      exists: (path) => ['docs/a.md', 'docs/b.md', 'src/x.ts'].includes(path),
      read: (path) => ({ 'docs/a.md': '# A\n## Two words\n', 'docs/b.md': '[ok](a.md#two-words) [gone](c.md) [bad](a.md#three) [up](../../x) [src](../src/x.ts#L3) [self](#b) [web](https://example.com/#x)\n# B' })[path] ?? '',
    };
    assert.deepEqual(
      brokenLinks(['docs/b.md'], tree).map((link) => `${link.target}: ${link.reason}`),
      ['c.md: no file docs/c.md', 'a.md#three: no heading #three in docs/a.md', '../../x: outside the checkout'],
    );
  });
});
