// `keel repro sing [--quick] [--out DIR]`: the SING reproduction (Courtois et
// al. 2023, arXiv:2305.15997). AdamW vs SING on Fashion-MNIST with LeNet-5,
// ResNet-18 and a deep plain MLP, a learning-rate sweep per optimizer over
// its recommended range, several seeds; prints a table per model and a
// verdict on the paper's claims, and writes DIR/results.json (--out DIR,
// default runs/repro-sing)
// (every run's config and metrics, the summary, the verdict; rewritten after
// each run, so an interrupted grid keeps what it did: --resume continues it)
// and DIR/report.md.
//
//   grid.ts     the protocol: models, LRs, weight decays, seeds, schedule, budget
//   run.ts      one run through keel.train.fit
//   summary.ts  mean ± std over seeds, divergences, best LR, flatness
//   claims.ts   the paper's claims and the rule that judges each
//   report.ts   tables and verdict text
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as keel from '../../index.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { createProgress, type Progress } from '../../train/progress.js';
import { defaultOut } from '../../cli/program.js';
import { judgeClaims, type ClaimVerdict } from './claims.js';
import { MODEL_IDS, makeProtocol, runDefiningKey, runSpecs, type ModelId, type Protocol } from './grid.js';
import { budgetLines, modelTable, verdictText } from './report.js';
import { loadData, runOne } from './run.js';
import { summarize, type ModelSummary, type RunRecord } from './summary.js';

export { makeProtocol, runSpecs, MODEL_IDS, type Protocol, type ModelPlan, type RunSpec, type OptimizerName, type ModelId } from './grid.js';
export { CLAIMS, judgeClaims, type ClaimSpec, type ClaimVerdict, type Outcome } from './claims.js';
export { summarize, type ModelSummary, type RunRecord, type SummaryRow } from './summary.js';

export const PAPER = {
  title: 'SING: A Plug-and-play DNN Learning Technique',
  authors: 'Adrien Courtois, Damien Scieur, Jean-Michel Morel, Pablo Arias, Thomas Eboli',
  arxiv: '2305.15997',
  code: 'https://github.com/AdrienCourtois/SING',
};

export interface ReproOptions {
  quick?: boolean;
  out?: string;
  models?: ModelId[];
  seeds?: number;
  resnetWidth?: number;
  threads?: number;
  resume?: boolean;
  /** Progress lines (default: to stderr, above a progress bar when stderr is a TTY). */
  log?: (line: string) => void;
  /** The progress bar on a TTY (default true; never with a log of your own). */
  progress?: boolean;
}

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

function fmtTime(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function countParameters(protocol: Protocol): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of protocol.models) {
    const model = keel.nn.zoo.createModel(m.zooName, m.zooOptions);
    out[m.id] = model.parameters().reduce((n, t) => n + t.numel(), 0);
    model.dispose();
  }
  return out;
}

/** Runs the reproduction; returns the results (also written to out/results.json when out is given). */
export function reproduceSing(options: ReproOptions = {}): ReproResults {
  let bar: Progress | undefined;
  const log = options.log ?? ((line: string) => (bar ? bar.log(line) : process.stderr.write(`${line}\n`)));
  if (options.threads !== undefined) keel.setNumThreads(options.threads);
  const protocol = makeProtocol({
    quick: options.quick ?? false,
    ...(options.models ? { models: options.models } : {}),
    ...(options.seeds !== undefined ? { seeds: options.seeds } : {}),
    ...(options.resnetWidth !== undefined ? { resnetWidth: options.resnetWidth } : {}),
  });
  const specs = runSpecs(protocol);
  const plans = new Map(protocol.models.map((m) => [m.id, m]));
  const parameters = countParameters(protocol);
  const lines = budgetLines(protocol, parameters);
  const out = options.out !== undefined ? resolve(options.out) : undefined;
  const resultsPath = out ? join(out, 'results.json') : undefined;
  if (out) mkdirSync(out, { recursive: true });

  let runs: RunRecord[] = [];
  let previousWallMs = 0;
  let previousStart: string | undefined;
  if (options.resume && resultsPath && existsSync(resultsPath)) {
    const previous = JSON.parse(readFileSync(resultsPath, 'utf8')) as ReproResults;
    if (runDefiningKey(previous.protocol) !== runDefiningKey(protocol)) {
      throw new Error(`--resume: ${resultsPath} was made with another protocol (options differ); use another --out or the same options`);
    }
    const wanted = new Set(specs.map((sp) => sp.id));
    runs = previous.runs.filter((r) => r.result !== null && r.error === undefined && wanted.has(r.id));
    previousWallMs = previous.wallTimeMs ?? 0;
    previousStart = previous.startedAt;
    log(`resuming: ${runs.length} of ${specs.length} runs already done in ${resultsPath}`);
  }

  const startedAt = previousStart ?? new Date().toISOString();
  const t0 = performance.now();
  const machine = { cores: availableParallelism(), threads: keel.getNumThreads(), libtorch: String(keel.libtorchInfo().version), node: process.version };
  const assemble = (complete: boolean): ReproResults => {
    const summary = summarize(protocol, runs);
    return {
      experiment: 'sing',
      paper: PAPER,
      complete,
      quick: protocol.mode === 'quick',
      protocol,
      budget: { note: protocol.budgetNote, lines, totalRuns: specs.length },
      machine,
      startedAt,
      /** Summed over sessions when resumed. */
      wallTimeMs: previousWallMs + performance.now() - t0,
      parameters,
      runs,
      summary,
      verdict: {
        note: protocol.mode === 'quick'
          ? '--quick smoke run: outcomes are inconclusive by construction; ruleOutcome shows what each rule gives on these numbers'
          : complete ? 'judged from the numbers above by the rules in src/experiments/sing/claims.ts, at this budget' : 'partial grid: judged on the runs done so far',
        claims: judgeClaims(protocol, summary),
      },
    };
  };
  const save = (complete: boolean): ReproResults => {
    const results = assemble(complete);
    if (resultsPath) writeFileAtomic(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
    return results;
  };

  log(`keel repro sing: ${PAPER.title} (arXiv:${PAPER.arxiv}); ${specs.length} runs, ${machine.threads} thread(s) of ${machine.cores} cores`);
  for (const l of lines) log(l);
  const data = loadData();
  try {
    const done = new Set(runs.map((r) => r.id));
    const todo = specs.filter((s) => !done.has(s.id));
    let k = specs.length - todo.length;
    // a bar on a TTY under the run lines; its rate and ETA count this session's runs
    if (options.log === undefined && options.progress !== false && process.stderr.isTTY) bar = createProgress({ total: specs.length, label: 'repro sing', start: k, every: 0 });
    for (const spec of todo) {
      k++;
      const plan = plans.get(spec.model)!;
      const config = {
        model: plan.id, zooName: plan.zooName, zooOptions: plan.zooOptions, optimizer: spec.optimizer, lr: spec.lr, weightDecay: spec.weightDecay,
        seed: spec.seed, steps: plan.steps, batchSize: plan.batchSize, trainExamples: plan.trainExamples, testExamples: plan.testExamples,
        warmupFraction: protocol.warmupFraction, warmupStartFactor: protocol.warmupStartFactor, schedule: 'linear warm-up + cosine',
      };
      const tRun = performance.now();
      let record: RunRecord;
      try {
        const { warmupSteps, parameters: n, ...result } = runOne(spec, plan, protocol, data);
        record = { ...spec, config: { ...config, warmupSteps, parameters: n }, result };
        const r = result;
        const status = r.divergence === 'non-finite loss' ? `DIVERGED at step ${r.divergedAtStep} (non-finite loss)` : r.divergence === 'chance accuracy' ? 'DIVERGED (chance accuracy)' : 'ok';
        log(`[${k}/${specs.length}] ${plan.id} ${spec.optimizer} lr=${spec.lr} seed=${spec.seed}: test acc ${(100 * r.testAccuracy).toFixed(2)} %, ` +
          `test loss ${Number.isFinite(r.testLoss) ? r.testLoss.toFixed(4) : 'non-finite'}, ${r.stepsDone} steps, ${r.medianStepMs.toFixed(1)} ms/step, ` +
          `${fmtTime(performance.now() - tRun)}; ${status}; elapsed ${fmtTime(performance.now() - t0)}`);
      } catch (e) {
        record = { ...spec, config, result: null, error: e instanceof Error ? e.message : String(e) };
        log(`[${k}/${specs.length}] ${plan.id} ${spec.optimizer} lr=${spec.lr} seed=${spec.seed}: ERROR ${record.error}`);
      }
      runs.push(record);
      if (resultsPath) save(false);
      bar?.update(k);
    }
  } finally {
    bar?.stop();
    data.dispose();
  }
  return save(true);
}

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

/** `keel repro sing [options]` (the whole command line: src/cli/program.ts); returns the exit code. */
export async function reproSing(args: string[]): Promise<number> {
  return (await import('../../cli/main.js')).main(['repro', 'sing', ...args]);
}

/** `keel repro sing` with its parsed options; returns the exit code. */
export async function reproSingFromOptions(o: Record<string, unknown>): Promise<number> {
  const out = (o.out as string | undefined) ?? defaultOut('repro', 'sing');
  const results = reproduceSing({
    quick: o.quick as boolean,
    out,
    ...(o.models !== undefined ? { models: o.models as ModelId[] } : {}),
    ...(o.seeds !== undefined ? { seeds: o.seeds as number } : {}),
    ...(o.resnetWidth !== undefined ? { resnetWidth: o.resnetWidth as number } : {}),
    ...(o.threads !== undefined ? { threads: o.threads as number } : {}),
    resume: o.resume as boolean,
    progress: o.progress !== false,
  });
  const text = reportText(results);
  console.log(text);
  const dir = resolve(out);
  writeFileAtomic(join(dir, 'report.md'), `${text}\n`);
  console.log(`\nwrote ${join(dir, 'results.json')} and ${join(dir, 'report.md')}`);
  return results.runs.some((r) => r.error !== undefined) ? 1 : 0;
}
