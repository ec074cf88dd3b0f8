// The audit's protocols and verdicts (issue 17 §1, §3): Boustany's absolute
// thresholds, the histogram of D, verdicts that say 'insufficient', structural
// zeros told from floating-point ones, and `keel audit nonsmooth --protocol paper`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';
import type { Tensor } from 'keel';

const A = keel.audit;
const paperPath = new URL('../../dist/experiments/nonsmooth/paper.js', import.meta.url).href;
const cliPath = new URL('../../dist/experiments/nonsmooth/cli.js', import.meta.url).href;
const KEEL = new URL('../../bin/keel.js', import.meta.url).pathname;

test("Boustany's absolute thresholds by bit width; none for fp8", () => {
  assert.equal(A.absoluteThreshold('fp64'), 1e-15);
  assert.equal(A.absoluteThreshold('fp32'), 1e-7);
  assert.equal(A.absoluteThreshold('fp16'), 1e-3);
  assert.equal(A.absoluteThreshold('bf16'), 1e-3);
  assert.equal(A.absoluteThreshold('fp8-e4m3'), undefined);
  // Keel's relative τ_p is another thing: 8 · 2^-24 · scale in fp32
  assert.equal(A.bifurcationThreshold('fp32', 2), 8 * 2 ** -24 * 2);
});

test('decadeHistogram: a zero bin, decades (edges exact at powers of ten), below and above the range', () => {
  const h = A.decadeHistogram([0, 0, 1e-20, 1e-15, 5e-8, 1e-7, 9.99e-8, 2e-3, 1, Infinity, NaN], -18, 0);
  const count = (label: string) => h.find((b) => b.label === label)!.count;
  assert.equal(count('0'), 2);
  assert.equal(count('<1e-18'), 1);
  assert.equal(count('[1e-15, 1e-14)'), 1);
  assert.equal(count('[1e-8, 1e-7)'), 2);
  assert.equal(count('[1e-7, 1e-6)'), 1);
  assert.equal(count('[1e-3, 1e-2)'), 1);
  assert.equal(count('≥1e0'), 3);
  assert.equal(h.reduce((s, b) => s + b.count, 0), 11);
  assert.throws(() => A.decadeHistogram([1], 0, 0), /loExp < hiExp/);
});

test("verdicts: insufficient below the protocol's sample size or on structural zeros; else HOLDS / FAILS, each with statistic, threshold, n", () => {
  const base = { claim: 'c', statistic: 'θ in S: fp64 0/10, fp32 3/10', threshold: 'Wilson 95 % intervals', required: 500 };
  const few = A.judge({ ...base, n: 10, holds: true });
  assert.equal(few.outcome, 'insufficient');
  assert.match(few.reason!, /10 samples, the protocol asks for 500/);
  const structural = A.judge({ ...base, n: 1000, holds: true, structural: 'fp64 differs too' });
  assert.equal(structural.outcome, 'insufficient');
  assert.equal(A.judge({ ...base, n: 500, holds: true }).outcome, 'HOLDS');
  assert.equal(A.judge({ ...base, n: 500, holds: false }).outcome, 'FAILS');
  const line = A.verdictLine(few);
  for (const part of ['insufficient', 'statistic: θ in S: fp64 0/10', 'threshold: Wilson', 'n = 10 (protocol: 500)', 'why insufficient']) assert.ok(line.includes(part), `${part} in\n${line}`);
});

test('structural zeros (exactly 0 in fp64 too) are told from floating-point ones', async () => {
  const P = (await import(paperPath)) as {
    zeroMasks(m: keel.nn.Module, f: keel.FormatName, x: Tensor): Tensor[];
    structuralZeros(masks: Tensor[], m64: keel.nn.Module, x: Tensor): { zeros: number; structural: number };
  };
  // relu(x·x − c): column 0 has x = 1 + 2^-20, c = 1 + 2^-19, so x·x = 1 + 2^-19 + 2^-40 rounds to c in
  // fp32 (a floating-point zero) and is 2^-40 in fp64; column 1 is 1·1 − 1 = 0 in every precision (structural)
  class Square extends keel.nn.Module {
    relu = new keel.nn.ReLU();
    forward(x: Tensor): Tensor {
      return this.relu.call(x.mul(x).sub(keel.tensor([1 + 2 ** -19, 1], { dtype: x.dtype }))) as Tensor;
    }
  }
  keel.scope(() => {
    const x = keel.tensor([[1 + 2 ** -20, 1]]);
    const m = new Square();
    const masks = P.zeroMasks(m, 'fp32', x);
    const r = P.structuralZeros(masks, new Square(), x);
    for (const t of masks) t.dispose();
    assert.deepEqual(r, { zeros: 2, structural: 1 });
    const m64 = P.zeroMasks(m, 'fp64', x);
    assert.equal(Number(m64[0].sum().item()), 1, 'fp64 sees only the structural zero');
    for (const t of m64) t.dispose();
  });
});

test('the ReLU zero recorder counts exact zeros and the samples that hold one', () => {
  keel.scope(() => {
    const recs: keel.audit.ZeroRecord[] = [];
    A.zeroRecorder.current = recs;
    try {
      A.reluAt0(keel.tensor([[0, 1, -0], [2, 3, 4], [-1, 0, 5]]), 1);
    } finally {
      A.zeroRecorder.current = null;
    }
    assert.deepEqual(recs, [{ numel: 9, zeros: 3, samples: 3, samplesWithZero: 2 }]);
  });
});

test('the paper protocol: sequential minibatches with a short last one, background padding, the papers\' models', async () => {
  const P = (await import(paperPath)) as {
    minibatchCount(n: number, b: number): number;
    paperData(k: string, d: string, n?: number): { x: Tensor; y: Tensor; note: string };
    sequentialBatch(d: { x: Tensor; y: Tensor }, i: number, b: number): [Tensor, Tensor];
    boustanyVgg11(c: number, w: number, seed: number): keel.nn.Module;
  };
  assert.equal(P.minibatchCount(60000, 256), 235);
  assert.equal(P.minibatchCount(60000, 128), 469);
  const d = P.paperData('vgg', 'fashion-mnist', 600);
  assert.deepEqual(d.x.shape, [600, 1, 32, 32]);
  assert.match(d.note, /stands in for CIFAR-10/);
  // the padded border equals the background (Fashion-MNIST's corner pixels are 0 before standardising)
  const img = d.x.narrow(0, 0, 1).reshape([32, 32]).toArray() as number[][];
  assert.equal(img[0][0], img[2][2]);
  assert.ok(img[0][0] < 0, 'the background is below the mean after standardising, not 0');
  const [xb] = P.sequentialBatch(d, 4, 128);
  assert.equal(xb.shape[0], 600 - 4 * 128, 'the last minibatch is short');
  assert.throws(() => P.sequentialBatch(d, 5, 128), /outside 600 examples/);
  const vgg = P.boustanyVgg11(1, 64, 1);
  const params = vgg.namedParameters();
  assert.equal(params.length, 18, '8 convs and one head, weight and bias each');
  assert.deepEqual(params[params.length - 2][1].shape, [10, 512]);
  const headStd = Number(params[params.length - 2][1].std().item());
  assert.ok(Math.abs(headStd - 0.01) < 0.001, `head N(0, 0.01): std ${headStd}`);
  for (const [name, p] of params) if (name.endsWith('bias')) assert.equal(Number(p.abs().sum().item()), 0, `${name} is 0`);
  for (const t of [d.x, d.y]) t.dispose();
  vgg.dispose();
});

test('keel audit nonsmooth --protocol paper --quick: the paper\'s figures beside Keel\'s, fp64 0, every verdict insufficient', { timeout: 300_000 }, async () => {
  const { runAudit } = (await import(cliPath)) as { runAudit: (a: string[]) => Promise<number> };
  const out = mkdtempSync(join(tmpdir(), 'keel-audit-paper-'));
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  let code: number;
  try {
    code = await runAudit(['--protocol', 'paper', '--quick', '--draws', '4', '--draws-fp64', '2', '--batches', '4', '--width', '4', '--jobs', '0', '--no-progress', '--out', out]);
  } finally {
    console.log = log;
  }
  assert.equal(code, 0);
  const text = lines.join('\n');
  for (const part of ['paper: θ in S (MNIST)', '48.8 % (488/1000)', 'stands in for MNIST', 'stands in for CIFAR-10', 'paper: D > abs. (CIFAR-10)', '55.2 % (216/391)', 'Histogram of D', 'τ_p = 8·u_p·Σ‖∇native‖∞ is Keel\'s (relative), not his']) {
    assert.ok(text.includes(part), `'${part}' in the output`);
  }
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  const relu = (f: string) => r.summary.relu.find((x: { format: string; role: string }) => x.format === f && x.role === 'main');
  assert.equal(relu('fp64').draws, 2);
  assert.equal(relu('fp64').inS.k, 0);
  assert.equal(relu('fp32').draws, 4);
  const mp = (f: string) => r.summary.maxpool.find((x: { format: string }) => x.format === f);
  assert.equal(mp('fp64').batches, 4);
  assert.equal(mp('fp64').aboveAbsolute.k, 0, 'fp64 D stays under 1e-15');
  assert.ok(r.verdicts.length >= 3);
  for (const v of r.verdicts) assert.equal(v.outcome, 'insufficient', `${v.claim}: ${v.outcome}`);
  assert.equal(r.items.length, 4 + 4 + 2 + 3 * 1, 'ReLU: 4 θ in fp32 and fp16, 2 in fp64; MaxPool: one item of 4 minibatches per precision');
});

test('keel audit nonsmooth: bad protocol flags are one line, exit 2, naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--protocol', 'bertoin'], /^keel audit nonsmooth: .*--protocol.*'bertoin'/],
    [['--first-layer'], /^keel audit nonsmooth: --first-layer: only with --protocol paper/],
    [['--protocol', 'paper', '--draws', '0'], /^keel audit nonsmooth: --draws: expected a positive integer, got 0/],
    [['--protocol', 'paper', '--study', 'gelu'], /^keel audit nonsmooth: .*--study.*'gelu'/],
    [['--protocol', 'paper', '--model', 'lenet5'], /^keel audit nonsmooth: --model: --protocol paper uses the papers' models/],
    [['--protocol', 'paper', '--jobs', '-1'], /^keel audit nonsmooth: --jobs: expected an integer ≥ 0/],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [KEEL, 'audit', 'nonsmooth', ...args, '--out', join(tmpdir(), 'keel-never')], { encoding: 'utf8', timeout: 60_000 });
    const errLines = r.stderr.split('\n').filter(Boolean);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.equal(errLines.length, 1, `${args.join(' ')}: one line, got\n${r.stderr}`);
    assert.match(errLines[0], pattern);
  }
});

test('MaxPool study: the β = 0 and β = 1 gradients from one forward equal two forward+backward passes, bit for bit (fp32, fp16, fp64)', async () => {
  const audit = (await import(new URL('../../dist/experiments/nonsmooth/audit.js', import.meta.url).href)) as typeof import('../dist/experiments/nonsmooth/audit.js');
  const paper = (await import(paperPath)) as typeof import('../dist/experiments/nonsmooth/paper.js');
  for (const format of ['fp32', 'fp16', 'fp64'] as const) {
    const m32 = paper.boustanyVgg11(1, 8, 3);
    const model = format === 'fp64' ? m32.to('float64') : m32;
    keel.manualSeed(5);
    // constant borders (ties in the pools' windows) as the padded images have
    const x = keel.scope(() => keel.randn([4, 1, 32, 32]).mul(keel.rand([4, 1, 32, 32]).gt(0.5))).keep();
    const y = keel.randint(0, 10, [4]).keep();
    const ga = audit.gradientsWith(model, format, x, y, { reluAt0: 0, beta: 0 }, 0);
    const tiesTwo: keel.audit.TieRecord[] = [];
    keel.audit.tieRecorder.current = tiesTwo;
    const gb = audit.gradientsWith(model, format, x, y, { reluAt0: 0, beta: 1 }, 0);
    keel.audit.tieRecorder.current = null;
    const tiesOne: keel.audit.TieRecord[] = [];
    const [ha, hb] = audit.maxpoolGradientPair(model, format, x, y, 0, tiesOne);
    const bytes = (g: Map<string, Tensor>) => [...g].map(([k, t]) => [k, Buffer.from((t.data() as Float32Array).buffer).toString('base64')]);
    assert.deepEqual(bytes(ha), bytes(ga), `${format}: β = 0`);
    assert.deepEqual(bytes(hb), bytes(gb), `${format}: β = 1`);
    // the rules differ here in fp16 (ties made by rounding), so a β not switched would show
    if (format === 'fp16') assert.ok(!keel.audit.compareGradients(ga, gb).equal, 'fp16: native and β = 1 differ');
    // the β = 1 backward ran the minimal rule (only it records ties), and saw the same ties
    assert.ok(tiesOne.some((t) => t.tiedWindows > 0), `${format}: tied windows recorded`);
    assert.deepEqual(tiesOne, tiesTwo, `${format}: the same tie records`);
    for (const g of [ga, gb, ha, hb]) keel.audit.disposeGradients(g);
    x.dispose();
    y.dispose();
  }
});
