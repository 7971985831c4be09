// Stand-in for `escalade/sync` inside the pgdb bundle only, for yargs
// (cli/build/bundle.ts substitutes it for yargs' `import ... from 'escalade/sync'`).
//
// yargs looks for a package.json only to guess a version number (at every
// start: yargs() sets up a --version option before pgdb turns it off) and for
// pkgConf(), which pgdb does not use. In the bundle it starts from the current
// directory (its way of finding "the application" does not work from a bundle)
// and reads every directory from there up until one holds a package.json: in a
// large directory such as /tmp that costs more than starting Node. pgdb needs
// no answer, so it finds nothing, as yargs does when there is no package.json
// (then the guessed version is "unknown", and pgdb removes that option anyway).
export default function findUp() {
  return undefined;
}
