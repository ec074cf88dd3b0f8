// The cause sweep (causes.ts) as a Study: one run per spec (run.ts runOne
// with the setting's lr, max depth, λ and feature scale), a row per (cause,
// setting) with the NaN rate with the cause and with its fix and Fisher's
// one-sided p, and a verdict per cause judged on the NaN runs of the cause's
// own mechanism pooled over its settings.
import type { GridState, Study } from '../study.js';
import { table } from '../table.js';
import { fisherGreater, pct } from '../../stats/index.js';
import { causeSpecs, fixedKnobs, knobsText, settingsOf, type CauseId, type CauseRunSpec, type CausesProtocol } from './causes.js';
import { makeData, runOne, type NaNCause, type RunResult, type SharedData } from './run.js';
import { PAPER, describeRun, verdictNote } from './study.js';

export interface CauseRunRecord extends CauseRunSpec {
  result: RunResult | null;
  error?: string;
}

export interface ArmCount {
  runs: number;
  /** NaN runs of any mechanism */
  nan: number;
  /** NaN runs of the cause's mechanisms */
  byMechanism: number;
  /** every NaN run's mechanism, counted */
  causes: Partial<Record<NaNCause, number>>;
  /** first NaN steps of the runs of the cause's mechanisms */
  firstNaNSteps: number[];
}

export interface SettingRow {
  cause: CauseId;
  setting: string;
  withCause: ArmCount;
  withFix: ArmCount;
  /** one-sided Fisher exact p of "the cause's mechanism NaN rate is higher with the cause" */
  p: number;
}

export type CauseOutcome = 'shown' | 'not shown in the settings tried' | 'inconclusive';

export interface CauseVerdict {
  id: CauseId;
  claim: string;
  rule: string;
  outcome: CauseOutcome;
  evidence: string;
}

export interface CausesResults {
  experiment: 'mde-causes';
  paper: typeof PAPER;
  quick: boolean;
  complete: boolean;
  protocol: CausesProtocol;
  machine: GridState<CauseRunRecord>['machine'];
  startedAt: string;
  wallTimeMs: number;
  runs: CauseRunRecord[];
  rows: SettingRow[];
  verdict: { note: string; claims: CauseVerdict[] };
}

function count(runs: CauseRunRecord[], mechanisms: NaNCause[]): ArmCount {
  const done = runs.filter((r) => r.result !== null);
  const nan = done.filter((r) => r.result!.status === 'nan');
  const causes: Partial<Record<NaNCause, number>> = {};
  for (const r of nan) causes[r.result!.cause!] = (causes[r.result!.cause!] ?? 0) + 1;
  const mine = nan.filter((r) => mechanisms.includes(r.result!.cause!));
  return { runs: done.length, nan: nan.length, byMechanism: mine.length, causes, firstNaNSteps: mine.map((r) => r.result!.firstNaNStep!).sort((a, b) => a - b) };
}

const fisher = (a: ArmCount, b: ArmCount): number => fisherGreater(a.byMechanism, a.runs - a.byMechanism, b.byMechanism, b.runs - b.byMechanism);

/** A row per (cause, setting) that has runs, in the grid's order. */
export function causeRows(p: CausesProtocol, runs: CauseRunRecord[]): SettingRow[] {
  const out: SettingRow[] = [];
  for (const c of p.causes) {
    for (const [si] of settingsOf(c.knobs).entries()) {
      const rs = runs.filter((r) => r.causeId === c.id && r.settingIndex === si);
      if (rs.length === 0) continue;
      const withCause = count(rs.filter((r) => r.arm === 'cause'), c.mechanisms);
      const withFix = count(rs.filter((r) => r.arm === 'fix'), c.mechanisms);
      out.push({ cause: c.id, setting: rs[0].setting, withCause, withFix, p: fisher(withCause, withFix) });
    }
  }
  return out;
}

const rate = (a: ArmCount): string => `${a.byMechanism}/${a.runs}${a.runs ? ` (${pct(a.byMechanism / a.runs, 0)} %)` : ''}`;

/** Per cause: pooled over its settings, the mechanism's NaN runs with the cause vs with the fix. */
export function judgeCauses(p: CausesProtocol, runs: CauseRunRecord[]): CauseVerdict[] {
  const quick = p.mode === 'quick';
  return p.causes.map((c) => {
    const rs = runs.filter((r) => r.causeId === c.id);
    const a = count(rs.filter((r) => r.arm === 'cause'), c.mechanisms);
    const b = count(rs.filter((r) => r.arm === 'fix'), c.mechanisms);
    const pv = fisher(a, b);
    const rows = causeRows(p, rs).filter((r) => r.p < 0.05).map((r) => r.setting || 'the one setting');
    const n = settingsOf(c.knobs).length;
    const rule = `NaN runs whose mechanism is ${c.mechanisms.map((m) => `'${m}'`).join(' or ')}, pooled over the ${n} setting(s) × ${p.seeds} seed(s) per arm: shown if ${c.cause.label} > ${c.fix.label} by one-sided Fisher exact p < 0.05, the fix has 0 such runs, and ≥ 10 seeds per setting and arm; otherwise not shown in the settings tried`;
    let outcome: CauseOutcome = pv < 0.05 && b.byMechanism === 0 && p.seeds >= 10 ? 'shown' : 'not shown in the settings tried';
    if (quick) outcome = 'inconclusive';
    const others = (x: ArmCount): string => Object.entries(x.causes).filter(([k]) => !c.mechanisms.includes(k as NaNCause)).map(([k, v]) => `${k} ×${v}`).join(', ') || 'none';
    return {
      id: c.id,
      claim: `${c.name} makes training runs go non-finite (${c.cause.label}); ${c.fix.label} brings the rate to 0`,
      rule, outcome,
      evidence: `${c.cause.label}: ${rate(a)}; ${c.fix.label}: ${rate(b)}; p = ${pv.toPrecision(2)}; per-setting p < 0.05 in: ${rows.length ? rows.join('; ') : 'none'}; other NaN mechanisms with the cause: ${others(a)}, with the fix: ${others(b)}; sweep: ${knobsText(c.knobs)}`,
    };
  });
}

/** The data sets of the sweep, one per max depth (the ground truth is clipped at it), made on first use. */
export interface CausesData {
  get(maxDepth: number): SharedData;
  dispose(): void;
}

export function openCausesData(p: CausesProtocol): CausesData {
  const byDepth = new Map<number, SharedData>();
  return {
    get(maxDepth) {
      let d = byDepth.get(maxDepth);
      if (d === undefined) {
        d = makeData({ ...p.budget, maxDepth });
        byDepth.set(maxDepth, d);
      }
      return d;
    },
    dispose() {
      for (const d of byDepth.values()) d.dispose();
      byDepth.clear();
    },
  };
}

export function runCause(spec: CauseRunSpec, data: CausesData, p: CausesProtocol): RunResult {
  return runOne(spec, { ...p.budget, lr: spec.lr, maxDepth: spec.maxDepth }, data.get(spec.maxDepth));
}

export const study: Study<CausesProtocol, CauseRunSpec, RunResult, CauseRunRecord, CausesResults, CausesData, CauseVerdict> = {
  name: 'repro mde --causes',
  grid: causeSpecs,
  key: (p) => JSON.stringify(p),
  open: openCausesData,
  dispose: (d) => d.dispose(),
  run: runCause,
  module: new URL(import.meta.url),
  label: (spec) => spec.id,
  describe: (rec) => describeRun(rec.result!),
  claims: judgeCauses,
  assemble(protocol, state): CausesResults {
    const quick = protocol.mode === 'quick';
    return {
      experiment: 'mde-causes', paper: PAPER, quick, complete: state.complete, protocol, machine: state.machine, startedAt: state.startedAt, wallTimeMs: state.wallTimeMs,
      runs: state.runs, rows: causeRows(protocol, state.runs),
      verdict: {
        note: verdictNote(quick, state.complete),
        claims: state.claims,
      },
    };
  },
  report: causesReport,
};

const arm = (a: ArmCount): string => `${a.byMechanism}/${a.runs}`;
const armRate = (a: ArmCount): string => (a.runs ? `${pct(a.byMechanism / a.runs, 0)} %` : '–');
const otherNaN = (a: ArmCount, mechanisms: NaNCause[]): string => Object.entries(a.causes).filter(([k]) => !mechanisms.includes(k as NaNCause)).map(([k, v]) => `${k} ×${v}`).join('; ') || '–';

/** The table of one cause: a row per setting. */
export function causeTable(p: CausesProtocol, id: CauseId, rows: SettingRow[]): string {
  const c = p.causes.find((x) => x.id === id)!;
  const head = ['setting', `NaN with cause (${c.cause.label})`, 'rate', `NaN with fix (${c.fix.label})`, 'rate', 'Fisher p', 'first NaN steps (cause arm, counted runs)', 'other NaN, cause arm', 'other NaN, fix arm'];
  const body = rows.filter((r) => r.cause === id).map((r) => [
    r.setting || '–', arm(r.withCause), armRate(r.withCause), arm(r.withFix), armRate(r.withFix), r.p.toPrecision(2),
    r.withCause.firstNaNSteps.length ? r.withCause.firstNaNSteps.join(',') : '–',
    otherNaN(r.withCause, c.mechanisms), otherNaN(r.withFix, c.mechanisms),
  ]);
  return table(head, body);
}

export function causesReport(r: CausesResults): string {
  const p = r.protocol;
  const out = [
    `# MDE NaN causes, each in training (arXiv:${PAPER.arxiv}) on SynthDepth${r.quick ? ' — QUICK' : ''}`,
    '', `budget: ${p.note}`,
    `wall time ${(r.wallTimeMs / 1000).toFixed(1)} s; ${r.runs.length} runs; ${r.machine.threads} thread(s) on ${r.machine.cores} cores${r.complete ? '' : '; INCOMPLETE'}`,
    'NaN counts are runs whose first non-finite loss or gradient came from one of the cause\'s mechanisms (run.ts causeOf); other mechanisms are listed apart. Fisher p: one-sided exact test, cause arm > fix arm.',
  ];
  for (const c of p.causes) {
    out.push('', `## ${c.name} (${c.id}): ${c.cause.label} vs ${c.fix.label}`, '',
      `both arms: loss ${c.base.loss}, head ${c.base.head}, ${c.base.correction === 0 ? 'biased' : 'unbiased'} variance, ${c.base.finalInit} init, except what the arm sets (${c.cause.label}: ${JSON.stringify(c.cause.set)}; ${c.fix.label}: ${JSON.stringify(c.fix.set)}); fixed: ${fixedKnobs(c.knobs) || 'nothing'}; counted mechanisms: ${c.mechanisms.join(', ')}`,
      '', causeTable(p, c.id, r.rows));
    const v = r.verdict.claims.find((x) => x.id === c.id);
    if (v) out.push('', `verdict: ${v.outcome} — ${v.evidence}`, `  rule: ${v.rule}`);
  }
  out.push('', `(${r.verdict.note})`);
  return out.join('\n');
}
