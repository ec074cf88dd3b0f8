// The cause sweep of the MDE study (`keel repro mde --causes`, issue 17 §2):
// for each NaN cause the paper names beyond the unbiased variance, a small
// grid of settings (SILog's λ, precision, decoder feature scale, learning
// rate, max depth) where every run is made twice — with the cause and with
// its fix, everything else equal — over the same number of seeds.
//
//   sqrt         sqrt SILog √(mean d² − λ·mean(d)²) vs the safe SILog (eps
//                inside the sqrt): with the biased variance the argument is
//                var(d) + (1 − λ)·mean(d)², exactly 0 when λ = 1 and the
//                batch holds one valid pixel, where sqrt's gradient is ∞
//   log-sigmoid  the sigmoid·maxDepth head whose log the loss takes vs the
//                log-sigmoid head with a floor: log(σ(z)) is −inf once σ(z)
//                underflows (z below ≈ −17 in fp16, ≈ −104 in fp32), and
//                log's backward 1/x overflows fp16 already for x < 1/65504
//   init         torch's default init of the final conv vs N(0, 0.001²)
//                (GLPDepth's): the size of the first logits, so the same
//                saturation mechanisms as log-sigmoid
//
// Each (cause, setting, arm, seed) has its own batch stream, so the two arms
// are independent samples for Fisher's test; the model seed is the seed.
import type { NaNCause, Precision, RunConfig, Budget } from './run.js';
import { makeProtocol } from './protocol.js';

export type CauseId = 'sqrt' | 'log-sigmoid' | 'init';
export type Arm = 'cause' | 'fix';

/** The knobs a cause's settings range over (their product is its grid). */
export interface Knobs {
  lambda: number[];
  precision: Precision[];
  featureScale: number[];
  lr: number[];
  maxDepth: number[];
}

type Variant = Pick<RunConfig, 'loss' | 'head' | 'correction' | 'finalInit'>;

export interface CauseSweep {
  id: CauseId;
  /** what the paper names */
  name: string;
  /** the NaN mechanisms the cause acts through (run.ts causeOf): only these NaN runs count for it */
  mechanisms: NaNCause[];
  /** what both arms share */
  base: Variant;
  /** what each arm sets over the base, and its name in the table */
  cause: { label: string; set: Partial<Variant> };
  fix: { label: string; set: Partial<Variant> };
  knobs: Knobs;
}

export interface Setting {
  lambda: number;
  precision: Precision;
  featureScale: number;
  lr: number;
  maxDepth: number;
}

export interface CausesProtocol {
  mode: 'quick' | 'default';
  /** the shared budget; each setting overrides its lr and maxDepth */
  budget: Budget;
  /** seeds per (setting, arm) */
  seeds: number;
  causes: CauseSweep[];
  note: string;
}

/** The paper's baseline (Kim et al. 2023, GLPDepth): AdamW at 5e-4, SILog λ = 0.5, max depth 20 in this study's scenes. */
export const PAPER_LR = 5e-4;

/** A saturated sigmoid under a log: its value −inf (σ underflowed to 0), or its gradient 1/x past the format's range. */
const SATURATION: NaNCause[] = ['sigmoid underflow, log 0', 'saturated sigmoid, log gradient overflow'];

export const CAUSES: CauseSweep[] = [
  {
    id: 'sqrt', name: 'square root of SILog near 0', mechanisms: ['sqrt at 0'],
    base: { loss: 'sqrt', head: 'sigmoid', correction: 0, finalInit: 'default' },
    cause: { label: 'sqrt SILog', set: { loss: 'sqrt' } },
    fix: { label: 'safe SILog', set: { loss: 'safe' } },
    knobs: { lambda: [0.5, 0.85, 1], precision: ['fp32', 'bf16', 'fp16'], featureScale: [1], lr: [PAPER_LR], maxDepth: [20] },
  },
  {
    id: 'log-sigmoid', name: 'log of a saturated sigmoid', mechanisms: SATURATION,
    base: { loss: 'sqrt', head: 'sigmoid', correction: 0, finalInit: 'default' },
    cause: { label: 'σ·max head, log in the loss', set: { head: 'sigmoid' } },
    fix: { label: 'log-σ head with a floor', set: { head: 'log-sigmoid-floor' } },
    knobs: { lambda: [0.5], precision: ['fp32', 'bf16', 'fp16'], featureScale: [1, 10, 100], lr: [PAPER_LR], maxDepth: [20, 80] },
  },
  {
    id: 'init', name: 'final-layer initialisation', mechanisms: SATURATION,
    base: { loss: 'sqrt', head: 'sigmoid', correction: 0, finalInit: 'default' },
    cause: { label: 'default init', set: { finalInit: 'default' } },
    fix: { label: 'N(0, 0.001²) init', set: { finalInit: 'small' } },
    knobs: { lambda: [0.5], precision: ['fp32', 'fp16'], featureScale: [1, 10, 100], lr: [PAPER_LR, 5e-3], maxDepth: [20] },
  },
];

export function settingsOf(k: Knobs): Setting[] {
  const out: Setting[] = [];
  for (const lambda of k.lambda) for (const precision of k.precision) for (const featureScale of k.featureScale) for (const lr of k.lr) for (const maxDepth of k.maxDepth) out.push({ lambda, precision, featureScale, lr, maxDepth });
  return out;
}

/** The setting in the words of the table: only the knobs this cause varies. */
export function settingLabel(s: Setting, k: Knobs): string {
  const parts: string[] = [];
  if (k.lambda.length > 1) parts.push(`λ ${s.lambda}`);
  if (k.precision.length > 1) parts.push(s.precision);
  if (k.featureScale.length > 1) parts.push(`scale ${s.featureScale}`);
  if (k.lr.length > 1) parts.push(`lr ${s.lr}`);
  if (k.maxDepth.length > 1) parts.push(`max ${s.maxDepth} m`);
  return parts.join(', ');
}

/** The knobs this cause holds fixed, in words. */
export function fixedKnobs(k: Knobs): string {
  const parts: string[] = [];
  if (k.lambda.length === 1) parts.push(`λ ${k.lambda[0]}`);
  if (k.precision.length === 1) parts.push(k.precision[0]);
  if (k.featureScale.length === 1) parts.push(`feature scale ${k.featureScale[0]}`);
  if (k.lr.length === 1) parts.push(`lr ${k.lr[0]}`);
  if (k.maxDepth.length === 1) parts.push(`max depth ${k.maxDepth[0]} m`);
  return parts.join(', ');
}

/** The sweep's knob lists, for a verdict that says what was tried. */
export function knobsText(k: Knobs): string {
  return `λ ∈ {${k.lambda.join(', ')}}, precision ∈ {${k.precision.join(', ')}}, feature scale ∈ {${k.featureScale.join(', ')}}, lr ∈ {${k.lr.join(', ')}}, max depth ∈ {${k.maxDepth.join(', ')}} m`;
}

export function makeCausesProtocol(quick: boolean, overrides: { seeds?: number; steps?: number } = {}): CausesProtocol {
  const budget: Budget = { ...makeProtocol(false).budget, lr: PAPER_LR };
  if (quick) Object.assign(budget, { steps: 8, trainExamples: 32, valExamples: 4 });
  if (overrides.steps !== undefined) budget.steps = overrides.steps;
  const seeds = overrides.seeds ?? (quick ? 1 : 10);
  if (seeds > 999) throw new RangeError(`mde --causes: at most 999 seeds, got ${seeds}`);
  const runs = CAUSES.reduce((s, c) => s + 2 * seeds * settingsOf(c.knobs).length, 0);
  return {
    mode: quick ? 'quick' : 'default', budget, seeds, causes: CAUSES,
    note: `${quick ? '--quick smoke run (rates from it are not evidence): ' : ''}${runs} runs: ${seeds} seed(s) per setting and arm, ${budget.steps} AdamW steps (weight decay ${budget.weightDecay}), ${budget.imageSize}×${budget.imageSize} scenes, ${budget.crop}×${budget.crop} crops, batch ${budget.batchSize}, U-Net width ${budget.width} depth ${budget.depth}, sparse ground truth ${JSON.stringify(budget.sparse)}`,
  };
}

export interface CauseRunSpec extends RunConfig {
  id: string;
  causeId: CauseId;
  /** index of the setting in settingsOf(cause.knobs) */
  settingIndex: number;
  setting: string;
  arm: Arm;
  lr: number;
  maxDepth: number;
}

export function causeSpecs(p: CausesProtocol): CauseRunSpec[] {
  const out: CauseRunSpec[] = [];
  for (const [ci, c] of p.causes.entries()) {
    for (const [si, s] of settingsOf(c.knobs).entries()) {
      for (const arm of ['cause', 'fix'] as const) {
        const v = { ...c.base, ...(arm === 'cause' ? c.cause.set : c.fix.set) };
        const setting = settingLabel(s, c.knobs);
        for (let seed = 0; seed < p.seeds; seed++) {
          out.push({
            ...v, precision: s.precision, seed, lambda: s.lambda, featureScale: s.featureScale, lr: s.lr, maxDepth: s.maxDepth,
            dataStream: 1_000_000 * (ci + 1) + 2000 * si + 1000 * (arm === 'fix' ? 1 : 0) + seed,
            causeId: c.id, settingIndex: si, setting, arm, id: `${c.id}/${setting}/${arm}/s${seed}`,
          });
        }
      }
    }
  }
  return out;
}
