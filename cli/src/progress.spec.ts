import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { whileWaiting, type ProgressStream } from './progress.js';

function stream(isTTY: boolean): ProgressStream & { written: string } {
  return {
    isTTY,
    written: '',
    write(text: string) {
      this.written += text;
      return true;
    },
  };
}

describe('progress', () => {
  it('draws nothing when stderr is not a terminal', async () => {
    const target = stream(false);
    assert.equal(await whileWaiting(target, 'deploying', Promise.resolve(42)), 42);
    assert.equal(target.written, '');
  });

  it('draws a spinner on a terminal and clears the line when the work fails', async () => {
    const target = stream(true);
    await assert.rejects(whileWaiting(target, 'deploying shop', Promise.reject(new Error('boom'))), /boom/);
    assert.match(target.written, /deploying shop \(0s\)/);
    assert.ok(target.written.endsWith('\r\x1b[2K'));
  });
});
