#!/usr/bin/env node
// What each tool names on the fault suite's scenarios (issue 19 (b)), side by
// side: PyTorch's `torch.autograd.detect_anomaly()` (it raises at the first
// backward node that returned NaN, with the forward traceback of that node;
// it does not flag ±inf, nor a non-finite forward value whose backward is
// finite), HF-style forward hooks (a hook on every module, stopping at the
// first module whose output is not finite: transformers' DebugUnderflowOverflow
// idea; ops outside every module, like the loss, are not seen), and Keel's
// guard (policy skip). Each scenario is written twice, in Keel and in PyTorch,
// with the same model shape and fault (the same values where the fault needs
// them; random weights are each library's own draw). Every tool runs up to two
// training steps and reports on the first that it flags.
// Then the healthy-step cost: LeNet-5, batch 32, AdamW, one thread; plain and
// checked steps alternate step by step in one process per library, the ratio
// is the median of the per-pair ratios.
//   node bench/guard-vs-anomaly.mjs [--quick] [--no-cost]
// Writes bench/results/guard-vs-anomaly.json and prints the tables.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PYTHON, machine, median, now, parseArgs, pinKeelThreads, table, writeResults } from './lib/harness.mjs';
import { TORCH_LENET5 } from './lib/reference-models.mjs';

const args = parseArgs();
const NO_COST = args.rest.includes('--no-cost');
const PAIRS = args.quick ? 20 : 120;
const keel = await import(new URL('../dist/index.js', import.meta.url).href);
pinKeelThreads(keel, 1);
process.removeAllListeners('warning');
const { nn, ops } = keel;

const mlp = () => new nn.Sequential(new nn.Linear(6, 8), new nn.ReLU(), new nn.Linear(8, 3));
const TORCH_MLP = 'nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))';
const sgd = (m) => new keel.optim.SGD(m.parameters(), { lr: 0.1 });

class BadBackward extends keel.autograd.Function {
  static forward(ctx, x) {
    ctx.saveForBackward(x);
    return ops.abs(x);
  }
  static backward(ctx, g) {
    const [x] = ctx.savedTensors;
    return g.mul(x.sign()).div(0);
  }
}

/**
 * Each scenario: the truth (the op that first made a non-finite value, its
 * phase, its module), Keel's build, and PyTorch's build() as Python source
 * returning (model, optimizer, loss_fn).
 */
const SCENARIOS = [
  {
    id: 'log-of-zero', source: 'guard-faults', truth: { key: /log/i, op: 'log', phase: 'forward', module: '(loss)' },
    keel() { const m = mlp(); const x = keel.randn([4, 6]); return { m, o: sgd(m), loss: () => ops.log(ops.relu(m.call(x).abs().neg().sub(1))).mean() }; },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    def loss(): return torch.log(torch.relu(-m(x).abs() - 1)).mean()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'sqrt-at-zero (SILog)', source: 'guard-faults', truth: { key: /sqrt/i, op: 'sqrt', phase: 'backward', module: '(loss)' },
    keel() {
      const m = mlp(); const x = keel.randn([4, 6]);
      return { m, o: sgd(m), loss: () => { const o = m.call(x); const d = o.sub(o.detach()); return ops.sqrt(d.pow(2).mean().sub(d.mean().pow(2).mul(0.5))); } };
    },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    def loss():
        o = m(x); d = o - o.detach()
        return torch.sqrt(d.pow(2).mean() - 0.5 * d.mean().pow(2))
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'exp overflow', source: 'guard-faults', truth: { key: /exp/i, op: 'exp', phase: 'forward', module: '(loss)' },
    keel() { const m = mlp(); const x = keel.randn([4, 6]); return { m, o: sgd(m), loss: () => ops.exp(m.call(x).abs().add(90)).mean() }; },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    def loss(): return torch.exp(m(x).abs() + 90).mean()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'log of negative', source: 'guard-faults', truth: { key: /log/i, op: 'log', phase: 'forward', module: '(loss)' },
    keel() { const m = mlp(); const x = keel.randn([4, 6]); return { m, o: sgd(m), loss: () => ops.log(m.call(x).abs().neg().sub(1)).mean() }; },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    def loss(): return torch.log(-m(x).abs() - 1).mean()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'division by ~0', source: 'guard.test', truth: { key: /div/i, op: 'div', phase: 'forward', module: '(loss)' },
    keel() { const m = mlp(); const x = keel.randn([4, 6]); return { m, o: sgd(m), loss: () => { const o = m.call(x); return ops.div(o.abs().add(1), ops.relu(o.abs().neg())).mean(); } }; },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    def loss():
        o = m(x)
        return ((o.abs() + 1) / torch.relu(-o.abs())).mean()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'inf in the input batch', source: 'guard-unseen', truth: { key: /linear|addmm/i, op: 'linear (its input: the data)', phase: 'forward', module: '0' },
    keel() {
      const m = mlp(); const x = keel.randn([4, 6]); x.index([1, 2]).fill_(Infinity);
      const y = keel.tensor([0, 1, 2, 0], { dtype: 'int64' });
      return { m, o: sgd(m), loss: () => ops.crossEntropyLoss(m.call(x), y) };
    },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6); x[1, 2] = float('inf'); y = torch.tensor([0, 1, 2, 0])
    def loss(): return torch.nn.functional.cross_entropy(m(x), y)
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'NaN in a loaded parameter', source: 'guard-unseen', truth: { key: /linear|addmm|mm/i, op: "parameter '2.weight'", phase: 'forward', module: '2' },
    keel() {
      const m = mlp(); keel.noGrad(() => m.get(2).weight.index([0, 0]).fill_(Number.NaN)); const x = keel.randn([4, 6]);
      return { m, o: sgd(m), loss: () => m.call(x).square().mean() };
    },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    with torch.no_grad(): m[2].weight[0, 0] = float('nan')
    def loss(): return m(x).square().mean()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'fully masked softmax row', source: 'guard-unseen', truth: { key: /softmax/i, op: 'softmax', phase: 'forward', module: '(loss)' },
    keel() {
      const m = mlp(); const x = keel.randn([4, 6]);
      const mask = keel.tensor([[false, true, false], [true, true, true], [false, false, true], [false, false, false]]);
      return { m, o: sgd(m), loss: () => ops.softmax.int(ops.maskedFill(m.call(x), mask, -Infinity), 1).sum() };
    },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    mask = torch.tensor([[False, True, False], [True, True, True], [False, False, True], [False, False, False]])
    def loss(): return torch.softmax(m(x).masked_fill(mask, float('-inf')), 1).sum()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'custom Function backward', source: 'guard-unseen', truth: { key: /BadBackward/i, op: 'Function BadBackward', phase: 'backward', module: '(loss)' },
    keel() { const m = mlp(); const x = keel.randn([4, 6]); return { m, o: sgd(m), loss: () => BadBackward.apply(m.call(x)).mean() }; },
    torch: `m = ${TORCH_MLP}; x = torch.randn(4, 6)
    class BadBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x); return x.abs()
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors; return g * x.sign() / 0
    def loss(): return BadBackward.apply(m(x)).mean()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
  {
    id: 'Adam with eps = 0', source: 'guard-unseen', truth: { key: /optimizer/i, op: 'optimizer.step', phase: 'update', module: '' },
    keel() {
      const m = new nn.Linear(3, 1); const x = keel.tensor([[1, 0, 2], [3, 0, 1]]);
      return { m, o: new keel.optim.Adam(m.parameters(), { lr: 0.01, eps: 0 }), loss: () => m.call(x).square().mean() };
    },
    torch: `m = nn.Linear(3, 1); x = torch.tensor([[1., 0., 2.], [3., 0., 1.]])
    def loss(): return m(x).square().mean()
    return m, torch.optim.Adam(m.parameters(), lr=0.01, eps=0), loss`,
  },
  {
    id: 'inf reaches BatchNorm running stats', source: 'guard-unseen', truth: { key: /running_(mean|var)|batch_?norm/i, op: 'buffer 1.running_mean/var', phase: 'forward', module: '1' },
    keel() {
      const bn = new nn.BatchNorm1d(3);
      const m = new nn.Sequential(new nn.Linear(4, 3), bn); const x = keel.randn([8, 4]);
      const bad = keel.randn([8, 3]); bad.index([2, 1]).fill_(Infinity);
      // a side forward (a probe, a metric) whose output reaches no loss
      return { m, o: sgd(m), loss: () => { bn.call(bad); return m.get(0).call(x).square().mean(); } };
    },
    torch: `m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)); x = torch.randn(8, 4)
    bad = torch.randn(8, 3); bad[2, 1] = float('inf')
    def loss():
        m[1](bad)
        return m[0](x).square().mean()
    return m, torch.optim.SGD(m.parameters(), lr=0.1), loss`,
  },
];

// ---- Keel: the guard on each scenario
function keelNames(s) {
  return keel.scope(() => {
    keel.manualSeed(0);
    const { m, o, loss } = s.keel();
    const guard = new keel.Guard({ model: m, optimizer: o, policy: 'skip' });
    try {
      for (let step = 1; step <= 2; step++) {
        let r;
        try {
          r = guard.stepSync(loss);
        } catch (e) {
          return { named: `error: ${e.message.split('\n')[0]}`, step };
        }
        const ev = r.event ?? guard.flush();
        if (ev) {
          const rep = ev.report;
          return { named: `${rep.op} · ${rep.phase} · ${rep.module || "''"} (${rep.causeId})`, step, op: rep.op, phase: rep.phase, module: rep.module, causeId: rep.causeId };
        }
      }
      return { named: 'nothing', step: null };
    } finally {
      guard.dispose();
    }
  });
}

// ---- PyTorch: detect_anomaly and forward hooks on each scenario, in one python process
const PY_SCENARIOS = SCENARIOS.map((s, i) => `def build_${i}():\n    ${s.torch}\n`).join('\n');
const PY = `
import json, warnings, traceback, sys, re
import torch, torch.nn as nn
torch.set_num_threads(1)
${PY_SCENARIOS}
BUILDS = [${SCENARIOS.map((_, i) => `build_${i}`).join(', ')}]

def finite(t):
    return bool(torch.isfinite(t).all())

def state(m, lossv):
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    bad_g = any(not finite(g) for g in grads)
    return f"loss {lossv}{', gradients non-finite' if bad_g else ''}"

def anomaly(build):
    torch.manual_seed(0)
    m, opt, loss_fn = build()
    for step in (1, 2):
        opt.zero_grad()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            try:
                with torch.autograd.detect_anomaly():
                    loss = loss_fn()
                    loss.backward()
            except RuntimeError as e:
                msg = str(e).split('\\n')[0]
                fn = re.search(r"Function '(\\w+)'", msg)
                line = ''
                for x in w:
                    text = str(x.message)
                    if 'Traceback of forward call' in text:
                        lines = text.split('\\n')
                        # the innermost frame in this script: the user's line that built the node
                        for k, l in enumerate(lines):
                            if l.strip().startswith('File') and __file__ in l and k + 1 < len(lines):
                                line = re.sub(r'^def loss\\(\\): return ', '', lines[k + 1].strip())
                return {'named': (fn.group(1) if fn else msg) + (f" at \\"{line}\\"" if line else ''), 'node': fn.group(1) if fn else '', 'step': step, 'message': msg}
        lossv = float(loss.detach())
        if not (lossv == lossv and abs(lossv) != float('inf')) or any(not finite(p.grad) for p in m.parameters() if p.grad is not None):
            return {'named': 'nothing', 'step': step, 'note': state(m, lossv)}
        opt.step()
    return {'named': 'nothing', 'step': None, 'note': 'two steps, nothing non-finite seen by the loop'}

class Stop(Exception):
    pass

def hooks(build):
    torch.manual_seed(0)
    m, opt, loss_fn = build()
    hit = {}
    def make(name):
        def hook(mod, inp, out):
            outs = out if isinstance(out, (tuple, list)) else (out,)
            if any(isinstance(t, torch.Tensor) and t.is_floating_point() and not finite(t) for t in outs):
                hit['module'] = f"{name or '(model)'} ({type(mod).__name__})"
                raise Stop()
        return hook
    handles = [mod.register_forward_hook(make(name)) for name, mod in m.named_modules()]
    try:
        for step in (1, 2):
            opt.zero_grad()
            try:
                loss = loss_fn()
            except Stop:
                return {'named': hit['module'], 'step': step}
            lossv = float(loss.detach())
            loss.backward()
            if not (lossv == lossv and abs(lossv) != float('inf')) or any(not finite(p.grad) for p in m.parameters() if p.grad is not None):
                return {'named': 'nothing', 'step': step, 'note': state(m, lossv)}
            opt.step()
        return {'named': 'nothing', 'step': None, 'note': 'two steps, nothing non-finite seen by the loop'}
    finally:
        for h in handles: h.remove()

out = []
for b in BUILDS:
    out.append({'anomaly': anomaly(b), 'hooks': hooks(b)})
print(json.dumps(out))
`;

// ---- the healthy-step cost, LeNet-5 batch 32 AdamW, one thread
const PY_COST = `
import json, time
import torch, torch.nn as nn
torch.set_num_threads(1)
${TORCH_LENET5}
PAIRS = ${PAIRS}
def setup():
    torch.manual_seed(0)
    m = LeNet5(); opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    return m, opt
x = torch.randn(32, 1, 28, 28); y = torch.randint(0, 10, (32,))
models = {k: setup() for k in ('plain', 'anomaly', 'hooks')}
class Stop(Exception):
    pass
def hook(mod, inp, out):
    if isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all()):
        raise Stop()
for name, mod in models['hooks'][0].named_modules():
    mod.register_forward_hook(hook)
def step(kind):
    m, opt = models[kind]
    opt.zero_grad()
    if kind == 'anomaly':
        with torch.autograd.detect_anomaly():
            loss = nn.functional.cross_entropy(m(x), y); loss.backward()
    else:
        loss = nn.functional.cross_entropy(m(x), y); loss.backward()
    opt.step()
    return float(loss)
for k in models:
    for _ in range(3): step(k)
t = {k: [] for k in models}
for i in range(PAIRS):
    order = ['plain', 'anomaly', 'hooks'] if i % 2 == 0 else ['hooks', 'anomaly', 'plain']
    for k in order:
        t0 = time.perf_counter_ns(); step(k); t[k].append((time.perf_counter_ns() - t0) / 1e6)
import statistics as st
print(json.dumps({
  'plainMs': st.median(t['plain']), 'anomalyMs': st.median(t['anomaly']), 'hooksMs': st.median(t['hooks']),
  'anomalyOverPlain': st.median([a / p for a, p in zip(t['anomaly'], t['plain'])]),
  'hooksOverPlain': st.median([h / p for h, p in zip(t['hooks'], t['plain'])]),
}))
`;

function keelCost() {
  const setup = () => {
    keel.manualSeed(0);
    const m = new nn.zoo.LeNet5();
    return { m, o: new keel.optim.AdamW(m.parameters(), { lr: 1e-3 }) };
  };
  const x = keel.randn([32, 1, 28, 28]).keep();
  const y = keel.randint(0, 10, [32]).keep();
  const plain = setup();
  const guarded = setup();
  const guard = new keel.Guard({ model: guarded.m, optimizer: guarded.o, policy: 'raise' });
  const plainStep = () => keel.scope(() => {
    plain.o.zeroGrad(true);
    const l = ops.crossEntropyLoss(plain.m.call(x), y);
    l.backward();
    plain.o.step();
    return l.item();
  });
  const guardStep = () => guard.stepSync(() => ops.crossEntropyLoss(guarded.m.call(x), y)).loss;
  for (let i = 0; i < 3; i++) { plainStep(); guardStep(); }
  const tp = [];
  const tg = [];
  for (let i = 0; i < PAIRS; i++) {
    for (const k of i % 2 === 0 ? ['p', 'g'] : ['g', 'p']) {
      const t0 = now();
      if (k === 'p') plainStep(); else guardStep();
      (k === 'p' ? tp : tg).push((now() - t0) / 1e6);
    }
  }
  guard.dispose();
  return { plainMs: median(tp), guardMs: median(tg), guardOverPlain: median(tg.map((g, i) => g / tp[i])) };
}

const rows = [];
// a file, not -c: anomaly mode's forward traceback then shows the source line
const pyFile = join(tmpdir(), `keel-guard-vs-anomaly-${process.pid}.py`);
writeFileSync(pyFile, PY);
const torchOut = JSON.parse(execFileSync(PYTHON, [pyFile], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] }));
rmSync(pyFile, { force: true });
SCENARIOS.forEach((s, i) => {
  const k = keelNames(s);
  const t = s.truth;
  const { anomaly, hooks } = torchOut[i];
  const right = {
    anomaly: t.phase !== 'update' && t.key.test(anomaly.node ?? ''),
    hooks: t.phase === 'forward' && t.module !== '(loss)' && hooks.named.startsWith(`${t.module || '(model)'} (`),
    keel: k.op !== undefined && t.key.test(k.op) && k.phase === t.phase && k.module === (t.module === '(loss)' ? '' : t.module),
  };
  rows.push({ id: s.id, source: s.source, truth: { ...t, key: t.key.source }, keel: k, anomaly, hooks, right });
});

let cost;
if (!NO_COST) {
  const k = keelCost();
  const p = JSON.parse(execFileSync(PYTHON, ['-c', PY_COST], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } }));
  cost = { pairs: PAIRS, keel: k, pytorch: p };
}

const note = (r) => (r.note ? ` (${r.note})` : '') + (r.step === 2 ? ' [step 2]' : '');
const mark = (ok) => (ok ? '✓ ' : '✗ ');
const truthCell = (t) => `${t.op} · ${t.phase} · ${t.module || '(model)'}`;
const out = [];
out.push(table(
  ['fault (suite)', 'the first non-finite value', 'detect_anomaly names', 'forward hooks name', 'Keel guard names'],
  rows.map((r) => [`${r.id} (${r.source})`, truthCell(r.truth), mark(r.right.anomaly) + r.anomaly.named + note(r.anomaly), mark(r.right.hooks) + r.hooks.named + note(r.hooks), mark(r.right.keel) + r.keel.named + (r.keel.step === 2 ? ' [step 2]' : '')].map((c) => c.replace(/\|/g, '\\|'))),
));
const score = (k) => rows.filter((r) => r.right[k]).length;
out.push('');
out.push(`right (the op or module that first made the non-finite value, in its phase): detect_anomaly ${score('anomaly')}/${rows.length}, forward hooks ${score('hooks')}/${rows.length}, Keel ${score('keel')}/${rows.length}`);
if (cost) {
  const pct = (x) => `${((x - 1) * 100).toFixed(1)} %`;
  out.push('');
  out.push(`healthy-step cost, LeNet-5 batch 32 AdamW, 1 thread, median of ${PAIRS} alternated pairs:`);
  out.push(table(['tool', 'plain ms/step', 'checked ms/step', 'overhead'], [
    ['PyTorch detect_anomaly()', cost.pytorch.plainMs.toFixed(2), cost.pytorch.anomalyMs.toFixed(2), pct(cost.pytorch.anomalyOverPlain)],
    ['PyTorch forward hooks (every module)', cost.pytorch.plainMs.toFixed(2), cost.pytorch.hooksMs.toFixed(2), pct(cost.pytorch.hooksOverPlain)],
    ['Keel guard (raise)', cost.keel.plainMs.toFixed(2), cost.keel.guardMs.toFixed(2), pct(cost.keel.guardOverPlain)],
  ]));
}
console.log(out.join('\n'));
const file = writeResults('guard-vs-anomaly', { bench: 'guard-vs-anomaly', quick: args.quick, machine: await machine(), rows, cost });
console.log(`\nwrote ${file}`);
