/**
 * docs/reference/cli.md: what `pgdb --help` and `pgdb <command> --help` print,
 * for every command and subcommand. The commands are found in the CLI's own
 * help: the "Commands:" section of `pgdb --help`, then of each command's
 * help, until a help lists no further subcommands. Nothing here names a
 * command.
 *
 * The built executable (dist/cli/bin/pgdb.cjs) runs in a process of its own
 * with stdout a pipe, an empty HOME and `LANG=C`, and nothing else of this
 * process's environment: yargs then writes English and wraps at 80 columns
 * (its width when stdout is not a terminal; cli/src/help-page.ts), and no
 * user's config or server is read. The empty HOME's path is written as `~`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HELP_WIDTH } from '../../cli/src/help-page.js';
import { cell, githubSlug } from './markdown.js';
import { ROOT } from './paths.js';

/** The executable `npm run build` makes. */
export const PGDB_BIN = join(ROOT, 'dist/cli/bin/pgdb.cjs');

export interface HelpPage {
  /** The command's words after `pgdb`: [] for `pgdb` itself, ['infra', 'init'] for `pgdb infra init`. */
  path: string[];
  /** What its parent's help says it does (empty for `pgdb` itself). */
  summary: string;
  /** What `pgdb <path> --help` printed, or undefined when that is not a help page (`pgdb completion --help` prints the script). */
  help: string | undefined;
}

/** One entry of a help's "Commands:" section. */
export interface CommandEntry {
  path: string[];
  summary: string;
}

/**
 * The entries of the "Commands:" section of a help page. An entry starts with
 * two spaces and `pgdb`; its usage (`pgdb backup <name> [target]`) ends at
 * the first run of two spaces, and the words before the first `<...>` or
 * `[...]` are the command's path. Lines indented further continue the
 * summary of the entry above.
 */
export function commandEntries(help: string): CommandEntry[] {
  const lines = help.split('\n');
  const start = lines.indexOf('Commands:');
  if (start < 0) return [];
  const entries: CommandEntry[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    const entry = /^ {2}(pgdb(?: \S+)*?)(?: {2,}(.*))?$/.exec(line);
    if (entry) {
      const words = entry[1].split(' ').slice(1);
      const argument = words.findIndex((word) => word.startsWith('<') || word.startsWith('['));
      entries.push({ path: argument < 0 ? words : words.slice(0, argument), summary: (entry[2] ?? '').trim() });
    } else if (entries.length > 0 && /^ {3,}\S/.test(line)) {
      const last = entries[entries.length - 1];
      last.summary = `${last.summary} ${line.trim()}`.trim();
    } else {
      throw new Error(`cannot read this line of a "Commands:" section: ${JSON.stringify(line)}`);
    }
  }
  return entries;
}

/** Runs `pgdb <args>` as described above; its stdout, with the empty HOME written as `~`. */
export type RunPgdb = (args: string[]) => string;

/** Runs the built executable in a process of its own (see the top of this file); call `close` when done. */
export function pgdbRunner(bin = PGDB_BIN): { run: RunPgdb; close(): void } {
  const home = mkdtempSync(join(tmpdir(), 'pgdb-docs-home-'));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C' };
  return {
    run(args) {
      const result = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
      if (result.error) throw result.error;
      if (result.status !== 0) {
        throw new Error(`pgdb ${args.join(' ')} exited with ${result.status ?? result.signal}: ${result.stderr}`);
      }
      return result.stdout.split(home).join('~');
    },
    close: () => rmSync(home, { recursive: true, force: true }),
  };
}

/** Every help page, `pgdb` first, then each command in the order its parent lists it, depth first. */
export function helpPages(run: RunPgdb): HelpPage[] {
  const pages: HelpPage[] = [];
  const seen = new Set<string>();
  const visit = (path: string[], summary: string) => {
    const key = path.join(' ');
    if (seen.has(key)) return;
    seen.add(key);
    const output = run([...path, '--help']);
    const usage = ['pgdb', ...path].join(' ');
    const isHelp = output.split('\n', 1)[0] === usage || output.startsWith(`${usage} `);
    pages.push({ path, summary, help: isHelp ? output : undefined });
    if (!isHelp) return;
    for (const entry of commandEntries(output)) {
      // A child is one more word under this command; anything else would be a loop.
      if (entry.path.length > path.length && path.every((word, i) => entry.path[i] === word)) visit(entry.path, entry.summary);
    }
  };
  visit([], '');
  return pages;
}

const title = (path: string[]) => ['pgdb', ...path].join(' ');
const anchor = (path: string[]) => githubSlug(title(path));

/** docs/reference/cli.md from the help pages. */
export function renderCliReference(pages: HelpPage[]): string {
  const out: string[] = [
    '# CLI reference',
    '',
    '<!-- Generated by `npm run docs` (tools/docs/cli-reference.ts) from the CLI\'s own help. Do not edit: tools/docs/docs.spec.ts fails when this file is out of date. -->',
    '',
    'What `pgdb --help` and `pgdb <command> --help` print, for every command and',
    `subcommand, in English and at ${HELP_WIDTH} columns (how yargs lays help out when stdout`,
    'is not a terminal). [The `pgdb` CLI](../cli.md) explains each command, its',
    'output and its exit codes.',
    '',
    '| Command | What it does |',
    '| --- | --- |',
  ];
  for (const page of pages) {
    out.push(`| [\`${title(page.path)}\`](#${anchor(page.path)}) | ${cell(page.path.length === 0 ? 'the commands, and the options every command takes' : page.summary)} |`);
  }
  for (const page of pages) {
    out.push('', `## \`${title(page.path)}\``, '');
    if (page.help === undefined) {
      out.push(`\`${title(page.path)} --help\` prints no help page: it runs the command. \`pgdb --help\` describes it as "${cell(page.summary)}".`);
    } else {
      out.push('```text', page.help.replace(/\n+$/, ''), '```');
    }
  }
  return `${out.join('\n')}\n`;
}
