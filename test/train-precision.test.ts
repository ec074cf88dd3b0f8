// keel train --precision and --health-every through the real CLI: health lines
// and TensorBoard files in the run folder, the loss scale logged, and an
// fp16-mixed run resumed from a checkpoint ending bitwise where an
// uninterrupted one ends (the GradScaler's state is in the checkpoint).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const KEEL = join(process.cwd(), 'bin', 'keel.js');
const BASE = ['train', '--model', 'mlp', '--data', 'synthetic', '--optim', 'adamw', '--batch-size', '32', '--train-subset', '512', '--test-subset', '128', '--threads', '1', '--no-progress'];

function keel(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [KEEL, ...args], { encoding: 'utf8', timeout: 240_000 });
}

function lines(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('bf16-mixed with health every 4 steps: health lines per layer and TensorBoard event files', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-prec-'));
  try {
    const r = keel([...BASE, '--steps', '12', '--precision', 'bf16-mixed', '--health-every', '4', '--out', join(dir, 'run')]);
    assert.equal(r.status, 0, r.stderr);
    const log = lines(join(dir, 'run'));
    const health = log.filter((l) => l.event === 'health');
    assert.deepEqual(health.map((h) => h.step), [4, 8, 12]);
    const layers = health[0].layers as Record<string, { gradNorm: number; updateRatio: number }>;
    assert.ok(Object.keys(layers).length >= 2);
    for (const [name, h] of Object.entries(layers)) {
      if (h.gradNorm === undefined) continue;
      assert.ok(h.gradNorm > 0 && Number.isFinite(h.gradNorm), `${name} gradNorm ${h.gradNorm}`);
      assert.ok(h.updateRatio > 0 && h.updateRatio < 1, `${name} update ratio ${h.updateRatio}`);
    }
    const tb = readdirSync(join(dir, 'run', 'tb'));
    assert.equal(tb.length, 1);
    assert.match(tb[0], /^events\.out\.tfevents\.\d+\./);
    const config = JSON.parse(readFileSync(join(dir, 'run', 'config.json'), 'utf8')) as { precision: string };
    assert.equal(config.precision, 'bf16-mixed');
    const refused = keel([...BASE, '--steps', '4', '--precision', 'fp12', '--out', join(dir, 'bad')]);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /^keel train: .*--precision.*fp12/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fp16-mixed: the loss scale is logged, and a resumed run ends bitwise where an uninterrupted one ends', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-fp16-'));
  try {
    // a constant schedule: extending --steps on resume then changes nothing before the resume point
    const common = [...BASE, '--precision', 'fp16-mixed', '--health-every', '0', '--checkpoint-every', '3', '--schedule', 'constant'];
    const whole = keel([...common, '--steps', '8', '--out', join(dir, 'whole')]);
    assert.equal(whole.status, 0, whole.stderr);
    const part = keel([...common, '--steps', '5', '--out', join(dir, 'part')]);
    assert.equal(part.status, 0, part.stderr);
    const resumed = keel(['train', '--resume', join(dir, 'part'), '--steps', '8', '--no-progress']);
    assert.equal(resumed.status, 0, resumed.stderr);
    const a = readFileSync(join(dir, 'whole', 'model.safetensors'));
    const b = readFileSync(join(dir, 'part', 'model.safetensors'));
    assert.ok(a.equals(b), 'the same weights, byte for byte');
    const scales = lines(join(dir, 'whole')).filter((l) => l.lossScale !== undefined).map((l) => l.lossScale);
    assert.equal(scales.length, 8);
    assert.equal(scales[0], 65536);
    assert.ok(!existsSync(join(dir, 'whole', 'tb')) || readdirSync(join(dir, 'whole', 'tb')).length === 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
