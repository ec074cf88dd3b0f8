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
//   study.ts    the Study (src/experiments/study.ts): runner, record, results.json, report
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as keel from '../../index.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { defaultOut } from '../../cli/program.js';
import { runStudy } from '../study.js';
import { makeProtocol, runSpecs, type ModelId } from './grid.js';
import { budgetLines } from './report.js';
import { countParameters, PAPER, reportText, study, type ReproResults } from './study.js';

export { makeProtocol, runSpecs, MODEL_IDS, type Protocol, type ModelPlan, type RunSpec, type OptimizerName, type ModelId } from './grid.js';
export { CLAIMS, judgeClaims, type ClaimSpec, type ClaimVerdict, type Outcome } from './claims.js';
export { summarize, type ModelSummary, type RunRecord, type SummaryRow } from './summary.js';
export { PAPER, reportText, study, type ReproResults } from './study.js';

export interface ReproOptions {
  quick?: boolean;
  out?: string;
  models?: ModelId[];
  seeds?: number;
  resnetWidth?: number;
  threads?: number;
  resume?: boolean;
  /** child processes of 1 libtorch thread each; 0 or none: in this process */
  jobs?: number;
  /** Progress lines (default: to stderr, above a progress bar when stderr is a TTY). */
  log?: (line: string) => void;
  /** The progress bar on a TTY (default true; never with a log of your own). */
  progress?: boolean;
}

/** Runs the reproduction; returns the results (also written to out/results.json when out is given). */
export async function reproduceSing(options: ReproOptions = {}): Promise<ReproResults> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (options.threads !== undefined) keel.setNumThreads(options.threads);
  const protocol = makeProtocol({
    quick: options.quick ?? false,
    ...(options.models ? { models: options.models } : {}),
    ...(options.seeds !== undefined ? { seeds: options.seeds } : {}),
    ...(options.resnetWidth !== undefined ? { resnetWidth: options.resnetWidth } : {}),
  });
  const total = runSpecs(protocol).length;
  const jobs = options.jobs ?? 0;
  log(`keel repro sing: ${PAPER.title} (arXiv:${PAPER.arxiv}); ${total} runs, ${jobs >= 1 ? `${jobs} child processes of 1 libtorch thread` : `${keel.getNumThreads()} thread(s)`} of ${availableParallelism()} cores`);
  for (const l of budgetLines(protocol, countParameters(protocol))) log(l);
  return runStudy(study, protocol, {
    ...(options.out !== undefined ? { out: options.out } : {}),
    resume: options.resume ?? false,
    jobs,
    ...(options.log !== undefined ? { log: options.log } : {}),
    ...(options.progress !== undefined ? { progress: options.progress } : {}),
  });
}

/** `keel repro sing [options]` (the whole command line: src/cli/program.ts); returns the exit code. */
export async function reproSing(args: string[]): Promise<number> {
  return (await import('../../cli/main.js')).main(['repro', 'sing', ...args]);
}

/** `keel repro sing` with its parsed options; returns the exit code. */
export async function reproSingFromOptions(o: Record<string, unknown>): Promise<number> {
  const out = (o.out as string | undefined) ?? defaultOut('repro', 'sing');
  const results = await reproduceSing({
    quick: o.quick as boolean,
    out,
    ...(o.models !== undefined ? { models: o.models as ModelId[] } : {}),
    ...(o.seeds !== undefined ? { seeds: o.seeds as number } : {}),
    ...(o.resnetWidth !== undefined ? { resnetWidth: o.resnetWidth as number } : {}),
    ...(o.threads !== undefined ? { threads: o.threads as number } : {}),
    resume: o.resume as boolean,
    ...(o.jobs !== undefined ? { jobs: o.jobs as number } : {}),
    progress: o.progress !== false,
  });
  const text = reportText(results);
  console.log(text);
  const dir = resolve(out);
  writeFileAtomic(join(dir, 'report.md'), `${text}\n`);
  console.log(`\nwrote ${join(dir, 'results.json')} and ${join(dir, 'report.md')}`);
  return results.runs.some((r) => r.error !== undefined) ? 1 : 0;
}
