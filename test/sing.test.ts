// SING (Courtois et al. 2023, arXiv:2305.15997; github.com/AdrienCourtois/SING)
// against an independent reference written here in Python from the method's
// description (not from Keel's code): gradient centring per output channel
// (≥ 2-d tensors), division by the L2 norm + eps, Adam moments with bias
// correction, denominator softplus_β(√v̂), decoupled weight decay skipping
// < 2-d tensors, Lookahead every k steps. 25 steps, parameters compared after
// every step, on 1-D, 2-D and 4-D parameters, with and without Lookahead,
// in float64 (tight) and float32; and the standardisation alone wrapped
// around AdamW and SGD.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as keel from 'keel';
import { runTorch, torchAvailable } from './helpers/torch.js';
import { uniformPM1Float32 } from './helpers/random.js';

const noTorch = torchAvailable() ? false : 'needs /usr/bin/python3 with torch';
const { optim } = keel;
type Tensor = keel.Tensor;

const STEPS = 25;
const SHAPES = [[5], [4, 3], [3, 2, 3, 3]];
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);


function makeData(seed: number) {
  const next = uniformPM1Float32(seed);
  const init = SHAPES.map((s) => Array.from({ length: numel(s) }, () => next()));
  // per-output-channel offsets so that centring matters; parameter 0 (1-D)
  // has no gradient on every 4th step (one of them a Lookahead merge step)
  const grads = Array.from({ length: STEPS }, (_, t) =>
    SHAPES.map((s, i) => {
      if (i === 0 && t % 4 === 3) return null;
      const perChannel = numel(s) / s[0];
      return Array.from({ length: numel(s) }, (_, k) => Math.fround(next() * (1 + (t % 3)) + 0.5 * Math.floor(k / perChannel) - 0.3));
    }),
  );
  return { init, grads };
}

interface Case {
  name: string;
  /** SING's options in Keel */
  ts: keel.optim.SINGOptions;
  /** the same for the Python reference */
  py: { lr: number; betas: [number, number]; wd: number; eps: number; softplus: boolean; sp_beta: number; centre: boolean; normalise: boolean; la: [number, number] | null };
}

const base = { lr: 5e-3, betas: [0.9, 0.999] as [number, number], wd: 0, eps: 1e-8, softplus: true, sp_beta: 50, centre: true, normalise: true, la: [5, 0.5] as [number, number] };

const CASES: Case[] = [
  { name: 'defaults (Lookahead k 5, α 0.5)', ts: {}, py: { ...base } },
  { name: 'weight decay, larger lr', ts: { lr: 5e-2, weightDecay: 5e-3 }, py: { ...base, lr: 5e-2, wd: 5e-3 } },
  { name: 'no Lookahead, strong weight decay', ts: { lr: 1e-2, weightDecay: 0.1, lookahead: false }, py: { ...base, lr: 1e-2, wd: 0.1, la: null } },
  {
    name: 'Lookahead k 3 α 0.8, softplus β 10, betas 0.8/0.99',
    ts: { lr: 2e-2, weightDecay: 0.05, lookahead: { k: 3, alpha: 0.8 }, softplusBeta: 10, betas: [0.8, 0.99] },
    py: { ...base, lr: 2e-2, wd: 0.05, la: [3, 0.8], sp_beta: 10, betas: [0.8, 0.99] },
  },
  { name: 'softplus off (√v̂ + eps)', ts: { lr: 1e-2, softplus: false, eps: 1e-6 }, py: { ...base, lr: 1e-2, softplus: false, eps: 1e-6 } },
  {
    name: 'normalisation only, no Lookahead',
    ts: { lr: 1e-2, gradCentralization: false, lookahead: false },
    py: { ...base, lr: 1e-2, centre: false, la: null },
  },
];

// The reference, from the description: plain tensors, no optimizer class.
const PY_SING = `
import torch.nn.functional as F
def standardise(g, eps, centre=True, normalise=True):
    if centre and g.dim() >= 2:
        g = g - g.mean(dim=list(range(1, g.dim())), keepdim=True)
    if normalise:
        g = g / (torch.sqrt((g * g).sum()) + eps)
    return g

def reference_sing(params, grads, c):
    b1, b2 = c['betas']
    lr, wd, eps = c['lr'], c['wd'], c['eps']
    n = len(params)
    m, v, t, slow = [None] * n, [None] * n, [0] * n, [None] * n
    since_merge = 0
    traj = []
    for step in grads:
        for i in range(n):
            g = step[i]
            if g is None:
                continue
            p = params[i]
            if m[i] is None:
                m[i], v[i], slow[i] = torch.zeros_like(p), torch.zeros_like(p), p.clone()
            g = standardise(g, eps, c['centre'], c['normalise'])
            t[i] += 1
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t[i])
            s = torch.sqrt(v[i]) / math.sqrt(1 - b2 ** t[i])
            denom = F.softplus(s, beta=c['sp_beta']) if c['softplus'] else s + eps
            if wd != 0 and p.dim() >= 2:
                p = p * (1 - lr * wd)
            params[i] = p - lr * m_hat / denom
        if c['la'] is not None:
            k, alpha = c['la']
            since_merge += 1
            if since_merge == k:
                since_merge = 0
                for i in range(n):
                    if step[i] is None or slow[i] is None:
                        continue
                    slow[i] = slow[i] + alpha * (params[i] - slow[i])
                    params[i] = slow[i].clone()
        traj.append([p.reshape(-1).tolist() for p in params])
    return traj

def standardised_then(opt_name, kwargs, params, grads, dtype):
    ps = [p.clone().requires_grad_() for p in params]
    opt = getattr(torch.optim, opt_name)(ps, **kwargs)
    traj = []
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = None if g is None else standardise(g, 1e-8)
        opt.step()
        traj.append([p.detach().reshape(-1).tolist() for p in ps])
    return traj

out = {}
for name, dtype in (('float64', torch.float64), ('float32', torch.float32)):
    init = [T(v, dtype).reshape(s) for v, s in zip(inp['init'], inp['shapes'])]
    grads = [[None if g is None else T(g, dtype).reshape(s) for g, s in zip(step, inp['shapes'])] for step in inp['grads']]
    out[name] = {
        'sing': [reference_sing(list(init), grads, c) for c in inp['cases']],
        'adamw': standardised_then('AdamW', dict(lr=1e-2, weight_decay=0.1), init, grads, dtype),
        'sgd': standardised_then('SGD', dict(lr=0.1, momentum=0.9), init, grads, dtype),
    }
`;

type Traj = number[][][];
type Ref = Record<'float64' | 'float32', { sing: Traj[]; adamw: Traj; sgd: Traj }>;

function makeParams(init: number[][], dtype: 'float32' | 'float64'): Tensor[] {
  return init.map((v, i) => keel.tensor(v, { dtype, shape: SHAPES[i] }).requiresGrad_(true).keep());
}

function setGrads(params: Tensor[], step: (number[] | null)[], dtype: 'float32' | 'float64'): void {
  keel.scope(() => {
    params.forEach((p, i) => {
      const g = step[i];
      p.grad = g === null ? null : keel.tensor(g, { dtype, shape: SHAPES[i] });
    });
  });
}

/** Runs an optimizer over the recorded gradients; returns the max relative error against the reference trajectory. */
function runAgainst(opt: keel.optim.OptimizerLike, params: Tensor[], grads: (number[] | null)[][], ref: Traj, dtype: 'float32' | 'float64', rtol: number, what: string): number {
  let worst = 0;
  for (let t = 0; t < STEPS; t++) {
    setGrads(params, grads[t], dtype);
    opt.step();
    params.forEach((p, i) => {
      const got = Array.from(p.data() as Float32Array | Float64Array);
      const want = ref[t][i];
      assert.equal(got.length, want.length);
      for (let k = 0; k < want.length; k++) {
        const err = Math.abs(got[k] - want[k]);
        const rel = err / Math.max(Math.abs(want[k]), 1e-3);
        worst = Math.max(worst, rel);
        assert.ok(rel <= rtol, `${what}: step ${t + 1}, param ${i} [${SHAPES[i].join('×')}], element ${k}: ${got[k]} vs reference ${want[k]} (relative error ${rel} > ${rtol})`);
      }
    });
  }
  return worst;
}

describe('SING matches an independent reference step by step (25 steps, 1-D, 2-D, 4-D parameters)', { skip: noTorch }, () => {
  const data = makeData(31337);
  let ref: Ref;
  before(() => {
    ref = runTorch<Ref>(PY_SING, { cases: CASES.map((c) => c.py), init: data.init, grads: data.grads, shapes: SHAPES });
  });

  // float64: only rounding separates the two (seen: ≤ 1e-13). float32: the
  // op order differs (addcdiv vs p − lr·m̂/denom, the Lookahead blend), ~1e-7
  // per op, accumulated over 25 steps and magnified where a parameter
  // element is small; errors are relative to max(|reference|, 1e-3).
  const TOL = { float64: 1e-10, float32: 1e-4 };

  for (const dtype of ['float64', 'float32'] as const) {
    CASES.forEach((c, ci) => {
      test(`${c.name} (${dtype})`, () => {
        const params = makeParams(data.init, dtype);
        const opt = new optim.SING(params, c.ts);
        try {
          const worst = runAgainst(opt, params, data.grads, ref[dtype].sing[ci], dtype, TOL[dtype], c.name);
          console.log(`# SING ${c.name} (${dtype}): max relative error ${worst.toExponential(2)}`);
        } finally {
          opt.dispose();
          keel.dispose(params);
        }
      });
    });

    test(`GradientStandardization around AdamW and SGD (${dtype})`, () => {
      for (const [name, make, want] of [
        ['AdamW', (ps: Tensor[]) => new optim.AdamW(ps, { lr: 1e-2, weightDecay: 0.1 }), ref[dtype].adamw],
        ['SGD', (ps: Tensor[]) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9 }), ref[dtype].sgd],
      ] as const) {
        const params = makeParams(data.init, dtype);
        const inner = make(params);
        const opt = new optim.GradientStandardization(inner);
        try {
          const worst = runAgainst(opt, params, data.grads, want, dtype, TOL[dtype], `standardised ${name}`);
          console.log(`# standardised ${name} (${dtype}): max relative error ${worst.toExponential(2)}`);
        } finally {
          inner.dispose();
          keel.dispose(params);
        }
      }
    });
  }
});

describe('SING behaviour', () => {
  test('the gradient is standardised in place: per-channel mean 0 (≥ 2-d), norm 1', () => {
    keel.scope(() => {
      const w = keel.randn([4, 3, 2, 2], { dtype: 'float64' }).requiresGrad_(true);
      const b = keel.randn([4], { dtype: 'float64' }).requiresGrad_(true);
      w.grad = keel.randn([4, 3, 2, 2], { dtype: 'float64' }).add(3);
      b.grad = keel.randn([4], { dtype: 'float64' }).add(3);
      new optim.SING([w, b]).step();
      const gw = w.grad!;
      const gb = b.grad!;
      for (const m of gw.mean([1, 2, 3]).toArray<number[]>()) assert.ok(Math.abs(m) < 1e-12);
      assert.ok(Math.abs(gw.norm().item() - 1) < 1e-7);
      assert.ok(Math.abs(gb.norm().item() - 1) < 1e-7);
      // a 1-D gradient is normalised but not centred
      assert.ok(Math.abs(gb.mean().item()) > 0.1);
    });
  });

  test('weight decay skips 1-D tensors; Lookahead pulls back every k steps', () => {
    keel.scope(() => {
      // zero gradients: standardisation gives 0, so only weight decay moves p
      const w = keel.ones([2, 2], { requiresGrad: true });
      const b = keel.ones([2], { requiresGrad: true });
      const opt = new optim.SING([w, b], { lr: 0.1, weightDecay: 0.5, lookahead: false });
      w.grad = keel.zeros([2, 2]);
      b.grad = keel.zeros([2]);
      opt.step();
      assert.ok(Math.abs((w.toArray<number[][]>()[0][0]) - 0.95) < 1e-6);
      assert.deepEqual(b.toArray(), [1, 1]);
    });
    keel.scope(() => {
      const p = keel.zeros([3], { requiresGrad: true });
      const opt = new optim.SING([p], { lr: 0.1, lookahead: { k: 2, alpha: 0.5 } });
      p.grad = keel.tensor([1, 1, 1]);
      opt.step();
      const after1 = p.toArray<number[]>()[0];
      opt.step();
      const fast2 = after1 * 2; // two equal Adam steps of the same size (unit-normalised constant gradient)
      // merged: slow (0) + 0.5·(fast − 0)
      assert.ok(Math.abs(p.toArray<number[]>()[0] - 0.5 * fast2) < 2e-3 * Math.abs(fast2), `${p.toArray()} vs ${0.5 * fast2}`);
    });
  });

  test('options: per-group overrides, unknown options and bad values refused; state dict keeps Lookahead', () => {
    keel.scope(() => {
      const w = keel.ones([2, 2], { requiresGrad: true });
      const b = keel.ones([2], { requiresGrad: true });
      const opt = new optim.SING([{ params: [w] }, { params: [b], lr: 0.1, lookahead: false }], { lr: 1e-2, lookahead: { k: 4 } });
      assert.equal(opt.paramGroups[0].lookaheadK, 4);
      assert.equal(opt.paramGroups[0].lookaheadAlpha, 0.5);
      assert.equal(opt.paramGroups[1].lookahead, false);
      assert.equal(opt.paramGroups[1].lr, 0.1);
      w.grad = keel.ones([2, 2]);
      b.grad = keel.ones([2]);
      opt.step();
      const sd = opt.stateDict();
      assert.deepEqual(Object.keys(sd.tensors).sort(), ['0.exp_avg', '0.exp_avg_sq', '0.lookahead_params', '1.exp_avg', '1.exp_avg_sq']);
      assert.equal(sd.paramGroups[0].lookaheadStep, 1);
      assert.throws(() => new optim.SING([w], { lookahed: false } as never), /unknown option 'lookahed'/);
      assert.throws(() => new optim.SING([w], { lookahead: { k: 0 } }), /lookahead k/);
      assert.throws(() => new optim.SING([w], { betas: [0.9, 1] }), /beta/);
      opt.dispose();
    });
  });

  test('SING with cosine decay minimises a least-squares problem', () => {
    keel.manualSeed(0);
    keel.scope(() => {
      // a 1-D weight: normalised, not centred (centring a [out, in] weight
      // keeps each row's gradient mean at 0, yet Adam's per-element scaling
      // lets the row mean drift, so a 2-D least-squares optimum can be out
      // of reach: the authors' code behaves the same)
      const x = keel.randn([64, 8]);
      const wTrue = keel.randn([8]);
      const y = x.matmul(wTrue);
      const w = keel.zeros([8], { requiresGrad: true });
      // normalised gradients make steps of ~lr whatever the loss: decay it
      const opt = new optim.SING([w], { lr: 0.05 });
      const sched = new optim.CosineAnnealingLR(opt, { tMax: 300 });
      const loss = () => keel.losses.mseLoss(x.matmul(w), y);
      const first = keel.noGrad(() => loss().item());
      for (let i = 0; i < 300; i++) {
        keel.scope(() => {
          opt.zeroGrad();
          loss().backward();
          opt.step();
          sched.step();
        });
      }
      const last = keel.noGrad(() => loss().item());
      assert.ok(last < 1e-6 * first, `loss ${first} → ${last}`);
      opt.dispose();
    });
  });
});
