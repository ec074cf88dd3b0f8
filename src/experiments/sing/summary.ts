// The summary table of the SING reproduction: per model, optimizer and
// learning rate, the test accuracy's mean ± std over seeds and the number of
// diverged runs; per model and optimizer, the best learning rate and how flat
// accuracy is across the sweep.
import { OPTIMIZERS, type ModelId, type OptimizerName, type Protocol, type RunSpec } from './grid.js';
import type { RunResult } from './run.js';
import { mean, median, sampleStd } from '../../stats/index.js';

export interface RunRecord extends RunSpec {
  /** The run's full configuration (model plan, budget, schedule). */
  config: Record<string, unknown>;
  result: RunResult | null;
  /** Set when the run threw (a bug, not a divergence). */
  error?: string;
}

export interface SummaryRow {
  optimizer: OptimizerName;
  lr: number;
  /** Runs that finished (errors excluded). */
  n: number;
  /** Test accuracy per seed, in seed order (diverged runs included). */
  accuracies: number[];
  seeds: number[];
  /** Mean and sample standard deviation (n − 1; 0 for one run) over seeds, diverged runs included. */
  accuracyMean: number;
  accuracyStd: number;
  diverged: number;
  nonFinite: number;
  atChance: number;
}

export interface OptimizerSummary {
  bestLr: number;
  bestMean: number;
  bestStd: number;
  bestN: number;
  /** Test accuracies of the best LR, by seed. */
  bestAccuracies: number[];
  /** Mean over the sweep of (best mean − mean at lr): 0 is perfectly flat. */
  meanRegret: number;
  /** Learning rates whose mean accuracy is within 1 percentage point of the best. */
  lrsWithinOnePoint: number;
  diverged: number;
  runs: number;
  medianStepMs: number;
}

export interface ModelSummary {
  model: ModelId;
  rows: SummaryRow[];
  optimizers: Record<OptimizerName, OptimizerSummary>;
}


export function summarize(protocol: Protocol, runs: RunRecord[]): ModelSummary[] {
  return protocol.models.map((plan) => {
    const rows: SummaryRow[] = [];
    const optimizers = {} as Record<OptimizerName, OptimizerSummary>;
    for (const optimizer of OPTIMIZERS) {
      const mine: SummaryRow[] = [];
      for (const lr of protocol.lrs[optimizer]) {
        const done = runs
          .filter((r) => r.model === plan.id && r.optimizer === optimizer && r.lr === lr && r.result !== null)
          .sort((a, b) => a.seed - b.seed);
        const accuracies = done.map((r) => r.result!.testAccuracy);
        mine.push({
          optimizer,
          lr,
          n: done.length,
          accuracies,
          seeds: done.map((r) => r.seed),
          accuracyMean: mean(accuracies),
          accuracyStd: sampleStd(accuracies),
          diverged: done.filter((r) => r.result!.diverged).length,
          nonFinite: done.filter((r) => r.result!.divergence === 'non-finite loss').length,
          atChance: done.filter((r) => r.result!.divergence === 'chance accuracy').length,
        });
      }
      rows.push(...mine);
      const ranked = mine.filter((r) => r.n > 0);
      const best = ranked.reduce<SummaryRow | undefined>((b, r) => (b === undefined || r.accuracyMean > b.accuracyMean ? r : b), undefined);
      const stepTimes = runs.filter((r) => r.model === plan.id && r.optimizer === optimizer && r.result !== null && r.result.divergence !== 'non-finite loss').map((r) => r.result!.medianStepMs);
      optimizers[optimizer] = {
        bestLr: best?.lr ?? Number.NaN,
        bestMean: best?.accuracyMean ?? Number.NaN,
        bestStd: best?.accuracyStd ?? Number.NaN,
        bestN: best?.n ?? 0,
        bestAccuracies: best?.accuracies ?? [],
        meanRegret: best ? mean(ranked.map((r) => best.accuracyMean - r.accuracyMean)) : Number.NaN,
        lrsWithinOnePoint: best ? ranked.filter((r) => best.accuracyMean - r.accuracyMean <= 0.01).length : 0,
        diverged: mine.reduce((a, r) => a + r.diverged, 0),
        runs: mine.reduce((a, r) => a + r.n, 0),
        medianStepMs: median(stepTimes),
      };
    }
    return { model: plan.id, rows, optimizers };
  });
}
