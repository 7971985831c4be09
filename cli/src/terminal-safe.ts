import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Characters a terminal acts on instead of showing: C0 controls but tab and
 * newline (ESC starts colour, cursor and title sequences; CR overwrites a
 * line), DEL, C1 controls (U+0080 to U+009F, 8-bit CSI among them), and the
 * bidirectional overrides and isolates that reorder what is shown.
 */
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Text with every control character written as a visible escape: ESC as `\x1b`, U+202E as `\u202e`. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * A stream that escapes control characters (see escapeControls) in UTF-8
 * text on its way to a terminal, so that what a database wrote to its log
 * cannot move the cursor, rewrite lines, set the window title or worse on
 * the operator's terminal. A character split across chunks is kept whole.
 */
export class ControlEscaper extends Transform {
  private readonly decoder = new StringDecoder('utf8');

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    done(null, escapeControls(this.decoder.write(chunk)));
  }

  override _flush(done: TransformCallback): void {
    done(null, escapeControls(this.decoder.end()));
  }
}
