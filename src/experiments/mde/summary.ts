// Per-configuration summaries and the verdict on the paper's claims, each
// judged by a stated rule from the NaN counts and metrics of the runs.
import { cells, cellId, isNaive, isSafe, PRECISIONS, type Protocol, type RunSpec } from './protocol.js';
import type { NaNCause, Precision, RunResult } from './run.js';
import { fisherGreater, mean as sampleMean, welchT } from '../../stats/index.js';

export { fisherGreater };

export interface RunRecord extends RunSpec {
  result: RunResult | null;
  error?: string;
}

export interface CellSummary {
  precision: Precision;
  cell: string;
  runs: number;
  nanRuns: number;
  nanRate: number;
  /** first-NaN steps of the NaN runs */
  firstNaNSteps: number[];
  causes: Partial<Record<NaNCause, number>>;
  /** mean over finished runs, null if none */
  absRel: number | null;
  rmse: number | null;
  delta1: number | null;
}

const mean = (xs: number[]): number | null => (xs.length === 0 ? null : sampleMean(xs));

export function summarize(runs: RunRecord[]): CellSummary[] {
  const out: CellSummary[] = [];
  for (const precision of PRECISIONS) {
    for (const c of cells()) {
      const id = cellId(c);
      const rs = runs.filter((r) => r.precision === precision && r.cell === id && r.result !== null);
      if (rs.length === 0) continue;
      const nan = rs.filter((r) => r.result!.status === 'nan');
      const fin = rs.filter((r) => r.result!.status === 'finished' && r.result!.metrics !== null);
      const causes: Partial<Record<NaNCause, number>> = {};
      for (const r of nan) causes[r.result!.cause!] = (causes[r.result!.cause!] ?? 0) + 1;
      out.push({
        precision, cell: id, runs: rs.length, nanRuns: nan.length, nanRate: nan.length / rs.length,
        firstNaNSteps: nan.map((r) => r.result!.firstNaNStep!), causes,
        absRel: mean(fin.map((r) => r.result!.metrics!.absRel)), rmse: mean(fin.map((r) => r.result!.metrics!.rmse)), delta1: mean(fin.map((r) => r.result!.metrics!.delta1)),
      });
    }
  }
  return out;
}

export type Outcome = 'holds' | 'does not hold' | 'not observed' | 'inconclusive';

export interface ClaimVerdict {
  id: string;
  claim: string;
  rule: string;
  outcome: Outcome;
  evidence: string;
}

interface Group { runs: number; nan: number; causes: Partial<Record<NaNCause, number>> }
function group(runs: RunRecord[], pred: (r: RunRecord) => boolean, cause?: NaNCause): Group {
  const rs = runs.filter((r) => r.result !== null && pred(r));
  const nan = rs.filter((r) => r.result!.status === 'nan' && (cause === undefined || r.result!.cause === cause));
  const causes: Partial<Record<NaNCause, number>> = {};
  for (const r of nan) causes[r.result!.cause!] = (causes[r.result!.cause!] ?? 0) + 1;
  return { runs: rs.length, nan: nan.length, causes };
}
const rate = (g: Group): string => {
  const c = Object.entries(g.causes).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `${g.nan}/${g.runs}${g.runs ? ` (${((100 * g.nan) / g.runs).toFixed(0)} %)` : ''}${c ? ` [${c}]` : ''}`;
};

/** "A raises the NaN rate over B": Fisher one-sided p < 0.05 → holds; no NaN at all → not observed. */
function compare(id: string, claim: string, a: Group, b: Group, labelA: string, labelB: string, quick: boolean): ClaimVerdict {
  const p = fisherGreater(a.nan, a.runs - a.nan, b.nan, b.runs - b.nan);
  const rule = `NaN rate of ${labelA} > ${labelB}, one-sided Fisher exact p < 0.05 → holds; no NaN in either → not observed; otherwise does not hold`;
  let outcome: Outcome = a.nan + b.nan === 0 ? 'not observed' : p < 0.05 ? 'holds' : 'does not hold';
  if (quick) outcome = 'inconclusive';
  return { id, claim, rule, outcome, evidence: `${labelA}: ${rate(a)} NaN runs; ${labelB}: ${rate(b)}; p = ${p.toPrecision(2)}` };
}

export function judgeClaims(p: Protocol, runs: RunRecord[]): ClaimVerdict[] {
  const q = p.mode === 'quick';
  const fp32 = runs.filter((r) => r.precision === 'fp32');
  const out: ClaimVerdict[] = [];
  out.push(compare('variance', 'The unbiased (N − 1) variance over few valid pixels produces NaN; the biased variance removes it',
    group(fp32, (r) => r.correction === 1), group(fp32, (r) => r.correction === 0), 'unbiased', 'biased', q));
  out.push(compare('sqrt', 'The codebases\' sqrt SILog goes NaN where the safe SILog (eps in the sqrt, clamped log, empty-mask guard) does not (fp32, biased variance so the N = 1 case is out; the causes say which mechanism fired)',
    group(fp32, (r) => r.loss === 'sqrt' && r.correction === 0), group(fp32, (r) => r.loss === 'safe' && r.correction === 0), 'sqrt SILog', 'safe SILog', q));
  const sq = group(runs, (r) => r.loss === 'sqrt', 'sqrt at 0');
  out.push({
    id: 'sqrt-mechanism', claim: 'NaN arises from sqrt at a zero argument during training (not only from an empty or one-pixel mask)',
    rule: 'holds if some sqrt-SILog run in any precision went NaN in its gradient with a finite loss whose square (the argument) is < 1e-6; not observed otherwise',
    outcome: q ? 'inconclusive' : sq.nan > 0 ? 'holds' : 'not observed', evidence: `${sq.nan} of ${sq.runs} sqrt-SILog runs`,
  });
  out.push(compare('log-sigmoid', 'A sigmoid / log-sigmoid output underflows to log(0) = −inf in float32; a floor removes it',
    group(fp32, (r) => r.head !== 'log-sigmoid-floor' && !(r.loss === 'safe' && r.head === 'sigmoid'), 'sigmoid underflow, log 0'), group(fp32, (r) => r.head === 'log-sigmoid-floor', 'sigmoid underflow, log 0'),
    'unfloored log of σ', 'floored', q));
  out.push(compare('init', 'The default final-layer init produces more NaN than a small N(0, 0.001²) init',
    group(fp32, (r) => r.finalInit === 'default'), group(fp32, (r) => r.finalInit === 'small'), 'default init', 'small init', q));
  const low = runs.filter((r) => r.precision !== 'fp32');
  const lowCells = new Set(low.map((r) => `${r.cell}/s${r.seed}`));
  out.push(compare('precision', 'Emulated fp16/bf16 raises the NaN rate over float32 (same cells and seeds)',
    group(low, () => true), group(fp32, (r) => lowCells.has(`${r.cell}/s${r.seed}`)), 'fp16+bf16', 'fp32', q));
  const safe = group(runs, (r) => isSafe(r));
  out.push({
    id: 'guidelines', claim: 'With every guideline applied (safe SILog, floor, biased variance, small init) no run goes NaN, in any precision',
    rule: 'holds if 0 NaN over all safe-configuration runs (≥ 10 runs); does not hold if any', outcome: q ? 'inconclusive' : safe.nan > 0 ? 'does not hold' : safe.runs >= 10 ? 'holds' : 'inconclusive',
    evidence: `${rate(safe)} safe-configuration runs went NaN`,
  });
  const fin = (pred: (r: RunRecord) => boolean): number[] => fp32.filter((r) => pred(r) && r.result?.metrics).map((r) => r.result!.metrics!.absRel);
  const a = fin(isSafe);
  const b = fin(isNaive);
  const m = sampleMean;
  const t = welchT(a, b);
  out.push({
    id: 'performance', claim: 'Following the guidelines does not cost accuracy (the paper reports it improves)',
    rule: 'AbsRel of finished fp32 runs, safe vs naive configuration: Welch t > 2 (safe lower) → improves (holds); |t| ≤ 2 → no difference (holds for "does not cost"); t < −2 → does not hold',
    outcome: q || !Number.isFinite(t) ? 'inconclusive' : t < -2 ? 'does not hold' : 'holds',
    evidence: `AbsRel safe ${a.length ? m(a).toFixed(3) : '–'} (n=${a.length}), naive ${b.length ? m(b).toFixed(3) : '–'} (n=${b.length}), t = ${Number.isFinite(t) ? t.toFixed(2) : '–'}`,
  });
  return out;
}
