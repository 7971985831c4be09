import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { ControlEscaper, escapeControls } from './terminal-safe.js';

describe('control characters on the way to a terminal', () => {
  it('shows escape sequences, carriage returns, bells, C1 controls and bidi overrides as text; keeps tabs, newlines and other Unicode', () => {
    assert.equal(escapeControls('\u001b]0;pwned\u0007\u001b[2J\rok'), '\\x1b]0;pwned\\x07\\x1b[2J\\x0dok');
    assert.equal(escapeControls('a\u009b31mb\u007f'), 'a\\x9b31mb\\x7f');
    assert.equal(escapeControls('abc\u202edef\u2066'), 'abc\\u202edef\\u2066');
    assert.equal(escapeControls('LOG:\tcheckpoint complete\nßü→😀\n'), 'LOG:\tcheckpoint complete\nßü→😀\n');
  });

  it('keeps a character split across chunks whole, and escapes a C1 control sent as UTF-8', async () => {
    const bytes = Buffer.from('é\u009b2J😀\u001b[0m\n', 'utf8');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const out = await text(Readable.from(chunks).pipe(new ControlEscaper()));
    assert.equal(out, 'é\\x9b2J😀\\x1b[0m\n');
  });
});
