/**
 * `pgdb --help` without the command line parser. The build (cli/build/bundle.ts)
 * has yargs render the top-level help once, in English and as it lays it out
 * when stdout is not a terminal, and puts that text into the executable. It
 * is printed as is only where yargs would print exactly the same: for a bare
 * `--help` or `-h`, in a locale yargs has no translation for but English, and
 * on no terminal narrower than 80 columns. Anything else goes through yargs.
 * This module imports nothing: the executable loads it at every start.
 */

/** Where yargs wraps text: at the terminal's width up to 80 columns, at 80 when stdout is not a terminal. */
export const HELP_WIDTH = 80;

/** The locale yargs picks (its own order of variables), as it names its translation files. */
export function yargsLocale(env: Record<string, string | undefined>): string {
  return (env.LC_ALL || env.LC_MESSAGES || env.LANG || env.LANGUAGE || 'en_US').replace(/[.:].*/, '');
}

/**
 * Whether yargs would print the prerendered page for these arguments here:
 * `columns` is stdout's (undefined when it is not a terminal).
 */
export function prerenderedHelpApplies(args: readonly string[], env: Record<string, string | undefined>, columns: number | undefined): boolean {
  if (args.length !== 1 || (args[0] !== '--help' && args[0] !== '-h')) return false;
  // English (en.json, or en_XX falling back to it), or C and POSIX, for which yargs has no file and keeps its English texts.
  if (!/^(?:en(?:_.*)?|C|POSIX)$/.test(yargsLocale(env))) return false;
  return !columns || columns >= HELP_WIDTH;
}
