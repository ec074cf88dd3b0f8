// The depth-estimation study: SynthDepth (deterministic, positive depth,
// masks), SILog's variants against the codebases' formulas written in PyTorch
// (/usr/bin/python3, float64, values and gradients), the NaN mechanisms of
// arXiv:2311.03938 reproduced deterministically, and `keel repro mde --quick`
// writing results.json in its documented shape.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as keel from 'keel';
import { assertClose } from './helpers/assert.js';
import { runTorch, torchAvailable } from './helpers/torch.js';

// The study lives in src/experiments/mde/ (not part of the 'keel' API): load
// its build from dist/ next to this compiled test (build/test/ → dist/).
const MDE = new URL('../../dist/experiments/mde/', import.meta.url);
interface DepthUNetLike extends keel.nn.Module { unet: { head: { weight: keel.Tensor; bias: keel.Tensor | null } } }
const { DepthUNet } = (await import(new URL('model.js', MDE).href)) as {
  DepthUNet: new (o: { head?: string; finalInit?: string; width?: number; depth?: number; maxDepth?: number; minDepth?: number }) => DepthUNetLike;
};
const { run: reproMde } = (await import(new URL('cli.js', MDE).href)) as { run: (args: string[]) => Promise<number> };
const { encodePng } = (await import(new URL('png.js', MDE).href)) as { encodePng: (w: number, h: number, rgb: Uint8Array) => Buffer };

interface MdeResults {
  experiment: string;
  paper: { arxiv: string };
  quick: boolean;
  complete: boolean;
  runs: {
    id: string; loss: string; correction: number; error?: string;
    result: { status: string; firstNaNStep: number | null; cause: string | null; metrics: { absRel: number; delta1: number } | null } | null;
  }[];
  summary: { nanRate: number; nanRuns: number; runs: number }[];
  validPixels: { batches: number; mean: number };
  guard: { status: string; runs: unknown[] };
  verdict: { claims: { outcome: string; rule: string; evidence: string }[] };
}

/** A float tensor's values as numbers. */
const vals = (t: keel.Tensor): number[] => Array.from(t.data() as Float32Array | Float64Array);

const noTorch = torchAvailable() ? false : 'needs /usr/bin/python3 with torch';

describe('SynthDepth', () => {
  test('deterministic from the seed; splits and seeds differ; a larger n extends a smaller one', () => {
    const a = keel.data.synthDepth({ n: 4, size: 24, seed: 3 });
    const b = keel.data.synthDepth({ n: 6, size: 24, seed: 3 });
    const v = keel.data.synthDepth({ n: 4, size: 24, seed: 3, split: 'val' });
    const c = keel.data.synthDepth({ n: 4, size: 24, seed: 4 });
    for (let k = 0; k < 3; k++) {
      assert.deepEqual(vals(a.tensors[k]), vals(b.tensors[k].narrow(0, 0, 4)), `tensor ${k} extends`);
    }
    assert.notDeepEqual(vals(a.tensors[1]), vals(v.tensors[1]));
    assert.notDeepEqual(vals(a.tensors[1]), vals(c.tensors[1]));
    for (const ds of [a, b, v, c]) for (const t of ds.tensors) t.dispose();
  });

  test('contents: shapes, RGB in [0, 1], metric depth > 0 and ≤ maxDepth, dense validity marks sky, scenes vary', () => {
    const ds = keel.data.synthDepth({ n: 16, size: [20, 28], maxDepth: 20 });
    const [x, d, m] = ds.tensors;
    assert.deepEqual(x.shape, [16, 3, 20, 28]);
    assert.deepEqual(d.shape, [16, 1, 20, 28]);
    assert.deepEqual(m.shape, [16, 1, 20, 28]);
    assert.ok((x.min().item() as number) >= 0 && (x.max().item() as number) <= 1);
    assert.ok((d.min().item() as number) > 0.3, 'depth positive (camera ≥ 1.2 m above the ground)');
    assert.ok((d.max().item() as number) <= 20);
    const dv = vals(d);
    const mv = vals(m);
    assert.ok(mv.every((v) => v === 0 || v === 1));
    for (let i = 0; i < dv.length; i++) if (mv[i] === 0) assert.equal(dv[i], 20, 'invalid (sky / too far) pixels carry maxDepth');
    const validFrac = mv.reduce<number>((s, v) => s + v, 0) / mv.length;
    assert.ok(validFrac > 0.5 && validFrac < 1, `dense validity ${validFrac}`);
    // depth grows toward the top of the image on average (ground plane perspective)
    const rowMean = (r: number) => (d.select(2, r).mean().item() as number);
    assert.ok(rowMean(2) > rowMean(17), 'upper rows are farther than lower rows');
    // images differ between examples
    assert.notEqual(x.select(0, 0).mean().item(), x.select(0, 1).mean().item());
    for (const t of ds.tensors) t.dispose();
  });

  test('sparse masks: a subset of the valid pixels at the asked density', () => {
    const dense = keel.data.synthDepth({ n: 8, size: 32 });
    const random = keel.data.synthDepth({ n: 8, size: 32, sparse: { pattern: 'random', density: 0.1 } });
    const lines = keel.data.synthDepth({ n: 8, size: 32, sparse: { pattern: 'scanlines', density: 0.5, lines: 4 } });
    const dm = vals(dense.tensors[2]);
    const validCount = dm.reduce((s, v) => s + v, 0);
    for (const [ds, expected] of [[random, 0.1], [lines, 0.5 * 4 / 32]] as const) {
      const sm = vals(ds.tensors[2]);
      for (let i = 0; i < sm.length; i++) assert.ok(sm[i] <= dm[i], 'sparse ⊂ valid');
      const density = sm.reduce((s, v) => s + v, 0) / validCount;
      assert.ok(Math.abs(density - expected) < 0.4 * expected, `density ${density} vs ${expected}`);
    }
    // scan lines: at most `lines` rows per image carry points
    const l = lines.tensors[2];
    for (let i = 0; i < 8; i++) {
      const rows = (l.select(0, i).sum(2).gt(0).sum().item() as number);
      assert.ok(rows <= 4 && rows >= 1, `rows with points ${rows}`);
    }
    for (const ds of [dense, random, lines]) for (const t of ds.tensors) t.dispose();
  });

  test('PNG encoder writes a valid signature and IHDR', () => {
    const png = encodePng(2, 1, new Uint8Array([255, 0, 0, 0, 255, 0]));
    assert.deepEqual(Array.from(png.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.subarray(12, 16).toString('ascii'), 'IHDR');
    assert.equal(png.readUInt32BE(16), 2);
  });
});

// Inputs shared with PyTorch: positive predictions and targets, a mask with 7 of 12 pixels.
const PRED = [1.3, 0.7, 2.2, 5.1, 0.9, 3.3, 1.1, 7.5, 2.8, 0.4, 4.4, 6.0];
const GT = [1.0, 0.9, 2.5, 4.0, 1.2, 3.0, 1.5, 7.0, 2.0, 0.5, 5.0, 6.5];
const MASK = [1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0];

interface SilogCase { name: string; opts: keel.losses.SILogOptions; py: string }
const CASES: SilogCase[] = [
  { name: 'glpdepth', opts: { variant: 'glpdepth' }, py: 'torch.sqrt((d**2).mean() - 0.5 * d.mean()**2)' },
  { name: 'bts', opts: { variant: 'bts' }, py: '10 * torch.sqrt((d**2).mean() - 0.85 * d.mean()**2)' },
  { name: 'adabins unbiased', opts: { variant: 'adabins' }, py: '10 * torch.sqrt(torch.var(g) + 0.15 * torch.mean(g)**2)' },
  { name: 'adabins biased', opts: { variant: 'adabins', correction: 0 }, py: '10 * torch.sqrt(torch.var(g, unbiased=False) + 0.15 * torch.mean(g)**2)' },
  { name: 'glpdepth unbiased', opts: { variant: 'glpdepth', correction: 1 }, py: 'torch.sqrt(torch.var(d) + 0.5 * d.mean()**2)' },
  { name: 'glpdepth safe', opts: { variant: 'glpdepth', safe: true, eps: 1e-6, minDepth: 0.5 }, py: 'torch.sqrt(torch.clamp((ds**2).mean() - 0.5 * ds.mean()**2, min=0) + 1e-6)' },
  { name: 'adabins safe biased', opts: { variant: 'adabins', correction: 0, safe: true }, py: '10 * torch.sqrt(torch.clamp(torch.var(gs, unbiased=False) + 0.15 * gs.mean()**2, min=0) + 1e-6)' },
];

describe('SILog variants vs the codebases\' formulas in PyTorch (float64)', { skip: noTorch }, () => {
  test('values and gradients with respect to the prediction', () => {
    const expected = runTorch<{ v: number; g: number[] }[]>(`
out = []
for expr in inp['exprs']:
    p = T(inp['pred'], requires_grad=True)
    t = T(inp['gt'])
    m = T(inp['mask']) > 0
    d = torch.log(t[m]) - torch.log(p[m])          # GLPDepth / BTS: log gt - log pred
    g = torch.log(p[m]) - torch.log(t[m])          # AdaBins: log pred - log gt
    ds = torch.log(t[m]) - torch.log(torch.clamp(p[m], min=0.5))
    gs = torch.log(torch.clamp(p[m], min=1e-3)) - torch.log(t[m])
    l = eval(expr)
    l.backward()
    out.append({'v': l.item(), 'g': L(p.grad)})
`, { pred: PRED, gt: GT, mask: MASK, exprs: CASES.map((c) => c.py) });
    CASES.forEach((c, i) => {
      const p = keel.tensor(PRED, { dtype: 'float64', requiresGrad: true });
      const l = keel.losses.silog(p, keel.tensor(GT, { dtype: 'float64' }), keel.tensor(MASK, { dtype: 'float64' }), c.opts);
      l.backward();
      assertClose(l.item() as number, expected[i].v, { rtol: 1e-12, atol: 1e-14, what: `${c.name} value` });
      assertClose(vals(p.grad!), expected[i].g, { rtol: 1e-10, atol: 1e-14, what: `${c.name} gradient` });
    });
  });

  test('log-depth input equals depth input; metrics match their definitions', () => {
    const g = keel.tensor(GT, { dtype: 'float64' });
    const m = keel.tensor(MASK, { dtype: 'float64' });
    const a = keel.losses.silog(keel.tensor(PRED, { dtype: 'float64' }), g, m).item() as number;
    const b = keel.losses.silog(keel.tensor(PRED.map(Math.log), { dtype: 'float64' }), g, m, { input: 'logDepth' }).item() as number;
    assertClose(a, b, { rtol: 1e-12 });
    const met = keel.losses.depthMetrics(keel.tensor(PRED), keel.tensor(GT), keel.tensor(MASK));
    const idx = MASK.flatMap((v, i) => (v ? [i] : []));
    const absRel = idx.reduce((s, i) => s + Math.abs(GT[i] - PRED[i]) / GT[i], 0) / idx.length;
    const rmse = Math.sqrt(idx.reduce((s, i) => s + (GT[i] - PRED[i]) ** 2, 0) / idx.length);
    const delta1 = idx.filter((i) => Math.max(GT[i] / PRED[i], PRED[i] / GT[i]) < 1.25).length / idx.length;
    assert.equal(met.n, idx.length);
    assertClose(met.absRel, absRel, { rtol: 1e-6 });
    assertClose(met.rmse, rmse, { rtol: 1e-6 });
    assertClose(met.delta1, delta1, { rtol: 1e-12 });
  });
});

describe('the NaN mechanisms of arXiv:2311.03938, deterministically', () => {
  const silogGrad = (pred: number[], gt: number[], mask: number[] | null, opts: keel.losses.SILogOptions, dtype: 'float32' | 'float64' = 'float64') => {
    const p = keel.tensor(pred, { dtype, requiresGrad: true });
    const l = keel.losses.silog(p, keel.tensor(gt, { dtype }), mask ? keel.tensor(mask, { dtype }) : null, opts);
    const value = l.item() as number;
    l.backward();
    return { value, grad: vals(p.grad!) };
  };

  test('sqrt SILog at its optimum (d ≡ 0) has a NaN gradient (∞·0); the safe SILog a finite one', () => {
    const gt = [1.5, 2.5, 4.0, 8.0];
    const naive = silogGrad(gt, gt, null, { variant: 'glpdepth' });
    assert.equal(naive.value, 0);
    assert.ok(naive.grad.every(Number.isNaN), `naive gradient ${naive.grad}`);
    const safe = silogGrad(gt, gt, null, { variant: 'glpdepth', safe: true });
    assert.ok(safe.grad.every(Number.isFinite), `safe gradient ${safe.grad}`);
  });

  test('pure scale-invariant SILog (λ = 1) at a constant d: the argument is 0 and the gradient non-finite', () => {
    const gt = [1.5, 2.5, 4.0, 8.0];
    const pred = gt.map((g) => g * 1.25); // d = −log 1.25 everywhere
    const naive = silogGrad(pred, gt, null, { variant: 'glpdepth', lambda: 1 });
    assert.ok(Math.abs(naive.value) < 1e-7 || Number.isNaN(naive.value));
    assert.ok(naive.grad.some((g) => !Number.isFinite(g)), `naive gradient ${naive.grad}`);
    const safe = silogGrad(pred, gt, null, { variant: 'glpdepth', lambda: 1, safe: true });
    assert.ok(safe.grad.every(Number.isFinite));
  });

  test('unbiased variance over 1 valid pixel: NaN forward, and backward raises as in PyTorch 1.13; biased is finite', () => {
    const p = keel.tensor([2.0, 3.0, 4.0], { dtype: 'float64', requiresGrad: true });
    const one = keel.tensor([0, 1, 0], { dtype: 'float64' });
    const gt = keel.tensor([1.0, 2.0, 3.0], { dtype: 'float64' });
    for (const variant of ['adabins', 'glpdepth'] as const) {
      const l = keel.losses.silog(p, gt, one, { variant, correction: 1 });
      assert.ok(Number.isNaN(l.item() as number), `${variant}: NaN forward`);
      assert.throws(() => l.backward(), /VarBackward0 returned an invalid gradient/);
      const safe = keel.losses.silog(p, gt, one, { variant, correction: 1, safe: true });
      assert.ok(Number.isNaN(safe.item() as number), 'the safe sqrt does not fix 0/0 in the variance');
      const biased = silogGrad([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], [0, 1, 0], { variant, correction: 0 });
      assert.ok(Number.isFinite(biased.value) && biased.grad.every(Number.isFinite));
    }
    if (!noTorch) {
      const torchOut = runTorch<string>(`
x = T([2.0], requires_grad=True)
v = torch.var(x)
try:
    v.backward(); out = 'no error'
except RuntimeError as e:
    out = ('nan ' if math.isnan(v.item()) else '') + str(e).split(' - ')[0]
`);
      assert.match(torchOut, /^nan Function VarBackward0 returned an invalid gradient/);
    }
  });

  test('an empty mask: NaN for the codebases\' SILog, 0 with a finite gradient for the safe one', () => {
    const naive = keel.losses.silog(keel.tensor([2.0, 3.0]), keel.tensor([1.0, 2.0]), keel.tensor([0, 0]));
    assert.ok(Number.isNaN(naive.item() as number));
    const safe = silogGrad([2.0, 3.0], [1.0, 2.0], [0, 0], { safe: true });
    assert.equal(safe.value, 0);
    assert.deepEqual(safe.grad, [0, 0]);
  });

  test('log-sigmoid underflow in float32: log(σ(z)) = −inf and its gradient NaN below z ≈ −104; the floored head stays finite', () => {
    const z = keel.tensor([-110, -50, 0], { requiresGrad: true });
    const y = z.sigmoid().log();
    const v = vals(y);
    assert.equal(v[0], -Infinity);
    assert.ok(Number.isFinite(v[1]) && Number.isFinite(v[2]));
    y.sum().backward();
    assert.ok(Number.isNaN(vals(z.grad!)[0]), 'd log σ / dz at underflow: (1/0)·0');
    // float16 (emulated) underflows much sooner: σ(−20) = 2e−9 < fp16's smallest subnormal
    const h = keel.withPrecision('fp16', () => keel.tensor([-20]).sigmoid().log().item() as number);
    assert.equal(h, -Infinity);
    assert.ok(Number.isFinite(keel.tensor([-20]).sigmoid().log().item() as number), 'finite in float32');
  });

  test('DepthUNet heads driven to saturation: sigmoid → depth 0, log-sigmoid → −inf, the floor → log(minDepth)', () => {
    const x = keel.rand([1, 3, 8, 8]);
    const outs: Record<string, number> = {};
    for (const head of ['sigmoid', 'log-sigmoid', 'log-sigmoid-floor'] as const) {
      keel.manualSeed(0);
      const m = new DepthUNet({ head, width: 4, depth: 1, maxDepth: 20, minDepth: 0.01 });
      keel.noGrad(() => { m.unet.head.weight.zero_(); m.unet.head.bias!.fill_(-200); });
      const o = keel.noGrad(() => m.call(x)) as { kind: string; value: keel.Tensor };
      outs[head] = o.value.max().item() as number;
      m.dispose();
    }
    assert.equal(outs.sigmoid, 0);
    assert.equal(outs['log-sigmoid'], -Infinity);
    assertClose(outs['log-sigmoid-floor'], Math.log(0.01), { rtol: 1e-6 });
    // small init: the head's weights are N(0, 0.001²), bias 0
    keel.manualSeed(0);
    const s = new DepthUNet({ finalInit: 'small', width: 8, depth: 1 });
    const w = vals(s.unet.head.weight);
    assert.ok(Math.max(...w.map(Math.abs)) < 0.005);
    assert.equal(s.unet.head.bias!.abs().sum().item(), 0);
    s.dispose();
  });
});

describe('keel repro mde --quick', () => {
  test('finishes and writes results.json in the documented shape', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keel-mde-'));
    try {
      const log = console.log;
      const err = console.error;
      let printed = '';
      console.log = (s: unknown) => { printed += `${String(s)}\n`; };
      const write = process.stderr.write.bind(process.stderr);
      process.stderr.write = (() => true) as typeof process.stderr.write;
      let code: number;
      try {
        code = await reproMde(['--quick', '--out', dir]);
      } finally {
        console.log = log;
        console.error = err;
        process.stderr.write = write;
      }
      assert.equal(code, 0);
      assert.match(printed, /\| precision \| loss\/head\/variance\/init/);
      const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as MdeResults;
      assert.equal(r.experiment, 'mde');
      assert.equal(r.paper.arxiv, '2311.03938');
      assert.equal(r.quick, true);
      assert.equal(r.complete, true);
      assert.equal(r.runs.length, 24 + 2 + 2, '24 fp32 cells + naive and safe in fp16 and bf16');
      for (const run of r.runs) {
        assert.ok(run.result !== null, `${run.id}: ${run.error}`);
        assert.ok(['finished', 'nan'].includes(run.result.status));
        if (run.result.status === 'nan') {
          assert.ok(Number.isInteger(run.result.firstNaNStep) && run.result.firstNaNStep! >= 1);
          assert.ok(typeof run.result.cause === 'string');
        } else {
          assert.ok(run.result.metrics && run.result.metrics.absRel >= 0 && run.result.metrics.delta1 <= 1);
        }
        // the NaN mechanism is what the rule says: unbiased + one pixel is NaN, safe + biased never is
        if (run.result.cause === 'unbiased variance, N = 1') assert.equal(run.correction, 1);
        if (run.loss === 'safe' && run.correction === 0) assert.equal(run.result.status, 'finished', run.id);
      }
      assert.equal(r.summary.length, 28);
      for (const s of r.summary) assert.ok(s.nanRate >= 0 && s.nanRate <= 1 && s.nanRuns <= s.runs);
      assert.ok(r.validPixels.batches > 0 && r.validPixels.mean > 0);
      assert.ok(['done', 'pending'].includes(r.guard.status));
      if (r.guard.status === 'done') assert.equal(r.guard.runs.length, 4);
      assert.ok(r.verdict.claims.length >= 6);
      for (const c of r.verdict.claims) {
        assert.equal(c.outcome, 'inconclusive');
        assert.ok(c.rule.length > 0 && c.evidence.length > 0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
