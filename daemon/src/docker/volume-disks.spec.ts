import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLoopList } from './volume-disks.js';

describe('volume disks', () => {
  it("reads losetup's JSON list (padded major:minor) and its empty output", () => {
    const listed = `{
   "loopdevices": [
      {
         "name": "/dev/loop1",
         "back-ino": 10002452,
         "back-maj:min": "     254:0  "
      }
   ]
}`;
    assert.deepEqual(parseLoopList(listed), [{ name: '/dev/loop1', inode: 10002452, device: '254:0' }]);
    assert.deepEqual(parseLoopList(''), []);
    assert.deepEqual(parseLoopList('{"loopdevices": []}'), []);
  });
});
