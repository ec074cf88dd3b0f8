// The SING reproduction as a Study (src/experiments/study.ts): the grid
// (grid.ts), one run (run.ts), the record of a run with its full config, the
// results.json shape (summary.ts, claims.ts) and the report (report.ts).
import * as keel from '../../index.js';
import type { GridState, Study } from '../study.js';
import { judgeClaims, type ClaimVerdict } from './claims.js';
import { runDefiningKey, runSpecs, type ModelPlan, type Protocol, type RunSpec } from './grid.js';
import { budgetLines, modelTable, verdictText } from './report.js';
import { loadData, runOne, type SharedData } from './run.js';
import { summarize, type ModelSummary, type RunRecord } from './summary.js';
import { pct } from '../../stats/index.js';

export const PAPER = {
  title: 'SING: A Plug-and-play DNN Learning Technique',
  authors: 'Adrien Courtois, Damien Scieur, Jean-Michel Morel, Pablo Arias, Thomas Eboli',
  arxiv: '2305.15997',
  code: 'https://github.com/AdrienCourtois/SING',
};

export interface ReproResults {
  experiment: 'sing';
  paper: typeof PAPER;
  complete: boolean;
  quick: boolean;
  protocol: Protocol;
  budget: { note: string; lines: string[]; totalRuns: number };
  machine: { cores: number; threads: number; libtorch: string; node: string };
  startedAt: string;
  wallTimeMs: number;
  parameters: Record<string, number>;
  runs: RunRecord[];
  summary: ModelSummary[];
  verdict: { note: string; claims: ClaimVerdict[] };
}

/** 42 s, 3 min 5 s, 2 h 7 min: the report's wall time. */
export function fmtTime(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const parameterCounts = new Map<string, Record<string, number>>();

/** Parameters per model (built once per protocol). */
export function countParameters(protocol: Protocol): Record<string, number> {
  const key = runDefiningKey(protocol);
  let out = parameterCounts.get(key);
  if (out === undefined) {
    out = {};
    for (const m of protocol.models) {
      const model = keel.nn.zoo.createModel(m.zooName, m.zooOptions);
      out[m.id] = model.parameters().reduce((n, t) => n + t.numel(), 0);
      model.dispose();
    }
    parameterCounts.set(key, out);
  }
  return out;
}

const planOf = (protocol: Protocol, spec: RunSpec): ModelPlan => protocol.models.find((m) => m.id === spec.model)!;

function configOf(spec: RunSpec, plan: ModelPlan, protocol: Protocol): Record<string, unknown> {
  return {
    model: plan.id, zooName: plan.zooName, zooOptions: plan.zooOptions, optimizer: spec.optimizer, lr: spec.lr, weightDecay: spec.weightDecay,
    seed: spec.seed, steps: plan.steps, batchSize: plan.batchSize, trainExamples: plan.trainExamples, testExamples: plan.testExamples,
    warmupFraction: protocol.warmupFraction, warmupStartFactor: protocol.warmupStartFactor, schedule: 'linear warm-up + cosine',
  };
}

type RunValue = ReturnType<typeof runOne>;

export const study: Study<Protocol, RunSpec, RunValue, RunRecord, ReproResults, SharedData, ClaimVerdict> = {
  name: 'repro sing',
  grid: runSpecs,
  key: runDefiningKey,
  open: () => loadData(),
  dispose: (data) => data.dispose(),
  run: (spec, data, protocol) => runOne(spec, planOf(protocol, spec), protocol, data),
  module: new URL(import.meta.url),
  record(spec, value, error, protocol) {
    const config = configOf(spec, planOf(protocol, spec), protocol);
    if (value === null) return { ...spec, config, result: null, error: error ?? 'no result' };
    const { warmupSteps, parameters, ...result } = value;
    return { ...spec, config: { ...config, warmupSteps, parameters }, result };
  },
  label: (spec) => `${spec.model} ${spec.optimizer} lr=${spec.lr} seed=${spec.seed}`,
  describe(rec) {
    const r = rec.result!;
    const status = r.divergence === 'non-finite loss' ? `DIVERGED at step ${r.divergedAtStep} (non-finite loss)` : r.divergence === 'chance accuracy' ? 'DIVERGED (chance accuracy)' : 'ok';
    return `test acc ${pct(r.testAccuracy)} %, test loss ${Number.isFinite(r.testLoss) ? r.testLoss.toFixed(4) : 'non-finite'}, ${r.stepsDone} steps, ${r.medianStepMs.toFixed(1)} ms/step; ${status}`;
  },
  claims: (protocol, runs) => judgeClaims(protocol, summarize(protocol, runs)),
  assemble(protocol, state: GridState<RunRecord, ClaimVerdict>): ReproResults {
    const summary = summarize(protocol, state.runs);
    const parameters = countParameters(protocol);
    return {
      experiment: 'sing',
      paper: PAPER,
      complete: state.complete,
      quick: protocol.mode === 'quick',
      protocol,
      budget: { note: protocol.budgetNote, lines: budgetLines(protocol, parameters), totalRuns: runSpecs(protocol).length },
      machine: state.machine,
      startedAt: state.startedAt,
      wallTimeMs: state.wallTimeMs,
      parameters,
      runs: state.runs,
      summary,
      verdict: {
        note: protocol.mode === 'quick'
          ? '--quick smoke run: outcomes are inconclusive by construction; ruleOutcome shows what each rule gives on these numbers'
          : state.complete ? 'judged from the numbers above by the rules in src/experiments/sing/claims.ts, at this budget' : 'partial grid: judged on the runs done so far',
        claims: state.claims,
      },
    };
  },
  report: reportText,
};

/** The printed report: budget, a table per model, the verdict. */
export function reportText(results: ReproResults): string {
  const out = [`# SING reproduction (arXiv:${PAPER.arxiv}): AdamW vs SING on Fashion-MNIST`, '', '## Budget', '', ...results.budget.lines, ''];
  out.push(`wall time ${fmtTime(results.wallTimeMs)}; ${results.machine.threads} thread(s) on ${results.machine.cores} cores; libtorch ${results.machine.libtorch}`, '');
  out.push('## Results', '', 'test accuracy over seeds (diverged runs included in the mean)', '');
  for (const s of results.summary) {
    const plan = results.protocol.models.find((m) => m.id === s.model)!;
    out.push(modelTable(plan, s), '');
  }
  const errors = results.runs.filter((r) => r.error !== undefined);
  if (errors.length > 0) out.push(`${errors.length} run(s) failed with an error (not counted): ${errors.map((r) => `${r.id}: ${r.error}`).join('; ')}`, '');
  out.push(verdictText(results.verdict.claims, results.protocol));
  return out.join('\n');
}
