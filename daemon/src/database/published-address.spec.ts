import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LABELS } from '../docker/docker.gateway.js';
import { probeHost, publishedAddress } from './postgres-runtime.js';

describe('where the daemon reaches a database', () => {
  it('takes the address the container was made with (its bind label) over what the engine lists', () => {
    assert.equal(publishedAddress({ labels: { [LABELS.bind]: '127.0.0.1' }, published: '0.0.0.0' }), '127.0.0.1');
  });

  it('falls back to the listed binding for a container made before the label, and to nothing for a stopped one', () => {
    assert.equal(publishedAddress({ labels: {}, published: '10.0.0.5' }), '10.0.0.5');
    assert.equal(publishedAddress({ labels: {} }), undefined);
  });

  it('connects over loopback to a port published on every address', () => {
    assert.equal(probeHost('0.0.0.0'), '127.0.0.1');
    assert.equal(probeHost('::'), '::1');
    assert.equal(probeHost('10.0.0.5'), '10.0.0.5');
  });
});
