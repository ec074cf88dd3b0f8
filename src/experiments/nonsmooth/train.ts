// One training run of the MaxPool reproduction: a model with MaxPool-β and
// ReLU'(0) = s swapped in, trained in a format (fp64 compute, fp32, or bf16 /
// fp16 emulated by keel.withPrecision: forward, backward and gradients
// rounded; the optimizer keeps float32 master weights), then evaluated in the
// same format.
import * as keel from '../../index.js';
import type { FormatName } from '../../precision/formats.js';
import { batch, buildModel, type DataId, type DataSplit, type ModelSpec } from './models.js';
import { mean } from '../../stats/index.js';

const A = keel.audit;
export type OptimName = 'sgd' | 'adam';

export interface RunSpec {
  model: ModelSpec;
  data: DataId;
  format: FormatName;
  beta: number;
  reluAt0: number;
  optim: OptimName;
  lr: number;
  seed: number;
  steps: number;
  batchSize: number;
}

export interface RunResult {
  spec: RunSpec;
  testAccuracy: number;
  finalLoss: number;
  collapsed: boolean;
  wallMs: number;
  /** the flat parameter vector at the end (float64 copy), for trajectory distances */
  params: Float64Array;
  losses: number[];
}

export function runKey(s: RunSpec): string {
  return `${s.model.id}${s.model.avgPool ? '+avg' : ''}|${s.data}|${s.format}|${s.optim}|b${s.beta}|r${s.reluAt0}|s${s.seed}`;
}

export function trainOne(spec: RunSpec, train: DataSplit, test: DataSplit): RunResult {
  const t0 = performance.now();
  // the same θ_0 for every rule and format of a seed
  let model = buildModel(spec.model, spec.data, spec.seed);
  if (spec.format === 'fp64') model = model.to('float64');
  A.swapBackwardRules(model, { beta: spec.beta, reluAt0: spec.reluAt0 });
  const params = model.parameters();
  const opt = spec.optim === 'sgd' ? new keel.optim.SGD(params, { lr: spec.lr, momentum: 0.9 }) : new keel.optim.Adam(params, { lr: spec.lr });
  const losses: number[] = [];
  let diverged = false;
  model.train();
  for (let step = 0; step < spec.steps; step++) {
    const loss = keel.scope(() => {
      const [x, y] = batch(train, spec.seed * 7919 + step, spec.batchSize);
      const xs = A.castFor(spec.format, x);
      opt.zeroGrad();
      const l = A.inFormat(spec.format, () => {
        const out = model.call(xs) as keel.Tensor;
        const loss = keel.losses.crossEntropy(out, y);
        loss.backward();
        return Number(loss.item());
      });
      opt.step();
      return l;
    });
    losses.push(loss);
    if (!Number.isFinite(loss)) {
      diverged = true;
      break;
    }
  }
  model.eval();
  let correct = 0;
  keel.noGrad(() => {
    const B = 250;
    for (let i = 0; i < test.x.shape[0]; i += B) {
      keel.scope(() => {
        const n = Math.min(B, test.x.shape[0] - i);
        const xs = A.castFor(spec.format, test.x.narrow(0, i, n));
        const out = A.inFormat(spec.format, () => model.call(xs) as keel.Tensor);
        correct += Number(out.argmax(1).eq(test.y.narrow(0, i, n)).sum().item());
      });
    }
  });
  const testAccuracy = correct / test.x.shape[0];
  const flat = keel.noGrad(() => keel.scope(() => {
    const parts = params.map((p) => p.detach().to('float64').flatten());
    return Float64Array.from(keel.cat(parts).data() as Float64Array);
  }));
  model.dispose();
  const finalLoss = losses.length ? losses[losses.length - 1] : NaN;
  return {
    spec, testAccuracy, finalLoss, losses, params: flat, wallMs: performance.now() - t0,
    // collapse: the loss left the finite numbers, or ends (mean of the last 5) above 2 · ln 10
    // (twice a uniform guess's loss on 10 classes), or the test accuracy is no better than
    // chance (≤ 12 % on 10 classes: the network predicts one class). A default-rule run
    // that has not started learning counts too; the claims compare each cell with β = 0's.
    collapsed: diverged || !(mean(losses.slice(-5)) <= 2 * Math.log(10)) || testAccuracy <= 0.12,
  };
}

/** ‖a − b‖ / ‖b‖: how far a run's final θ is from the default rule's run with the same seed. */
export function relativeDistance(a: Float64Array, b: Float64Array): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d) / Math.max(1e-300, Math.sqrt(n));
}

