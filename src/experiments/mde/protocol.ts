// The study's protocol: the ablation grid, the seeds per precision, the
// training budget, and which configuration is "naive" (the paper's
// vulnerable baseline) and which is "safe" (every guideline applied).
import type { DepthHead, FinalInit } from './model.js';
import type { Budget, LossKind, Precision, RunConfig } from './run.js';

export interface Protocol {
  mode: 'quick' | 'default';
  budget: Budget;
  /** seeds per precision; a precision with 0 seeds is not run */
  seeds: Record<Precision, number>;
  /** which grid cells run in fp16/bf16: 'all' or only the naive + safe cells */
  lowPrecisionCells: 'all' | 'naive-and-safe';
  /** seeds for the guard part (naive config, fp32, the naive cell's batch streams) */
  guardSeeds: number;
  note: string;
}

export const LOSSES: LossKind[] = ['sqrt', 'safe'];
export const HEADS: DepthHead[] = ['log-sigmoid', 'log-sigmoid-floor', 'sigmoid'];
export const CORRECTIONS: (0 | 1)[] = [1, 0];
export const INITS: FinalInit[] = ['default', 'small'];
export const PRECISIONS: Precision[] = ['fp32', 'fp16', 'bf16'];

/** The paper's vulnerable baseline: sqrt SILog on a plain sigmoid head, unbiased variance, default init. */
export const NAIVE = { loss: 'sqrt', head: 'sigmoid', correction: 1, finalInit: 'default' } as const;
/** Every guideline: safe SILog, log-sigmoid with a floor, biased variance, small final init. */
export const SAFE = { loss: 'safe', head: 'log-sigmoid-floor', correction: 0, finalInit: 'small' } as const;

export type Cell = Omit<RunConfig, 'precision' | 'seed'>;

export function cellId(c: Cell): string {
  return `${c.loss}/${c.head}/${c.correction === 1 ? 'unbiased' : 'biased'}/${c.finalInit}`;
}

export function cells(): Cell[] {
  const out: Cell[] = [];
  for (const loss of LOSSES) for (const head of HEADS) for (const correction of CORRECTIONS) for (const finalInit of INITS) out.push({ loss, head, correction, finalInit });
  return out;
}

export function isNaive(c: Cell): boolean {
  return c.loss === NAIVE.loss && c.head === NAIVE.head && c.correction === NAIVE.correction && c.finalInit === NAIVE.finalInit;
}
export function isSafe(c: Cell): boolean {
  return c.loss === SAFE.loss && c.head === SAFE.head && c.correction === SAFE.correction && c.finalInit === SAFE.finalInit;
}

export function makeProtocol(quick: boolean, overrides: { seeds?: number; steps?: number; lowSeeds?: number } = {}): Protocol {
  // The stress regime: 32×32 scenes, 24×24 random crops, batch 2, LiDAR-like
  // ground truth of 4 beams keeping 6 % of the pixels on each — about 8 valid
  // pixels per batch, so now and then a crop holds 0 or 1 (measured and
  // reported as P(N = 0), P(N = 1)).
  const budget: Budget = {
    imageSize: 32, crop: 24, batchSize: 2, steps: quick ? 10 : 100, trainExamples: quick ? 64 : 512, valExamples: quick ? 8 : 64,
    width: 4, depth: 2, lr: 2e-3, weightDecay: 1e-4, maxDepth: 20,
    // --quick thins the beams (2.5 %) so that a 12-step smoke run meets empty and one-pixel crops
    sparse: { pattern: 'scanlines', density: quick ? 0.025 : 0.06, lines: 4 },
  };
  if (overrides.steps !== undefined) budget.steps = overrides.steps;
  const s = overrides.seeds ?? (quick ? 1 : 10);
  const low = overrides.lowSeeds ?? (quick ? 1 : 10);
  return {
    mode: quick ? 'quick' : 'default',
    budget,
    seeds: { fp32: s, fp16: low, bf16: low },
    lowPrecisionCells: quick ? 'naive-and-safe' : 'all',
    guardSeeds: quick ? 1 : Math.min(s, 5),
    note: quick
      ? `--quick smoke run: 1 seed, ${budget.steps} steps, sparser beams (${budget.sparse.density}); rates from it are not evidence`
      : `budgeted for one CPU core: ${budget.imageSize}×${budget.imageSize} scenes, ${budget.crop}×${budget.crop} crops, batch ${budget.batchSize}, ${budget.steps} AdamW steps (lr ${budget.lr}), U-Net width ${budget.width} depth ${budget.depth}; ${s} seeds in fp32, ${low} in emulated fp16 and bf16`,
  };
}

export interface RunSpec extends RunConfig {
  id: string;
  cell: string;
}

export function runSpecs(p: Protocol): RunSpec[] {
  // each (cell, seed) has its own batch stream, so runs of different cells are
  // independent samples; the precisions share it (paired with fp32)
  const out: RunSpec[] = [];
  for (const precision of PRECISIONS) {
    for (const [ci, c] of cells().entries()) {
      if (precision !== 'fp32' && p.lowPrecisionCells === 'naive-and-safe' && !isNaive(c) && !isSafe(c)) continue;
      for (let seed = 0; seed < p.seeds[precision]; seed++) {
        out.push({ ...c, precision, seed, dataStream: 1000 * seed + ci, cell: cellId(c), id: `${precision}/${cellId(c)}/s${seed}` });
      }
    }
  }
  return out;
}
