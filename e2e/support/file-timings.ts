/**
 * A node:test reporter that prints, when the run ends, how long each test
 * file took (the sum of its top-level tests and suites, hooks included),
 * slowest first, with the unit files summed in one line: the test budget at
 * a glance. scripts/test.sh runs it beside the usual spec reporter.
 *
 *   node --test --test-reporter=spec --test-reporter-destination=stdout \
 *     --test-reporter=./dist/e2e/support/file-timings.js --test-reporter-destination=stdout ...
 */
import { relative } from 'node:path';

interface TestEvent {
  type: string;
  data: { file?: string; nesting?: number; details?: { duration_ms?: number } };
}

/** `[file, seconds, tests]` rows from the top-level results; unit specs folded into one row. */
export function fileTimings(results: Array<{ file: string; ms: number }>, cwd = process.cwd()): Array<[string, number, number]> {
  const byFile = new Map<string, { ms: number; count: number }>();
  for (const { file, ms } of results) {
    const name = /\.spec\.js$/.test(file) ? 'unit and contract specs (all files)' : relative(cwd, file);
    const entry = byFile.get(name) ?? { ms: 0, count: 0 };
    entry.ms += ms;
    entry.count += 1;
    byFile.set(name, entry);
  }
  return [...byFile.entries()].map(([name, { ms, count }]): [string, number, number] => [name, ms / 1000, count]).sort((a, b) => b[1] - a[1]);
}

export function formatTimings(rows: Array<[string, number, number]>): string {
  const width = Math.max(4, ...rows.map(([name]) => name.length));
  const total = rows.reduce((sum, [, seconds]) => sum + seconds, 0);
  const line = (name: string, seconds: number, extra: string) => `${name.padEnd(width)}  ${seconds.toFixed(0).padStart(6)} s  ${extra}`;
  return [
    '',
    'time per test file (top-level tests and suites, hooks included), slowest first:',
    ...rows.map(([name, seconds, count]) => line(name, seconds, `${count} top-level`)),
    line('sum', total, `${(total / 60).toFixed(1)} min (files that ran side by side overlap)`),
    '',
  ].join('\n');
}

export default async function* reporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const results: Array<{ file: string; ms: number }> = [];
  for await (const event of source) {
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.nesting === 0 && event.data.file) {
      results.push({ file: event.data.file, ms: event.data.details?.duration_ms ?? 0 });
    }
  }
  yield formatTimings(fileTimings(results));
}
