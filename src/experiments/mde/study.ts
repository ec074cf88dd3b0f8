// The MDE NaN study as a Study (src/experiments/study.ts): the unguarded grid
// (protocol.ts), one run (run.ts), results.json with the per-cell summary and
// the claims judged by their rules (summary.ts), the report. The valid-pixel
// census and the guard part are the study's own, before and after the grid;
// they reach results.json through the extras given to mdeStudy().
import type { GridState, Study } from '../study.js';
import { table } from '../table.js';
import type { GuardedRun } from './guarded.js';
import { cellId, NAIVE, SAFE, runSpecs, type Protocol, type RunSpec } from './protocol.js';
import { makeData, runOne, type RunResult, type SharedData } from './run.js';
import { judgeClaims, summarize, type CellSummary, type ClaimVerdict, type RunRecord } from './summary.js';
import { pct } from '../../stats/index.js';

export const PAPER = {
  title: 'Analysis of NaN Divergence in Training Monocular Depth Estimation Model',
  authors: 'Bum Jun Kim, Hyeonah Jang, Sang Woo Kim',
  arxiv: '2311.03938',
};

export interface ValidPixels { batches: number; mean: number; pZero: number; pOne: number }

export interface MdeResults {
  experiment: 'mde';
  paper: typeof PAPER;
  quick: boolean;
  complete: boolean;
  protocol: Protocol;
  /** how often a training batch holds 0 or 1 valid pixels (over the fp32 seeds × steps) */
  validPixels: ValidPixels;
  machine: { cores: number; threads: number; libtorch: string; node: string };
  naive: string;
  safe: string;
  startedAt: string;
  wallTimeMs: number;
  runs: RunRecord[];
  summary: CellSummary[];
  guard: { status: 'done' | 'pending'; note: string; runs: GuardedRun[] };
  verdict: { note: string; claims: ClaimVerdict[] };
}

/** What the study adds to results.json beyond the grid. */
export interface MdeExtras {
  validPixels: ValidPixels;
  guard: MdeResults['guard'];
}

export function fmt(x: number | null, d = 3): string {
  return x === null || !Number.isFinite(x) ? '–' : x.toFixed(d);
}

/** A run's progress line: where it went non-finite and why, or its AbsRel. */
export function describeRun(res: RunResult): string {
  return res.status === 'nan' ? `NaN at step ${res.firstNaNStep} in the ${res.nanIn} (${res.cause}, N=${res.validAtNaN})` : `finished, AbsRel ${fmt(res.metrics?.absRel ?? null)}`;
}

/** What the verdict's outcomes rest on: a smoke run, the whole grid, or the runs so far. */
export function verdictNote(quick: boolean, complete: boolean): string {
  return quick ? '--quick smoke run: every outcome inconclusive by construction' : complete ? 'judged from the numbers above by the rules stated, at this budget' : 'partial: judged on the runs done so far';
}

export function mdeStudy(extras: MdeExtras): Study<Protocol, RunSpec, RunResult, RunRecord, MdeResults, SharedData, ClaimVerdict> {
  return {
    name: 'repro mde',
    grid: runSpecs,
    key: (p) => JSON.stringify(p),
    open: (p) => makeData(p.budget),
    dispose: (data) => data.dispose(),
    run: (spec, data, p) => runOne(spec, p.budget, data),
    module: new URL(import.meta.url),
    label: (spec) => spec.id,
    describe: (rec) => describeRun(rec.result!),
    claims: judgeClaims,
    assemble(protocol, state: GridState<RunRecord, ClaimVerdict>): MdeResults {
      const quick = protocol.mode === 'quick';
      return {
        experiment: 'mde', paper: PAPER, quick, complete: state.complete, protocol, validPixels: extras.validPixels, machine: state.machine,
        naive: cellId(NAIVE), safe: cellId(SAFE), startedAt: state.startedAt, wallTimeMs: state.wallTimeMs, runs: state.runs, summary: summarize(state.runs), guard: extras.guard,
        verdict: {
          note: verdictNote(quick, state.complete),
          claims: state.claims,
        },
      };
    },
    report: reportText,
  };
}

/** The grid's runner for child processes (study-worker.ts); its results.json extras are empty. */
export const study = mdeStudy({ validPixels: { batches: 0, mean: Number.NaN, pZero: Number.NaN, pOne: Number.NaN }, guard: { status: 'pending', note: 'not run', runs: [] } });

export function tableText(summary: CellSummary[]): string {
  const head = ['precision', 'loss/head/variance/init', 'NaN', 'rate', 'first NaN steps', 'causes', 'AbsRel', 'RMSE', 'δ<1.25'];
  const rows = summary.map((s) => [
    s.precision, s.cell, `${s.nanRuns}/${s.runs}`, `${pct(s.nanRate, 0)} %`,
    s.firstNaNSteps.length ? s.firstNaNSteps.sort((a, b) => a - b).join(',') : '–',
    Object.entries(s.causes).map(([k, v]) => `${k}×${v}`).join('; ') || '–',
    fmt(s.absRel), fmt(s.rmse, 2), fmt(s.delta1),
  ]);
  return table(head, rows);
}

export function guardText(g: MdeResults['guard']): string {
  if (g.status === 'pending') return `guard part: PENDING — ${g.note}`;
  const lines = [`guard part (naive configuration ${cellId(NAIVE)}, fp32): ${g.note}`];
  for (const r of g.runs) {
    lines.push(`  ${r.policy.padEnd(8)} seed ${r.seed}: ${r.status}, ${r.stepsDone} steps, outcomes ${JSON.stringify(r.stepOutcomes)}` +
      (r.report ? `, report: ${r.report.op} (${r.report.phase}) in '${r.report.module}' — ${r.report.cause}` : '') +
      (r.error && !r.report ? `, error: ${r.error}` : '') +
      (r.events.length && !r.report ? `, events: ${r.events.map((e) => `step ${e.step} ${e.action} ${e.op} '${e.module}' ${e.causeId}${e.detail?.length ? ` (${e.detail.join('; ')})` : ''}`).join(' | ')}` : '') +
      `, loss at end ${r.finalLoss}, params finite ${r.paramsFinite}, AbsRel ${fmt(r.metrics?.absRel ?? null)}`);
  }
  return lines.join('\n');
}

export function reportText(r: MdeResults): string {
  const out = [
    `# MDE NaN-divergence study (arXiv:${PAPER.arxiv}) on SynthDepth${r.quick ? ' — QUICK' : ''}`,
    '', `budget: ${r.protocol.note}`,
    `data: ${r.protocol.budget.trainExamples} train / ${r.protocol.budget.valExamples} val scenes; sparse ground truth ${JSON.stringify(r.protocol.budget.sparse)}; valid pixels per batch: mean ${r.validPixels.mean.toFixed(1)}, P(N=0) ${pct(r.validPixels.pZero)} %, P(N=1) ${pct(r.validPixels.pOne)} % (${r.validPixels.batches} batches)`,
    `naive = ${r.naive}; safe = ${r.safe}; SILog variant glpdepth (λ = 0.5), unbiased = var(d, N−1) + 0.5·mean(d)², biased = mean d² − 0.5·mean(d)²`,
    `wall time ${(r.wallTimeMs / 1000).toFixed(1)} s; ${r.runs.length} unguarded runs; ${r.machine.threads} thread(s) on ${r.machine.cores} cores${r.complete ? '' : '; INCOMPLETE'}`,
    '', tableText(r.summary), '', guardText(r.guard), '', `## Verdict (${r.verdict.note})`, '',
  ];
  for (const c of r.verdict.claims) out.push(`- [${c.outcome}] ${c.claim}\n    evidence: ${c.evidence}\n    rule: ${c.rule}`);
  return out.join('\n');
}
