// `keel repro stable`: the depth experiments of Haber & Ruthotto (2017) on
// the paper's data sets, for every architecture in keel.stable — what one run
// of the grid (grid.ts, study.ts) measures.
//
// Part A (stability at initialisation, fixed h): a dense block of width 8
// with time-constant random weights (Meganet's repmat start), tanh and the
// linear (identity) activation, depth 4 … 1024 at the same h: perturbation
// growth ‖δY_N‖/‖δY_0‖, input gradient ‖∂L/∂Y_0‖ (L = ⟨c, Y_N⟩, c fixed),
// the Jacobian eigenvalues and the integrator's region check.
//
// Part B (training): each data set × architecture trained by the multi-level
// scheme (N = 4, 8, …: train, prolong to 2N with h/2, continue) at fixed T,
// full-batch Adam on cross-entropy + α_K·smoothness + α_W weight decay
// (Meganet uses Gauss-Newton with variable projection; we use Adam, the
// toolkit's optimizer). After each level: validation accuracy, perturbation
// growth and input-gradient norm of the trained block on validation inputs,
// eigenvalue ranges of the RHS Jacobian along a validation trajectory.
import { enableGrad, noGrad } from '../../core/autograd.js';
import { manualSeed, randn, tensor } from '../../core/creation.js';
import { scope } from '../../core/memory.js';
import type { Tensor } from '../../core/tensor.js';
import * as ops from '../../ops/index.js';
import { crossEntropy } from '../../losses/classification.js';
import { Adam } from '../../optim/adam.js';
import { analyzeBlock, type BlockAnalysis } from '../../stable/analyze.js';
import type { Architecture, InitName } from '../../stable/block.js';
import { makeBlock } from '../../stable/factory.js';
import { inputGradientNorm, perturbationGrowth } from '../../stable/growth.js';
import { StableNet } from '../../stable/network.js';
import { ellipses, fashionMnistSubset, peaks, swissRoll, type DataSet } from './data.js';

export interface StableConfig {
  quick: boolean;
  out: string;
  seed: number;
  /** Part A */
  initDepths: number[];
  initH: number;
  initWidth: number;
  gamma: number;
  /** Part B */
  datasets: string[];
  trainDepths: number[];
  T: number;
  itersPerLevel: number;
  lr: number;
  /** Fashion-MNIST multi-level training: `iters[l]` Adam steps of `batch` images at `depths[l]`, on `threads` libtorch threads */
  fmnist: FashionConfig | null;
  /** Part C: conv blocks at initialisation on Fashion-MNIST states, the same h for every depth (Part A's experiment in the image state space) */
  convInit: { depths: number[]; h: number; channels: number; images: number } | null;
  /** matrix-free eigenvalues of the conv blocks (analyze.ts 'arnoldi'): k of each kind, Krylov dimension, restarts, which layers (fractions of the depth) */
  krylov: { k: number; steps: number; restarts: number; layers: number[] };
}

export interface FashionConfig { nTrain: number; nVal: number; channels: number; depths: number[]; iters: number[]; batch: number; T: number; lr: number; threads: number }

export function defaultConfig(quick: boolean, out: string): StableConfig {
  return quick
    ? {
      quick, out, seed: 0, initDepths: [4, 16, 64, 256], initH: 0.1, initWidth: 8, gamma: 0.5,
      datasets: ['swiss-roll', 'peaks', 'ellipses'], trainDepths: [4, 8, 16, 32], T: 5, itersPerLevel: 30, lr: 2e-2,
      fmnist: { nTrain: 256, nVal: 256, channels: 4, depths: [4, 8], iters: [8, 4], batch: 128, T: 1, lr: 3e-3, threads: 1 },
      convInit: { depths: [4, 64], h: 0.1, channels: 4, images: 4 },
      krylov: { k: 4, steps: 24, restarts: 4, layers: [0, 1] },
    }
    : {
      quick, out, seed: 0, initDepths: [4, 16, 64, 256, 1024], initH: 0.1, initWidth: 8, gamma: 0.5,
      datasets: ['swiss-roll', 'peaks', 'ellipses'], trainDepths: [4, 8, 16, 32, 64, 128, 256], T: 5, itersPerLevel: 100, lr: 1e-2,
      // budget: ≈ 3 s per Adam step of 100 images at N = 256 on 1 thread (2 threads were slower on this shared 2-core machine);
      // the deep levels fine-tune what the coarse ones learnt, so the steps per level fall with depth
      fmnist: { nTrain: 5000, nVal: 1000, channels: 8, depths: [4, 8, 16, 32, 64, 128, 256], iters: [150, 150, 100, 80, 50, 40, 30], batch: 100, T: 1, lr: 3e-3, threads: 1 },
      convInit: { depths: [4, 16, 64, 256], h: 0.1, channels: 8, images: 16 },
      krylov: { k: 6, steps: 40, restarts: 8, layers: [0, 0.5, 1] },
    };
}

export interface InitRow {
  activation: string;
  architecture: Architecture;
  depth: number;
  h: number;
  growth: number;
  gradNorm: number;
  reMin: number;
  reMax: number;
  imMaxAbs: number;
  inRegion: boolean;
  maxAmplification: number;
}

export interface TrainRow {
  dataset: string;
  architecture: Architecture;
  depth: number;
  h: number;
  trainLoss: number;
  valAccuracy: number;
  growth: number;
  gradNorm: number;
  reMin: number | null;
  reMax: number | null;
  imMaxAbs: number | null;
  inRegion: boolean | null;
  /** the whole level: training and measurements */
  ms: number;
  /** Adam steps at this level and the training time per step */
  iters: number;
  msPerStep: number | null;
  /** conv blocks: the matrix-free eigenvalue estimate's bookkeeping */
  krylov?: KrylovSummary;
}

/** Meganet's starting weights per architecture (see block.ts InitName). */
function trainingInit(arch: Architecture): { init: InitName; initScale: number } {
  if (arch === 'hamiltonian') return { init: 'identity', initScale: 1 };
  if (arch === 'antisymmetric') return { init: 'zeros', initScale: 1 };
  return { init: 'random', initScale: 0.1 };
}

/** Meganet's regularisation weights: Hamiltonian α = 5e-3, α_W = 1e-4; antisymmetric 5e-4, 1e-3; others 1e-3 (ours). */
function regWeights(arch: Architecture): { alphaK: number; alphaW: number } {
  if (arch === 'hamiltonian') return { alphaK: 5e-3, alphaW: 1e-4 };
  if (arch === 'antisymmetric') return { alphaK: 5e-4, alphaW: 1e-3 };
  return { alphaK: 1e-3, alphaW: 1e-3 };
}

/** Part A for one activation and architecture: the block at every depth of cfg.initDepths, the same h and seed. */
export function initRows(cfg: StableConfig, activation: 'tanh' | 'identity', arch: Architecture): InitRow[] {
  const rows: InitRow[] = [];
  for (const depth of cfg.initDepths) {
    scope(() => {
      manualSeed(cfg.seed + 1);
      const block = makeBlock(arch, { kernel: { type: 'dense', width: cfg.initWidth }, depth, h: cfg.initH, activation, dtype: 'float64', gamma: cfg.gamma, init: 'random' });
      const Y0 = ops.mul(randn([16, cfg.initWidth], { dtype: 'float64' }), 0.5);
      const c = randn([16, cfg.initWidth], { dtype: 'float64' });
      const f = (y: Tensor): Tensor => block.forward(y);
      const growth = perturbationGrowth(f, Y0);
      const gradNorm = inputGradientNorm(f, Y0, (o) => ops.sum(ops.mul(o, c)));
      const a = analyzeBlock(block, Y0, { layers: [0, Math.floor((depth - 1) / 2), depth - 1] });
      rows.push({ activation, architecture: arch, depth, h: cfg.initH, growth, gradNorm, reMin: a.spectrum.reMin, reMax: a.spectrum.reMax, imMaxAbs: a.spectrum.imMaxAbs, inRegion: a.stable, maxAmplification: a.maxAmplification });
      block.K.dispose(); block.b.dispose();
    });
  }
  return rows;
}

/** hλ at initialisation of a depth-4 tanh block (layer 0) for the eigenvalue plot. */
export function initEigenvalues(cfg: StableConfig, arch: Architecture): { re: number[]; im: number[]; h: number } {
  return scope(() => {
    manualSeed(cfg.seed + 1);
    const block = makeBlock(arch, { kernel: { type: 'dense', width: cfg.initWidth }, depth: 4, h: cfg.initH, activation: 'tanh', dtype: 'float64', gamma: cfg.gamma, init: 'random' });
    const Y0 = ops.mul(randn([1, cfg.initWidth], { dtype: 'float64' }), 0.5);
    const an = analyzeBlock(block, Y0, { layers: [0] });
    block.K.dispose(); block.b.dispose();
    return { re: an.layers[0].eigenvalues.re, im: an.layers[0].eigenvalues.im, h: cfg.initH };
  });
}

export interface ConvInitRow extends InitRow { krylov: KrylovSummary }


/**
 * Part C: Part A's experiment in the image state space — conv blocks
 * (time-constant random K, std 1/√fanIn; γ as Part A) behind a random conv
 * opening, on the first Fashion-MNIST validation images, float64, the same h
 * at every depth (so T = N·h grows): growth, ‖∂L/∂Y_0‖ for L = ⟨c, Y_N⟩, and
 * the matrix-free eigenvalues at layer 0.
 */
export function convInitRows(cfg: StableConfig, ds: DataSet, activation: 'tanh' | 'identity', arch: Architecture): ConvInitRow[] {
  const c = cfg.convInit!;
  const kr = cfg.krylov;
  const rows: ConvInitRow[] = [];
  for (const depth of c.depths) {
    scope(() => {
      const x = ds.val.x.narrow(0, 0, c.images).to('float64');
      manualSeed(cfg.seed + 2);
      const net = new StableNet({ architecture: arch, kernel: { type: 'conv', channels: c.channels, kernelSize: 3 }, opening: { type: 'conv', inChannels: 1, imageSize: 28 }, classes: ds.classes, depth, h: c.h, activation, dtype: 'float64', gamma: cfg.gamma, init: 'random' });
      try {
        const Y0 = noGrad(() => net.open(x)).detach();
        const cv = randn(Y0.shape, { dtype: 'float64' });
        const f = (y: Tensor): Tensor => net.block.forward(y);
        const growth = perturbationGrowth(f, Y0, { trials: 2 });
        const gradNorm = inputGradientNorm(f, Y0, (o) => ops.sum(ops.mul(o, cv)));
        const a = analyzeBlock(net.block, Y0, { method: 'arnoldi', k: kr.k, steps: kr.steps, restarts: kr.restarts, layers: [0] });
        rows.push({ activation, architecture: arch, depth, h: c.h, growth, gradNorm, reMin: a.spectrum.reMin, reMax: a.spectrum.reMax, imMaxAbs: a.spectrum.imMaxAbs, inRegion: a.stable, maxAmplification: a.maxAmplification, krylov: krylovSummary(a) });
      } finally {
        net.dispose();
      }
    });
  }
  return rows;
}

/** A data set of the protocol: the 2-D sets at their (quick) sizes, the Fashion-MNIST subset of cfg.fmnist. */
export function loadDataSet(name: string, cfg: StableConfig): DataSet {
  if (name === 'fashion-mnist') {
    if (!cfg.fmnist) throw new Error('stable: fashion-mnist runs need cfg.fmnist');
    return fashionMnistSubset(cfg.fmnist.nTrain, cfg.fmnist.nVal, cfg.seed);
  }
  if (name === 'swiss-roll') return swissRoll(cfg.quick ? 64 : 256);
  if (name === 'peaks') return peaks(cfg.quick ? 500 : 2000, cfg.quick ? 250 : 1000, cfg.seed);
  if (name === 'ellipses') return ellipses(cfg.quick ? 150 : 1000, cfg.quick ? 100 : 200, cfg.seed);
  throw new Error(`unknown data set ${name}`);
}

function accuracy(net: StableNet, x: Tensor, y: Tensor): number {
  return scope(() => noGrad(() => {
    const pred = ops.argmax(net.forward(x), 1);
    return (ops.sum(ops.eq(pred, y)).item() as number) / y.shape[0];
  }));
}

function predictGrid(net: StableNet, box: [number, number, number, number], n: number): number[][] {
  return scope(() => noGrad(() => {
    const pts: number[][] = [];
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) pts.push([box[0] + ((k + 0.5) * (box[1] - box[0])) / n, box[2] + ((i + 0.5) * (box[3] - box[2])) / n]);
    const pred = ops.argmax(net.forward(tensor(pts)), 1).toArray<number[]>();
    return Array.from({ length: n }, (_, i) => pred.slice(i * n, (i + 1) * n));
  }));
}

interface Measured { growth: number; gradNorm: number; reMin: number | null; reMax: number | null; imMaxAbs: number | null; inRegion: boolean | null; eig?: { re: number[]; im: number[] }; krylov?: KrylovSummary }

/** What the matrix-free path reports besides the ranges: how many Ritz values, how many resolved, the largest residual. */
export interface KrylovSummary { n: number; layers: number[]; ritz: number; resolved: number; maxResidual: number; maxAmplification: number }

/** Layers at the given fractions of the depth (0 = first, 1 = last). */
function layersAt(fractions: number[], depth: number): number[] {
  return [...new Set(fractions.map((f) => Math.round(f * (depth - 1))))];
}

function measure(net: StableNet, x: Tensor, y: Tensor, eigMethod: 'dense' | 'arnoldi' | null, cfg: StableConfig): Measured {
  return scope(() => {
    const Y0 = noGrad(() => net.open(x)).detach();
    const f = (u: Tensor): Tensor => net.block.forward(u);
    const growth = perturbationGrowth(f, Y0, { eps: 1e-4, trials: 2 });
    const gradNorm = inputGradientNorm(f, Y0, (o) => crossEntropy(net.classify(o), y));
    if (!eigMethod) return { growth, gradNorm, reMin: null, reMax: null, imMaxAbs: null, inRegion: null };
    const kr = cfg.krylov;
    const a = eigMethod === 'dense'
      ? analyzeBlock(net.block, Y0, { method: 'dense' })
      : analyzeBlock(net.block, Y0, { method: 'arnoldi', k: kr.k, steps: kr.steps, restarts: kr.restarts, layers: layersAt(kr.layers, net.block.depth) });
    const eig = { re: a.layers.flatMap((l) => l.eigenvalues.re), im: a.layers.flatMap((l) => l.eigenvalues.im) };
    const krylov = eigMethod === 'arnoldi' ? krylovSummary(a) : undefined;
    return { growth, gradNorm, reMin: a.spectrum.reMin, reMax: a.spectrum.reMax, imMaxAbs: a.spectrum.imMaxAbs, inRegion: a.stable, eig, ...(krylov ? { krylov } : {}) };
  });
}

function krylovSummary(a: BlockAnalysis): KrylovSummary {
  const res = a.layers.flatMap((l) => l.residuals ?? []);
  return { n: a.n, layers: a.layers.map((l) => l.layer), ritz: res.length, resolved: a.spectrum.count, maxResidual: Math.max(0, ...res), maxAmplification: a.maxAmplification };
}

export interface TrainOut { rows: TrainRow[]; eig: { re: number[]; im: number[]; h: number } | null; boundary: number[][] | null }

export function trainMultilevel(ds: DataSet, arch: Architecture, depths: number[], T: number, itersPerLevel: number | number[], lr: number, cfg: StableConfig, batch: number | null, channels: number): TrainOut {
  manualSeed(cfg.seed);
  const points = ds.kind === 'points';
  const net = new StableNet({
    architecture: arch,
    kernel: points ? { type: 'dense', width: 4 } : { type: 'conv', channels, kernelSize: 3 },
    opening: points ? { type: 'pad', inFeatures: 2 } : { type: 'conv', inChannels: 1, imageSize: 28 },
    classes: ds.classes,
    depth: depths[0],
    T,
    gamma: 0.1,
    ...trainingInit(arch),
  });
  const reg = regWeights(arch);
  const rows: TrainRow[] = [];
  let eig: TrainOut['eig'] = null;
  const nTrain = ds.train.x.shape[0];
  let cursor = 0;
  for (let level = 0; level < depths.length; level++) {
    if (level > 0) while (net.block.depth < depths[level]) net.prolong();
    const iters = typeof itersPerLevel === 'number' ? itersPerLevel : itersPerLevel[level];
    const t0 = Date.now();
    const opt = new Adam(net.parameters(), { lr });
    let lastLoss = NaN;
    for (let it = 0; it < iters; it++) {
      scope(() => {
        let x = ds.train.x, y = ds.train.y;
        if (batch !== null && batch < nTrain) {
          if (cursor + batch > nTrain) cursor = 0;
          x = ds.train.x.narrow(0, cursor, batch);
          y = ds.train.y.narrow(0, cursor, batch);
          cursor += batch;
        }
        opt.zeroGrad();
        const { loss } = enableGrad(() => net.objective(x, y, reg));
        const v = loss.item() as number;
        lastLoss = v;
        if (!Number.isFinite(v)) return; // an unstable step: skip the update
        loss.backward();
        opt.step();
      });
    }
    const trainMs = Date.now() - t0;
    const valAccuracy = accuracy(net, ds.val.x, ds.val.y);
    const nv = Math.min(ds.val.x.shape[0], points ? 200 : 64);
    const m = measure(net, ds.val.x.narrow(0, 0, nv), ds.val.y.narrow(0, 0, nv), points ? 'dense' : 'arnoldi', cfg);
    if (m.eig) eig = { ...m.eig, h: net.block.h };
    rows.push({ dataset: ds.name, architecture: arch, depth: net.block.depth, h: net.block.h, trainLoss: lastLoss, valAccuracy, growth: m.growth, gradNorm: m.gradNorm, reMin: m.reMin, reMax: m.reMax, imMaxAbs: m.imMaxAbs, inRegion: m.inRegion, ms: Date.now() - t0, iters, msPerStep: iters > 0 ? trainMs / iters : null, ...(m.krylov ? { krylov: m.krylov } : {}) });
  }
  const boundary = points && ds.box ? predictGrid(net, ds.box, cfg.quick ? 30 : 60) : null;
  return { rows, eig, boundary };
}
