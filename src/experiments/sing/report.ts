// Text of the SING reproduction: the budget header, one Markdown table per
// model and the verdict.
import type { ClaimVerdict } from './claims.js';
import type { ModelPlan, Protocol } from './grid.js';
import type { ModelSummary } from './summary.js';
import { pct } from '../../stats/index.js';
import { table } from '../table.js';

export function budgetLines(protocol: Protocol, parameters: Record<string, number>): string[] {
  const lines = [`mode: ${protocol.mode}. ${protocol.budgetNote}.`, `data: ${protocol.dataset}.`];
  for (const m of protocol.models) {
    const epochs = (m.steps * m.batchSize) / m.trainExamples;
    lines.push(
      `  ${m.id}: ${m.label}; ${parameters[m.id]?.toLocaleString('en-US') ?? '?'} parameters; ${m.steps} steps × batch ${m.batchSize} ` +
        `on the first ${m.trainExamples} training images (${epochs.toFixed(1)} epochs); test on the first ${m.testExamples} test images`,
    );
  }
  lines.push(`learning rates: AdamW ${protocol.lrs.adamw.join(', ')}; SING ${protocol.lrs.sing.join(', ')}`);
  lines.push(`weight decay (decoupled): AdamW ${protocol.weightDecay.adamw}, SING ${protocol.weightDecay.sing}; seeds: ${protocol.seeds.join(', ')} (the same seed gives both optimizers the same initial weights and batch order)`);
  lines.push(`schedule: ${protocol.schedule}`);
  lines.push(`SING: ${protocol.singOptions}; AdamW: ${protocol.adamwOptions}`);
  lines.push(`diverged: the loss went non-finite (the run is stopped there), or final test accuracy ≤ ${protocol.chanceAccuracyThreshold} (chance: 0.10)`);
  return lines;
}

export function modelTable(plan: ModelPlan, s: ModelSummary): string {
  const rows = s.rows.map((r) => [
    r.optimizer === 'sing' ? 'SING' : 'AdamW',
    String(r.lr),
    r.n === 0 ? 'n/a' : `${pct(r.accuracyMean)} ± ${pct(r.accuracyStd)}`,
    r.accuracies.map((a) => pct(a)).join(' '),
    `${r.diverged}/${r.n}${r.diverged > 0 ? ` (${[r.nonFinite > 0 ? `${r.nonFinite} non-finite` : '', r.atChance > 0 ? `${r.atChance} at chance` : ''].filter(Boolean).join(', ')})` : ''}`,
  ]);
  const out = [`### ${plan.id}: ${plan.label}`, '', table(['optimizer', 'lr', 'test accuracy % (mean ± std)', 'per seed', 'diverged'], rows), ''];
  for (const [name, o] of [['AdamW', s.optimizers.adamw], ['SING', s.optimizers.sing]] as const) {
    out.push(
      `${name}: best lr ${o.bestLr} (${pct(o.bestMean)} ± ${pct(o.bestStd)} %), mean regret over the sweep ${pct(o.meanRegret)} pp, ` +
        `${o.lrsWithinOnePoint} of ${s.rows.filter((r) => r.optimizer === (name === 'SING' ? 'sing' : 'adamw')).length} LRs within 1 pp of the best, ` +
        `${o.diverged}/${o.runs} runs diverged, median step ${Number.isFinite(o.medianStepMs) ? o.medianStepMs.toFixed(1) : 'n/a'} ms`,
    );
  }
  return out.join('\n');
}

export function verdictText(verdicts: ClaimVerdict[], protocol: Protocol): string {
  const out = ['## Verdict', ''];
  if (protocol.mode === 'quick') out.push('--quick is a smoke run: every outcome is reported as inconclusive; "rule" shows what the rule alone gives.', '');
  out.push('Rules: src/experiments/sing/claims.ts (and "rule" in results.json).', '');
  for (const v of verdicts) {
    out.push(`- [${v.outcome}${protocol.mode === 'quick' ? `; rule: ${v.ruleOutcome}` : ''}] ${v.statement}.`);
    out.push(`  ${v.evidence}`);
  }
  return out.join('\n');
}
