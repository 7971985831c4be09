/** The engine's streams: an exec's stderr tail, and the frames of non-TTY output. */
import { Transform, Writable, type TransformCallback } from 'node:stream';

/** Keeps the last `limit` bytes written to it (a command's stderr: its error is at the end). */
export class Tail extends Writable {
  private kept = Buffer.alloc(0);

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.add(chunk);
    done();
  }

  add(chunk: Buffer): void {
    const joined = Buffer.concat([this.kept, chunk]);
    this.kept = joined.length > this.limit ? joined.subarray(joined.length - this.limit) : joined;
  }

  text(): string {
    return this.kept.toString('utf8');
  }
}

/**
 * demultiplex() for a stream: the frames' payloads, in order, as they arrive
 * (with backpressure), header bytes dropped. With `onStderr`, stderr's
 * payloads go there instead (an exec's output); without, both streams pass
 * on (container logs).
 */
export class Frames extends Transform {
  private pending = Buffer.alloc(0);
  /** Payload bytes still to pass on from the current frame. */
  private remaining = 0;
  private toStderr = false;

  constructor(private readonly onStderr?: (chunk: Buffer) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, data.length);
        if (this.toStderr && this.onStderr) this.onStderr(data.subarray(0, take));
        else this.push(data.subarray(0, take));
        this.remaining -= take;
        data = data.subarray(take);
      } else if (data.length >= 8) {
        this.toStderr = data[0] === 2;
        this.remaining = data.readUInt32BE(4);
        data = data.subarray(8);
      } else {
        this.pending = Buffer.from(data);
        break;
      }
    }
    done();
  }
}

/** Container logs without a TTY come in frames: 8-byte header (stream, 0, 0, 0, size) then payload. */
export function demultiplex(buffer: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}
