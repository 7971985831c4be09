import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { capped } from './day2.service.js';

describe('capped log streams', () => {
  it('pass everything under the limit through, and end with the source', async () => {
    assert.equal(await text(capped(Readable.from([Buffer.from('one\n'), Buffer.from('two\n')]), 100)), 'one\ntwo\n');
  });

  it('stop at the limit with a line saying so, and destroy the source', async () => {
    const source = new PassThrough();
    const out = capped(source, 10);
    source.write('0123456');
    source.write('789abcdef');
    const got = await text(out);
    assert.match(got, /^0123456789\n\[pgdb: this request read its limit of 10 bytes/);
    assert.equal(source.destroyed, true);
  });

  it('destroyed while the source waits for its next line (a follow), destroy the source at once', async () => {
    const source = new PassThrough();
    const out = capped(source, 100);
    out.resume();
    source.write('a line\n');
    await new Promise((resolve) => setImmediate(resolve));
    out.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(source.destroyed, true);
  });
});
