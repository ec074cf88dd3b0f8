// `keel audit nonsmooth --protocol paper`: the two papers' own protocols, with
// Fashion-MNIST (or the synthetic set) standing in for MNIST and CIFAR-10.
//
//   ReLU'(0) (Bertoin et al., NeurIPS 2021; their relu-prime code, notebooks
//   MNIST_volume_estimation and volume_estimation_by_architecture):
//     pixels / 255, no standardisation; the training set in file order, cut
//     into minibatches of 256 (235, the last one short: 60,000 = 234·256 + 96),
//     the same sequence for every θ; θ a fresh default-initialised MLP
//     (Linear(784, w), ReLU, …, Linear(w, 10); depth = hidden layers) drawn in
//     fp32 and cast to the precision; per θ, backprop each minibatch with
//     ReLU'(0) = 0 and = 1 and stop at the first whose gradients differ. The
//     statistic is the share of θ with such a minibatch ("θ ∈ S"), with a
//     Wilson interval, beside the rate of exact zeros among ReLU inputs.
//     Their comparison is the first layer's weight gradient only (--first-layer);
//     the default here compares every parameter.
//   MaxPool (Boustany 2024; his MaxPool-numerical code, notebook
//     volume_estimation_by_architecture): his VGG-11 (CIFAR form: 3×3 convs with
//     padding 1, ReLU, 2×2 max pools, one Linear(512, 10) head; conv weights
//     kaiming-uniform fan-in, biases 0, head N(0, 0.01)), width 64, batch 128,
//     one θ over a whole epoch; per minibatch D = Σ over parameter tensors of
//     ‖∇_native − ∇_β=1‖_∞, judged against his absolute thresholds (1e-3 /
//     1e-7 / 1e-15 for 16 / 32 / 64 bits), Keel's relative τ_p beside them,
//     and D's histogram. Images are padded to 32×32 with the background
//     (0 before standardising), then standardised.
//
// Work items (one θ of one cell and precision for ReLU; a range of minibatches
// of one θ for MaxPool) run in a process pool (--jobs) and are saved as they
// finish, so --resume continues an interrupted run.
import * as keel from '../../index.js';
import type { FormatName } from '../../precision/formats.js';
import { gradientsWith, maxpoolGradientPair } from './audit.js';
import type { DataId, DataSplit } from './models.js';

const A = keel.audit;
const nn = keel.nn;

export type Study = 'relu' | 'maxpool';
export const STUDIES: readonly Study[] = ['relu', 'maxpool'];

/** An MLP cell of Bertoin et al.'s study. */
export interface MlpCell {
  depth: number;
  width: number;
  batch: number;
}

/** Their main cell: 3 hidden layers of 256, batch 256. */
export const BERTOIN_MAIN: MlpCell = { depth: 3, width: 256, batch: 256 };

/** Their sweeps (each varies one of depth, width, batch about the main cell). */
export const BERTOIN_SWEEPS: Record<'depth' | 'width' | 'batch', number[]> = {
  depth: [1, 2, 3, 5, 6],
  width: [16, 64, 256, 512, 1024],
  batch: [16, 64, 256, 512, 1024],
};

/**
 * The paper's figures, from the CSVs behind the figures of their section 3
 * (relu-prime, paper_results/section_3/volume_estimation_by_*_MNIST.csv):
 * θ ∈ S out of 1,000 draws, MLP on MNIST, GPU (16-bit = fp16 in hardware).
 * fp64 is 0 in every figure (their plotting script sets it; the layer sweep
 * never ran fp64, the main notebook ran 10 draws).
 */
export const BERTOIN_FIGURES: { sweep: 'depth' | 'width' | 'batch'; value: number; bits: 16 | 32; count: number }[] = [
  ...[871, 999, 1000, 1000, 1000].map((count, i) => ({ sweep: 'depth' as const, value: BERTOIN_SWEEPS.depth[i], bits: 16 as const, count })),
  ...[54, 258, 463, 647, 697].map((count, i) => ({ sweep: 'depth' as const, value: BERTOIN_SWEEPS.depth[i], bits: 32 as const, count })),
  ...[333, 1000, 1000, 1000, 1000].map((count, i) => ({ sweep: 'width' as const, value: BERTOIN_SWEEPS.width[i], bits: 16 as const, count })),
  ...[21, 163, 478, 582, 873].map((count, i) => ({ sweep: 'width' as const, value: BERTOIN_SWEEPS.width[i], bits: 32 as const, count })),
  ...[1000, 1000, 1000, 1000, 1000].map((count, i) => ({ sweep: 'batch' as const, value: BERTOIN_SWEEPS.batch[i], bits: 16 as const, count })),
  ...[439, 453, 488, 351, 384].map((count, i) => ({ sweep: 'batch' as const, value: BERTOIN_SWEEPS.batch[i], bits: 32 as const, count })),
];

/**
 * Boustany's figure (MaxPool-numerical, volume_estimation_by_architecture,
 * "Volume by precision"): VGG-11 on CIFAR-10, batch 128, one θ, one epoch of
 * 391 minibatches; minibatches with D above the absolute threshold.
 */
export const BOUSTANY_FIGURES: { bits: 16 | 32 | 64; count: number; of: number }[] = [
  { bits: 16, count: 391, of: 391 },
  { bits: 32, count: 216, of: 391 },
  { bits: 64, count: 0, of: 391 },
];

/** The paper's bit width of a format (16 for fp16 and bf16), or undefined for the 8-bit ones. */
export function paperBits(format: FormatName): 16 | 32 | 64 | undefined {
  return format === 'fp64' ? 64 : format === 'fp32' ? 32 : format === 'fp16' || format === 'bf16' ? 16 : undefined;
}

// ---- data -------------------------------------------------------------------

export interface PaperData extends DataSplit {
  /** what stands in for the paper's data set, for the output */
  note: string;
}

/**
 * The training set in file order. 'mlp': pixels / 255 as they are (Bertoin's
 * ToTensor only). 'vgg': padded to 32×32 with the background value (0) and
 * then standardised per channel (Boustany's Normalize), so padding equals the
 * background; the synthetic set is 32×32 already and only standardised.
 */
export function paperData(kind: 'mlp' | 'vgg', data: DataId, n?: number): PaperData {
  return keel.scope(() => {
    let x: keel.Tensor, y: keel.Tensor;
    let note: string;
    if (data === 'synthetic') {
      const [sx, sy] = keel.data.syntheticImages({ n: n ?? 60000, seed: 0 }).tensors as unknown as [keel.Tensor, keel.Tensor];
      x = sx; y = sy;
      note = `the synthetic image set (${x.shape[0]} images, 3×32×32) stands in for ${kind === 'mlp' ? 'MNIST (the MLP reads 3,072 inputs, not 784)' : 'CIFAR-10'}`;
    } else {
      const [fx, fy] = keel.data.fashionMnist({ split: 'train' }).tensors as unknown as [keel.Tensor, keel.Tensor];
      x = n !== undefined && n < fx.shape[0] ? fx.narrow(0, 0, n) : fx;
      y = n !== undefined && n < fy.shape[0] ? fy.narrow(0, 0, n) : fy;
      note = kind === 'mlp'
        ? `Fashion-MNIST (${x.shape[0]} training images, 28×28) stands in for MNIST (no MNIST here)`
        : `Fashion-MNIST (${x.shape[0]} training images, 1 channel, padded to 32×32) stands in for CIFAR-10 (no CIFAR-10 here; 3 → 1 input channel, no random crop or flip)`;
      if (kind === 'vgg') x = keel.ops.constantPadNd(x, [2, 2, 2, 2], 0);
    }
    if (kind === 'vgg') {
      const mu = x.mean([0, 2, 3], true), sd = x.std([0, 2, 3], { keepdim: true });
      x = x.sub(mu).div(sd);
    }
    return { x: x.contiguous().keep(), y: y.contiguous().keep(), note };
  });
}

/** Minibatches of b in order, the last one short: ⌈n / b⌉. */
export function minibatchCount(n: number, b: number): number {
  return Math.ceil(n / b);
}

/** Minibatch i of size b in file order (the last one may be short); views of the data. */
export function sequentialBatch(d: DataSplit, i: number, b: number): [keel.Tensor, keel.Tensor] {
  const n = d.x.shape[0];
  const start = i * b;
  if (!(Number.isInteger(i) && i >= 0 && start < n)) throw new RangeError(`sequentialBatch: minibatch ${i} of size ${b} is outside ${n} examples`);
  const len = Math.min(b, n - start);
  return [d.x.narrow(0, start, len), d.y.narrow(0, start, len)];
}

/** The line naming the data-set difference (what paperData's note says, without loading anything). */
export function paperDataNote(kind: 'mlp' | 'vgg', data: DataId, n?: number): string {
  if (data === 'synthetic') return `the synthetic image set (${n ?? 60000} images, 3×32×32) stands in for ${kind === 'mlp' ? 'MNIST (the MLP reads 3,072 inputs, not 784)' : 'CIFAR-10'}`;
  const m = Math.min(n ?? 60000, 60000);
  return kind === 'mlp'
    ? `Fashion-MNIST (${m} training images, 28×28, pixels/255) stands in for MNIST (no MNIST here)`
    : `Fashion-MNIST (${m} training images, 1 channel, padded to 32×32 with the background, then standardised) stands in for CIFAR-10 (no CIFAR-10 here; 1 input channel, not 3; no random crop or flip)`;
}

// ---- models -----------------------------------------------------------------

/** Bertoin et al.'s MLP with PyTorch's default Linear initialisation, drawn (in fp32) from the seed. */
export function bertoinMlp(inFeatures: number, cell: Pick<MlpCell, 'depth' | 'width'>, seed: number): keel.nn.Module {
  keel.manualSeed(seed);
  return new nn.zoo.MLP({ inFeatures, numClasses: 10, hidden: Array<number>(cell.depth).fill(cell.width) });
}

/**
 * Boustany's VGG-11 (CIFAR form, his models/vgg.py) with every channel count
 * scaled by width / 64: convs kaiming-uniform (fan-in, ReLU gain), zero biases;
 * the one Linear head N(0, 0.01), zero bias. His trailing AvgPool2d(1, 1) is
 * the identity and is left out.
 */
export function boustanyVgg11(inChannels: number, width: number, seed: number): keel.nn.Module {
  keel.manualSeed(seed);
  const layers: keel.nn.Module[] = [];
  let c = inChannels;
  for (const v of nn.zoo.VGG11_CONFIG) {
    if (v === 'M') layers.push(new nn.MaxPool2d(2, { stride: 2 }));
    else {
      const out = Math.max(1, Math.round((v * width) / 64));
      const conv = new nn.Conv2d(c, out, 3, { padding: 1 });
      nn.init.kaimingUniform_(conv.weight, { mode: 'fan_in', nonlinearity: 'relu' });
      if (conv.bias) nn.init.constant_(conv.bias, 0);
      layers.push(conv, new nn.ReLU());
      c = out;
    }
  }
  const head = new nn.Linear(c, 10);
  nn.init.normal_(head.weight, 0, 0.01);
  if (head.bias) nn.init.constant_(head.bias, 0);
  return new nn.Sequential({ features: new nn.Sequential(...layers), flatten: new nn.Flatten(), classifier: head });
}

// ---- work items -------------------------------------------------------------

export interface ReluItem {
  study: 'relu';
  cell: MlpCell;
  /** 'main' or the sweep it belongs to */
  role: string;
  format: FormatName;
  draw: number;
  data: DataId;
  firstLayer: boolean;
  /** minibatches to look at (the epoch's unless --batches cuts it) */
  batches: number;
  nTrain?: number;
}

export interface ZeroTotals {
  /** ReLU inputs seen, exact zeros among them, samples, samples with at least one exact zero */
  inputs: number;
  zeros: number;
  samples: number;
  samplesWithZero: number;
}

export interface ReluResult {
  /** index of the first minibatch whose gradients differ, or null */
  differsAt: number | null;
  /** minibatches looked at (differsAt + 1 when it stopped) */
  batchesSeen: number;
  /** at the first differing minibatch: its exact zeros, and how many of them are exactly 0 in fp64 too */
  zerosAtDiff: number;
  structuralZerosAtDiff: number;
  /** the difference rests only on zeros that fp64 has too (null: no difference, or fp64 itself) */
  structural: boolean | null;
  /** ‖difference‖_∞ summed over the compared tensors at the first differing minibatch */
  D: number;
  zeros: ZeroTotals;
}

export interface MaxpoolItem {
  study: 'maxpool';
  format: FormatName;
  draw: number;
  data: DataId;
  width: number;
  batch: number;
  /** minibatches [from, to) of the epoch */
  from: number;
  to: number;
  nTrain?: number;
}

export interface MaxpoolBatch {
  i: number;
  D: number;
  /** Σ ‖∇_native‖_∞ (for τ_p) */
  scale: number;
  equal: boolean;
  tiedWindows: number;
}

export interface MaxpoolResult {
  batches: MaxpoolBatch[];
}

export type PaperItem = ReluItem | MaxpoolItem;

/** A key naming an item's numbers (resume reuses a saved result only under the same key). */
export function itemKey(it: PaperItem): string {
  if (it.study === 'relu') return `relu|${it.data}|d${it.cell.depth}w${it.cell.width}b${it.cell.batch}|${it.format}|θ${it.draw}|${it.firstLayer ? 'first' : 'all'}|${it.batches}|${it.nTrain ?? 'all'}`;
  return `maxpool|${it.data}|w${it.width}b${it.batch}|${it.format}|θ${it.draw}|${it.from}-${it.to}|${it.nTrain ?? 'all'}`;
}

/** The seed of θ number `draw` (the same θ for every precision, as drawn in fp32). */
export function thetaSeed(draw: number): number {
  return 100_003 + draw;
}

/** The exact-zero masks of every ReLU input in one forward pass (kept: dispose them). */
export function zeroMasks(model: keel.nn.Module, format: FormatName, x: keel.Tensor): keel.Tensor[] {
  A.swapBackwardRules(model, { reluAt0: 0 });
  const recs: keel.audit.ZeroRecord[] = [];
  A.zeroRecorder.current = recs;
  A.zeroRecorder.keepMasks = true;
  try {
    keel.noGrad(() => keel.scope(() => {
      A.inFormat(format, () => model.call(A.castFor(format, x)));
    }));
  } finally {
    A.zeroRecorder.current = null;
    A.zeroRecorder.keepMasks = false;
  }
  return recs.map((r) => r.mask!);
}

/**
 * Of the exact zeros in `masks` (one format's forward), how many are exactly 0
 * in fp64 too (same θ cast to fp64, same minibatch): structural zeros, which
 * no precision removes, as against floating-point ones.
 */
export function structuralZeros(masks: keel.Tensor[], model64: keel.nn.Module, x: keel.Tensor): { zeros: number; structural: number } {
  const b = zeroMasks(model64, 'fp64', x);
  try {
    if (masks.length !== b.length) throw new Error(`structuralZeros: ${masks.length} ReLU calls against ${b.length} in fp64`);
    let zeros = 0, structural = 0;
    keel.scope(() => {
      for (let k = 0; k < masks.length; k++) {
        zeros += Number(masks[k].sum().item());
        structural += Number(keel.ops.logicalAnd(masks[k], b[k]).sum().item());
      }
    });
    return { zeros, structural };
  } finally {
    for (const t of b) t.dispose();
  }
}

/** Samples (rows) with at least one exact zero in any of the masks. */
function samplesWithZero(masks: keel.Tensor[], n: number): number {
  if (masks.length === 0) return 0;
  return keel.scope(() => {
    let any = masks[0].reshape([n, -1]).sum(1).gt(0);
    for (let k = 1; k < masks.length; k++) any = keel.ops.logicalOr(any, masks[k].reshape([n, -1]).sum(1).gt(0));
    return Number(any.sum().item());
  });
}

function compareSets(ga: Map<string, keel.Tensor>, gb: Map<string, keel.Tensor>, firstLayer: boolean, firstName: string): { equal: boolean; D: number; scale: number } {
  if (firstLayer) {
    const pick = (g: Map<string, keel.Tensor>) => new Map([[firstName, g.get(firstName)!]]);
    const c = A.compareGradients(pick(ga), pick(gb));
    return { equal: c.equal, D: c.sumInfNorm, scale: c.scale };
  }
  const c = A.compareGradients(ga, gb);
  return { equal: c.equal, D: c.sumInfNorm, scale: c.scale };
}

/**
 * One θ of Bertoin et al.'s protocol: minibatches in order until the first
 * whose gradients with ReLU'(0) = 0 and = 1 differ. The second backward runs
 * only when the first saw an exact zero among the ReLU inputs: without one the
 * two backward passes do the same operations on the same numbers.
 */
export function runReluItem(it: ReluItem, d: DataSplit): ReluResult {
  const inFeatures = d.x.shape.slice(1).reduce((a, b) => a * b, 1);
  const m32 = bertoinMlp(inFeatures, it.cell, thetaSeed(it.draw));
  const m64 = bertoinMlp(inFeatures, it.cell, thetaSeed(it.draw)).to('float64');
  const model = it.format === 'fp64' ? m64 : m32;
  const firstName = model.namedParameters()[0][0];
  const zeros: ZeroTotals = { inputs: 0, zeros: 0, samples: 0, samplesWithZero: 0 };
  const out: ReluResult = { differsAt: null, batchesSeen: 0, zerosAtDiff: 0, structuralZerosAtDiff: 0, structural: null, D: 0, zeros };
  try {
    for (let i = 0; i < it.batches; i++) {
      const [x, y] = sequentialBatch(d, i, it.cell.batch);
      const recs: keel.audit.ZeroRecord[] = [];
      A.zeroRecorder.current = recs;
      A.zeroRecorder.keepMasks = true;
      let ga: Map<string, keel.Tensor>;
      try {
        ga = gradientsWith(model, it.format, x, y, { reluAt0: 0 }, 0);
      } finally {
        A.zeroRecorder.current = null;
        A.zeroRecorder.keepMasks = false;
      }
      const masks = recs.map((r) => r.mask!);
      try {
        out.batchesSeen = i + 1;
        const z = recs.reduce((s, r) => s + r.zeros, 0);
        zeros.inputs += recs.reduce((s, r) => s + r.numel, 0);
        zeros.zeros += z;
        zeros.samples += x.shape[0];
        if (z > 0) zeros.samplesWithZero += samplesWithZero(masks, x.shape[0]);
        if (z > 0) {
          const gb = gradientsWith(model, it.format, x, y, { reluAt0: 1 }, 0);
          const c = compareSets(ga, gb, it.firstLayer, firstName);
          A.disposeGradients(gb);
          if (!c.equal) {
            out.differsAt = i;
            out.D = c.D;
            out.zerosAtDiff = z;
            out.structuralZerosAtDiff = it.format === 'fp64' ? z : structuralZeros(masks, m64, x).structural;
            out.structural = out.structuralZerosAtDiff === z;
          }
        }
      } finally {
        for (const t of masks) t.dispose();
        A.disposeGradients(ga);
        x.dispose();
        y.dispose();
      }
      if (out.differsAt !== null) break;
    }
  } finally {
    m32.dispose();
    m64.dispose();
  }
  return out;
}

/** Minibatches [from, to) of one θ of Boustany's protocol: D per minibatch, native vs β = 1. */
export function runMaxpoolItem(it: MaxpoolItem, d: DataSplit): MaxpoolResult {
  const m32 = boustanyVgg11(d.x.shape[1], it.width, thetaSeed(it.draw));
  const model = it.format === 'fp64' ? m32.to('float64') : m32;
  const batches: MaxpoolBatch[] = [];
  try {
    for (let i = it.from; i < it.to; i++) {
      const [x, y] = sequentialBatch(d, i, it.batch);
      const ties: keel.audit.TieRecord[] = [];
      const [ga, gb] = maxpoolGradientPair(model, it.format, x, y, 0, ties);
      const c = A.compareGradients(ga, gb);
      A.disposeGradients(ga);
      A.disposeGradients(gb);
      x.dispose();
      y.dispose();
      batches.push({ i, D: c.sumInfNorm, scale: c.scale, equal: c.equal, tiedWindows: ties.reduce((s, t) => s + t.tiedWindows, 0) });
    }
  } finally {
    model.dispose();
    if (model !== m32) m32.dispose();
  }
  return { batches };
}
