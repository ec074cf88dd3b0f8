// One unguarded training run of the study: DepthUNet + AdamW on SynthDepth
// with sparse LiDAR-like ground truth and random crops, in float32 or under an
// emulated fp16/bf16 precision policy (forward and backward rounded; AdamW's
// update and master weights stay float32, as mixed precision keeps them; no
// loss scaling). The run stops at the first non-finite loss or gradient and
// records where; runs that finish are evaluated on the dense validation set.
import * as keel from '../../index.js';
import { DepthUNet, toDepth, type DepthHead, type FinalInit } from './model.js';

export type LossKind = 'sqrt' | 'safe';
export type Precision = 'fp32' | 'fp16' | 'bf16';

export interface RunConfig {
  loss: LossKind;
  head: DepthHead;
  /** variance estimator inside SILog: 1 unbiased (N − 1), 0 biased */
  correction: 0 | 1;
  finalInit: FinalInit;
  precision: Precision;
  /** model initialisation seed */
  seed: number;
  /** the batch stream (indices and crops); default the seed */
  dataStream?: number;
  /** SILog's λ (weight of mean(d)²); default glpdepth's 0.5 */
  lambda?: number;
  /** the model's decoder feature scale (model.ts); default 1 */
  featureScale?: number;
}

export interface Budget {
  imageSize: number;
  crop: number;
  batchSize: number;
  steps: number;
  trainExamples: number;
  valExamples: number;
  width: number;
  depth: number;
  lr: number;
  weightDecay: number;
  maxDepth: number;
  sparse: { pattern: 'scanlines' | 'random'; density: number; lines: number };
}

export interface SharedData {
  train: keel.data.TensorDataset<[keel.Tensor, keel.Tensor, keel.Tensor]>;
  val: keel.data.TensorDataset<[keel.Tensor, keel.Tensor, keel.Tensor]>;
  dispose(): void;
}

export function makeData(b: Budget, dataSeed = 0): SharedData {
  const train = keel.data.synthDepth({ n: b.trainExamples, split: 'train', seed: dataSeed, size: b.imageSize, maxDepth: b.maxDepth, sparse: b.sparse });
  const val = keel.data.synthDepth({ n: b.valExamples, split: 'val', seed: dataSeed, size: b.imageSize, maxDepth: b.maxDepth });
  for (const t of [...train.tensors, ...val.tensors]) t.keep();
  return { train, val, dispose: () => { for (const t of [...train.tensors, ...val.tensors]) t.dispose(); } };
}

export type NaNCause = 'empty mask (N = 0)' | 'unbiased variance, N = 1' | 'sigmoid underflow, log 0' | 'sqrt at 0' | 'saturated sigmoid, log gradient overflow' | 'other';

/**
 * The mechanism behind a first non-finite value, from what the step saw.
 * `saturated`: at a valid pixel σ(z) was so small that 1/σ(z) — the factor
 * the log's backward puts on the gradient reaching the sigmoid, through
 * log(σ·maxDepth) or log(σ) alike — exceeds the precision's largest finite
 * number (σ(z) < 1/65504 in fp16).
 */
export function causeOf(n: number, correction: 0 | 1, underflow: boolean, nanIn: 'loss' | 'gradient', loss: number, saturated = false): NaNCause {
  if (n === 0) return 'empty mask (N = 0)';
  if (n === 1 && correction === 1) return 'unbiased variance, N = 1';
  if (underflow) return 'sigmoid underflow, log 0';
  if (nanIn === 'gradient' && Number.isFinite(loss) && loss * loss < 1e-6) return 'sqrt at 0';
  if (nanIn === 'gradient' && saturated) return 'saturated sigmoid, log gradient overflow';
  return 'other';
}

/** The largest finite number of each precision. */
const MAX_FINITE: Record<Precision, number> = { fp32: 3.4028234663852886e38, bf16: 3.3895313892515355e38, fp16: 65504 };

/** Whether at some valid pixel 1/σ(z) is beyond the precision's largest finite number (see causeOf). */
export function logInputSaturated(out: { kind: 'depth' | 'logDepth'; value: keel.Tensor }, mask: keel.Tensor, maxDepth: number, precision: Precision): boolean {
  return keel.noGrad(() => keel.scope(() => {
    const valid = keel.ops.maskedSelect(out.value.detach(), mask.gt(0));
    if (valid.numel() === 0) return false;
    const m = valid.min().item() as number;
    const sigma = (out.kind === 'depth' ? m : Math.exp(m)) / maxDepth;
    return 1 / sigma > MAX_FINITE[precision];
  }));
}

export interface RunResult {
  /** 'nan' when a loss or gradient went non-finite (the run stopped there) */
  status: 'finished' | 'nan';
  /** 1-based step of the first non-finite value, or null */
  firstNaNStep: number | null;
  /** what went non-finite first: the loss, or (loss finite) a gradient */
  nanIn: 'loss' | 'gradient' | null;
  /** valid pixels in the batch of the first non-finite step */
  validAtNaN: number | null;
  /** the loss value at that step (finite when a gradient went first; its square is the sqrt's argument) */
  lossAtNaN: number | null;
  /** whether some σ(z) had underflowed to 0 at that step (log → −inf) */
  underflowAtNaN: boolean | null;
  /** the mechanism, read from the step: see causeOf */
  cause: NaNCause | null;
  stepsDone: number;
  /** batches with 0 and with 1 valid pixel seen (before any NaN) */
  batchesWithZeroValid: number;
  batchesWithOneValid: number;
  finalLoss: number | null;
  /** on the dense validation set; null unless finished */
  metrics: keel.losses.DepthMetrics | null;
  wallTimeMs: number;
}

/** The batch of step `step` (0-based) of a stream: seeded indices and one random crop. */
export function batchAt(data: SharedData, b: Budget, stream: number, step: number): { x: keel.Tensor; gt: keel.Tensor; mask: keel.Tensor } {
  const rng = new keel.data.Rng(stream, 0x3de, step);
  const idx = Array.from({ length: b.batchSize }, () => rng.int(data.train.length));
  const oy = rng.int(b.imageSize - b.crop + 1);
  const ox = rng.int(b.imageSize - b.crop + 1);
  return keel.scope(() => {
    const index = keel.tensor(idx, { dtype: 'int64' });
    const [x, gt, mask] = data.train.tensors.map((t) => t.indexSelect(0, index).narrow(2, oy, b.crop).narrow(3, ox, b.crop).contiguous());
    return { x, gt, mask };
  });
}

export function lossOf(out: { kind: 'depth' | 'logDepth'; value: keel.Tensor }, gt: keel.Tensor, mask: keel.Tensor, c: Pick<RunConfig, 'loss' | 'correction' | 'lambda'>): keel.Tensor {
  return keel.losses.silog(out.value, gt, mask, { variant: 'glpdepth', correction: c.correction, safe: c.loss === 'safe', input: out.kind, ...(c.lambda !== undefined ? { lambda: c.lambda } : {}) });
}

function allFinite(params: keel.Tensor[]): boolean {
  return keel.noGrad(() => keel.scope(() => {
    let acc: keel.Tensor | null = null;
    for (const p of params) {
      if (!p.grad) continue;
      const s = p.grad.abs().sum();
      acc = acc === null ? s : acc.add(s);
    }
    return acc === null ? true : Number.isFinite(acc.item() as number);
  }));
}

export function buildModel(c: RunConfig, b: Budget): DepthUNet {
  keel.manualSeed(c.seed);
  return new DepthUNet({ head: c.head, finalInit: c.finalInit, maxDepth: b.maxDepth, width: b.width, depth: b.depth, ...(c.featureScale !== undefined ? { featureScale: c.featureScale } : {}) });
}

export function evaluate(model: DepthUNet, data: SharedData): keel.losses.DepthMetrics {
  model.eval();
  const r = keel.noGrad(() => keel.scope(() => {
    const [x, gt, mask] = data.val.tensors;
    const out = model.call(x) as { kind: 'depth' | 'logDepth'; value: keel.Tensor };
    return keel.losses.depthMetrics(toDepth(out), gt, mask);
  }));
  model.train();
  return r;
}

export function runOne(c: RunConfig, b: Budget, data: SharedData): RunResult {
  const t0 = performance.now();
  const model = buildModel(c, b);
  const params = model.parameters();
  const opt = new keel.optim.AdamW(params, { lr: b.lr, weightDecay: b.weightDecay });
  let zero = 0;
  let one = 0;
  let lastLoss: number | null = null;
  type Bad = { nanIn: 'loss' | 'gradient'; n: number; loss: number; underflow: boolean; saturated: boolean };
  const result = (status: RunResult['status'], step: number | null, bad: Bad | null, stepsDone: number): RunResult => ({
    status, firstNaNStep: step, nanIn: bad?.nanIn ?? null, validAtNaN: bad?.n ?? null, lossAtNaN: bad === null ? null : Number.isFinite(bad.loss) ? bad.loss : null,
    underflowAtNaN: bad?.underflow ?? null, cause: bad === null ? null : causeOf(bad.n, c.correction, bad.underflow, bad.nanIn, bad.loss, bad.saturated), stepsDone, batchesWithZeroValid: zero, batchesWithOneValid: one, finalLoss: lastLoss,
    metrics: status === 'finished' ? evaluate(model, data) : null, wallTimeMs: performance.now() - t0,
  });
  try {
    for (let step = 0; step < b.steps; step++) {
      const outcome = keel.scope(() => {
        const { x, gt, mask } = batchAt(data, b, c.dataStream ?? c.seed, step);
        const n = mask.sum().item() as number;
        if (n === 0) zero++;
        if (n === 1) one++;
        opt.zeroGrad();
        type Out = { kind: 'depth' | 'logDepth'; value: keel.Tensor };
        const body = (): [number, boolean, Out] => {
          const out = model.call(x) as Out;
          const loss = lossOf(out, gt, mask, c);
          const v = loss.item() as number;
          const underflow = keel.noGrad(() => (out.kind === 'depth' ? out.value.min().item() === 0 : out.value.min().item() === -Infinity));
          if (Number.isFinite(v)) loss.backward();
          return [v, underflow, out];
        };
        const [v, underflow, out] = c.precision === 'fp32' ? body() : keel.withPrecision(c.precision, body);
        // read only on a bad step: the healthy steps do no extra work
        const saturated = (): boolean => logInputSaturated(out, mask, b.maxDepth, c.precision);
        if (!Number.isFinite(v)) return { nanIn: 'loss' as const, n, loss: v, underflow, saturated: saturated() };
        if (!allFinite(params)) return { nanIn: 'gradient' as const, n, loss: v, underflow, saturated: saturated() };
        opt.step();
        lastLoss = v;
        return null;
      });
      if (outcome !== null) return result('nan', step + 1, outcome, step);
    }
    return result('finished', null, null, b.steps);
  } finally {
    opt.dispose();
    model.dispose();
  }
}
