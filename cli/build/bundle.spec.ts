/**
 * The liberties the bundle takes with the code it bundles: string-width's,
 * assert's and escalade's stand-ins, and dynamic imports beyond cli/ left out.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { assertStandIn, dynamicImportsBeyondCli, findUpStandIn, ROOT, stringWidthStandIn } from './bundle.js';

/** Bundles `contents` as if it were a file in `dir`, without writing anything. */
async function bundle(contents: string, dir: string, plugin: Plugin): Promise<string> {
  const result = await build({
    stdin: { contents, resolveDir: dir, sourcefile: join(dir, 'entry.ts'), loader: 'ts' },
    outfile: join(ROOT, 'dist/cli/bin/entry.js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    plugins: [plugin],
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

type StringWidth = (text: unknown, options?: { ambiguousIsNarrow?: boolean; countAnsiEscapeCodes?: boolean }) => number;

const SAMPLES = [
  '',
  'pgdb deploy --name shop',
  '  --json      print one JSON document on stdout [boolean] [default: false]',
  Array.from({ length: 0x7f - 0x20 }, (_, index) => String.fromCharCode(0x20 + index)).join(''),
  '#*0123456789',
  'naïve café',
  '日本語のデータベース',
  'status ✅ 👩‍💻',
  '\u001b[1mbold\u001b[22m text',
  'tab\there',
  'zero\u200bwidth',
  'ｱｲｳ',
];

describe('the string-width stand-in', () => {
  for (const [copy, dir] of [
    ['string-width 8 (yargs)', ROOT],
    ['string-width 7 (cliui)', join(ROOT, 'node_modules/cliui')],
  ]) {
    it(`measures like ${copy}, and loads it only for text that is not printable ASCII`, async () => {
      const code = await bundle("import width from 'string-width'; export default width;", dir, stringWidthStandIn(ROOT));
      const real = (await import(pathToFileURL(join(dir, 'node_modules/string-width/index.js')).href)).default as StringWidth;
      const intl = Intl as { Segmenter: typeof Intl.Segmenter };
      const original = intl.Segmenter;
      let segmenters = 0;
      intl.Segmenter = class extends original {
        constructor(...args: ConstructorParameters<typeof original>) {
          super(...args);
          segmenters += 1;
        }
      };
      try {
        const standIn = (await import(`data:text/javascript,${encodeURIComponent(code)}`)).default as StringWidth;
        assert.equal(standIn('pgdb status --json'), 18);
        assert.equal(segmenters, 0, 'printable ASCII is measured without loading string-width');
        for (const sample of SAMPLES) {
          for (const options of [undefined, { ambiguousIsNarrow: false }, { countAnsiEscapeCodes: true }]) {
            assert.equal(standIn(sample, options), real(sample, options), `${JSON.stringify(sample)} ${JSON.stringify(options)}`);
          }
        }
        assert.equal(standIn(undefined), real(undefined));
        assert.ok(segmenters > 0, 'other text loads string-width');
      } finally {
        intl.Segmenter = original;
      }
    });
  }
});

describe('dynamic imports in the bundle', () => {
  const outdir = join(ROOT, 'dist/cli/bin');

  it('keep code beyond cli/ and packages out, imported from tsc output at run time; bundle cli/ code', async () => {
    const code = await bundle(
      [
        "export const contract = () => import('../../contract/api.js');",
        "export const yargs = () => import('yargs');",
        "export const errors = () => import('./errors.js');",
      ].join('\n'),
      join(ROOT, 'cli/src'),
      dynamicImportsBeyondCli(ROOT, outdir),
    );
    assert.match(code, /import\("\.\.\/\.\.\/contract\/api\.js"\)/);
    assert.match(code, /import\("yargs"\)/);
    assert.doesNotMatch(code, /must start with a letter/, "the contract's code is not in the bundle");
    assert.doesNotMatch(code, /import\("\.\/errors\.js"\)/);
    assert.match(code, /^\/\/ cli\/src\/errors\.ts$/m, 'code under cli/ is bundled');
  });

  it('fail the build when tsc produced nothing to import', async () => {
    await assert.rejects(
      bundle("export const gone = () => import('../../infra/nothing-here.js');", join(ROOT, 'cli/src'), dynamicImportsBeyondCli(ROOT, outdir)),
      /tsc produced no dist\/infra\/nothing-here\.js/,
    );
  });
});

describe('the assert stand-in', () => {
  const yargsDir = join(ROOT, 'node_modules/yargs/build/lib');
  const source = "export { notStrictEqual, strictEqual } from 'assert';";
  type Equality = (actual: unknown, expected: unknown, message?: string) => void;

  it("is what yargs gets; anything else keeps Node's assert", async () => {
    assert.match(await bundle(source, yargsDir, assertStandIn(ROOT)), /cli\/build\/assert\.js/);
    assert.match(await bundle(source, join(ROOT, 'cli/src'), assertStandIn(ROOT)), /from "assert"/);
  });

  it("passes and fails where Node's does, with an AssertionError (carrying the message given)", async () => {
    const code = await bundle(source, yargsDir, assertStandIn(ROOT));
    const standIn = (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as { strictEqual: Equality; notStrictEqual: Equality };
    const node = await import('node:assert');
    const outcome = (check: Equality, a: unknown, b: unknown, message?: string) => {
      try {
        check(a, b, message);
        return 'passed';
      } catch (error) {
        const e = error as { name: string; code: string; message: string };
        return `${e.name} ${e.code}`;
      }
    };
    const object = {};
    const pairs: Array<[unknown, unknown]> = [[1, 1], [1, '1'], ['a', 'a'], [undefined, undefined], [null, undefined], [object, object], [object, {}], [NaN, NaN], [true, 'true']];
    for (const [a, b] of pairs) {
      for (const message of [undefined, 'custom message']) {
        assert.equal(outcome(standIn.strictEqual, a, b, message), outcome(node.strictEqual, a, b, message), `strictEqual(${String(a)}, ${String(b)})`);
        assert.equal(outcome(standIn.notStrictEqual, a, b, message), outcome(node.notStrictEqual, a, b, message), `notStrictEqual(${String(a)}, ${String(b)})`);
      }
    }
    assert.throws(() => standIn.strictEqual(1, 2, 'custom message'), { name: 'AssertionError', message: 'custom message' });
    assert.throws(() => standIn.notStrictEqual(1, 1, 'custom message'), { name: 'AssertionError', message: 'custom message' });
  });
});

describe('the escalade stand-in', () => {
  it("is what yargs gets; anything else keeps escalade", async () => {
    const source = "export { default } from 'escalade/sync';";
    assert.match(await bundle(source, join(ROOT, 'node_modules/yargs/lib/platform-shims'), findUpStandIn(ROOT)), /cli\/build\/find-up\.js/);
    assert.match(await bundle(source, join(ROOT, 'cli/src'), findUpStandIn(ROOT)), /node_modules\/escalade\/sync/);
  });

  it('makes bundled yargs look for no package.json upwards from the current directory', async () => {
    // From a bundle, yargs starts its search for a package.json (to guess a version) in the directory current when it loads.
    const cwd = mkdtempSync(join(ROOT, 'dist/cli/bin/.find-up-'));
    writeFileSync(join(cwd, 'package.json'), JSON.stringify({ version: '9.8.7' }));
    mkdirSync(join(cwd, 'below'));
    const source = "import yargs from 'yargs'; export default () => yargs().exitProcess(false).parse(['--version']);";
    const versionFrom = async (plugins: Plugin[]) => {
      const code = await build({
        stdin: { contents: source, resolveDir: ROOT, sourcefile: join(ROOT, 'entry.ts'), loader: 'ts' },
        outdir: cwd, bundle: true, platform: 'node', format: 'esm', write: false, plugins, logLevel: 'silent',
      });
      const file = join(cwd, `bundle-${plugins.length}.mjs`);
      writeFileSync(file, code.outputFiles[0].text);
      const printed: string[] = [];
      const log = console.log;
      const before = process.cwd();
      process.chdir(join(cwd, 'below'));
      try {
        const parse = (await import(pathToFileURL(file).href)).default as () => unknown;
        console.log = (line: string) => printed.push(line);
        parse();
      } finally {
        process.chdir(before);
        console.log = log;
      }
      return printed.join('\n');
    };
    try {
      assert.equal(await versionFrom([assertStandIn(ROOT)]), '9.8.7', "the control: yargs' own search finds the package.json above");
      assert.equal(await versionFrom([assertStandIn(ROOT), findUpStandIn(ROOT)]), 'unknown');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
