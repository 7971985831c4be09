// Stand-in for the `string-width` package inside the pgdb bundle only
// (cli/build/bundle.ts substitutes it for every import of `string-width`).
//
// yargs, cliui and wrap-ansi measure every string of the help text with it.
// Loading string-width builds an Intl.Segmenter and Unicode property regular
// expressions (`\p{RGI_Emoji}`), which costs about as much as starting Node
// itself. Printable ASCII needs none of that: its width is its length (what
// string-width answers too; its version 8 takes this very shortcut, and
// cli/build/bundle.spec.ts compares both versions). Anything else goes to the
// real package, evaluated on first use (esbuild keeps a require()d module's
// code in the bundle but runs it only when it is first required).
let real;

export default function stringWidth(text, options) {
  if (typeof text === 'string' && /^[\x20-\x7e]*$/.test(text)) {
    return text.length;
  }
  real ??= require('string-width').default;
  return real(text, options);
}
