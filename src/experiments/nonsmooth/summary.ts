// The summary of `keel repro maxpool`: runs grouped over seeds, and the
// paper's claims judged on the matched cells that ran (same model, data set,
// precision, optimizer and ReLU'(0); β compared with the default β = 0).
//
// Rules (accuracy in percentage points, "drop" = acc(β) − acc(β = 0) of a cell,
// "noise" = the larger of 2 points and the cells' mean seed std):
//   harmless      |mean drop| ≤ noise and no collapse that β = 0 did not have
//   degrades      mean drop < −noise, or runs collapse that did not at β = 0
//   mitigates     HOLDS when the remedy's mean drop is smaller than without it
//                 by more than the noise, or its collapse share is lower by
//                 0.2, and neither is worse by as much; MIXED when one is
//                 better and the other worse; NOT TESTABLE when the cells
//                 without the remedy do not degrade
import type { FormatName } from '../../precision/formats.js';
import type { Role } from './grid.js';
import type { DataId } from './models.js';
import type { OptimName, RunSpec } from './train.js';
import { mean, pct, sampleStd } from '../../stats/index.js';

/** One run as kept in results.json (the final θ is dropped once its split is known). */
export interface RunRecord extends RunSpec {
  key: string;
  role: Role;
  ok: boolean;
  error?: string;
  testAccuracy: number;
  finalLoss: number;
  collapsed: boolean;
  /** ‖θ − θ_default‖ / ‖θ_default‖ against the same seed's default-rule run (null: no reference ran) */
  split: number | null;
  wallMs: number;
  losses: number[];
}

export interface Row {
  model: string;
  data: DataId;
  format: FormatName;
  optim: OptimName;
  beta: number;
  reluAt0: number;
  role: Role;
  lr: number;
  n: number;
  failed: number;
  mean: number;
  std: number;
  collapsed: number;
  split: number;
  wallMs: number;
}

export interface Claim {
  claim: string;
  verdict: 'HOLDS' | 'DOES NOT HOLD' | 'MIXED' | 'NOT TESTABLE' | 'NOT RUN';
  evidence: string;
}

export const modelName = (s: RunSpec): string => `${s.model.id}${s.model.avgPool ? '+avgpool' : ''}`;


/** Groups runs over seeds (failed runs are counted, not averaged). */
export function groupRows(runs: RunRecord[]): Row[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const k = r.key.replace(/\|s\d+$/, '');
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((all) => {
    const rs = all.filter((r) => r.ok);
    const s = all[0];
    const accs = rs.map((r) => r.testAccuracy);
    const m = mean(accs);
    const std = sampleStd(accs);
    // diverged runs (θ not finite) have no split
    const splits = rs.map((r) => r.split).filter((x): x is number => x !== null && Number.isFinite(x));
    return {
      model: modelName(s), data: s.data, format: s.format, optim: s.optim, beta: s.beta, reluAt0: s.reluAt0, role: s.role, lr: s.lr,
      n: rs.length, failed: all.length - rs.length, mean: m, std, collapsed: rs.filter((r) => r.collapsed).length,
      split: splits.length ? mean(splits) : NaN, wallMs: mean(rs.map((r) => r.wallMs)),
    };
  });
}

const pts = (x: number) => `${x >= 0 ? '+' : ''}${pct(x, 1)}`;
const acc = (x: number) => `${pct(x, 1)} %`;
const LOW: FormatName[] = ['bf16', 'fp16', 'fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3fnuz', 'fp8-e5m2fnuz'];

interface Drop {
  cells: number;
  /** mean over cells of acc(β) − acc(β = 0) */
  drop: number;
  noise: number;
  /** runs collapsed at β minus runs collapsed at β = 0, and runs */
  newCollapses: number;
  runs: number;
  ratio: number;
}

/** β's effect in matched cells: each row of `rows` against the same cell's β = 0 row. */
function dropOf(all: Row[], rows: Row[]): Drop {
  let d = 0, noise = 0, nc = 0, runs = 0, ratio = 0, cells = 0;
  for (const r of rows) {
    const ref = all.find((x) => x.model === r.model && x.data === r.data && x.format === r.format && x.optim === r.optim && x.reluAt0 === r.reluAt0 && x.beta === 0);
    if (!ref || ref === r || !(r.n > 0 && ref.n > 0)) continue;
    cells++;
    d += r.mean - ref.mean;
    noise += (r.std + ref.std) / 2;
    nc += r.collapsed - ref.collapsed;
    runs += r.n;
    ratio += r.wallMs / ref.wallMs;
  }
  return { cells, drop: cells ? d / cells : NaN, noise: Math.max(0.02, cells ? noise / cells : 0), newCollapses: nc, runs, ratio: cells ? ratio / cells : NaN };
}

const degrades = (x: Drop) => x.cells > 0 && (x.drop < -x.noise || x.newCollapses > 0);
const harmless = (x: Drop) => x.cells > 0 && Math.abs(x.drop) <= x.noise && x.newCollapses <= 0;
const say = (x: Drop) => `${x.cells} cells, mean Δacc ${pts(x.drop)} pts (noise ±${pct(x.noise, 1)}), ${x.newCollapses > 0 ? `${x.newCollapses}` : 'no'} extra collapses in ${x.runs} runs`;

/** A remedy "mitigates" when its drop (or collapse share) is smaller than without it by more than the noise. */
function mitigation(claim: string, without: Drop, withR: Drop, what: [string, string]): Claim {
  const evidence = `${what[0]}: ${say(without)}; ${what[1]}: ${say(withR)}`;
  if (!without.cells || !withR.cells) return { claim, verdict: 'NOT RUN', evidence: evidence };
  if (!degrades(without)) return { claim, verdict: 'NOT TESTABLE', evidence: `${evidence} (no degradation to mitigate here)` };
  const collapseShare = (x: Drop) => x.newCollapses / Math.max(1, x.runs);
  const noise = Math.max(without.noise, withR.noise);
  const accBetter = withR.drop - without.drop > noise, accWorse = without.drop - withR.drop > noise;
  const colBetter = collapseShare(withR) < collapseShare(without) - 0.2, colWorse = collapseShare(withR) > collapseShare(without) + 0.2;
  if (harmless(withR)) return { claim, verdict: 'HOLDS', evidence };
  if ((accBetter && colWorse) || (colBetter && accWorse)) return { claim, verdict: 'MIXED', evidence: `${evidence} (accuracy and collapses point opposite ways)` };
  return { claim, verdict: (accBetter || colBetter) && !accWorse && !colWorse ? 'HOLDS' : 'DOES NOT HOLD', evidence };
}

/** The claims the code judges (Boustany 2024; Bertoin et al. 2021 for ReLU'(0)). */
export function judgeClaims(rows: Row[]): Claim[] {
  const claims: Claim[] = [];
  const plain = rows.filter((r) => !r.model.includes('avgpool'));
  const bmax = Math.max(...plain.map((r) => r.beta));
  const sgd = (r: Row) => r.optim === 'sgd';

  const small = dropOf(rows, plain.filter((r) => r.beta === 1 && r.format !== 'fp64'));
  claims.push({ claim: 'β ∈ {0, 1} (inside the subdifferential): training unaffected', verdict: !small.cells ? 'NOT RUN' : harmless(small) ? 'HOLDS' : 'DOES NOT HOLD', evidence: `β = 1 vs β = 0: ${say(small)}` });

  const bigLow = dropOf(rows, plain.filter((r) => r.beta >= 1000 && LOW.includes(r.format)));
  const bigMax = dropOf(rows, plain.filter((r) => r.beta === bmax && LOW.includes(r.format)));
  const big32 = dropOf(rows, plain.filter((r) => r.beta >= 1000 && r.format === 'fp32'));
  claims.push({
    claim: 'large β (≥ 1000) in low precision (bf16/fp16) degrades or collapses training', verdict: !bigLow.cells ? 'NOT RUN' : degrades(bigLow) ? 'HOLDS' : 'DOES NOT HOLD',
    evidence: `β ≥ 1000 in bf16/fp16: ${say(bigLow)}; β = ${bmax} alone: ${say(bigMax)}; for contrast β ≥ 1000 in fp32: ${say(big32)}`,
  });

  const f64 = dropOf(rows, plain.filter((r) => r.format === 'fp64' && r.beta === bmax));
  const f64split = mean(plain.filter((r) => r.format === 'fp64' && r.beta === bmax && Number.isFinite(r.split)).map((r) => r.split));
  const lowSplit = mean(plain.filter((r) => LOW.includes(r.format) && r.beta === bmax && Number.isFinite(r.split)).map((r) => r.split));
  claims.push({
    claim: 'higher precision (fp64) removes the effect of β', verdict: !f64.cells ? 'NOT RUN' : harmless(f64) && f64split < 1e-6 ? 'HOLDS' : harmless(f64) ? 'MIXED' : 'DOES NOT HOLD',
    evidence: `fp64 β = ${bmax} vs β = 0: ${say(f64)}; trajectory split ${f64split.toExponential(1)} (bf16/fp16 at β = ${bmax}: ${lowSplit.toExponential(1)})`,
  });

  for (const data of [...new Set(rows.map((r) => r.data))]) {
    const bn = dropOf(rows, plain.filter((r) => r.data === data && r.model === 'vgg11_bn' && sgd(r) && r.beta >= 1000 && LOW.includes(r.format)));
    const nobn = dropOf(rows, plain.filter((r) => r.data === data && r.model === 'vgg11' && sgd(r) && r.reluAt0 === 0 && r.beta >= 1000 && LOW.includes(r.format) && bn.cells > 0));
    if (bn.cells || nobn.cells) claims.push(mitigation(`batch norm mitigates large β (VGG-11 vs VGG-11-BN, ${data}, SGD, bf16/fp16)`, nobn, bn, ['without BN', 'with BN']));
  }

  const adamRows = plain.filter((r) => r.optim === 'adam' && r.beta >= 1000 && LOW.includes(r.format));
  const adam = dropOf(rows, adamRows);
  const sgdMatched = dropOf(rows, plain.filter((r) => sgd(r) && r.reluAt0 === 0 && adamRows.some((a) => a.model === r.model && a.data === r.data && a.format === r.format && a.beta === r.beta)));
  claims.push(mitigation('Adam mitigates large β (same cells as SGD, bf16/fp16)', sgdMatched, adam, ['SGD', 'Adam']));

  const lowNorm = dropOf(rows, plain.filter((r) => r.beta === 1 && LOW.includes(r.format) && rows.some((b) => b.model === r.model && b.data === r.data && b.format === r.format && b.optim === r.optim && b.reluAt0 === r.reluAt0 && b.beta >= 1000)));
  const highNorm = dropOf(rows, plain.filter((r) => r.beta >= 1000 && LOW.includes(r.format) && rows.some((b) => b.model === r.model && b.data === r.data && b.format === r.format && b.optim === r.optim && b.reluAt0 === r.reluAt0 && b.beta === 1)));
  claims.push(mitigation('a low-norm MaxPool Jacobian (β = 1, the minimal rule) avoids what β ≥ 1000 does (bf16/fp16)', highNorm, lowNorm, ['β ≥ 1000', 'β = 1']));

  const avg = rows.filter((r) => r.model.includes('avgpool'));
  if (avg.length) {
    const pairs = avg.map((a) => {
      const base = a.model.replace('+avgpool', '');
      const same = (b: number) => rows.find((r) => r.model === base && r.data === a.data && r.format === a.format && r.optim === a.optim && r.reluAt0 === 0 && r.beta === b);
      return { a, max0: same(0), maxB: same(bmax) };
    }).filter((p) => p.max0 && p.maxB);
    const avgAcc = mean(pairs.map((p) => p.a.mean)), m0 = mean(pairs.map((p) => p.max0!.mean)), mB = mean(pairs.map((p) => p.maxB!.mean));
    const avgCollapsed = pairs.reduce((s, p) => s + p.a.collapsed, 0), maxBCollapsed = pairs.reduce((s, p) => s + p.maxB!.collapsed, 0);
    const cost = mean(pairs.map((p) => p.a.wallMs / p.max0!.wallMs));
    claims.push({
      claim: 'average pooling avoids the issue (no ties to break, no β)', verdict: !pairs.length ? 'NOT RUN' : avgCollapsed === 0 && avgAcc >= mB - 0.02 ? 'HOLDS' : 'DOES NOT HOLD',
      evidence: `${pairs.length} cells (${[...new Set(pairs.map((p) => p.a.format))].join(', ')}): avg pool ${acc(avgAcc)} (${avgCollapsed} collapsed), max pool β = 0 ${acc(m0)}, max pool β = ${bmax} ${acc(mB)} (${maxBCollapsed} collapsed); ${cost.toFixed(2)}× the max-pool run's time`,
    });
  }

  // ReLU'(0) = 1 against ReLU'(0) = 0 with the same β (Bertoin et al.: in low precision the choice matters)
  const r1 = plain.filter((r) => r.reluAt0 === 1 && r.format !== 'fp64');
  if (r1.length) {
    let d = 0, n = 0, nc = 0, runs = 0, noise = 0;
    for (const r of r1) {
      const ref = rows.find((x) => x.model === r.model && x.data === r.data && x.format === r.format && x.optim === r.optim && x.beta === r.beta && x.reluAt0 === 0);
      if (!ref || !(r.n && ref.n)) continue;
      d += r.mean - ref.mean; n++; nc += r.collapsed - ref.collapsed; runs += r.n; noise += (r.std + ref.std) / 2;
    }
    const x: Drop = { cells: n, drop: n ? d / n : NaN, noise: Math.max(0.02, n ? noise / n : 0), newCollapses: nc, runs, ratio: NaN };
    claims.push({ claim: "ReLU'(0) = 1 instead of 0 changes training (Bertoin et al.: it can, in low precision)", verdict: !n ? 'NOT RUN' : harmless(x) ? 'DOES NOT HOLD' : 'HOLDS', evidence: `same β, ReLU'(0) = 1 vs 0: ${say(x)}` });
  }
  return claims;
}

export interface RemedyCost {
  remedy: string;
  compared: string;
  cells: number;
  /** the remedy's run time / the baseline's, mean over matched cells */
  timeRatio: number;
  /** mean accuracy with the remedy minus without, at the default rule β = 0 (the price in accuracy, if any) */
  accDelta: number;
}

/** What each remedy costs: time per run and accuracy at the default rule, against its baseline. */
export function remedyCosts(rows: Row[]): RemedyCost[] {
  const out: RemedyCost[] = [];
  const add = (remedy: string, compared: string, pairs: [Row | undefined, Row | undefined][]) => {
    const ok = pairs.filter((p): p is [Row, Row] => !!p[0] && !!p[1] && p[0].n > 0 && p[1].n > 0);
    out.push({ remedy, compared, cells: ok.length, timeRatio: mean(ok.map(([w, b]) => w.wallMs / b.wallMs)), accDelta: mean(ok.map(([w, b]) => w.mean - b.mean)) });
  };
  const find = (m: string, data: string, format: string, optim: string, beta: number, relu = 0) =>
    rows.find((r) => r.model === m && r.data === data && r.format === format && r.optim === optim && r.beta === beta && r.reluAt0 === relu);
  add('batch norm', 'VGG-11-BN vs VGG-11, same data/precision, SGD, β = 0',
    rows.filter((r) => r.model === 'vgg11_bn' && r.beta === 0 && r.optim === 'sgd').map((r) => [r, find('vgg11', r.data, r.format, 'sgd', 0)]));
  add('Adam', 'Adam vs SGD, same model/data/precision, β = 0',
    rows.filter((r) => r.optim === 'adam' && r.beta === 0).map((r) => [r, find(r.model, r.data, r.format, 'sgd', 0)]));
  add('fp64', 'fp64 vs fp32, same model/data, SGD, β = 0',
    rows.filter((r) => r.format === 'fp64' && r.beta === 0 && !r.model.includes('avgpool')).map((r) => [r, find(r.model, r.data, 'fp32', r.optim, 0)]));
  add('average pooling', 'avg pool vs max pool (β = 0), same model/data/precision, SGD',
    rows.filter((r) => r.model.includes('avgpool')).map((r) => [r, find(r.model.replace('+avgpool', ''), r.data, r.format, r.optim, 0)]));
  add('low-norm Jacobian (β = 1)', 'MaxPool minimal rule vs native, same cell',
    rows.filter((r) => r.beta === 1 && !r.model.includes('avgpool')).map((r) => [r, find(r.model, r.data, r.format, r.optim, 0, r.reluAt0)]));
  return out;
}
