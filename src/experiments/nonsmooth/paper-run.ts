// Running, summarising and printing `keel audit nonsmooth --protocol paper`
// (the protocols are in paper.ts): the plan of work items, a process pool or
// this process, results saved after every item (--resume), the tables with
// the paper's figures beside Keel's, the D histograms and the verdicts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import * as keel from '../../index.js';
import { writeFileAtomic } from '../../io/atomic.js';
import type { FormatName } from '../../precision/formats.js';
import { runItems } from '../run-items.js';
import { table as tableOf } from '../table.js';
import type { DataId } from './models.js';
import {
  BERTOIN_FIGURES, BERTOIN_MAIN, BERTOIN_SWEEPS, BOUSTANY_FIGURES, itemKey, minibatchCount, paperBits,
  type MaxpoolBatch, type MaxpoolResult, type MlpCell, type PaperItem, type ReluItem, type ReluResult, type Study,
} from './paper.js';
import { pct } from '../../stats/index.js';

const A = keel.audit;

export interface PaperPlan {
  studies: Study[];
  data: DataId;
  formats: FormatName[];
  /** θ per ReLU cell and precision; fp64 gets min(draws, drawsFp64) */
  draws: number;
  drawsFp64: number;
  /** the protocol's draws: below them a verdict is insufficient */
  requiredDraws: number;
  sweeps: ('depth' | 'width' | 'batch')[];
  firstLayer: boolean;
  /** MaxPool: θ, width, batch, minibatches per θ (the epoch's: 469 at 128) and per work item */
  maxpoolDraws: number;
  width: number;
  maxpoolBatch: number;
  maxpoolBatches: number;
  chunk: number;
  /** ReLU: minibatches per θ (the epoch's: 235 at 256) unless cut */
  reluBatches?: number;
  nTrain?: number;
  quick: boolean;
}

export const TRAIN_SIZE = 60000;

/** The work items of a plan, in order. */
export function planItems(p: PaperPlan): PaperItem[] {
  const items: PaperItem[] = [];
  const n = p.nTrain ?? TRAIN_SIZE;
  if (p.studies.includes('relu')) {
    const cells: { role: string; cell: MlpCell }[] = [{ role: 'main', cell: BERTOIN_MAIN }];
    for (const s of p.sweeps) for (const v of BERTOIN_SWEEPS[s]) {
      const cell = { ...BERTOIN_MAIN, [s]: v };
      if (s !== 'depth' && v === BERTOIN_MAIN[s]) continue;
      if (s === 'depth' && v === BERTOIN_MAIN.depth) continue;
      cells.push({ role: s, cell });
    }
    for (const { role, cell } of cells) {
      const batches = Math.min(p.reluBatches ?? Infinity, minibatchCount(n, cell.batch));
      // the sweeps run in the paper's 16 and 32 bits (their fp64 figures are 0 by construction)
      const formats = role === 'main' ? p.formats : p.formats.filter((f) => f !== 'fp64');
      for (const format of formats) {
        const draws = format === 'fp64' ? Math.min(p.draws, p.drawsFp64) : p.draws;
        for (let draw = 0; draw < draws; draw++) {
          items.push({ study: 'relu', cell, role, format, draw, data: p.data, firstLayer: p.firstLayer, batches, ...(p.nTrain !== undefined ? { nTrain: p.nTrain } : {}) });
        }
      }
    }
  }
  if (p.studies.includes('maxpool')) {
    const total = Math.min(p.maxpoolBatches, minibatchCount(n, p.maxpoolBatch));
    for (const format of p.formats) for (let draw = 0; draw < p.maxpoolDraws; draw++) {
      for (let from = 0; from < total; from += p.chunk) {
        items.push({ study: 'maxpool', format, draw, data: p.data, width: p.width, batch: p.maxpoolBatch, from, to: Math.min(total, from + p.chunk), ...(p.nTrain !== undefined ? { nTrain: p.nTrain } : {}) });
      }
    }
  }
  return items;
}

export interface SavedItem {
  key: string;
  item: PaperItem;
  result: ReluResult | MaxpoolResult;
  wallMs: number;
}

export interface PaperResultsFile {
  experiment: 'audit-nonsmooth-paper';
  plan: PaperPlan;
  items: SavedItem[];
  complete: boolean;
  wallMs: number;
}

/** Runs the items not yet in DIR/results.json (with resume), saving after each; returns every saved item. */
export async function runPaperItems(plan: PaperPlan, out: string, o: { jobs: number; resume: boolean; log: (s: string) => void; progress: boolean; save: (f: PaperResultsFile) => void }): Promise<{ saved: SavedItem[]; failed: string[]; previousWallMs: number }> {
  const items = planItems(plan);
  const path = join(out, 'results.json');
  const saved = new Map<string, SavedItem>();
  let previousWallMs = 0;
  if (o.resume && existsSync(path)) {
    const prev = JSON.parse(readFileSync(path, 'utf8')) as Partial<PaperResultsFile>;
    if (prev.experiment !== 'audit-nonsmooth-paper' || !Array.isArray(prev.items)) throw new Error(`--resume: ${path} is not the results of a --protocol paper audit; use another --out`);
    const wanted = new Set(items.map(itemKey));
    for (const s of prev.items) if (wanted.has(s.key)) saved.set(s.key, s);
    previousWallMs = prev.wallMs ?? 0;
    o.log(`resuming: ${saved.size} of ${items.length} work items already done in ${path}`);
  }
  const todo = items.filter((it) => !saved.has(itemKey(it)));
  const t0 = performance.now();
  const snapshot = (complete: boolean): PaperResultsFile => ({ experiment: 'audit-nonsmooth-paper', plan, items: items.map(itemKey).filter((k) => saved.has(k)).map((k) => saved.get(k)!), complete, wallMs: previousWallMs + performance.now() - t0 });
  const failed: string[] = [];
  let lastSave = 0;
  const record = (it: PaperItem, result: ReluResult | MaxpoolResult, wallMs: number) => {
    saved.set(itemKey(it), { key: itemKey(it), item: it, result, wallMs });
    // save at most every 2 s (a 1,000-draw run finishes many items a second)
    if (performance.now() - lastSave > 2000) {
      o.save(snapshot(false));
      lastSave = performance.now();
    }
  };
  const label = (it: PaperItem) => it.study === 'relu' ? `relu ${it.role} d${it.cell.depth}×w${it.cell.width} b${it.cell.batch} ${it.format} θ${it.draw}` : `maxpool ${it.format} θ${it.draw} minibatches ${it.from}–${it.to - 1}`;
  // in this process, a line for every MaxPool item and every 50th ReLU one (a 1,000-draw run finishes many a second)
  const results = await runItems<PaperItem, ReluResult | MaxpoolResult>(todo, {
    jobs: o.jobs, worker: new URL('./paper-worker.js', import.meta.url), name: 'audit paper', label, log: o.log, progress: o.progress,
    before: items.length - todo.length,
    lineFor: (it, k, n) => it.study === 'maxpool' || k % 50 === 0 || k === n,
    onResult: (r, i) => { if (r.ok) record(todo[i], r.value, r.wallMs); },
  });
  results.forEach((r, i) => { if (!r.ok) failed.push(`${label(todo[i])}: ${r.error.split('\n')[0]}`); });
  o.save(snapshot(failed.length === 0));
  return { saved: [...saved.values()], failed, previousWallMs };
}

// ---- summary ----------------------------------------------------------------

export interface ReluRow {
  role: string;
  cell: MlpCell;
  format: FormatName;
  draws: number;
  /** θ ∈ S: some minibatch's gradients differ; of them, those whose difference rests only on structural zeros */
  inS: keel.audit.Share;
  structural: number;
  /** θ ∈ S by a floating-point zero (not structural) */
  inSFloat: keel.audit.Share;
  meanFirstBatch: number;
  zerosPerSample: number;
  samplesWithZero: number;
  zeroRate: number;
  /** the paper's θ ∈ S out of 1,000 (undefined: no figure) */
  paper?: number;
}

export function summarizeRelu(saved: SavedItem[]): ReluRow[] {
  const groups = new Map<string, { it: ReluItem; rs: ReluResult[] }>();
  for (const s of saved) {
    if (s.item.study !== 'relu') continue;
    const it = s.item;
    const k = `${it.role}|${it.cell.depth}|${it.cell.width}|${it.cell.batch}|${it.format}`;
    if (!groups.has(k)) groups.set(k, { it, rs: [] });
    groups.get(k)!.rs.push(s.result as ReluResult);
  }
  return [...groups.values()].map(({ it, rs }) => {
    const n = rs.length;
    const inS = rs.filter((r) => r.differsAt !== null);
    const structural = inS.filter((r) => r.structural === true).length;
    const z = rs.reduce((a, r) => ({ inputs: a.inputs + r.zeros.inputs, zeros: a.zeros + r.zeros.zeros, samples: a.samples + r.zeros.samples, samplesWithZero: a.samplesWithZero + r.zeros.samplesWithZero }), { inputs: 0, zeros: 0, samples: 0, samplesWithZero: 0 });
    const bits = paperBits(it.format);
    const sweep = it.role === 'main' ? 'batch' : it.role as 'depth' | 'width' | 'batch';
    const value = it.cell[sweep];
    const fig = bits === 64 ? 0 : BERTOIN_FIGURES.find((f) => f.sweep === sweep && f.value === value && f.bits === bits)?.count;
    return {
      role: it.role, cell: it.cell, format: it.format, draws: n,
      inS: A.wilson(inS.length, n), structural, inSFloat: A.wilson(inS.length - structural, n),
      meanFirstBatch: inS.length ? inS.reduce((s, r) => s + r.differsAt!, 0) / inS.length : NaN,
      zerosPerSample: z.samples ? z.zeros / z.samples : 0,
      samplesWithZero: z.samples ? z.samplesWithZero / z.samples : 0,
      zeroRate: z.inputs ? z.zeros / z.inputs : 0,
      ...(fig !== undefined ? { paper: fig } : {}),
    };
  });
}

export interface MaxpoolRow {
  format: FormatName;
  draws: number;
  batches: number;
  differ: keel.audit.Share;
  aboveAbsolute?: keel.audit.Share;
  absolute?: number;
  aboveRelative: keel.audit.Share;
  medianD: number;
  maxD: number;
  histogram: keel.audit.DecadeBin[];
  paper?: { count: number; of: number };
}

export function summarizeMaxpool(saved: SavedItem[]): MaxpoolRow[] {
  const by = new Map<FormatName, MaxpoolBatch[]>();
  const draws = new Map<FormatName, Set<number>>();
  for (const s of saved) {
    if (s.item.study !== 'maxpool') continue;
    const f = s.item.format;
    if (!by.has(f)) { by.set(f, []); draws.set(f, new Set()); }
    by.get(f)!.push(...(s.result as MaxpoolResult).batches);
    draws.get(f)!.add(s.item.draw);
  }
  return [...by].map(([format, bs]) => {
    const n = bs.length;
    const abs = A.absoluteThreshold(format);
    const Ds = bs.map((b) => b.D).sort((a, b) => a - b);
    const bits = paperBits(format);
    const fig = BOUSTANY_FIGURES.find((f) => f.bits === bits);
    return {
      format, draws: draws.get(format)!.size, batches: n,
      differ: A.wilson(bs.filter((b) => !b.equal).length, n),
      ...(abs !== undefined ? { absolute: abs, aboveAbsolute: A.wilson(bs.filter((b) => b.D > abs).length, n) } : {}),
      aboveRelative: A.wilson(bs.filter((b) => b.D > A.bifurcationThreshold(format, b.scale)).length, n),
      medianD: Ds[Math.floor(n / 2)] ?? NaN, maxD: Ds[n - 1] ?? NaN,
      histogram: A.decadeHistogram(Ds, -20, 0),
      ...(fig ? { paper: { count: fig.count, of: fig.of } } : {}),
    };
  });
}

// ---- verdicts ---------------------------------------------------------------

const share = (s: keel.audit.Share) => A.formatShare(s);
const ORDER: FormatName[][] = [['fp64'], ['fp32'], ['bf16', 'fp16'], ['fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3fnuz', 'fp8-e5m2fnuz']];

/** Whether shares by format respect fp64 ≤ fp32 ≤ 16-bit ≤ 8-bit (a violation: intervals apart in the wrong order). */
export function orderHolds(shares: { format: FormatName; share: keel.audit.Share }[]): { holds: boolean; broken: string[] } {
  const levels = ORDER.map((fs) => shares.filter((s) => fs.includes(s.format))).filter((l) => l.length);
  const broken: string[] = [];
  for (let i = 0; i + 1 < levels.length; i++) for (const a of levels[i]) for (const b of levels[i + 1]) {
    if (a.share.lo > b.share.hi) broken.push(`${a.format} ${share(a.share)} > ${b.format} ${share(b.share)}`);
  }
  return { holds: broken.length === 0, broken };
}

export function reluVerdicts(rows: ReluRow[], required: number, requiredFp64: number, cut?: string): keel.audit.Verdict[] {
  const main = rows.filter((r) => r.role === 'main');
  const out: keel.audit.Verdict[] = [];
  const r64 = main.find((r) => r.format === 'fp64');
  if (r64) {
    out.push(A.judge({
      claim: "fp64: no θ in S (ReLU'(0) = 0 and = 1 give the same gradients on every minibatch of the epoch)",
      statistic: `θ with a differing minibatch: ${r64.inS.k}/${r64.draws} (${share(r64.inS)})`,
      threshold: 'k = 0', n: r64.draws, required: requiredFp64, holds: r64.inS.k === 0, ...(cut ? { cut } : {}),
    }));
  }
  const low = main.filter((r) => r.format !== 'fp64');
  if (low.length) {
    const { holds, broken } = orderHolds(main.map((r) => ({ format: r.format, share: r.inSFloat })));
    const structuralRows = main.filter((r) => r.structural > 0);
    const fp64Differs = r64 !== undefined && r64.inS.k > 0;
    out.push(A.judge({
      claim: 'the share of θ in S grows as precision falls (fp64 ≤ fp32 ≤ 16-bit ≤ 8-bit)',
      statistic: `θ in S by a floating-point zero, per precision: ${main.map((r) => `${r.format} ${r.inSFloat.k}/${r.draws}`).join(', ')}`,
      threshold: 'no pair of Wilson 95 % intervals apart in the wrong order',
      n: Math.min(...low.map((r) => r.draws)), required, holds, ...(cut ? { cut } : {}),
      ...(broken.length ? { reason: `out of order: ${broken.join('; ')}` } : {}),
      ...(fp64Differs ? { structural: `fp64 has θ in S too (${r64!.inS.k}/${r64!.draws}): those differences are structural, not floating-point` }
        : structuralRows.length && structuralRows.every((r) => r.structural === r.inS.k) ? { structural: `every θ in S rests on structural zeros only (${structuralRows.map((r) => `${r.format} ${r.structural}`).join(', ')})` } : {}),
    }));
  }
  return out;
}

export function maxpoolVerdicts(rows: MaxpoolRow[], required: number): keel.audit.Verdict[] {
  const out: keel.audit.Verdict[] = [];
  const r64 = rows.find((r) => r.format === 'fp64');
  if (r64 && r64.aboveAbsolute) {
    out.push(A.judge({
      claim: 'fp64: MaxPool native and β = 1 agree to Boustany\'s 64-bit threshold on every minibatch',
      statistic: `minibatches with D > ${r64.absolute}: ${r64.aboveAbsolute.k}/${r64.batches} (max D ${r64.maxD.toExponential(2)})`,
      threshold: `D ≤ ${r64.absolute} (absolute, Boustany)`, n: r64.batches, required, holds: r64.aboveAbsolute.k === 0,
      ...(r64.differ.k > 0 ? { reason: `${r64.differ.k}/${r64.batches} minibatches differ at all (D > 0) in fp64: ties over the reals (constant background windows), which the exact test would count` } : {}),
    }));
  }
  const judged = rows.filter((r) => r.aboveAbsolute !== undefined);
  if (judged.length > 1) {
    const { holds, broken } = orderHolds(judged.map((r) => ({ format: r.format, share: r.aboveAbsolute! })));
    out.push(A.judge({
      claim: 'the share of minibatches with D above the absolute threshold grows as precision falls',
      statistic: `minibatches with D > threshold: ${judged.map((r) => `${r.format} ${r.aboveAbsolute!.k}/${r.batches} (> ${r.absolute})`).join(', ')}`,
      threshold: 'no pair of Wilson 95 % intervals apart in the wrong order (the minibatches of one θ are not independent: the intervals are optimistic)',
      n: Math.min(...judged.map((r) => r.batches)), required, holds,
      ...(broken.length ? { reason: `out of order: ${broken.join('; ')}` } : {}),
    }));
  }
  return out;
}

// ---- printing ---------------------------------------------------------------

export const table = (head: string[], rows: string[][]): string => tableOf(head, rows, { style: 'plain' });

const sci = (v: number) => (!Number.isFinite(v) ? 'n/a' : v === 0 ? '0' : v.toExponential(2));

export function printPaper(plan: PaperPlan, relu: ReluRow[], maxpool: MaxpoolRow[], notes: { relu?: string; maxpool?: string }, verdicts: keel.audit.Verdict[], budget: string): string {
  const lines: string[] = [];
  lines.push(`Nonsmooth AD audit, --protocol paper${plan.quick ? ' --quick (a smoke run: too few draws for any verdict)' : ''}. Budget: ${budget}`);
  if (relu.length) {
    lines.push('', `ReLU'(0) = 0 vs 1 (Bertoin et al. 2021, relu-prime): per θ, the epoch's minibatches in order until the first whose gradients differ (${plan.firstLayer ? 'first layer\'s weight gradient, as their code' : 'every parameter'}).`);
    lines.push(`Data: ${notes.relu}. The paper: MNIST, 1,000 θ per cell, 16-bit = fp16 on a GPU; Keel's fp16 and bf16 are emulated on CPU (every op output rounded).`);
    lines.push(table(['cell', 'precision', 'θ', 'θ in S (95% CI)', 'structural', 'θ in S, fp zeros (95% CI)', 'first differing minibatch (mean)', 'exact zeros / sample', 'samples with a zero', 'paper: θ in S (MNIST)'],
      relu.map((r) => [`${r.role === 'main' ? 'main ' : `${r.role} sweep `}${r.cell.depth}×${r.cell.width}, batch ${r.cell.batch}`, r.format, String(r.draws), share(r.inS), String(r.structural), share(r.inSFloat),
        Number.isFinite(r.meanFirstBatch) ? r.meanFirstBatch.toFixed(1) : '—', sci(r.zerosPerSample), `${pct(r.samplesWithZero, 3)} %`,
        r.paper === undefined ? '—' : `${(r.paper / 10).toFixed(1)} % (${r.paper}/1000${r.format === 'fp64' ? ', set to 0' : ''})`])));
  }
  if (maxpool.length) {
    lines.push('', `MaxPool native vs β = 1 (Boustany 2024, MaxPool-numerical): VGG-11 width ${plan.width}, batch ${plan.maxpoolBatch}, ${plan.maxpoolDraws} θ; D = Σ over parameter tensors of ‖∇native − ∇β=1‖∞ per minibatch.`);
    lines.push(`Data: ${notes.maxpool}. The paper: CIFAR-10, one θ, one epoch of 391 minibatches, 16-bit = fp16 on a GPU. Absolute thresholds are Boustany's; τ_p = 8·u_p·Σ‖∇native‖∞ is Keel's (relative), not his.`);
    lines.push(table(['precision', 'θ', 'minibatches', 'D > 0 (95% CI)', 'abs. threshold', 'D > abs. (95% CI)', 'D > τ_p (95% CI)', 'median D', 'max D', 'paper: D > abs. (CIFAR-10)'],
      maxpool.map((r) => [r.format, String(r.draws), String(r.batches), share(r.differ), r.absolute === undefined ? 'none' : String(r.absolute), r.aboveAbsolute ? share(r.aboveAbsolute) : 'n/a', share(r.aboveRelative), sci(r.medianD), sci(r.maxD),
        r.paper ? `${(100 * r.paper.count / r.paper.of).toFixed(1)} % (${r.paper.count}/${r.paper.of})` : '—'])));
    lines.push('', 'Histogram of D (minibatches per decade, as Boustany\'s figures):');
    const bins = maxpool[0].histogram.map((b) => b.label);
    const used = bins.map((_, i) => maxpool.some((r) => r.histogram[i].count > 0));
    lines.push(table(['precision', ...bins.filter((_, i) => used[i])], maxpool.map((r) => [r.format, ...r.histogram.filter((_, i) => used[i]).map((b) => String(b.count))])));
  }
  lines.push('', 'Verdicts (each names its statistic, threshold and sample size):');
  for (const v of verdicts) lines.push(`  ${A.verdictLine(v).replace(/\n/g, '\n  ')}`);
  return lines.join('\n');
}

export function defaultJobs(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/** The sample sizes a verdict needs: the protocol's draws, its fp64 draws, a whole epoch of minibatches. */
export function requiredFor(plan: PaperPlan, requiredFp64: number): { relu: number; fp64: number; maxpool: number; reluCut?: string } {
  const epoch = minibatchCount(plan.nTrain ?? TRAIN_SIZE, BERTOIN_MAIN.batch);
  const full = minibatchCount(TRAIN_SIZE, BERTOIN_MAIN.batch);
  const reluCut = plan.reluBatches !== undefined && plan.reluBatches < epoch ? `each θ saw at most ${plan.reluBatches} of the epoch's ${epoch} minibatches`
    : epoch < full ? `--train cut the epoch to ${epoch} of ${full} minibatches` : undefined;
  return { relu: plan.requiredDraws, fp64: requiredFp64, maxpool: minibatchCount(TRAIN_SIZE, plan.maxpoolBatch), ...(reluCut ? { reluCut } : {}) };
}

export { writeFileAtomic };
