// The README's Python snippet ("Using the weights in PyTorch") loads a
// `keel train` run's model.safetensors into the same PyTorch model with the
// preprocessing recorded in config.json and reproduces the run's test accuracy.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const KEEL = join(process.cwd(), 'bin', 'keel.js');
const PYTHON = '/usr/bin/python3';
const haveTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const haveData = existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');

function snippet(): string {
  const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Using the weights in PyTorch'));
  const m = /```python\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'README: no python block under "Using the weights in PyTorch"');
  return m[1];
}

test('the README\'s PyTorch snippet reproduces a keel train run\'s test accuracy', { skip: (!haveTorch && 'no /usr/bin/python3 with torch') || (!haveData && 'Fashion-MNIST is not installed') }, () => {
  const code = snippet();
  assert.ok(code.trim().split('\n').length <= 22, `the snippet has ${code.trim().split('\n').length} lines`);
  const dir = mkdtempSync(join(tmpdir(), 'keel-pt-'));
  try {
    const run = join(dir, 'run');
    const r = spawnSync(process.execPath, [KEEL, 'train', '--model', 'lenet5', '--data', 'fashion-mnist', '--steps', '40', '--batch-size', '64',
      '--train-subset', '2560', '--test-subset', '500', '--threads', '1', '--no-progress', '--out', run], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8'));
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    assert.deepEqual(config.modelArgs, { inChannels: 1, numClasses: 10, inputSize: 28 });
    assert.deepEqual(config.preprocessing, { channels: 1, size: 28, divideBy: 255, mean: [0.286], std: [0.353] });
    assert.equal(config.classes.length, 10);
    writeFileSync(join(dir, 'load.py'), code);
    const py = spawnSync(PYTHON, [join(dir, 'load.py'), run], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
    assert.equal(py.status, 0, py.stderr);
    const got = JSON.parse(py.stdout.trim());
    assert.ok(Math.abs(got.testAccuracy - summary.testAccuracy) <= 1 / 500 + 1e-9, `PyTorch ${got.testAccuracy} vs Keel ${summary.testAccuracy}`);
    assert.equal(got.classes[9], 'Ankle boot');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
