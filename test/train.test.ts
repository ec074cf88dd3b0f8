// The fit loop and `keel train`: metrics lines, checkpoints, and resuming
// (from any checkpoint, and after SIGKILL mid-step) bitwise identical to an
// uninterrupted run.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const KEEL = join(process.cwd(), 'bin', 'keel.js');

function tmp(name: string): string {
  return mkdtempSync(join(tmpdir(), `keel-${name}-`));
}

/** A small run through the API: MLP with dropout (libtorch's generator) and augmented, shuffled data. */
function setup(seed: number) {
  keel.manualSeed(seed);
  const data = keel.data.syntheticImages({ n: 256, seed: 3, size: 16 });
  const model = new keel.nn.zoo.MLP({ inFeatures: 3 * 16 * 16, numClasses: 10, hidden: [32], dropout: 0.2 });
  const optimizer = new keel.optim.AdamW(model.parameters(), { lr: 3e-3 });
  const scheduler = new keel.optim.CosineAnnealingLR(optimizer, { tMax: 24 });
  const trainLoader = new keel.data.DataLoader(data, {
    batchSize: 32, shuffle: true, seed: 11, dropLast: true,
    transform: keel.data.compose([keel.data.randomHorizontalFlip(0.5), keel.data.normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])]),
  });
  return { model, optimizer, scheduler, trainLoader, loss: (o: keel.Tensor, t: keel.Tensor) => keel.losses.crossEntropy(o, t) };
}

function weights(model: keel.nn.Module): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [k, t] of Object.entries(model.stateDict())) {
    const d = t.data();
    out.set(k, new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice());
  }
  return out;
}

test('fit: metrics lines carry step, epoch, loss, lr, gradNorm, stepTimeMs; resuming from any checkpoint is bitwise identical', () => {
  const dir = tmp('fit');
  try {
    const a = setup(5);
    const full = keel.train.fit({ ...a, steps: 24, outDir: join(dir, 'a'), checkpointEvery: 4, keepCheckpoints: 10, progress: false });
    assert.equal(full.steps, 24);
    const lines = keel.train.readMetrics(join(dir, 'a', 'metrics.jsonl')).filter((r) => r.event === undefined);
    assert.equal(lines.length, 24);
    for (const key of ['step', 'epoch', 'loss', 'lr', 'gradNorm', 'stepTimeMs', 'accuracy']) assert.ok(key in lines[0], `metrics line lacks ${key}`);
    assert.deepEqual(lines.map((l) => l.step), Array.from({ length: 24 }, (_, i) => i + 1));
    assert.ok(lines.every((l) => Number.isFinite(l.loss as number) && (l.gradNorm as number) > 0));
    assert.ok((lines[23].lr as number) < (lines[0].lr as number), 'the cosine schedule lowers lr');
    const reference = weights(a.model);
    const ckpts = keel.train.listCheckpoints(join(dir, 'a', 'checkpoints'));
    assert.deepEqual(ckpts, [4, 8, 12, 16, 20, 24]);

    for (const from of [4, 12, 20]) {
      // a fresh process state: other seed, fresh objects; everything must come from the checkpoint
      const b = setup(99);
      const out = join(dir, `b${from}`);
      spawnSync('cp', ['-r', join(dir, 'a'), out]);
      for (const s of ckpts.filter((s) => s > from)) {
        unlinkSync(join(out, 'checkpoints', `step-${String(s).padStart(9, '0')}.json`));
      }
      const resumed = keel.train.fit({ ...b, steps: 24, outDir: out, checkpointEvery: 4, keepCheckpoints: 10, progress: false, resume: true });
      assert.equal(resumed.resumedFrom, from);
      const got = weights(b.model);
      for (const [k, bytes] of reference) assert.deepEqual(got.get(k), bytes, `resumed from step ${from}: ${k} differs`);
      const again = keel.train.readMetrics(join(out, 'metrics.jsonl')).filter((r) => r.event === undefined);
      assert.deepEqual(again.map((l) => [l.step, l.loss, l.lr, l.gradNorm]), lines.map((l) => [l.step, l.loss, l.lr, l.gradNorm]));
      b.model.dispose();
      b.optimizer.dispose();
    }
    a.model.dispose();
    a.optimizer.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const TRAIN_ARGS = ['train', '--model', 'lenet5', '--data', 'fashion-mnist', '--optim', 'adamw', '--steps', '40', '--batch-size', '64',
  '--train-subset', '2560', '--test-subset', '500', '--checkpoint-every', '5', '--threads', '1', '--no-progress'];

test('keel train: a run killed with SIGKILL mid-step resumes to bitwise identical weights', { skip: !existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz') && 'Fashion-MNIST is not installed' }, async () => {
  const dir = tmp('cli');
  try {
    const whole = spawnSync(process.execPath, [KEEL, ...TRAIN_ARGS, '--out', join(dir, 'whole')], { encoding: 'utf8' });
    assert.equal(whole.status, 0, whole.stderr);
    const summary = JSON.parse(readFileSync(join(dir, 'whole', 'summary.json'), 'utf8'));
    assert.ok(summary.testAccuracy > 0.3 && summary.testAccuracy <= 1, `testAccuracy ${summary.testAccuracy}`);
    for (const f of ['metrics.jsonl', 'model.safetensors', 'summary.json', 'config.json']) assert.ok(existsSync(join(dir, 'whole', f)), f);

    const killedDir = join(dir, 'killed');
    const child = spawn(process.execPath, [KEEL, ...TRAIN_ARGS, '--out', killedDir], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((ok) => child.on('exit', (_code, signal) => ok(signal)));
    // kill as soon as the second checkpoint lands: the run is then inside a step
    const ckptDir = join(killedDir, 'checkpoints');
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      if (existsSync(ckptDir) && readdirSync(ckptDir).some((f) => f === 'step-000000010.json')) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    assert.ok(!existsSync(join(killedDir, 'summary.json')), 'the killed run did not finish');
    const resumed = spawnSync(process.execPath, [KEEL, 'train', '--resume', killedDir, '--no-progress'], { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    const a = readFileSync(join(dir, 'whole', 'model.safetensors'));
    const b = readFileSync(join(killedDir, 'model.safetensors'));
    assert.ok(a.equals(b), 'final weights differ after resume');
    const steps = (p: string) => keel.train.readMetrics(p).filter((r) => r.event === undefined).map((r) => [r.step, r.loss]);
    assert.deepEqual(steps(join(killedDir, 'metrics.jsonl')), steps(join(dir, 'whole', 'metrics.jsonl')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keel train: bad options exit with code 2 and a clear message', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--model', 'lenet5', '--lr', 'fast', '--out', '/tmp/x'], /--lr must be a positive number/],
    [['train', '--optim', 'lbfgs', '--out', '/tmp/x'], /--optim.*lbfgs.*(sgd|choices)/s],
    [['train', '--model', 'alexnet', '--out', '/tmp/x'], /--model must be one of lenet5/],
    [['train', '--model', 'lenet5'], /--out DIR is required/],
    [['train', '--resume', '/nonexistent/run'], /no config\.json there/],
    [['train', '--batch-size', '0', '--out', '/tmp/x'], /--batch-size must be a positive integer/],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [KEEL, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
  }
});
