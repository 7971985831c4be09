/**
 * Every relative link of the project's Markdown (README.md, CONTRIBUTING.md,
 * docs/**) must point at a file of the checkout, and a `#anchor` at a
 * heading of that file as GitHub names it. Links in code blocks and code
 * spans are text, not links; links with a scheme (https:, mailto:) are not
 * checked.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { headingAnchors, outsideFences } from './markdown.js';

export interface BrokenLink {
  file: string;
  line: number;
  target: string;
  reason: string;
}

/** The checkout as the check sees it: whether a path exists, and a Markdown file's text. */
export interface Tree {
  exists(path: string): boolean;
  read(path: string): string;
}

/** `[text](target)`, `![alt](target)` and `[label]: target`, with the code blocks and code spans of the text left out. */
export function linkTargets(text: string): Array<{ line: number; target: string }> {
  const prose = outsideFences(text)
    .join('\n')
    // A code span's text can look like a link; keep its length and line breaks so that positions hold.
    .replace(/(`+)[\s\S]*?\1/g, (span) => span.replace(/[^\n]/g, 'x'));
  const found: Array<{ index: number; target: string }> = [];
  for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) found.push({ index: match.index, target: match[1] });
  for (const match of prose.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) found.push({ index: match.index, target: match[1] });
  return found
    .sort((a, b) => a.index - b.index)
    .map(({ index, target }) => ({ line: prose.slice(0, index).split('\n').length, target }));
}

/** The links of `files` (paths relative to the checkout, with `/`) that lead nowhere. */
export function brokenLinks(files: string[], tree: Tree): BrokenLink[] {
  const broken: BrokenLink[] = [];
  for (const file of files) {
    for (const { line, target } of linkTargets(tree.read(file))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const report = (reason: string) => broken.push({ file, line, target, reason });
      if (target === '') {
        report('empty link');
        continue;
      }
      const hash = target.indexOf('#');
      const pathPart = hash < 0 ? target : target.slice(0, hash);
      const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
      const path = pathPart === '' ? file : posix.normalize(posix.join(posix.dirname(file), decodeURIComponent(pathPart)));
      if (path.startsWith('../') || path === '..') {
        report('outside the checkout');
        continue;
      }
      if (!tree.exists(path)) {
        report(`no file ${path}`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!path.endsWith('.md')) {
        if (!/^L\d+(?:-L\d+)?$/.test(anchor)) report(`an anchor on ${path}, which is not Markdown`);
        continue;
      }
      if (!headingAnchors(tree.read(path)).has(anchor)) report(`no heading #${anchor} in ${path}`);
    }
  }
  return broken;
}

/** The checkout on disk. */
export function diskTree(root: string): Tree {
  return {
    exists: (path) => existsSync(join(root, path)),
    read: (path) => readFileSync(join(root, path), 'utf8'),
  };
}

/** README.md, CONTRIBUTING.md and every Markdown file under docs/, sorted. */
export function projectMarkdown(root: string): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir)).flatMap((name) => {
      const path = `${dir}/${name}`;
      if (statSync(join(root, path)).isDirectory()) return walk(path);
      return name.endsWith('.md') ? [path] : [];
    });
  return ['README.md', 'CONTRIBUTING.md', ...walk('docs')].sort();
}
