// `keel repro stable`: the depth experiments of Haber & Ruthotto (2017) on
// the paper's data sets, for every architecture in keel.stable.
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
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enableGrad, noGrad } from '../../core/autograd.js';
import { manualSeed, randn, tensor } from '../../core/creation.js';
import { scope } from '../../core/memory.js';
import type { Tensor } from '../../core/tensor.js';
import { writeFileAtomic } from '../../io/atomic.js';
import * as ops from '../../ops/index.js';
import { crossEntropy } from '../../losses/classification.js';
import { Adam } from '../../optim/adam.js';
import { analyzeBlock } from '../../stable/analyze.js';
import type { Architecture, InitName } from '../../stable/block.js';
import { ARCHITECTURES, makeBlock } from '../../stable/factory.js';
import { inputGradientNorm, perturbationGrowth } from '../../stable/growth.js';
import { StableNet } from '../../stable/network.js';
import { ellipses, fashionMnistSubset, peaks, swissRoll, type DataSet } from './data.js';
import { classMap, plot, PALETTE, type Series } from './svg.js';

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
  fmnist: { nTrain: number; nVal: number; channels: number; depths: number[]; iters: number; batch: number; T: number } | null;
  log: (s: string) => void;
}

export function defaultConfig(quick: boolean, out: string): StableConfig {
  return quick
    ? {
      quick, out, seed: 0, initDepths: [4, 16, 64, 256], initH: 0.1, initWidth: 8, gamma: 0.5,
      datasets: ['swiss-roll', 'peaks', 'ellipses'], trainDepths: [4, 8, 16, 32], T: 5, itersPerLevel: 30, lr: 2e-2,
      fmnist: { nTrain: 256, nVal: 256, channels: 4, depths: [4], iters: 8, batch: 128, T: 1 },
      log: console.log,
    }
    : {
      quick, out, seed: 0, initDepths: [4, 16, 64, 256, 1024], initH: 0.1, initWidth: 8, gamma: 0.5,
      datasets: ['swiss-roll', 'peaks', 'ellipses'], trainDepths: [4, 8, 16, 32, 64, 128, 256], T: 5, itersPerLevel: 100, lr: 1e-2,
      fmnist: { nTrain: 2000, nVal: 1000, channels: 8, depths: [4, 8, 16], iters: 40, batch: 100, T: 1 },
      log: console.log,
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
  ms: number;
}

const fin = (v: number): number | null => (Number.isFinite(v) ? v : null);

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

function partA(cfg: StableConfig): InitRow[] {
  const rows: InitRow[] = [];
  for (const activation of ['tanh', 'identity'] as const) {
    for (const arch of ARCHITECTURES) {
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
    }
  }
  return rows;
}

function load(name: string, cfg: StableConfig): DataSet {
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

interface Measured { growth: number; gradNorm: number; reMin: number | null; reMax: number | null; imMaxAbs: number | null; inRegion: boolean | null; eig?: { re: number[]; im: number[] } }

function measure(net: StableNet, x: Tensor, y: Tensor, withEig: boolean): Measured {
  return scope(() => {
    const Y0 = noGrad(() => net.open(x)).detach();
    const f = (u: Tensor): Tensor => net.block.forward(u);
    const growth = perturbationGrowth(f, Y0, { eps: 1e-4, trials: 2 });
    const gradNorm = inputGradientNorm(f, Y0, (o) => crossEntropy(net.classify(o), y));
    if (!withEig) return { growth, gradNorm, reMin: null, reMax: null, imMaxAbs: null, inRegion: null };
    const a = analyzeBlock(net.block, Y0);
    const eig = { re: a.layers.flatMap((l) => l.eigenvalues.re), im: a.layers.flatMap((l) => l.eigenvalues.im) };
    return { growth, gradNorm, reMin: a.spectrum.reMin, reMax: a.spectrum.reMax, imMaxAbs: a.spectrum.imMaxAbs, inRegion: a.stable, eig };
  });
}

interface TrainOut { rows: TrainRow[]; eig: { re: number[]; im: number[]; h: number } | null; boundary: number[][] | null }

function trainMultilevel(ds: DataSet, arch: Architecture, depths: number[], T: number, iters: number, lr: number, cfg: StableConfig, batch: number | null, channels: number): TrainOut {
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
    const valAccuracy = accuracy(net, ds.val.x, ds.val.y);
    const nv = Math.min(ds.val.x.shape[0], points ? 200 : 64);
    const withEig = points;
    const m = measure(net, ds.val.x.narrow(0, 0, nv), ds.val.y.narrow(0, 0, nv), withEig);
    if (m.eig) eig = { ...m.eig, h: net.block.h };
    rows.push({ dataset: ds.name, architecture: arch, depth: net.block.depth, h: net.block.h, trainLoss: lastLoss, valAccuracy, growth: m.growth, gradNorm: m.gradNorm, reMin: m.reMin, reMax: m.reMax, imMaxAbs: m.imMaxAbs, inRegion: m.inRegion, ms: Date.now() - t0 });
    const r = rows[rows.length - 1];
    cfg.log(`  ${ds.name.padEnd(13)} ${arch.padEnd(13)} N=${String(r.depth).padStart(4)} h=${r.h.toPrecision(3).padEnd(6)} loss=${r.trainLoss.toFixed(3)} val=${(100 * r.valAccuracy).toFixed(1)}% growth=${r.growth.toExponential(2)} |dL/dY0|=${r.gradNorm.toExponential(2)} (${r.ms} ms)`);
  }
  const boundary = points && ds.box ? predictGrid(net, ds.box, cfg.quick ? 30 : 60) : null;
  return { rows, eig, boundary };
}

// ---- plots ----

function regionUnderlay(h: number): (sx: (x: number) => number, sy: (y: number) => number) => string {
  // in hλ coordinates: forward Euler's disc |1 + z| ≤ 1 and leapfrog/Verlet's segment (−2i, 2i)
  return (sx, sy) => {
    const cx = sx(-1), cy = sy(0), rx = Math.abs(sx(0) - sx(-1)), ry = Math.abs(sy(1) - sy(0));
    void h;
    return `<ellipse cx="${cx}" cy="${cy}" rx="${rx}" ry="${ry}" fill="#ccc" fill-opacity="0.35" stroke="#999"/>`
      + `<line x1="${sx(0)}" y1="${sy(-2)}" x2="${sx(0)}" y2="${sy(2)}" stroke="#555" stroke-width="3" stroke-opacity="0.5"/>`;
  };
}

function eigPlot(title: string, sets: { name: string; re: number[]; im: number[]; h: number }[]): string {
  const series: Series[] = sets.map((s, i) => ({ name: s.name, x: s.re.map((v) => v * s.h), y: s.im.map((v) => v * s.h), color: PALETTE[i % PALETTE.length] }));
  const all = series.flatMap((s) => [...s.x, ...s.y.map(Math.abs)]).filter(Number.isFinite);
  const R = Math.min(Math.max(2.2, ...all.map(Math.abs)) * 1.05, 50);
  return plot(series, { title, xlabel: 'Re hλ', ylabel: 'Im hλ', xrange: [-R, R], yrange: [-R, R], underlay: regionUnderlay(1), equalAspect: true });
}

// ---- table ----

function fmtNum(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return v === null ? '—' : String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  return Math.abs(v) >= 1e3 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : v.toFixed(2);
}

export function table(head: string[], rows: (string | number | null | boolean)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' || c === null ? fmtNum(c) : String(c))));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => c.padStart(w[i])).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...cells.map(line)].join('\n');
}

export interface Verdict { claim: string; holds: boolean | null; evidence: string }

function verdicts(init: InitRow[], trained: TrainRow[], cfg: StableConfig): Verdict[] {
  const out: Verdict[] = [];
  const deep = Math.max(...cfg.initDepths.filter((d) => d <= 256));
  for (const act of ['identity', 'tanh']) {
    const g = (a: Architecture): number => init.find((r) => r.activation === act && r.architecture === a && r.depth === deep)?.growth ?? NaN;
    const res = g('resnet'), anti = g('antisymmetric'), ham = g('hamiltonian');
    out.push({
      claim: `(${act}) at depth ${deep}, h = ${cfg.initH}: Hamiltonian and antisymmetric (γ = ${cfg.gamma}) keep ‖δY_N‖/‖δY_0‖ bounded (≤ 10) while the forward-Euler ResNet grows (> 10)`,
      holds: ham <= 10 && anti <= 10 && res > 10,
      evidence: `growth resnet ${fmtNum(res)}, antisymmetric ${fmtNum(anti)}, hamiltonian ${fmtNum(ham)}`,
    });
  }
  const agree = init.filter((r) => r.activation === 'identity');
  const consistent = agree.filter((r) => (r.inRegion ? r.growth <= 10 : true)).length;
  out.push({
    claim: 'linear blocks: every block whose h·λ lies in its integrator\'s region has bounded growth (≤ 10)',
    holds: consistent === agree.length,
    evidence: `${consistent}/${agree.length} rows consistent`,
  });
  for (const ds of [...new Set(trained.map((r) => r.dataset))]) {
    const last = (a: Architecture): TrainRow | undefined => trained.filter((r) => r.dataset === ds && r.architecture === a).at(-1);
    const accs = ARCHITECTURES.map((a) => `${a} ${last(a) ? (100 * last(a)!.valAccuracy).toFixed(1) : '—'}%`).join(', ');
    const stableBest = Math.max(...(['antisymmetric', 'hamiltonian', 'leapfrog', 'parabolic'] as Architecture[]).map((a) => last(a)?.valAccuracy ?? 0));
    const res = last('resnet')?.valAccuracy ?? 0;
    out.push({ claim: `${ds}: a stable architecture reaches at least the ResNet's validation accuracy at the deepest trained depth`, holds: stableBest >= res - 1e-9, evidence: accs });
  }
  return out;
}

export async function runStable(cfg: StableConfig): Promise<{ init: InitRow[]; trained: TrainRow[]; verdicts: Verdict[]; files: string[] }> {
  mkdirSync(cfg.out, { recursive: true });
  const files: string[] = [];
  const write = (name: string, text: string): void => {
    writeFileAtomic(join(cfg.out, name), text);
    files.push(name);
  };
  const t0 = Date.now();
  cfg.log(`Part A: growth at initialisation, dense width ${cfg.initWidth}, h = ${cfg.initH}, time-constant random K (std 1/√n), γ = ${cfg.gamma}, float64`);
  const init = partA(cfg);
  cfg.log(table(['σ', 'architecture', 'N', 'T', '‖δY_N‖/‖δY_0‖', '‖∂L/∂Y_0‖', 'Re λ min', 'Re λ max', '|Im λ| max', 'hλ in region', 'max |R(hλ)|'],
    init.map((r) => [r.activation, r.architecture, r.depth, r.depth * r.h, r.growth, r.gradNorm, r.reMin, r.reMax, r.imMaxAbs, r.inRegion ? 'yes' : 'no', r.maxAmplification])));
  cfg.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  for (const act of ['tanh', 'identity']) {
    const series: Series[] = ARCHITECTURES.map((a, i) => {
      const rs = init.filter((r) => r.activation === act && r.architecture === a);
      return { name: a, x: rs.map((r) => Math.log2(r.depth)), y: rs.map((r) => r.growth), style: 'line', color: PALETTE[i] };
    });
    write(`growth-init-${act}.svg`, plot(series, { title: `perturbation growth at init (σ = ${act}, h = ${cfg.initH})`, xlabel: 'log2 depth N', ylabel: '‖δY_N‖/‖δY_0‖', logY: true }));
  }

  cfg.log(`\nPart B: multi-level training (T = ${cfg.T}, depths ${cfg.trainDepths.join('→')}, ${cfg.itersPerLevel} Adam steps per level, lr ${cfg.lr})`);
  const trained: TrainRow[] = [];
  for (const name of cfg.datasets) {
    scope(() => {
      const ds = load(name, cfg);
      const eigs: { name: string; re: number[]; im: number[]; h: number }[] = [];
      for (const arch of ARCHITECTURES) {
        const out = scope(() => trainMultilevel(ds, arch, cfg.trainDepths, cfg.T, cfg.itersPerLevel, cfg.lr, cfg, null, 0));
        trained.push(...out.rows);
        if (out.eig) eigs.push({ name: arch, ...out.eig });
        if (out.boundary && ds.box) {
          const val = ds.val.x.toArray<number[][]>();
          const lab = ds.val.y.toArray<number[]>();
          const series: Series[] = Array.from({ length: ds.classes }, (_, c) => ({ name: `class ${c}`, x: val.filter((_, i) => lab[i] === c).map((p) => p[0]), y: val.filter((_, i) => lab[i] === c).map((p) => p[1]), color: PALETTE[c], radius: 1.8 }));
          const last = out.rows.at(-1)!;
          write(`boundary-${name}-${arch}.svg`, plot(series, { title: `${name}, ${arch}, N = ${last.depth}: val ${(100 * last.valAccuracy).toFixed(1)}%`, xrange: [ds.box[0], ds.box[1]], yrange: [ds.box[2], ds.box[3]], underlay: classMap(out.boundary, ds.box), equalAspect: true }));
        }
      }
      if (eigs.length) write(`eigenvalues-${name}.svg`, eigPlot(`${name}: hλ of the trained blocks' RHS Jacobians (N = ${cfg.trainDepths.at(-1)})`, eigs));
      const series: Series[] = ARCHITECTURES.map((a, i) => {
        const rs = trained.filter((r) => r.dataset === name && r.architecture === a);
        return { name: a, x: rs.map((r) => Math.log2(r.depth)), y: rs.map((r) => 100 * r.valAccuracy), style: 'line', color: PALETTE[i] };
      });
      write(`accuracy-${name}.svg`, plot(series, { title: `${name}: validation accuracy vs depth (T = ${cfg.T})`, xlabel: 'log2 depth N', ylabel: 'accuracy %' }));
    });
  }
  if (cfg.fmnist) {
    const f = cfg.fmnist;
    cfg.log(`\nFashion-MNIST (budgeted: ${f.nTrain} train / ${f.nVal} test images, conv ${f.channels} channels at 14×14, T = ${f.T}, depths ${f.depths.join('→')}, ${f.iters} Adam steps of ${f.batch} per level; no eigenvalues: the state has ${2 * f.channels * 196}+ dimensions)`);
    scope(() => {
      const ds = fashionMnistSubset(f.nTrain, f.nVal, cfg.seed);
      for (const arch of ARCHITECTURES) {
        const out = scope(() => trainMultilevel(ds, arch, f.depths, f.T, f.iters, 3e-3, cfg, f.batch, f.channels));
        trained.push(...out.rows);
      }
      const series: Series[] = ARCHITECTURES.map((a, i) => {
        const rs = trained.filter((r) => r.dataset === 'fashion-mnist' && r.architecture === a);
        return { name: a, x: rs.map((r) => Math.log2(r.depth)), y: rs.map((r) => 100 * r.valAccuracy), style: 'line', color: PALETTE[i] };
      });
      write('accuracy-fashion-mnist.svg', plot(series, { title: 'Fashion-MNIST (subset): validation accuracy vs depth', xlabel: 'log2 depth N', ylabel: 'accuracy %' }));
    });
  }
  // eigenvalues at init, identity activation, deepest depth
  const deepest = Math.max(...cfg.initDepths);
  const initEigs = ARCHITECTURES.map((a) => scope(() => {
    manualSeed(cfg.seed + 1);
    const block = makeBlock(a, { kernel: { type: 'dense', width: cfg.initWidth }, depth: 4, h: cfg.initH, activation: 'tanh', dtype: 'float64', gamma: cfg.gamma, init: 'random' });
    const Y0 = ops.mul(randn([1, cfg.initWidth], { dtype: 'float64' }), 0.5);
    const an = analyzeBlock(block, Y0, { layers: [0] });
    block.K.dispose(); block.b.dispose();
    return { name: a, re: an.layers[0].eigenvalues.re, im: an.layers[0].eigenvalues.im, h: cfg.initH };
  }));
  write('eigenvalues-init.svg', eigPlot(`hλ at initialisation (tanh, h = ${cfg.initH}; disc: forward Euler, segment: Verlet/leapfrog)`, initEigs));
  void deepest;

  cfg.log('\n' + table(['data', 'architecture', 'N', 'h', 'train loss', 'val acc %', '‖δY_N‖/‖δY_0‖', '‖∂L/∂Y_0‖', 'Re λ min', 'Re λ max', '|Im λ| max', 'in region'],
    trained.map((r) => [r.dataset, r.architecture, r.depth, r.h, r.trainLoss, 100 * r.valAccuracy, r.growth, r.gradNorm, r.reMin, r.reMax, r.imMaxAbs, r.inRegion === null ? '—' : r.inRegion ? 'yes' : 'no'])));
  const v = verdicts(init, trained, cfg);
  cfg.log('\nClaims:');
  for (const x of v) cfg.log(`  [${x.holds === null ? '?' : x.holds ? 'holds' : 'FAILS'}] ${x.claim} — ${x.evidence}`);
  const results = {
    config: { ...cfg, log: undefined },
    wallSeconds: (Date.now() - t0) / 1000,
    init: init.map((r) => ({ ...r, growth: fin(r.growth), gradNorm: fin(r.gradNorm) })),
    trained: trained.map((r) => ({ ...r, growth: fin(r.growth), gradNorm: fin(r.gradNorm), trainLoss: fin(r.trainLoss) })),
    verdicts: v,
    files: [...files, 'results.json'],
  };
  write('results.json', JSON.stringify(results, null, 2));
  cfg.log(`\nwrote ${files.length} files to ${cfg.out} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { init, trained, verdicts: v, files };
}
