// `keel audit nonsmooth`: the bifurcation protocols of both papers on many
// (parameter draw θ, minibatch) pairs and every requested precision.
//
//   Bertoin et al. 2021: same θ, same minibatch, backprop with ReLU'(0) = 0 and
//     with ReLU'(0) = 1 (max pools native); the pair is in the bifurcation zone
//     when the gradients are not bitwise equal. For the MLP, depth, width and
//     batch size are varied too.
//   Boustany 2024: same θ and minibatch, MaxPool native vs MaxPool-β with β = 1
//     (ReLU'(0) = 0); D = Σ_l ‖∇_native − ∇_β‖_∞ against τ_p (bifurcation.ts);
//     the share of minibatches with D > τ_p and with D > 0, the size of D, the
//     per-parameter-tensor shares, and the tied windows per pool layer.
//
// Shares come with Wilson 95 % intervals. Dropout (none in these models) and
// batch statistics are the same in both passes (same batch, seed reset).
import * as keel from '../../index.js';
import type { FormatName } from '../../precision/formats.js';
import { batch, buildModel, type DataId, type DataSplit, type ModelSpec } from './models.js';
import { pct } from '../../stats/index.js';

const A = keel.audit;
export type Protocol = 'relu' | 'maxpool';

export interface PairResult {
  protocol: Protocol;
  format: FormatName;
  draw: number;
  batchIndex: number;
  equal: boolean;
  D: number;
  tau: number;
  perTensor: { name: string; maxAbsDiff: number }[];
  ties: keel.audit.TieRecord[];
}

/** One forward + backward in the format with the given rules; returns the float64 gradients. */
export function gradientsWith(model: keel.nn.Module, format: FormatName, x: keel.Tensor, y: keel.Tensor, rules: keel.audit.BackwardRules, seed: number): Map<string, keel.Tensor> {
  A.swapBackwardRules(model, rules);
  model.zeroGrad();
  keel.scope(() => {
    keel.manualSeed(seed);
    const xs = A.castFor(format, x);
    A.inFormat(format, () => {
      const out = model.call(xs) as keel.Tensor;
      keel.losses.crossEntropy(out, y).backward();
    });
  });
  const g = A.collectGradients(model);
  model.zeroGrad();
  return g;
}

/**
 * The gradients with MaxPool-β at β = 0 (native) and β = 1 on one forward:
 * backward twice through the same graph, the pools' β switched in between
 * (MaxPoolBeta reads it when its backward runs). The same numbers as two
 * forward+backward passes (the forward is the same computation; the test
 * holds it bitwise) at two thirds of the cost. `ties` collects the β = 1
 * backward's tie records.
 */
export function maxpoolGradientPair(model: keel.nn.Module, format: FormatName, x: keel.Tensor, y: keel.Tensor, seed: number, ties: keel.audit.TieRecord[]): [Map<string, keel.Tensor>, Map<string, keel.Tensor>] {
  A.swapBackwardRules(model, { reluAt0: 0, beta: 0 });
  const pools = model.modules().filter((m): m is keel.audit.MaxPool2dBeta => m instanceof A.MaxPool2dBeta);
  const setBeta = (b: number): void => { for (const m of pools) m.config.beta = b; };
  model.zeroGrad();
  let ga: Map<string, keel.Tensor> | undefined;
  try {
    keel.scope(() => {
      keel.manualSeed(seed);
      const xs = A.castFor(format, x);
      A.inFormat(format, () => {
        const loss = keel.losses.crossEntropy(model.call(xs) as keel.Tensor, y);
        loss.backward(undefined, { retainGraph: true });
        ga = A.collectGradients(model);
        model.zeroGrad();
        setBeta(1);
        A.tieRecorder.current = ties;
        try {
          loss.backward();
        } finally {
          A.tieRecorder.current = null;
        }
      });
    });
  } catch (e) {
    if (ga !== undefined) A.disposeGradients(ga);
    throw e;
  } finally {
    setBeta(0);
  }
  const gb = A.collectGradients(model);
  model.zeroGrad();
  return [ga!, gb];
}

export function auditPair(model: keel.nn.Module, protocol: Protocol, format: FormatName, x: keel.Tensor, y: keel.Tensor, seed: number, meta: { draw: number; batchIndex: number }): PairResult {
  const [ra, rb]: keel.audit.BackwardRules[] = protocol === 'relu'
    ? [{ reluAt0: 0, beta: 0 }, { reluAt0: 1, beta: 0 }]
    : [{ reluAt0: 0, beta: 0 }, { reluAt0: 0, beta: 1 }];
  const ga = gradientsWith(model, format, x, y, ra, seed);
  const ties: keel.audit.TieRecord[] = [];
  if (protocol === 'maxpool') A.tieRecorder.current = ties;
  let gb: Map<string, keel.Tensor>;
  try {
    gb = gradientsWith(model, format, x, y, rb, seed);
  } finally {
    A.tieRecorder.current = null;
  }
  const c = A.compareGradients(ga, gb);
  A.disposeGradients(ga);
  A.disposeGradients(gb);
  return {
    protocol, format, ...meta, equal: c.equal, D: c.sumInfNorm, tau: A.bifurcationThreshold(format, c.scale),
    perTensor: c.perTensor.map(({ name, maxAbsDiff }) => ({ name, maxAbsDiff })), ties,
  };
}

export interface AuditPlan {
  model: ModelSpec;
  data: DataId;
  formats: FormatName[];
  draws: number;
  batches: number;
  batchSize: number;
  protocols: Protocol[];
}

export interface AuditRow {
  protocol: Protocol;
  format: FormatName;
  model: string;
  pairs: number;
  /** share with gradients not bitwise equal */
  differ: keel.audit.Share;
  /** share with D > τ_p (Keel's relative threshold) */
  bifurcation: keel.audit.Share;
  /** share with D above Boustany's absolute threshold (none for fp8) */
  aboveAbsolute?: keel.audit.Share;
  meanD: number;
  maxD: number;
  /** per parameter tensor: share of pairs where it differs, and its largest difference */
  perTensor: { name: string; share: number; maxAbsDiff: number }[];
  /** per pool layer: mean tied windows (with a nonzero gradient) per pair */
  ties: { label: string; tiedWindows: number; tiedWithGradient: number; windows: number }[];
}

export function summarizePairs(results: PairResult[], model: string): AuditRow[] {
  const rows: AuditRow[] = [];
  const keys = [...new Set(results.map((r) => `${r.protocol}|${r.format}`))];
  for (const key of keys) {
    const [protocol, format] = key.split('|') as [Protocol, FormatName];
    const rs = results.filter((r) => r.protocol === protocol && r.format === format);
    const n = rs.length;
    const names = rs[0].perTensor.map((t) => t.name);
    const labels = [...new Set(rs.flatMap((r) => r.ties.map((t) => t.label)))];
    rows.push({
      protocol, format, model, pairs: n,
      differ: A.wilson(rs.filter((r) => !r.equal).length, n),
      bifurcation: A.wilson(rs.filter((r) => r.D > r.tau).length, n),
      ...(A.absoluteThreshold(format) !== undefined ? { aboveAbsolute: A.wilson(rs.filter((r) => r.D > A.absoluteThreshold(format)!).length, n) } : {}),
      meanD: rs.reduce((s, r) => s + r.D, 0) / n,
      maxD: Math.max(...rs.map((r) => r.D)),
      perTensor: names.map((name, i) => ({
        name,
        share: rs.filter((r) => r.perTensor[i].maxAbsDiff > 0).length / n,
        maxAbsDiff: Math.max(...rs.map((r) => r.perTensor[i].maxAbsDiff)),
      })),
      ties: labels.map((label) => {
        const ts = rs.flatMap((r) => r.ties.filter((t) => t.label === label));
        const mean = (f: (t: keel.audit.TieRecord) => number) => ts.reduce((s, t) => s + f(t), 0) / Math.max(1, n);
        return { label, tiedWindows: mean((t) => t.tiedWindows), tiedWithGradient: mean((t) => t.tiedWithGradient), windows: mean((t) => t.windows) };
      }),
    });
  }
  return rows;
}

/** Runs the plan: for each draw a fresh θ (seeded), for each minibatch and format both protocols. */
export function runAuditPlan(plan: AuditPlan, train: DataSplit, log: (s: string) => void = () => {}): PairResult[] {
  const results: PairResult[] = [];
  for (let d = 0; d < plan.draws; d++) {
    const m32 = buildModel(plan.model, plan.data, 1000 + d);
    const m64 = buildModel(plan.model, plan.data, 1000 + d).to('float64');
    const hasPool = m32.modules().some((m) => m instanceof keel.nn.MaxPool2d);
    for (let b = 0; b < plan.batches; b++) {
      const [x, y] = batch(train, d * plan.batches + b, plan.batchSize);
      for (const format of plan.formats) {
        const model = format === 'fp64' ? m64 : m32;
        for (const protocol of plan.protocols) {
          if (protocol === 'maxpool' && !hasPool) continue;
          results.push(auditPair(model, protocol, format, x, y, 77 + b, { draw: d, batchIndex: b }));
        }
      }
      x.dispose();
      y.dispose();
    }
    m32.dispose();
    m64.dispose();
    log(`draw ${d + 1}/${plan.draws} done (${results.length} pairs)`);
  }
  return results;
}

/**
 * The verdicts of Keel's protocol (issue 17 §3) on the share of θ draws with a
 * minibatch whose gradients differ (ReLU: not bitwise equal; MaxPool: D above
 * Boustany's absolute threshold): the statistic, the threshold, the sample
 * size; 'insufficient' below `required` draws or when fp64 differs too (then
 * the differences are structural: zeros or ties over the reals, not rounding).
 */
export function keelVerdicts(results: PairResult[], required: number): keel.audit.Verdict[] {
  const out: keel.audit.Verdict[] = [];
  for (const protocol of ['relu', 'maxpool'] as Protocol[]) {
    const rs = results.filter((r) => r.protocol === protocol);
    if (!rs.length) continue;
    const formats = [...new Set(rs.map((r) => r.format))];
    const differs = (r: PairResult) => {
      if (protocol === 'relu') return !r.equal;
      const t = A.absoluteThreshold(r.format);
      return t === undefined ? r.D > r.tau : r.D > t;
    };
    const shares = formats.map((format) => {
      const draws = [...new Set(rs.filter((r) => r.format === format).map((r) => r.draw))];
      const k = draws.filter((d) => rs.some((r) => r.format === format && r.draw === d && differs(r))).length;
      return { format, share: A.wilson(k, draws.length) };
    });
    const levels: FormatName[][] = [['fp64'], ['fp32'], ['bf16', 'fp16'], ['fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3fnuz', 'fp8-e5m2fnuz']];
    const broken: string[] = [];
    const ls = levels.map((fs) => shares.filter((s) => fs.includes(s.format))).filter((l) => l.length);
    for (let i = 0; i + 1 < ls.length; i++) for (const a of ls[i]) for (const b of ls[i + 1]) if (a.share.lo > b.share.hi) broken.push(`${a.format} > ${b.format}`);
    const s64 = shares.find((s) => s.format === 'fp64');
    const test = protocol === 'relu' ? 'gradients not bitwise equal' : 'D above Boustany\'s absolute threshold (1e-15 / 1e-7 / 1e-3 for 64 / 32 / 16 bits; τ_p for fp8)';
    out.push(A.judge({
      claim: `${protocol === 'relu' ? "ReLU'(0) = 0 vs 1" : 'MaxPool native vs β = 1'}: the share of θ with a differing minibatch grows as precision falls`,
      statistic: `θ with a minibatch whose ${test}: ${shares.map((s) => `${s.format} ${s.share.k}/${s.share.n}`).join(', ')}`,
      threshold: 'no pair of Wilson 95 % intervals apart in the wrong order (fp64 ≤ fp32 ≤ 16-bit ≤ 8-bit)',
      n: Math.min(...shares.map((s) => s.share.n)), required, holds: broken.length === 0,
      ...(broken.length ? { reason: `out of order: ${broken.join('; ')}` } : {}),
      ...(s64 && s64.share.k > 0 ? { structural: `fp64 differs too (${s64.share.k}/${s64.share.n} θ): the differences rest on structural zeros or ties, not on rounding` } : {}),
    }));
  }
  return out;
}

/** The paper's predicted order fp64 ≤ fp32 ≤ bf16/fp16 ≤ fp8, checked on the shares (with their intervals). */
export function checkOrder(rows: AuditRow[], protocol: Protocol, which: 'differ' | 'bifurcation' = 'differ'): { holds: boolean; explanation: string } {
  const p = (f: FormatName) => rows.find((r) => r.protocol === protocol && r.format === f)?.[which];
  const chain: FormatName[][] = [['fp64'], ['fp32'], ['bf16', 'fp16'], ['fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3fnuz', 'fp8-e5m2fnuz']];
  const levels = chain.map((fs) => fs.map(p).filter((s): s is keel.audit.Share => s !== undefined)).filter((l) => l.length > 0);
  const broken: string[] = [];
  for (let i = 0; i + 1 < levels.length; i++) {
    for (const a of levels[i]) for (const b of levels[i + 1]) {
      // a strict violation only when the intervals do not overlap
      if (a.p > b.p && a.lo > b.hi) broken.push(`${pct(a.p, 1)} % > ${pct(b.p, 1)} %`);
      else if (a.p > b.p) broken.push(`(${pct(a.p, 1)} % > ${pct(b.p, 1)} % but within the intervals)`);
    }
  }
  const strict = broken.filter((s) => !s.startsWith('('));
  if (broken.length === 0) return { holds: true, explanation: `${protocol}: shares ordered fp64 ≤ fp32 ≤ bf16/fp16 ≤ fp8 as predicted` };
  return {
    holds: strict.length === 0,
    explanation: `${protocol}: order ${strict.length ? 'violated' : 'holds within the 95 % intervals'}: ${broken.join('; ')}. ` +
      'Why it can fail: fp8 formats flush small activations to exactly 0 or saturate, so whole layers go dead (every ReLU input ≤ 0 ' +
      'and every gradient 0, making both rules agree trivially), and at few pairs the intervals are wide.',
  };
}
