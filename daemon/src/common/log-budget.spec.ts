import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogBudget } from './log-budget.js';

describe('LogBudget', () => {
  it('logs the first lines of each key per window, holds back the rest, and says how many at the next window', () => {
    let now = 0;
    const budget = new LogBudget(3, 60_000, () => now);
    const flood = Array.from({ length: 10 }, () => budget.take('stanza-a'));
    assert.deepEqual(flood.map((t) => t.log), [true, true, true, false, false, false, false, false, false, false]);
    assert.deepEqual(budget.take('stanza-b'), { log: true, held: 0 }, 'another key has its own budget');
    now = 59_999;
    assert.equal(budget.take('stanza-a').log, false);
    now = 60_000;
    assert.deepEqual(budget.take('stanza-a'), { log: true, held: 8 });
    assert.deepEqual(budget.take('stanza-a'), { log: true, held: 0 });
  });
});
