// The guard's measured claim, as assertions over a whole set of injected
// faults: in an MLP, LeNet-5 and a small U-Net, in float32 and emulated fp16,
// NaN/inf written into chosen ops' outputs (forward) or into the gradient
// that flows out of chosen ops (backward), plus real numerical faults (log of
// zero, sqrt at zero in a SILog-like loss, exp overflow). Detection must be
// 100 % and the first op and its module named right in ≥ 95 %. fp16-mixed
// runs the same faults through autocast (fp16 emulated) and a GradScaler: the
// guard (maxConsecutiveSkips 1, so the one skip is the event) replays the
// step under autocast at the step's loss scale.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';

const { ops } = keel;
type Prec = 'fp32' | 'fp16' | 'fp16-mixed';

interface ModelCase {
  name: string;
  make(): keel.nn.Module;
  input(): keel.Tensor;
  loss(out: keel.Tensor): keel.Tensor;
}

const MODELS: ModelCase[] = [
  {
    name: 'MLP',
    make: () => new keel.nn.zoo.MLP({ inFeatures: 16, numClasses: 4, hidden: [32, 32] }),
    input: () => keel.randn([8, 16]),
    loss: (o) => ops.logSoftmax(o, 1).mean().neg(),
  },
  {
    name: 'LeNet5',
    make: () => new keel.nn.zoo.LeNet5(),
    input: () => keel.randn([2, 1, 28, 28]),
    loss: (o) => ops.logSoftmax(o, 1).mean().neg(),
  },
  {
    name: 'UNet',
    make: () => new keel.nn.zoo.UNet({ inChannels: 3, numClasses: 1, depth: 2, width: 4, norm: 'batch' }),
    input: () => keel.randn([2, 3, 16, 16]),
    loss: (o) => o.pow(2).mean(),
  },
];

interface OpSite { op: string; module: string; occurrence: number; leafInput: boolean; grad: boolean; afterInplace?: boolean }

/** The forward's ops, with their module and occurrence index (what a fault can target). */
function listOps(model: keel.nn.Module, x: keel.Tensor, loss: (o: keel.Tensor) => keel.Tensor): OpSite[] {
  const sites: OpSite[] = [];
  const seen = new Map<string, number>();
  const inplaceOut = new Set<keel.Tensor>();
  const remove = keel.intercept((call, result) => {
    if (!(result instanceof keel.Tensor)) return result;
    const dt = result.dtype;
    if (dt !== 'float32') return result;
    const module = keel.nn.currentModulePath();
    const key = `${call.op}|${module}`;
    const occurrence = seen.get(key) ?? 0;
    seen.set(key, occurrence + 1);
    const leafInput = call.inputs.some((v) => v instanceof keel.Tensor && v.isLeaf);
    const inplace = /_(\.|$)/.test(call.op.replace(/^aten::_/, 'aten::'));
    const afterInplace = call.inputs.some((v) => (v instanceof keel.Tensor && inplaceOut.has(v)) || (Array.isArray(v) && v.some((y) => inplaceOut.has(y))));
    if (inplace) inplaceOut.add(result);
    else sites.push({ op: call.op, module, occurrence, leafInput, grad: result.requiresGrad, afterInplace });
    return result;
  });
  try {
    keel.scope(() => loss(model.call(x) as keel.Tensor));
  } finally {
    remove();
  }
  return sites;
}

/** Makes the gradient flowing out of this point non-finite (the op before it then back-propagates it). */
class PoisonGrad extends keel.autograd.Function {
  /** it stands for the op whose gradient it poisons: the guard must name that op */
  static override traced = false;
  static override forward(_ctx: keel.autograd.FunctionContext, x: keel.Tensor, value: number): keel.Tensor {
    return x.clone();
  }
  static override backward(ctx: keel.autograd.FunctionContext, g: keel.Tensor): (keel.Tensor | null)[] {
    void ctx;
    return [ops.mul(g, Number.NaN), null];
  }
}

/** An interceptor that writes value into element 0 of the chosen op's output (forward) or poisons its output's gradient (backward). */
function injectFault(site: OpSite, phase: 'forward' | 'backward', value: number): Injection {
  const counts = new Map<string, number>();
  const remove = keel.intercept((call, result) => {
    if (call.op !== site.op || !(result instanceof keel.Tensor)) return result;
    const module = keel.nn.currentModulePath();
    if (module !== site.module) return result;
    const key = `${call.op}|${module}`;
    const k = counts.get(key) ?? 0;
    counts.set(key, k + 1);
    if (k !== site.occurrence) return result;
    if (phase === 'forward') {
      const flat = keel.zeros([result.numel()]);
      ops.indexFill_(flat, 0, keel.tensor([0], { dtype: "int64" }), value);
      return ops.add(result, flat.reshape(result.shape));
    }
    return PoisonGrad.apply(result, value);
  });
  return { remove, reset: () => counts.clear() };
}

/** An installed fault: reset() at the start of every forward (the guard replays it). */
interface Injection { remove(): void; reset(): void }
const NO_FAULT: Injection = { remove() {}, reset() {} };

interface Outcome { model: string; prec: Prec; phase: string; fault: string; target: string; detected: boolean; named: boolean; got: string }

function runCase(mc: ModelCase, prec: Prec, phase: "forward" | "backward", faultName: string, site: OpSite, inject: () => Injection, seed: number): Outcome {
  keel.manualSeed(seed);
  const model = mc.make();
  const optimizer = new keel.optim.SGD(model.parameters(), { lr: 1e-3 });
  const amp = prec === 'fp16-mixed' ? { scaler: new keel.amp.GradScaler(), maxConsecutiveSkips: 1 } : {};
  const guard = new keel.Guard({ model, optimizer, policy: 'skip', ...amp });
  const x = mc.input();
  const fault = inject();
  let r: keel.GuardStepResult;
  try {
    const forward = (): keel.Tensor => {
      fault.reset();
      return mc.loss(model.call(x) as keel.Tensor);
    };
    r = guard.stepSync(prec === 'fp32' ? forward : prec === 'fp16' ? () => keel.withPrecision('fp16', forward) : () => keel.autocast({ dtype: 'float16' }, forward));
  } finally {
    fault.remove();
    guard.dispose();
    x.dispose();
  }
  const rep = r.event?.report;
  const detected = !r.ok && rep !== undefined;
  const named = detected && rep!.op === site.op && rep!.module === site.module && rep!.phase === phase;
  return {
    model: mc.name, prec, phase, fault: faultName, target: `${site.op} @ ${site.module || '(top)'}`, detected, named,
    got: rep ? `${rep.op} @ ${rep.module || '(top)'} (${rep.phase}) ${rep.causeId}` : 'none',
  };
}

/** Spread n picks over a list. */
function spread<T>(list: T[], n: number): T[] {
  if (list.length <= n) return list;
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(list[Math.floor((i * list.length) / n)]);
  return out;
}

test('injected faults: detection 100 %, first op and module named in ≥ 95 %', () => {
  const outcomes: Outcome[] = [];
  let seed = 0;
  for (const mc of MODELS) {
    keel.manualSeed(1);
    const model = mc.make();
    const x = mc.input();
    const sites = listOps(model, x, mc.loss);
    x.dispose();
    for (const prec of ['fp32', 'fp16', 'fp16-mixed'] as Prec[]) {
      // under the emulated policy an op on parameters, data or an in-place op's output is
      // re-run on rounded inputs after a fault interceptor has run, which would drop the
      // fault (the injection, not the guard, would miss): target the others
      const usable = sites.filter((s) => s.grad && (prec === 'fp32' || (!s.leafInput && !s.afterInplace)));
      const per = mc.name === 'UNet' ? 7 : 5;
      for (const s of spread(usable, per)) {
        outcomes.push(runCase(mc, prec, 'forward', 'NaN', s, () => injectFault(s, 'forward', Number.NaN), seed++));
        outcomes.push(runCase(mc, prec, 'forward', '+inf', s, () => injectFault(s, 'forward', Number.POSITIVE_INFINITY), seed++));
        outcomes.push(runCase(mc, prec, 'backward', 'NaN grad', s, () => injectFault(s, 'backward', Number.NaN), seed++));
      }
    }
  }
  // real numerical faults in the loss, at top level
  for (const mc of MODELS) {
    for (const prec of ['fp32', 'fp16', 'fp16-mixed'] as Prec[]) {
      const real: [string, 'forward' | 'backward', string, (o: keel.Tensor) => keel.Tensor][] = [
        ['log of zero', 'forward', 'aten::log', (o) => ops.log(ops.relu(o.abs().neg().sub(1))).mean()],
        ['sqrt at zero (SILog)', 'backward', 'aten::sqrt', (o) => {
          const d = o.sub(o.detach());
          return ops.sqrt(d.pow(2).mean().sub(d.mean().pow(2).mul(0.5)));
        }],
        // autocast keeps exp in float32 (fp16-mixed): it overflows float32's range there
        ['exp overflow', 'forward', 'aten::exp', (o) => ops.exp(o.abs().add(prec === 'fp16' ? 12 : 90)).mean()],
        ['log of negative', 'forward', 'aten::log', (o) => ops.log(o.abs().neg().sub(1)).mean()],
      ];
      if (prec === 'fp16') real.push(['beyond fp16 range', 'forward', 'aten::mul.Scalar', (o) => ops.mul.Scalar(ops.tanh(o).abs().mul(100).add(1000), 100).mean()]);
      for (const [fault, phase, op, loss] of real) {
        outcomes.push(runCase({ ...mc, loss }, prec, phase, fault, { op, module: '', occurrence: 0, leafInput: false, grad: true }, () => NO_FAULT, seed++));
      }
    }
  }
  const detected = outcomes.filter((o) => o.detected).length;
  const named = outcomes.filter((o) => o.named).length;
  const rows = outcomes.map((o) => `| ${o.model} | ${o.prec} | ${o.phase} | ${o.fault} | ${o.target} | ${o.detected ? 'yes' : 'NO'} | ${o.named ? 'yes' : 'no: ' + o.got} |`);
  console.log(['| model | precision | phase | fault | injected at | detected | named |', '| --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n'));
  console.log(`cases ${outcomes.length}: detected ${detected} (${((100 * detected) / outcomes.length).toFixed(1)} %), named ${named} (${((100 * named) / outcomes.length).toFixed(1)} %)`);
  assert.ok(outcomes.length >= 90, `at least 90 cases (got ${outcomes.length})`);
  assert.equal(detected, outcomes.length, 'every fault is detected');
  assert.ok(named / outcomes.length >= 0.95, `first op and module named in ≥ 95 % (got ${named}/${outcomes.length})`);
});
