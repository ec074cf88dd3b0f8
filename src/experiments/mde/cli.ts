// `keel repro mde [--quick] [--out DIR]`: the depth-estimation NaN study
// (Kim, Jang & Kim 2023, "Analysis of NaN Divergence in Training Monocular
// Depth Estimation Model", arXiv:2311.03938) on SynthDepth.
//
//   protocol.ts  the grid (loss × head × variance × final init), seeds, budget
//   run.ts       one unguarded run: first NaN step, its cause, final metrics
//   guarded.ts   the naive configuration under each keel.Guard policy
//   summary.ts   NaN rate per configuration, the paper's claims and their rules
//   model.ts     the U-Net depth model and its three heads
//   png.ts       a tiny PNG encoder and the SynthDepth sample sheet
//
// Prints progress as plain lines on stderr, then the table and the verdict on
// stdout; writes DIR/results.json (--out DIR, default runs/repro-mde;
// rewritten after every run).
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as keel from '../../index.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { table } from '../table.js';
import { createProgress, type Progress } from '../../train/progress.js';
import { defaultOut } from '../../cli/program.js';
import { guardAvailable, POLICIES, runGuarded, type GuardedRun } from './guarded.js';
import { cellId, cells, makeProtocol, NAIVE, SAFE, runSpecs, type Protocol } from './protocol.js';
import { batchAt, makeData, runOne } from './run.js';
import { judgeClaims, summarize, type CellSummary, type ClaimVerdict, type RunRecord } from './summary.js';

export const PAPER = {
  title: 'Analysis of NaN Divergence in Training Monocular Depth Estimation Model',
  authors: 'Bum Jun Kim, Hyeonah Jang, Sang Woo Kim',
  arxiv: '2311.03938',
};

export interface MdeResults {
  experiment: 'mde';
  paper: typeof PAPER;
  quick: boolean;
  complete: boolean;
  protocol: Protocol;
  /** how often a training batch holds 0 or 1 valid pixels (over the fp32 seeds × steps) */
  validPixels: { batches: number; mean: number; pZero: number; pOne: number };
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

function fmt(x: number | null, d = 3): string {
  return x === null || !Number.isFinite(x) ? '–' : x.toFixed(d);
}

export function tableText(summary: CellSummary[]): string {
  const head = ['precision', 'loss/head/variance/init', 'NaN', 'rate', 'first NaN steps', 'causes', 'AbsRel', 'RMSE', 'δ<1.25'];
  const rows = summary.map((s) => [
    s.precision, s.cell, `${s.nanRuns}/${s.runs}`, `${(100 * s.nanRate).toFixed(0)} %`,
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
    `data: ${r.protocol.budget.trainExamples} train / ${r.protocol.budget.valExamples} val scenes; sparse ground truth ${JSON.stringify(r.protocol.budget.sparse)}; valid pixels per batch: mean ${r.validPixels.mean.toFixed(1)}, P(N=0) ${(100 * r.validPixels.pZero).toFixed(2)} %, P(N=1) ${(100 * r.validPixels.pOne).toFixed(2)} % (${r.validPixels.batches} batches)`,
    `naive = ${r.naive}; safe = ${r.safe}; SILog variant glpdepth (λ = 0.5), unbiased = var(d, N−1) + 0.5·mean(d)², biased = mean d² − 0.5·mean(d)²`,
    `wall time ${(r.wallTimeMs / 1000).toFixed(1)} s; ${r.runs.length} unguarded runs; ${r.machine.threads} thread(s) on ${r.machine.cores} cores${r.complete ? '' : '; INCOMPLETE'}`,
    '', tableText(r.summary), '', guardText(r.guard), '', `## Verdict (${r.verdict.note})`, '',
  ];
  for (const c of r.verdict.claims) out.push(`- [${c.outcome}] ${c.claim}\n    evidence: ${c.evidence}\n    rule: ${c.rule}`);
  return out.join('\n');
}

interface Args { quick: boolean; out?: string; seeds?: number; lowSeeds?: number; steps?: number; threads?: number; guard: boolean; progress?: boolean }

/** The batch stream of the naive cell's run with this seed (the guard part replays it). */
function naiveStream(seed: number): number {
  return 1000 * seed + cells().findIndex((c) => cellId(c) === cellId(NAIVE));
}

export async function reproduceMde(a: Args, userLog?: (line: string) => void): Promise<MdeResults> {
  // run lines on stderr; on a TTY above a progress bar (src/train/progress.ts)
  let bar: Progress | undefined;
  const log = userLog ?? ((l: string) => (bar ? bar.log(l) : process.stderr.write(`${l}\n`)));
  const protocol = makeProtocol(a.quick, { seeds: a.seeds, lowSeeds: a.lowSeeds, steps: a.steps });
  const b = protocol.budget;
  const specs = runSpecs(protocol);
  const out = a.out !== undefined ? resolve(a.out) : undefined;
  if (out) mkdirSync(out, { recursive: true });
  keel.setNumThreads(a.threads ?? 1);
  const t0 = performance.now();
  const machine = { cores: availableParallelism(), threads: keel.getNumThreads(), libtorch: String(keel.libtorchInfo().version), node: process.version };
  log(`keel repro mde: ${PAPER.title} (arXiv:${PAPER.arxiv})`);
  log(`budget: ${protocol.note}; ${specs.length} unguarded runs`);
  const data = makeData(b);
  const runs: RunRecord[] = [];
  const guard: MdeResults['guard'] = { status: 'pending', note: 'not run yet', runs: [] };
  // the valid-pixel counts of every batch the fp32 runs will see
  let nb = 0, sum = 0, z = 0, one = 0;
  for (const spec of specs.filter((s) => s.precision === 'fp32')) {
    for (let st = 0; st < b.steps; st++) {
      const n = keel.scope(() => batchAt(data, b, spec.dataStream!, st).mask.sum().item() as number);
      nb++; sum += n; if (n === 0) z++; if (n === 1) one++;
    }
  }
  const validPixels = { batches: nb, mean: sum / nb, pZero: z / nb, pOne: one / nb };
  const startedAt = new Date().toISOString();
  const assemble = (complete: boolean): MdeResults => ({
    experiment: 'mde', paper: PAPER, quick: a.quick, complete, protocol, validPixels, machine,
    naive: cellId(NAIVE), safe: cellId(SAFE), startedAt, wallTimeMs: performance.now() - t0, runs, summary: summarize(runs), guard,
    verdict: {
      note: a.quick ? '--quick smoke run: every outcome inconclusive by construction' : complete ? 'judged from the numbers above by the rules stated, at this budget' : 'partial: judged on the runs done so far',
      claims: judgeClaims(protocol, runs),
    },
  });
  const save = (complete: boolean): MdeResults => {
    const r = assemble(complete);
    if (out) writeFileAtomic(join(out, 'results.json'), `${JSON.stringify(r, null, 2)}\n`);
    return r;
  };
  try {
    let k = 0;
    if (userLog === undefined && a.progress !== false && process.stderr.isTTY) bar = createProgress({ total: specs.length, label: 'repro mde', start: 0, every: 0 });
    for (const spec of specs) {
      k++;
      let rec: RunRecord;
      try {
        const res = runOne(spec, b, data);
        rec = { ...spec, result: res };
        log(`[${k}/${specs.length}] ${spec.id}: ${res.status === 'nan' ? `NaN at step ${res.firstNaNStep} in the ${res.nanIn} (${res.cause}, N=${res.validAtNaN})` : `finished, AbsRel ${fmt(res.metrics?.absRel ?? null)}`}, ${(res.wallTimeMs / 1000).toFixed(1)} s`);
      } catch (e) {
        rec = { ...spec, result: null, error: e instanceof Error ? e.message : String(e) };
        log(`[${k}/${specs.length}] ${spec.id}: ERROR ${rec.error}`);
      }
      runs.push(rec);
      if (out && (k % 10 === 0 || k === specs.length)) save(false);
      bar?.update(k);
    }
    bar?.stop();
    bar = undefined;
    const Guard = a.guard ? guardAvailable() : null;
    if (!a.guard) guard.note = 'skipped (--no-guard)';
    else if (Guard === null) guard.note = 'keel.Guard is not in this build yet (src/guard/ unfinished): the naive configuration under raise/skip/rollback/repair is still to run';
    else {
      guard.status = 'done';
      guard.note = `${protocol.guardSeeds} seed(s) per policy, ${b.steps} steps, the same batches and init as the unguarded naive runs`;
      for (const policy of POLICIES) {
        for (let seed = 0; seed < protocol.guardSeeds; seed++) {
          let r: GuardedRun;
          try {
            r = await runGuarded(Guard, policy, seed, naiveStream(seed), b, data);
          } catch (e) {
            r = { policy, seed, status: 'error', stepsDone: 0, stepOutcomes: {}, events: [], finalLoss: '', report: null, error: e instanceof Error ? e.message.split('\n')[0] : String(e), paramsFinite: false, metrics: null, wallTimeMs: 0 };
          }
          guard.runs.push(r);
          log(`guard ${policy} seed ${seed}: ${r.status}, ${r.stepsDone} steps${r.report ? `, ${r.report.op} — ${r.report.cause}` : ''}${r.error && !r.report ? `, ${r.error}` : ''}`);
        }
      }
    }
  } finally {
    bar?.stop();
    data.dispose();
  }
  return save(true);
}

/** `keel repro mde [...]` (the whole command line: src/cli/program.ts); returns the exit code. */
export async function run(args: string[]): Promise<number> {
  return (await import('../../cli/main.js')).main(['repro', 'mde', ...args]);
}

/** `keel repro mde` with its parsed options; returns the exit code. */
export async function runFromOptions(o: Record<string, unknown>): Promise<number> {
  const a: Args = {
    quick: o.quick === true,
    out: (o.out as string | undefined) ?? defaultOut('repro', 'mde'),
    guard: o.guard !== false,
    progress: o.progress !== false,
    ...(o.seeds !== undefined ? { seeds: o.seeds as number } : {}),
    ...(o.lowSeeds !== undefined ? { lowSeeds: o.lowSeeds as number } : {}),
    ...(o.steps !== undefined ? { steps: o.steps as number } : {}),
    ...(o.threads !== undefined ? { threads: o.threads as number } : {}),
  };
  const results = await reproduceMde(a);
  console.log(reportText(results));
  return results.runs.some((r) => r.error !== undefined) ? 1 : 0;
}

export { cells, cellId };
