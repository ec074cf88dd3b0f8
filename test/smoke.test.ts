import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';

test('the README example runs: conv2d, relu, maxPool2d, mean, backward', () => {
  keel.manualSeed(0);
  const x = keel.randn([4, 3, 8, 8], { requiresGrad: true });
  const w = keel.randn([8, 3, 3, 3], { requiresGrad: true });
  const y = keel.ops.maxPool2d(keel.ops.conv2d(x, w).relu(), [2, 2]);
  assert.deepEqual(y.shape, [4, 8, 3, 3]);
  const loss = y.mean();
  loss.backward();
  assert.ok(Number.isFinite(loss.item()));
  assert.deepEqual(w.grad!.shape, [8, 3, 3, 3]);
  assert.deepEqual(x.grad!.shape, [4, 3, 8, 8]);
});
