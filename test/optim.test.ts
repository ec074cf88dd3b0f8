// keel.optim against PyTorch 1.13 (the same libtorch, /usr/bin/python3):
// each optimizer fed the same recorded gradients (set on p.grad directly)
// for 25 steps, parameters compared after every step, float32, for several
// hyper-parameter settings; schedulers compared on lr values step by step;
// clipping on norms and gradients; state dicts round-tripped through JSON +
// safetensors and resumed.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as keel from 'keel';
import { runTorch, torchAvailable } from './helpers/torch.js';
import { uniformPM1Float32 } from './helpers/random.js';

const noTorch = torchAvailable() ? false : 'needs /usr/bin/python3 with torch';
const { optim } = keel;
type Tensor = keel.Tensor;

const STEPS = 25;
const SHAPES = [[4, 3], [5], [2, 3, 2, 2], []];



const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function makeData(seed: number) {
  const next = uniformPM1Float32(seed);
  const init = SHAPES.map((s) => Array.from({ length: numel(s) }, () => next()));
  // gradients of varied scale; parameter 1 has none on every 4th step, so
  // skipping is checked too
  const grads = Array.from({ length: STEPS }, (_, t) =>
    SHAPES.map((s, i) => {
      if (i === 1 && t % 4 === 3) return null;
      return Array.from({ length: numel(s) }, () => Math.fround(next() * (1 + (t % 3))));
    }),
  );
  return { init, grads };
}

interface Case {
  name: string;
  /** the class name in both libraries */
  opt: 'SGD' | 'Adam' | 'AdamW' | 'RMSprop';
  ts: Record<string, unknown>;
  py: Record<string, unknown>;
  /** two groups: params 0, 2, 3 and param 1 with these overrides */
  group1?: { ts: Record<string, unknown>; py: Record<string, unknown> };
  /** a scheduler stepped after each optimizer step */
  sched?: 'warmupCosine' | 'oneCycle';
}

const CASES: Case[] = [
  { name: 'SGD plain', opt: 'SGD', ts: { lr: 0.1 }, py: { lr: 0.1 } },
  { name: 'SGD momentum', opt: 'SGD', ts: { lr: 0.05, momentum: 0.9 }, py: { lr: 0.05, momentum: 0.9 } },
  {
    name: 'SGD momentum dampening weight decay',
    opt: 'SGD',
    ts: { lr: 0.03, momentum: 0.8, dampening: 0.3, weightDecay: 0.01 },
    py: { lr: 0.03, momentum: 0.8, dampening: 0.3, weight_decay: 0.01 },
  },
  {
    name: 'SGD nesterov weight decay maximize',
    opt: 'SGD',
    ts: { lr: 0.02, momentum: 0.95, nesterov: true, weightDecay: 1e-3, maximize: true },
    py: { lr: 0.02, momentum: 0.95, nesterov: true, weight_decay: 1e-3, maximize: true },
  },
  { name: 'Adam defaults', opt: 'Adam', ts: {}, py: {} },
  {
    name: 'Adam weight decay betas eps',
    opt: 'Adam',
    ts: { lr: 3e-3, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05 },
    py: { lr: 3e-3, betas: [0.8, 0.99], eps: 1e-6, weight_decay: 0.05 },
  },
  {
    name: 'Adam amsgrad maximize',
    opt: 'Adam',
    ts: { lr: 1e-2, amsgrad: true, maximize: true },
    py: { lr: 1e-2, amsgrad: true, maximize: true },
  },
  { name: 'AdamW defaults', opt: 'AdamW', ts: {}, py: {} },
  {
    name: 'AdamW amsgrad strong decay',
    opt: 'AdamW',
    ts: { lr: 5e-3, weightDecay: 0.3, amsgrad: true, betas: [0.85, 0.995] },
    py: { lr: 5e-3, weight_decay: 0.3, amsgrad: true, betas: [0.85, 0.995] },
  },
  { name: 'RMSprop defaults', opt: 'RMSprop', ts: {}, py: {} },
  {
    name: 'RMSprop centred momentum weight decay',
    opt: 'RMSprop',
    ts: { lr: 3e-3, alpha: 0.9, eps: 1e-6, momentum: 0.7, centered: true, weightDecay: 0.02 },
    py: { lr: 3e-3, alpha: 0.9, eps: 1e-6, momentum: 0.7, centered: true, weight_decay: 0.02 },
  },
  {
    name: 'RMSprop momentum maximize',
    opt: 'RMSprop',
    ts: { lr: 1e-3, momentum: 0.5, maximize: true },
    py: { lr: 1e-3, momentum: 0.5, maximize: true },
  },
  {
    name: 'SGD two groups',
    opt: 'SGD',
    ts: { lr: 0.05, momentum: 0.9 },
    py: { lr: 0.05, momentum: 0.9 },
    group1: { ts: { lr: 0.2, nesterov: true, weightDecay: 0.1 }, py: { lr: 0.2, nesterov: true, weight_decay: 0.1 } },
  },
  {
    name: 'AdamW two groups',
    opt: 'AdamW',
    ts: { lr: 1e-3 },
    py: { lr: 1e-3 },
    group1: { ts: { lr: 1e-2, weightDecay: 0, betas: [0.5, 0.9] }, py: { lr: 1e-2, weight_decay: 0, betas: [0.5, 0.9] } },
  },
  { name: 'AdamW + warm-up/cosine schedule', opt: 'AdamW', ts: { lr: 1e-2 }, py: { lr: 1e-2 }, sched: 'warmupCosine' },
  { name: 'SGD + one-cycle (momentum cycled)', opt: 'SGD', ts: { lr: 0.1, momentum: 0.9 }, py: { lr: 0.1, momentum: 0.9 }, sched: 'oneCycle' },
  { name: 'Adam + one-cycle (beta1 cycled)', opt: 'Adam', ts: {}, py: {}, sched: 'oneCycle' },
];

const PY_OPTIM = `
import warnings
warnings.filterwarnings('ignore')
from torch.optim import lr_scheduler as S
def sched_for(name, opt):
    if name == 'warmupCosine':
        return S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.1, total_iters=5), S.CosineAnnealingLR(opt, T_max=20)], milestones=[5])
    if name == 'oneCycle':
        return S.OneCycleLR(opt, max_lr=0.05, total_steps=${STEPS + 1})
    return None
out = []
for c in inp['cases']:
    params = [T(v, torch.float32).reshape(s).requires_grad_() for v, s in zip(inp['init'], inp['shapes'])]
    if c.get('group1'):
        groups = [dict(params=[params[0], params[2], params[3]]), dict(params=[params[1]], **c['group1'])]
    else:
        groups = params
    opt = getattr(torch.optim, c['opt'])(groups, **c['kwargs'])
    sched = sched_for(c.get('sched'), opt)
    traj = []
    for step in inp['grads']:
        for p, g, s in zip(params, step, inp['shapes']):
            p.grad = None if g is None else T(g, torch.float32).reshape(s)
        opt.step()
        if sched is not None: sched.step()
        traj.append([p.detach().reshape(-1).tolist() for p in params])
    out.append(traj)
`;

function makeOptimizer(c: Case, params: Tensor[]): keel.optim.Optimizer<any> {
  const Ctor = (optim as unknown as Record<string, new (p: unknown, o: unknown) => keel.optim.Optimizer<any>>)[c.opt];
  const groups = c.group1 ? [{ params: [params[0], params[2], params[3]] }, { params: [params[1]], ...c.group1.ts }] : params;
  return new Ctor(groups, c.ts);
}

function makeScheduler(name: Case['sched'], opt: keel.optim.Optimizer<any>) {
  if (name === 'warmupCosine') {
    return new optim.SequentialLR(opt, {
      schedulers: [new optim.LinearLR(opt, { startFactor: 0.1, totalIters: 5 }), new optim.CosineAnnealingLR(opt, { tMax: 20 })],
      milestones: [5],
    });
  }
  if (name === 'oneCycle') return new optim.OneCycleLR(opt, { maxLr: 0.05, totalSteps: STEPS + 1 });
  return undefined;
}

function makeParams(init: number[][]): Tensor[] {
  return init.map((v, i) => keel.tensor(Float32Array.from(v), { shape: SHAPES[i] }).requiresGrad_(true).keep());
}

function setGrads(params: Tensor[], step: (number[] | null)[]): void {
  keel.scope(() => {
    params.forEach((p, i) => {
      const g = step[i];
      p.grad = g === null ? null : keel.tensor(Float32Array.from(g), { shape: SHAPES[i] });
    });
  });
}

/** max |a − b| / |b| over elements with |b| > 1e-6 (absolute below), and whether all are within rtol. */
function compare(actual: number[], expected: number[], rtol: number): { maxRel: number; ok: boolean } {
  let maxRel = 0;
  let ok = actual.length === expected.length;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const rel = Math.abs(expected[i]) > 1e-6 ? err / Math.abs(expected[i]) : err;
    maxRel = Math.max(maxRel, rel);
    if (!(err <= rtol * Math.abs(expected[i]) + 1e-12)) ok = false;
  }
  return { maxRel, ok };
}

describe('optimizers match PyTorch 1.13 step by step (float32, 25 steps)', { skip: noTorch }, () => {
  const data = makeData(20240917);
  let ref: number[][][][] = [];
  before(() => {
    ref = runTorch<number[][][][]>(PY_OPTIM, {
      cases: CASES.map((c) => ({ opt: c.opt, kwargs: c.py, group1: c.group1?.py, sched: c.sched })),
      init: data.init,
      grads: data.grads,
      shapes: SHAPES,
    });
  });

  CASES.forEach((c, ci) => {
    test(c.name, () => {
      const params = makeParams(data.init);
      const opt = makeOptimizer(c, params);
      const sched = makeScheduler(c.sched, opt);
      let worst = 0;
      try {
        for (let t = 0; t < STEPS; t++) {
          setGrads(params, data.grads[t]);
          opt.step();
          sched?.step();
          params.forEach((p, i) => {
            const got = Array.from(p.data() as Float32Array);
            const { maxRel, ok } = compare(got, ref[ci][t][i], 1e-6);
            worst = Math.max(worst, maxRel);
            assert.ok(ok, `${c.name}: step ${t + 1}, param ${i}: max relative error ${maxRel} > 1e-6`);
          });
        }
      } finally {
        opt.dispose();
        keel.dispose(params);
      }
      console.log(`# ${c.name}: max relative error over ${STEPS} steps ${worst.toExponential(2)}`);
    });
  });
});

describe('learning-rate schedulers match PyTorch step by step', { skip: noTorch }, () => {
  const N = 40;
  // name → [TS factory, Python expression]; optimizers: SGD with two groups (lr 0.1, 0.02)
  const SCHEDS: [string, (o: keel.optim.Optimizer<any>) => { step(): void; getLastLr(): number[] }, string][] = [
    ['StepLR', (o) => new optim.StepLR(o, { stepSize: 7, gamma: 0.5 }), 'S.StepLR(opt, step_size=7, gamma=0.5)'],
    ['MultiStepLR', (o) => new optim.MultiStepLR(o, { milestones: [5, 12, 12, 30], gamma: 0.3 }), 'S.MultiStepLR(opt, milestones=[5, 12, 12, 30], gamma=0.3)'],
    ['CosineAnnealingLR', (o) => new optim.CosineAnnealingLR(o, { tMax: 15, etaMin: 1e-4 }), 'S.CosineAnnealingLR(opt, T_max=15, eta_min=1e-4)'],
    ['LinearLR', (o) => new optim.LinearLR(o, { startFactor: 0.05, totalIters: 10 }), 'S.LinearLR(opt, start_factor=0.05, total_iters=10)'],
    ['LinearLR decay', (o) => new optim.LinearLR(o, { startFactor: 1, endFactor: 0.2, totalIters: 25 }), 'S.LinearLR(opt, start_factor=1.0, end_factor=0.2, total_iters=25)'],
    ['ConstantLR', (o) => new optim.ConstantLR(o, { factor: 0.5, totalIters: 4 }), 'S.ConstantLR(opt, factor=0.5, total_iters=4)'],
    ['ExponentialLR', (o) => new optim.ExponentialLR(o, { gamma: 0.93 }), 'S.ExponentialLR(opt, gamma=0.93)'],
    ['LambdaLR', (o) => new optim.LambdaLR(o, (e) => 1 / (1 + e)), 'S.LambdaLR(opt, lambda e: 1 / (1 + e))'],
    ['OneCycleLR cos', (o) => new optim.OneCycleLR(o, { maxLr: [0.5, 0.1], totalSteps: N + 1 }), `S.OneCycleLR(opt, max_lr=[0.5, 0.1], total_steps=${N + 1})`],
    [
      'OneCycleLR linear three-phase',
      (o) => new optim.OneCycleLR(o, { maxLr: 0.3, epochs: 4, stepsPerEpoch: 11, annealStrategy: 'linear', threePhase: true, pctStart: 0.25, divFactor: 10, finalDivFactor: 100 }),
      "S.OneCycleLR(opt, max_lr=0.3, epochs=4, steps_per_epoch=11, anneal_strategy='linear', three_phase=True, pct_start=0.25, div_factor=10, final_div_factor=100)",
    ],
    [
      'SequentialLR warm-up + cosine',
      (o) => new optim.SequentialLR(o, {
        schedulers: [new optim.LinearLR(o, { startFactor: 0.01, totalIters: 6 }), new optim.CosineAnnealingLR(o, { tMax: 34 })],
        milestones: [6],
      }),
      'S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.01, total_iters=6), S.CosineAnnealingLR(opt, T_max=34)], milestones=[6])',
    ],
    [
      'SequentialLR warm-up + constant + cosine',
      (o) => new optim.SequentialLR(o, {
        schedulers: [
          new optim.LinearLR(o, { startFactor: 0.1, totalIters: 4 }),
          new optim.ConstantLR(o, { factor: 1, totalIters: 10 }),
          new optim.CosineAnnealingLR(o, { tMax: 20, etaMin: 0.001 }),
        ],
        milestones: [4, 16],
      }),
      'S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.1, total_iters=4), S.ConstantLR(opt, factor=1.0, total_iters=10), S.CosineAnnealingLR(opt, T_max=20, eta_min=0.001)], milestones=[4, 16])',
    ],
    [
      'ChainedScheduler',
      (o) => new optim.ChainedScheduler([new optim.ConstantLR(o, { factor: 0.2, totalIters: 6 }), new optim.ExponentialLR(o, { gamma: 0.9 })]),
      'S.ChainedScheduler([S.ConstantLR(opt, factor=0.2, total_iters=6), S.ExponentialLR(opt, gamma=0.9)])',
    ],
  ];
  let ref: { lr: number[][]; momentum: number[][] }[] = [];
  before(() => {
    ref = runTorch(
      `
import warnings
warnings.filterwarnings('ignore')
from torch.optim import lr_scheduler as S
out = []
for expr in inp['exprs']:
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([dict(params=[a]), dict(params=[b], lr=0.02)], lr=0.1, momentum=0.9)
    sched = eval(expr)
    lrs, moms = [sched.get_last_lr()], [[g['momentum'] for g in opt.param_groups]]
    for _ in range(inp['n']):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
        moms.append([g['momentum'] for g in opt.param_groups])
    out.append({'lr': lrs, 'momentum': moms})
`,
      { exprs: SCHEDS.map((s) => s[2]), n: N },
    );
  });

  SCHEDS.forEach(([name, make], si) => {
    test(name, () => {
      const a = keel.zeros([2], { requiresGrad: true }).keep();
      const b = keel.zeros([3], { requiresGrad: true }).keep();
      const opt = new optim.SGD([{ params: [a] }, { params: [b], lr: 0.02 }], { lr: 0.1, momentum: 0.9 });
      const sched = make(opt);
      const lrs = [sched.getLastLr()];
      const moms = [opt.paramGroups.map((g) => g.momentum)];
      for (let t = 0; t < N; t++) {
        opt.step();
        sched.step();
        lrs.push(sched.getLastLr());
        moms.push(opt.paramGroups.map((g) => g.momentum));
      }
      let worst = 0;
      lrs.forEach((row, t) =>
        row.forEach((lr, g) => {
          const want = ref[si].lr[t][g];
          const rel = Math.abs(lr - want) / Math.abs(want || 1);
          worst = Math.max(worst, rel);
          assert.ok(rel <= 1e-12, `${name}: step ${t}, group ${g}: lr ${lr}, PyTorch ${want}`);
        }),
      );
      moms.forEach((row, t) => row.forEach((m, g) => assert.ok(Math.abs(m - ref[si].momentum[t][g]) <= 1e-12, `${name}: momentum at step ${t}`)));
      console.log(`# ${name}: max relative lr error over ${N} steps ${worst.toExponential(2)}`);
      keel.dispose([a, b]);
    });
  });

  test('a scheduler state dict resumes the same sequence (JSON round trip)', () => {
    const run = (resumeAt: number | null): number[][] => {
      const p = keel.zeros([2], { requiresGrad: true }).keep();
      const build = () => {
        const opt = new optim.SGD([p], { lr: 0.1, momentum: 0.9 });
        const sched = new optim.SequentialLR(opt, {
          schedulers: [new optim.LinearLR(opt, { startFactor: 0.1, totalIters: 5 }), new optim.CosineAnnealingLR(opt, { tMax: 20 })],
          milestones: [5],
        });
        return { opt, sched };
      };
      let { opt, sched } = build();
      const lrs: number[][] = [];
      for (let t = 0; t < 25; t++) {
        if (t === resumeAt) {
          const saved = JSON.parse(JSON.stringify({ o: { state: opt.stateDict().state, paramGroups: opt.stateDict().paramGroups }, s: sched.stateDict() }));
          ({ opt, sched } = build());
          opt.loadStateDict({ ...saved.o, tensors: {} });
          sched.loadStateDict(saved.s);
        }
        opt.step();
        sched.step();
        lrs.push(sched.getLastLr());
      }
      p.dispose();
      return lrs;
    };
    assert.deepEqual(run(9), run(null));
  });

  test('OneCycleLR refuses to run past totalSteps; bad arguments throw', () => {
    const p = keel.zeros([1], { requiresGrad: true }).keep();
    const opt = new optim.SGD([p], { lr: 0.1, momentum: 0.9 });
    const s = new optim.OneCycleLR(opt, { maxLr: 1, totalSteps: 3 });
    s.step();
    s.step();
    s.step();
    assert.throws(() => s.step(), /total steps is 3/);
    assert.throws(() => new optim.StepLR(opt, { stepSize: 0 }), /stepSize/);
    assert.throws(() => new optim.SequentialLR(opt, { schedulers: [new optim.ConstantLR(opt)], milestones: [3] }), /milestones/);
    assert.throws(() => new optim.OneCycleLR(new optim.SGD([p], { lr: 1 }), { maxLr: 1 }), /totalSteps/);
    p.dispose();
  });
});

describe('gradient clipping matches torch.nn.utils', { skip: noTorch }, () => {
  const next = uniformPM1Float32(99);
  const grads = SHAPES.map((s) => Array.from({ length: numel(s) }, () => next() * 3));
  const settings: [number, number | 'inf'][] = [[1.0, 2], [100, 2], [0.5, 1], [2, 'inf'], [0.1, 3]];
  let ref: { norm: number; grads: number[][] }[] = [];
  before(() => {
    ref = runTorch(
      `
out = []
for max_norm, p in inp['settings']:
    params = [torch.zeros(s, requires_grad=True) for s in inp['shapes']]
    for q, g, s in zip(params, inp['grads'], inp['shapes']):
        q.grad = T(g, torch.float32).reshape(s)
    n = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=float(p))
    out.append({'norm': n.item(), 'grads': [q.grad.reshape(-1).tolist() for q in params]})
params = [torch.zeros(s, requires_grad=True) for s in inp['shapes']]
for q, g, s in zip(params, inp['grads'], inp['shapes']):
    q.grad = T(g, torch.float32).reshape(s)
torch.nn.utils.clip_grad_value_(params, 0.7)
out.append({'norm': 0, 'grads': [q.grad.reshape(-1).tolist() for q in params]})
`,
      { settings, grads, shapes: SHAPES },
    );
  });

  const withGrads = <T>(fn: (params: Tensor[]) => T): T =>
    keel.scope(() => {
      const params = SHAPES.map((s) => keel.zeros(s, { requiresGrad: true }));
      params.forEach((p, i) => {
        p.grad = keel.tensor(Float32Array.from(grads[i]), { shape: SHAPES[i] });
      });
      return fn(params);
    });

  test('clipGradNorm: total norm and scaled gradients for p = 2, 1, 3, inf', () => {
    settings.forEach(([maxNorm, normType], k) => {
      withGrads((params) => {
        const norm = optim.clipGradNorm(params, maxNorm, { normType });
        assert.ok(Math.abs(norm - ref[k].norm) <= 1e-6 * ref[k].norm, `norm ${norm} vs ${ref[k].norm}`);
        params.forEach((p, i) => {
          const { ok, maxRel } = compare(Array.from(p.grad!.data() as Float32Array), ref[k].grads[i], 1e-6);
          assert.ok(ok, `setting ${k}, param ${i}: ${maxRel}`);
        });
      });
    });
  });

  test('clipGradValue clamps in place', () => {
    withGrads((params) => {
      optim.clipGradValue(params, 0.7);
      params.forEach((p, i) => assert.deepEqual(Array.from(p.grad!.data() as Float32Array), ref[settings.length].grads[i]));
    });
  });

  test('clipGradNorm with errorIfNonfinite throws on NaN/inf and leaves gradients; without it, returns the norm', () => {
    keel.scope(() => {
      const p = keel.zeros([3], { requiresGrad: true });
      p.grad = keel.tensor([1, Infinity, 2]);
      assert.throws(() => optim.clipGradNorm([p], 1, { errorIfNonfinite: true }), /non-finite|Infinity/);
      assert.deepEqual(p.grad!.toArray(), [1, Infinity, 2]);
      assert.equal(optim.clipGradNorm([p], 1), Infinity);
      p.grad = keel.tensor([Number.NaN, 1, 1]);
      assert.throws(() => optim.clipGradNorm(p, 1, { errorIfNonfinite: true }), /NaN/);
      const q = keel.zeros([2], { requiresGrad: true });
      assert.equal(optim.clipGradNorm([q], 1), 0);
    });
  });
});

describe('optimizer state dicts, groups, zeroGrad', () => {
  const data = makeData(7);

  test('stateDict → JSON + safetensors → loadStateDict resumes bitwise (Adam amsgrad, SGD momentum, RMSprop centred)', () => {
    const makers: [string, (ps: Tensor[]) => keel.optim.Optimizer<any>][] = [
      ['Adam', (ps) => new optim.Adam([{ params: ps.slice(0, 2) }, { params: ps.slice(2), lr: 3e-3 }], { amsgrad: true, weightDecay: 0.01 })],
      ['SGD', (ps) => new optim.SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true })],
      ['RMSprop', (ps) => new optim.RMSprop(ps, { centered: true, momentum: 0.5 })],
      ['SING', (ps) => new optim.SING(ps, { weightDecay: 0.01 })],
    ];
    for (const [name, make] of makers) {
      const straight = makeParams(data.init);
      const o1 = make(straight);
      for (let t = 0; t < STEPS; t++) {
        setGrads(straight, data.grads[t]);
        o1.step();
      }
      const resumed = makeParams(data.init);
      let o2 = make(resumed);
      for (let t = 0; t < 11; t++) {
        setGrads(resumed, data.grads[t]);
        o2.step();
      }
      const sd = o2.stateDict();
      const json = JSON.stringify({ state: sd.state, paramGroups: sd.paramGroups });
      const bytes = keel.safetensors.save(sd.tensors);
      o2.dispose();
      o2 = make(resumed);
      const tensors = keel.safetensors.load(bytes);
      o2.loadStateDict({ ...JSON.parse(json), tensors });
      keel.dispose(tensors); // the optimizer copied them
      for (let t = 11; t < STEPS; t++) {
        setGrads(resumed, data.grads[t]);
        o2.step();
      }
      straight.forEach((p, i) => assert.deepEqual(resumed[i].toArray(), p.toArray(), `${name}: param ${i}`));
      o1.dispose();
      o2.dispose();
      keel.dispose([...straight, ...resumed]);
    }
  });

  test('stateDict layout: PyTorch state names, parameter indices, JSON-able groups', () => {
    const ps = makeParams(data.init);
    const opt = new optim.AdamW([{ params: [ps[0], ps[1]] }, { params: [ps[2], ps[3]], lr: 0.1 }], { lr: 1e-3, weightDecay: 1e-2 });
    setGrads(ps, data.grads[3]); // param 1 has no gradient here: no state for it
    opt.step();
    const sd = opt.stateDict();
    assert.deepEqual(Object.keys(sd.state).sort(), ['0', '2', '3']);
    assert.deepEqual(sd.state['0'], { step: 1 });
    assert.deepEqual(Object.keys(sd.tensors).sort(), ['0.exp_avg', '0.exp_avg_sq', '2.exp_avg', '2.exp_avg_sq', '3.exp_avg', '3.exp_avg_sq']);
    assert.deepEqual(sd.paramGroups.map((g) => g.params), [[0, 1], [2, 3]]);
    assert.equal(sd.paramGroups[1].lr, 0.1);
    assert.deepEqual(sd.paramGroups[0], { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false, foreach: true, params: [0, 1] });
    assert.throws(() => opt.loadStateDict({ ...sd, paramGroups: sd.paramGroups.slice(1) }), /2 parameter groups|1 parameter groups/);
    assert.throws(() => opt.loadStateDict({ ...sd, tensors: { ...sd.tensors, '0.exp_avg': keel.zeros([2]) } }), /shape/);
    opt.dispose();
    keel.dispose(ps);
  });

  test('state survives scopes; step frees its temporaries', () => {
    const ps = makeParams(data.init);
    const opt = new optim.Adam(ps, { amsgrad: true });
    keel.scope(() => {
      setGrads(ps, data.grads[0]);
      opt.step();
    });
    setGrads(ps, data.grads[1]);
    opt.step();
    // (each parameter owns the handle of its gradient: count without them)
    const clearGrads = (): void => { for (const p of ps) p.grad = null; };
    clearGrads();
    const before = keel.memory().tensors;
    for (let t = 2; t < 12; t++) {
      keel.scope(() => {
        setGrads(ps, data.grads[t]);
        opt.step();
      });
    }
    clearGrads();
    assert.equal(keel.memory().tensors, before, 'tensor count is flat over steps');
    for (const t of Object.values(opt.stateDict().tensors)) assert.ok(!t.isDisposed);
    opt.dispose();
    keel.dispose(ps);
  });

  test('zeroGrad frees gradients by default or zeroes them in place', () => {
    keel.scope(() => {
      const p = keel.ones([3], { requiresGrad: true });
      const opt = new optim.SGD([p], { lr: 0.1 });
      p.mul(p).sum().backward();
      opt.zeroGrad(false);
      assert.deepEqual(p.grad!.toArray(), [0, 0, 0]);
      opt.zeroGrad();
      assert.equal(p.grad, undefined);
    });
  });

  test('bad parameters and options are refused with clear errors', () => {
    keel.scope(() => {
      const p = keel.ones([3], { requiresGrad: true });
      const q = keel.ones([2], { requiresGrad: true });
      assert.throws(() => new optim.SGD([p.mul(2)], { lr: 0.1 }), /non-leaf/);
      assert.throws(() => new optim.SGD([{ params: [p] }, { params: [p, q] }], { lr: 0.1 }), /more than one parameter group/);
      assert.throws(() => new optim.SGD([], { lr: 0.1 }), /empty parameter list/);
      assert.throws(() => new optim.SGD([p], { lr: -1 }), /learning rate/);
      assert.throws(() => new optim.SGD([p], { lr: 0.1, nesterov: true }), /Nesterov/);
      assert.throws(() => new optim.Adam([p], { betas: [1, 0.9] }), /beta/);
      assert.throws(() => new optim.Adam([p], { weightdecay: 0.1 } as never), /unknown option 'weightdecay'/);
      assert.throws(() => new optim.RMSprop([p], { alpha: -0.1 }), /alpha/);
    });
  });

  test('step(closure) returns the closure\'s loss, computed with grad enabled', () => {
    const p = keel.tensor([1, 2], { requiresGrad: true }).keep();
    const opt = new optim.SGD([p], { lr: 0.5 });
    const loss = keel.noGrad(() =>
      opt.step(() => {
        opt.zeroGrad();
        const l = p.mul(p).sum();
        l.backward();
        return l.item();
      }),
    );
    assert.equal(loss, 5);
    assert.deepEqual(p.toArray(), [0, 0]);
    p.dispose();
  });
});

test('multi-tensor (_foreach) Adam, AdamW and SGD give bitwise the numbers of the single-tensor path', () => {
  const variants: [string, (ps: keel.Tensor[], foreach: boolean) => keel.optim.Optimizer][] = [
    ['Adam', (ps, foreach) => new keel.optim.Adam(ps, { lr: 1e-2, foreach })],
    ['Adam amsgrad maximize wd', (ps, foreach) => new keel.optim.Adam(ps, { lr: 1e-2, amsgrad: true, maximize: true, weightDecay: 0.1, foreach })],
    ['AdamW', (ps, foreach) => new keel.optim.AdamW(ps, { lr: 1e-2, weightDecay: 0.05, foreach })],
    ['SGD', (ps, foreach) => new keel.optim.SGD(ps, { lr: 0.1, foreach })],
    ['SGD momentum wd', (ps, foreach) => new keel.optim.SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 1e-3, dampening: 0.1, foreach })],
    ['SGD nesterov maximize', (ps, foreach) => new keel.optim.SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, maximize: true, foreach })],
  ];
  for (const [name, make] of variants) {
    const run = (foreach: boolean): number[][] => {
      keel.manualSeed(11);
      const model = new keel.nn.Sequential(new keel.nn.Linear(5, 7), new keel.nn.Tanh(), new keel.nn.Linear(7, 3));
      const opt = make(model.parameters(), foreach);
      const x = keel.randn([9, 5]);
      for (let i = 0; i < 6; i++) {
        opt.zeroGrad();
        keel.scope(() => model.call(x).square().mean().backward());
        // a parameter without a gradient this step is left alone by both paths
        if (i === 2) model.parameters()[3].grad = null;
        opt.step();
      }
      return model.parameters().map((p) => Array.from(p.flatten().data() as Float32Array));
    };
    assert.deepEqual(run(true), run(false), name);
  }
});

/** A float tensor's bytes, compared whole (a million-element deepEqual of numbers is slow). */
function bytesOf(t: keel.Tensor): Buffer {
  const d = t.data() as Float32Array;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

type Variant = [string, (ps: keel.Tensor[], foreach: boolean) => keel.optim.Optimizer];

/**
 * An optimizer's fused native pass (native[entry]) against its multi-tensor
 * path (an interceptor installed turns the pass off) and its single-tensor
 * path, bit for bit, over 5 steps of gradients of every scale with exact
 * zeros, at 1 and 2 threads; the sizes span a masked tail only, a vector body
 * and tail, and two parallel chunks (passGrain(): 2^19 under passive waiting).
 * `prepare` may change the gradients before a step; the optimizer's state
 * tensors are compared too.
 */
async function fusedAgainstOps(entry: 'adamStep' | 'sgdStep', variants: Variant[], prepare: (ps: keel.Tensor[], step: number) => void = () => {}): Promise<void> {
  const { native } = (await import(new URL('../../dist/native/binding.js', import.meta.url).href)) as { native: Record<string, ((...a: unknown[]) => boolean) | undefined> };
  const { intercept } = (await import(new URL('../../dist/core/dispatch.js', import.meta.url).href)) as { intercept: (f: (c: unknown, r: unknown) => unknown) => () => void };
  const pass = native[entry];
  assert.ok(pass, `the addon has ${entry}`);
  let fused = 0;
  native[entry] = (...a: unknown[]) => { const done = pass(...a); if (done) fused++; return done; };
  const threads = keel.getNumThreads();
  try {
    const shapes = [[3], [37, 5], [70001], [1048583]];
    for (const n of [1, 2]) {
      keel.setNumThreads(n);
      for (const [name, make] of variants) {
        const run = (path: 'fused' | 'multi-tensor' | 'single'): Buffer[] => {
          keel.manualSeed(21);
          // exact zeros among the parameters (and signed zeros once negated)
          const ps = shapes.map((s) => keel.scope(() => keel.randn(s).mul(keel.rand(s).gt(0.2))).requiresGrad_().keep());
          const opt = make(ps, path !== 'single');
          for (let i = 0; i < 5; i++) {
            keel.manualSeed(100 + i);
            // gradients of every scale, exact zeros among them (underflowing moments, an eps-dominated denominator)
            ps.forEach((p) => { p.grad = keel.scope(() => keel.randn(p.shape).mul(i === 2 ? 1e-20 : 10 ** (i - 2)).mul(keel.rand(p.shape).gt(0.1))).keep(); });
            prepare(ps, i);
            if (path === 'multi-tensor') {
              const stop = intercept((_c, r) => r);
              try { opt.step(); } finally { stop(); }
            } else opt.step();
          }
          const out = ps.map((p) => bytesOf(p));
          const sd = opt.stateDict();
          for (const k of Object.keys(sd.tensors).sort()) if (sd.tensors[k].dtype === 'float32') out.push(bytesOf(sd.tensors[k]));
          return out;
        };
        const before = fused;
        const f = run('fused');
        assert.equal(fused - before, 5, `${name}: the fused pass ran every step`);
        assert.deepEqual(f, run('multi-tensor'), `${name}, ${n} thread(s): fused vs multi-tensor (parameters and state)`);
        assert.deepEqual(f, run('single'), `${name}, ${n} thread(s): fused vs single-tensor (parameters and state)`);
      }
    }
    // what the pass declines (float64) takes the multi-tensor path
    const before = fused;
    const p64 = keel.randn([5], { dtype: 'float64' }).requiresGrad_();
    p64.grad = keel.onesLike(p64);
    variants[0][1]([p64], true).step();
    assert.equal(fused, before, 'float64 is declined');
    assert.ok(Number.isFinite(p64.sum().item() as number));
  } finally {
    native[entry] = pass;
    keel.setNumThreads(threads);
  }
}

test('Adam\'s fused pass (one native pass per tensor) gives bitwise the multi-tensor and single-tensor numbers, at 1 and 2 threads', async () => {
  await fusedAgainstOps('adamStep', [
    ['AdamW', (ps, foreach) => new keel.optim.AdamW(ps, { lr: 3e-2, weightDecay: 0.05, foreach })],
    ['AdamW wd 0', (ps, foreach) => new keel.optim.AdamW(ps, { lr: 1e-3, weightDecay: 0, foreach })],
    ['Adam', (ps, foreach) => new keel.optim.Adam(ps, { lr: 1e-2, foreach })],
    ['Adam L2', (ps, foreach) => new keel.optim.Adam(ps, { lr: 1e-2, weightDecay: 0.1, betas: [0.8, 0.99], eps: 1e-6, foreach })],
  ]);
  // amsgrad is declined too
  const pa = keel.randn([5]).requiresGrad_();
  pa.grad = keel.onesLike(pa);
  new keel.optim.Adam([pa], { amsgrad: true }).step();
  assert.ok(Number.isFinite(pa.sum().item() as number));
});

test('SGD\'s fused pass (one native pass per tensor) gives bitwise the multi-tensor and single-tensor numbers, at 1 and 2 threads', async () => {
  await fusedAgainstOps('sgdStep', [
    ['SGD', (ps, foreach) => new keel.optim.SGD(ps, { lr: 0.1, foreach })],
    ['SGD momentum dampening wd', (ps, foreach) => new keel.optim.SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3, foreach })],
    ['SGD Nesterov maximize', (ps, foreach) => new keel.optim.SGD(ps, { lr: 0.05, momentum: 0.99, nesterov: true, maximize: true, foreach })],
    ['SGD maximize wd', (ps, foreach) => new keel.optim.SGD(ps, { lr: 1e-3, weightDecay: 0.5, maximize: true, foreach })],
  ], (ps, step) => {
    // a parameter without a gradient for two steps: its buffer is made on its first step, later than the others'
    if (step < 2) ps[1].grad = null;
  });
});

test('a deferred pre-update copy (the guard\'s) holds the values from before step(), taken in Adam\'s fused pass or before the update', async () => {
  const { native } = (await import(new URL('../../dist/native/binding.js', import.meta.url).href)) as { native: { adamStep?: (...a: unknown[]) => boolean } };
  const adamStep = native.adamStep!;
  let inPass = 0;
  native.adamStep = (...a: unknown[]) => { const done = adamStep(...a); if (done && Array.isArray(a[12])) inPass++; return done; };
  try {
    const cases: [string, (ps: keel.Tensor[]) => keel.optim.Optimizer, boolean][] = [
      ['AdamW (fused pass)', (ps) => new keel.optim.AdamW(ps, { lr: 0.1 }), true],
      ['Adam amsgrad (multi-tensor)', (ps) => new keel.optim.Adam(ps, { lr: 0.1, amsgrad: true }), false],
      ['Adam single-tensor', (ps) => new keel.optim.Adam(ps, { lr: 0.1, foreach: false }), false],
      ['SGD momentum', (ps) => new keel.optim.SGD(ps, { lr: 0.1, momentum: 0.9 }), false],
    ];
    for (const [name, make, fused] of cases) {
      keel.manualSeed(3);
      const ps = [[40, 33], [7], [5]].map((s) => keel.randn(s).requiresGrad_().keep());
      const opt = make(ps);
      const grads = (): void => { ps.forEach((p, i) => { p.grad = i === 2 ? null : keel.randn(p.shape).keep(); }); };
      grads();
      opt.step(); // the state exists from here
      const state = (opt as unknown as { state: Map<keel.Tensor, { tensors: Record<string, keel.Tensor> }> }).state;
      const sources = [...ps, ...[...state.values()].flatMap((st) => Object.values(st.tensors))];
      const before = sources.map((t) => Array.from(t.data() as Float32Array));
      const copies = sources.map((t) => keel.zerosLike(t).keep());
      grads();
      const n0 = inPass;
      (opt as unknown as keel.optim.CopyDeferring).deferCopy(sources, copies);
      opt.step();
      (opt as unknown as keel.optim.CopyDeferring).settleCopy();
      assert.equal(inPass - n0, fused ? 1 : 0, `${name}: copies written in the pass`);
      copies.forEach((c, i) => assert.deepEqual(Array.from(c.data() as Float32Array), before[i], `${name}: copy ${i}`));
      // the step moved what it updated, and the copies stayed the old values
      assert.notDeepEqual(Array.from(ps[0].data() as Float32Array), before[0]);
      // no step at all (a loss scaler skipped it): settling copies everything
      const now = sources.map((t) => Array.from(t.data() as Float32Array));
      (opt as unknown as keel.optim.CopyDeferring).deferCopy(sources, copies);
      (opt as unknown as keel.optim.CopyDeferring).settleCopy();
      copies.forEach((c, i) => assert.deepEqual(Array.from(c.data() as Float32Array), now[i], `${name}: settled without a step, copy ${i}`));
      // a copy whose shape no longer fits is replaced, not left stale
      const wrong = [keel.zeros([3]).keep(), ...copies.slice(1)];
      (opt as unknown as keel.optim.CopyDeferring).deferCopy(sources, wrong);
      opt.step();
      (opt as unknown as keel.optim.CopyDeferring).settleCopy();
      assert.deepEqual(wrong[0].shape, [40, 33]);
      assert.deepEqual(Array.from(wrong[0].data() as Float32Array), now[0], `${name}: the replaced copy holds the pre-update values`);
    }
  } finally {
    native.adamStep = adamStep;
  }
});

test('multi-tensor SING (Adam part and Lookahead) gives bitwise the numbers of the per-tensor path', () => {
  for (const opts of [{}, { softplus: false, weightDecay: 0.01 }, { lookahead: { k: 2, alpha: 0.3 } }] as keel.optim.SINGOptions[]) {
    const run = (foreach: boolean): number[][] => {
      keel.manualSeed(12);
      const model = new keel.nn.Sequential(new keel.nn.Conv2d(2, 3, 3), new keel.nn.Flatten(), new keel.nn.Linear(3 * 4 * 4, 2));
      const opt = new keel.optim.SING(model.parameters(), { ...opts, foreach });
      const x = keel.randn([4, 2, 6, 6]);
      for (let i = 0; i < 7; i++) {
        opt.zeroGrad();
        keel.scope(() => model.call(x).square().mean().backward());
        opt.step();
      }
      return model.parameters().map((p) => Array.from(p.flatten().data() as Float32Array));
    };
    assert.deepEqual(run(true), run(false), JSON.stringify(opts));
  }
});

test('SING\'s native passes (standardisation, softplus denominator: one call each over the group) give bitwise the per-tensor ops\' numbers', async () => {
  // an installed interceptor makes the passes dispatch op by op from JS, as under a precision policy or the guard's trace
  const { intercept } = (await import(new URL('../../dist/core/dispatch.js', import.meta.url).href)) as { intercept: (f: (c: unknown, r: unknown) => unknown) => () => void };
  for (const dtype of ['float32', 'float64'] as const) {
    const grads = (): keel.Tensor[] => {
      keel.manualSeed(5);
      // per-channel offsets so that centring matters; a 0-d-like 1-element tensor and a 4-D one
      return [[7], [4, 3], [3, 2, 3, 3], [1]].map((s) => keel.randn(s, { dtype }).add(keel.arange(0, s[0], 1, { dtype }).reshape([s[0], ...s.slice(1).map(() => 1)])).keep());
    };
    const native = grads();
    const perOp = grads();
    keel.optim.standardizeGradients(native.map((g) => { const p = keel.zerosLike(g).requiresGrad_(); p.grad = g; return p; }));
    const stop = intercept((_c, r) => r);
    try {
      keel.optim.standardizeGradients(perOp.map((g) => { const p = keel.zerosLike(g).requiresGrad_(); p.grad = g; return p; }));
    } finally {
      stop();
    }
    native.forEach((g, i) => assert.deepEqual(Array.from(g.flatten().data() as Float32Array), Array.from(perOp[i].flatten().data() as Float32Array), `${dtype} gradient ${i}`));
    // each standardised: norm 1 (to rounding), per-channel mean 0 for ≥ 2-d
    for (const g of native) assert.ok(Math.abs((g.square().sum().item() as number) - 1) < 1e-5);
  }
  const sing = (intercepted: boolean): number[][] => {
    keel.manualSeed(12);
    const model = new keel.nn.Sequential(new keel.nn.Conv2d(2, 3, 3), new keel.nn.Flatten(), new keel.nn.Linear(3 * 4 * 4, 2));
    const opt = new keel.optim.SING(model.parameters(), { weightDecay: 0.01 });
    const x = keel.randn([4, 2, 6, 6]);
    for (let i = 0; i < 6; i++) {
      opt.zeroGrad();
      keel.scope(() => model.call(x).square().mean().backward());
      if (!intercepted) opt.step();
      else {
        const stop = intercept((_c, r) => r);
        try { opt.step(); } finally { stop(); }
      }
    }
    return model.parameters().map((p) => Array.from(p.flatten().data() as Float32Array));
  };
  assert.deepEqual(sing(false), sing(true));
});

test('SING\'s fused step standardises by ATen\'s norm bit for bit whatever the tail: tensors of 1 to 23 elements, 1-d and 2-d', async () => {
  // ATen's norm sums 8 lanes, then a < 8-element tail whose rounding is the libtorch build's (Debian's: squares
  // four at a time, then fused); a 1-ulp norm moves every standardised gradient. Many vectors per length.
  const { intercept } = (await import(new URL('../../dist/core/dispatch.js', import.meta.url).href)) as { intercept: (f: (c: unknown, r: unknown) => unknown) => () => void };
  const shapes: number[][] = [];
  for (let n = 1; n <= 23; n++) shapes.push([n], [1, n]);
  const run = (intercepted: boolean): number[][] => {
    keel.manualSeed(8);
    const ps = shapes.map((s) => keel.randn(s).requiresGrad_().keep());
    const opt = new keel.optim.SING(ps, { lr: 5e-2, lookahead: false });
    for (let i = 0; i < 8; i++) {
      ps.forEach((p) => { p.grad = keel.randn(p.shape).mul(keel.rand(p.shape).mul(8).sub(5).exp()).keep(); });
      if (!intercepted) opt.step();
      else {
        const stop = intercept((_c, r) => r);
        try { opt.step(); } finally { stop(); }
      }
    }
    return ps.map((p) => Array.from(p.flatten().data() as Float32Array));
  };
  const fused = run(false);
  const perOp = run(true);
  fused.forEach((f, i) => assert.ok(f.every((x, j) => Object.is(x, perOp[i][j])), `shape [${shapes[i].join(', ')}]: ${f.join(' ')} vs ${perOp[i].join(' ')}`));
});

test('SING\'s fused step (native/sing.cc) gives bitwise the stage-by-stage ops\' numbers on tensors split across threads, at 1 and 2 threads', async (t) => {
  const { intercept } = (await import(new URL('../../dist/core/dispatch.js', import.meta.url).href)) as { intercept: (f: (c: unknown, r: unknown) => unknown) => () => void };
  const { native } = (await import(new URL('../../dist/native/binding.js', import.meta.url).href)) as { native: { singKernel?: () => string } };
  const why = native.singKernel?.() ?? 'no singStep in this addon';
  if (why !== '') t.diagnostic(`the fused pass is not used here (${why}): both sides take ATen's ops`);
  // above the 32,768-element grain: at 2 threads two ranges of 32,783 (= 16·2,048 + 15), each ending in a
  // 15-element scalar tail (glibc's exp and log1p there, SLEEF's in the blocks), run one after another on one
  // thread; two ranges of 524,301 (= 16·32,768 + 13), at least passGrain() (2^19) each: on two threads; odd
  // sizes; 1-d (no decay)
  const shapes = [[2, 32783], [65566], [2, 524301], [83, 1], [5]];
  const threads = keel.getNumThreads();
  try {
    for (const n of [1, 2]) {
      keel.setNumThreads(n);
      for (const opts of [{ weightDecay: 0.01 }, { softplus: false, lookahead: { k: 2 } }] as keel.optim.SINGOptions[]) {
        const run = (intercepted: boolean, dtype: 'float32' | 'float64' = 'float32'): Buffer[] => {
          keel.manualSeed(21);
          // float64 takes ATen's ops inside the same native call: the ranges above passGrain() add nothing there
          const ps = shapes.filter((s) => dtype === 'float32' || s[1] !== 524301).map((s) => keel.randn(s, { dtype }).requiresGrad_().keep());
          const opt = new keel.optim.SING(ps, { lr: 5e-2, ...opts });
          for (let i = 0; i < 6; i++) {
            // gradients over several orders of magnitude, per-row offsets
            ps.forEach((p) => { p.grad = keel.randn(p.shape, { dtype }).mul(keel.rand(p.shape, { dtype }).mul(6).sub(4).exp()).add(0.3).keep(); });
            if (!intercepted) opt.step();
            else {
              const stop = intercept((_c, r) => r);
              try { opt.step(); } finally { stop(); }
            }
          }
          return ps.map((p) => { const d = p.flatten().data() as Float32Array | Float64Array; return Buffer.from(d.buffer, d.byteOffset, d.byteLength); });
        };
        const fused = run(false);
        const perOp = run(true);
        fused.forEach((f, i) => assert.ok(f.equals(perOp[i]), `${n} thread(s) ${JSON.stringify(opts)} tensor ${i}`));
        const f64 = run(false, 'float64');
        const f64PerOp = run(true, 'float64');
        f64.forEach((f, i) => assert.ok(f.equals(f64PerOp[i]), `float64 ${n} thread(s) ${JSON.stringify(opts)} tensor ${i}`));
      }
    }
  } finally {
    keel.setNumThreads(threads);
  }
});
