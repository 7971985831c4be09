import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VolumeUsage } from './volume-usage.js';

function measured(sizes: Record<string, number>) {
  const calls: number[] = [];
  let clock = 0;
  const usage = new VolumeUsage(
    async () => {
      calls.push(clock);
      return new Map(Object.entries(sizes));
    },
    30_000,
    () => clock,
  );
  return { usage, calls, tick: (ms: number) => (clock += ms), sizes };
}

describe('VolumeUsage', () => {
  it('measures once for concurrent callers', async () => {
    const { usage, calls } = measured({ a: 1 });
    const results = await Promise.all([usage.sizes(['a']), usage.sizes(['a']), usage.sizes(['a'])]);
    assert.equal(calls.length, 1);
    assert.ok(results.every((r) => r.get('a') === 1));
  });

  it('answers from a recent measurement without measuring again', async () => {
    const { usage, calls, tick } = measured({ a: 1 });
    await usage.sizes(['a']);
    tick(10_000);
    await usage.sizes(['a']);
    assert.equal(calls.length, 1);
  });

  it('measures again at once when a volume is new to it', async () => {
    const { usage, calls, sizes } = measured({ a: 1 });
    await usage.sizes(['a']);
    sizes.b = 2;
    assert.equal((await usage.sizes(['a', 'b'])).get('b'), 2);
    assert.equal(calls.length, 2);
  });

  it('serves a stale measurement while refreshing it in the background', async () => {
    const { usage, calls, tick, sizes } = measured({ a: 1 });
    await usage.sizes(['a']);
    tick(31_000);
    sizes.a = 5;
    assert.equal((await usage.sizes(['a'])).get('a'), 1);
    assert.equal(calls.length, 2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await usage.sizes(['a'])).get('a'), 5);
  });
});
