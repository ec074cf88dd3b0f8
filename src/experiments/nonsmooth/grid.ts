// The design of `keel repro maxpool`'s grid (Boustany 2024's training study,
// budgeted): which (model, data, precision, optimizer, β, ReLU'(0), seed) runs
// are trained, and how the one learning rate per (model, data, optimizer) is
// tuned before them.
//
// Default design (every axis can be narrowed from the command line):
//   core      LeNet-5 on both data sets and VGG-11 on Fashion-MNIST: every β ×
//             ReLU'(0) ∈ {0, 1} × fp32/bf16/fp16 × seeds, SGD with momentum
//   reduced   VGG-11 on the synthetic set, VGG-11-BN and ResNet-18 on both:
//             β ∈ {0, 1000, 10⁴}, ReLU'(0) = 0, every precision × seeds, SGD
//   adam      LeNet-5 and VGG-11 on both data sets, Adam: β ∈ {0, 1000, 10⁴} ×
//             bf16/fp16 × seeds (the optimizer remedy; compared with the same
//             cells under SGD)
//   fp64      every model on Fashion-MNIST, β ∈ {0, 10⁴}, SGD (the higher-
//             precision remedy and the reference: over the reals β changes
//             nothing, so fp64 runs should split by ~1e-12 at most)
//   avgpool   every model and data set, average pools instead of max pools,
//             in the narrowest format (bf16), SGD
//   The low-norm-Jacobian remedy (Boustany: MaxPool Jacobians of lower norm
//   keep training stable) is the β = 1 column: the minimal rule, whose
//   Jacobian is the minimal-norm element of the subdifferential, compared with
//   β ≥ 1000 in the same precision.
//
// Learning rates: for each (model, data, optimizer), runs in fp32 with the
// default rule (β = 0, ReLU'(0) = 0), seed 0, the grid's step count, at each
// rate of a small grid; the one with the lowest mean training loss over the
// last 20 % of steps is reused for every rule, precision and seed (the test
// set is not looked at). The winning tuning run is the grid's own
// (fp32, β = 0, ReLU'(0) = 0, seed 0) run.
import type { FormatName } from '../../precision/formats.js';
import type { DataId, ModelId } from './models.js';
import type { OptimName, RunSpec } from './train.js';
import { mean } from '../../stats/index.js';

export type Role = 'core' | 'reduced' | 'adam' | 'fp64' | 'avgpool';

export interface GridOptions {
  models: ModelId[];
  datas: DataId[];
  betas: number[];
  relu0: number[];
  formats: FormatName[];
  optims: OptimName[];
  seeds: number;
  /** training steps per model (VGG-11 without BN learns slowest) */
  steps: (model: ModelId) => number;
  batchSize: number;
  width: number;
  /** the remedies' runs (fp64, average pooling) */
  remedies: boolean;
  /** every model gets the core design (all β × ReLU'(0)); otherwise the default design above */
  full: boolean;
}

export interface PlannedRun {
  role: Role;
  /** the learning rate is filled in after tuning */
  spec: Omit<RunSpec, 'lr'>;
}

/** β values of the reduced design. */
export const REDUCED_BETAS = [0, 1000, 10000];
/** The learning rates tried per optimizer. */
export const LR_GRID: Record<OptimName, number[]> = { sgd: [0.01, 0.03, 0.1], adam: [3e-4, 1e-3, 3e-3] };

const isCore = (o: GridOptions, id: ModelId, data: DataId): boolean =>
  o.full || id === 'lenet5' || (id === 'vgg11' && data === 'fashion-mnist') || id === 'mlp';

/** Every run of the design, default-rule runs first (they are the others' references). */
export function planGrid(o: GridOptions): PlannedRun[] {
  const runs: PlannedRun[] = [];
  const push = (role: Role, id: ModelId, data: DataId, format: FormatName, optim: OptimName, beta: number, reluAt0: number, avgPool = false): void => {
    for (let seed = 0; seed < o.seeds; seed++) {
      runs.push({ role, spec: { model: { id, width: o.width, ...(avgPool ? { avgPool } : {}) }, data, format, beta, reluAt0, optim, seed, steps: o.steps(id), batchSize: o.batchSize } });
    }
  };
  const sgd = o.optims.includes('sgd') ? 'sgd' : o.optims[0];
  const bmax = Math.max(...o.betas);
  const reduced = o.betas.filter((b) => REDUCED_BETAS.includes(b) || b === bmax);
  const low = o.formats.filter((f) => f !== 'fp32' && f !== 'fp64');
  for (const data of o.datas) for (const id of o.models) {
    const core = isCore(o, id, data);
    const betas = core ? o.betas : reduced;
    const relu0 = core ? o.relu0 : [o.relu0.includes(0) ? 0 : o.relu0[0]];
    if (o.optims.includes(sgd)) for (const format of o.formats) for (const r of relu0) for (const b of betas) push(core ? 'core' : 'reduced', id, data, format, sgd, b, r);
    if (o.optims.includes('adam') && sgd !== 'adam' && (id === 'lenet5' || id === 'vgg11')) {
      const formats = o.full || low.length === 0 ? o.formats : low;
      for (const format of formats) for (const b of reduced) push('adam', id, data, format, 'adam', b, 0);
    }
    if (o.remedies) {
      if (data === o.datas[0] && !o.formats.includes('fp64')) for (const b of [...new Set([0, bmax])]) push('fp64', id, data, 'fp64', sgd, b, 0);
      if (id !== 'mlp') push('avgpool', id, data, low.includes('bf16') ? 'bf16' : o.formats[o.formats.length - 1], sgd, 0, 0, true);
    }
  }
  // references (β = 0, ReLU'(0) = 0, max pools) first, so trajectory splits can be computed as runs finish
  const isRef = (p: PlannedRun) => p.spec.beta === 0 && p.spec.reluAt0 === 0 && !p.spec.model.avgPool;
  return [...runs.filter(isRef), ...runs.filter((p) => !isRef(p))];
}

/** The (model, data, optimizer) combinations whose learning rate must be tuned. */
export function tuningKeys(runs: PlannedRun[]): { id: ModelId; data: DataId; optim: OptimName }[] {
  const seen = new Map<string, { id: ModelId; data: DataId; optim: OptimName }>();
  for (const { spec } of runs) seen.set(lrKey(spec.model.id, spec.data, spec.optim), { id: spec.model.id, data: spec.data, optim: spec.optim });
  return [...seen.values()];
}

export function lrKey(id: ModelId, data: DataId, optim: OptimName): string {
  return `${id}|${data}|${optim}`;
}

/** The tuning criterion: mean training loss over the last 20 % of steps (Infinity if it left the finite numbers). */
export function tuningLoss(losses: number[], steps: number): number {
  if (losses.length < steps || losses.some((l) => !Number.isFinite(l))) return Infinity;
  const tail = losses.slice(-Math.max(1, Math.round(steps / 5)));
  return mean(tail);
}
