/**
 * The demultiplexer of Docker's framed output (logs and exec streams without
 * a TTY): frames and headers split anywhere across chunks, and stderr kept
 * apart or passed on.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { Frames } from './frames.js';

/** One frame as the engine sends it: stream (1 stdout, 2 stderr), three zero bytes, the payload's size, the payload. */
function frame(stream: 1 | 2, payload: string): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(Buffer.byteLength(payload), 4);
  return Buffer.concat([header, Buffer.from(payload)]);
}

/** `wire` cut into chunks of `size` bytes, through a Frames; what passes, and what went to onStderr. */
async function through(wire: Buffer, size: number, keepStderrApart: boolean) {
  const chunks: Buffer[] = [];
  for (let at = 0; at < wire.length; at += size) chunks.push(wire.subarray(at, at + size));
  const stderr: Buffer[] = [];
  const frames = new Frames(keepStderrApart ? (chunk) => stderr.push(Buffer.from(chunk)) : undefined);
  const passed: Buffer[] = [];
  for await (const chunk of Readable.from(chunks).pipe(frames)) passed.push(chunk as Buffer);
  return { stdout: Buffer.concat(passed).toString(), stderr: Buffer.concat(stderr).toString() };
}

describe('Frames', () => {
  const wire = Buffer.concat([frame(1, 'first line\n'), frame(2, 'a warning\n'), frame(1, ''), frame(1, 'second line\n'), frame(2, 'an error\n')]);

  it('passes the payloads of both streams in order, for chunks of any size (headers split too)', async () => {
    for (const size of [1, 3, 7, 8, 9, 19, wire.length]) {
      const { stdout, stderr } = await through(wire, size, false);
      assert.equal(stdout, 'first line\na warning\nsecond line\nan error\n', `chunks of ${size}`);
      assert.equal(stderr, '');
    }
  });

  it("hands stderr's payloads to onStderr and passes stdout's alone", async () => {
    for (const size of [1, 5, 8, 13, wire.length]) {
      const { stdout, stderr } = await through(wire, size, true);
      assert.equal(stdout, 'first line\nsecond line\n', `chunks of ${size}`);
      assert.equal(stderr, 'a warning\nan error\n', `chunks of ${size}`);
    }
  });

  it('passes a large payload whole, and nothing of a header cut short at the end', async () => {
    const large = 'x'.repeat(100_000);
    const { stdout } = await through(Buffer.concat([frame(1, large), frame(1, 'y').subarray(0, 5)]), 4096, true);
    assert.equal(stdout, large);
  });
});
