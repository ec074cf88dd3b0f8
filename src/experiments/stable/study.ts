// `keel repro stable` as a Study (src/experiments/study.ts): the grid
// (grid.ts: Part A, B and C pairs), one run (run.ts), the claims and their
// rules (claims.ts), the results.json shape, the report (report.ts); the
// plots are drawn from the results after the grid (charts.ts).
import { setNumThreads, getNumThreads } from '../../core/threads.js';
import { scope } from '../../core/memory.js';
import type { GridState, Machine, Study } from '../study.js';
import { judge, fmtNum, type Verdict } from './claims.js';
import type { DataSet } from './data.js';
import { stableKey, stableSpecs, type StableSpec } from './grid.js';
import { reportText } from './report.js';
import { convInitRows, initRows, loadDataSet, trainMultilevel, type ConvInitRow, type InitRow, type StableConfig, type TrainRow } from './run.js';
import { pct } from '../../stats/index.js';

export const PAPER = { title: 'Stable Architectures for Deep Neural Networks', authors: 'Eldad Haber, Lars Ruthotto', arxiv: '1705.03341' };

/** What a run measured (non-finite numbers are null, as in results.json). */
export interface StableResult {
  init?: InitRow[];
  trained?: TrainRow[];
  convInit?: ConvInitRow[];
  /** Part B: hλ of the trained block at the deepest level */
  eig?: { re: number[]; im: number[]; h: number } | null;
  /** Part B, 2-D sets: the predicted class on a grid over the plot box */
  boundary?: number[][] | null;
}

export type StableRecord = StableSpec & { result: StableResult | null; error?: string };

export interface StableResults {
  experiment: 'stable';
  paper: typeof PAPER;
  complete: boolean;
  protocol: StableConfig;
  machine: Machine;
  startedAt: string;
  wallTimeMs: number;
  runs: StableRecord[];
  /** the runs' rows by part, in grid order */
  init: InitRow[];
  trained: TrainRow[];
  convInit: ConvInitRow[];
  verdicts: Verdict[];
  /** the files written into the results folder (set after the plots) */
  files: string[];
}

/** The data sets of the runs in this process, each loaded once. */
export class StableData {
  private readonly sets = new Map<string, DataSet>();
  constructor(private readonly cfg: StableConfig) {}
  get(name: string): DataSet {
    let ds = this.sets.get(name);
    if (ds === undefined) {
      ds = loadDataSet(name, this.cfg);
      this.sets.set(name, ds);
    }
    return ds;
  }
  dispose(): void {
    for (const ds of this.sets.values()) for (const t of [ds.train.x, ds.train.y, ds.val.x, ds.val.y]) t.dispose();
    this.sets.clear();
  }
}

/** The Fashion-MNIST runs on cfg.fmnist.threads libtorch threads (in a child: its one). */
function withThreads<T>(threads: number, f: () => T): T {
  const before = getNumThreads();
  setNumThreads(threads);
  try {
    return f();
  } finally {
    setNumThreads(before);
  }
}

export function runOne(spec: StableSpec, data: StableData, cfg: StableConfig): StableResult {
  if (spec.part === 'init') return { init: initRows(cfg, spec.activation, spec.architecture) };
  const f = cfg.fmnist;
  if (spec.part === 'conv-init') {
    if (!f || !cfg.convInit) throw new Error(`stable: ${spec.id} needs cfg.fmnist and cfg.convInit`);
    return withThreads(f.threads, () => ({ convInit: convInitRows(cfg, data.get('fashion-mnist'), spec.activation, spec.architecture) }));
  }
  const ds = data.get(spec.dataset);
  const out = spec.dataset === 'fashion-mnist'
    ? withThreads(f!.threads, () => scope(() => trainMultilevel(ds, spec.architecture, f!.depths, f!.T, f!.iters, f!.lr, cfg, f!.batch, f!.channels)))
    : scope(() => trainMultilevel(ds, spec.architecture, cfg.trainDepths, cfg.T, cfg.itersPerLevel, cfg.lr, cfg, null, 0));
  return { trained: out.rows, eig: out.eig, boundary: out.boundary };
}

const rowsOf = <K extends 'init' | 'trained' | 'convInit'>(runs: StableRecord[], key: K): NonNullable<StableResult[K]> =>
  runs.flatMap((r) => (r.result?.[key] ?? []) as never[]) as unknown as NonNullable<StableResult[K]>;

export const study: Study<StableConfig, StableSpec, StableResult, StableRecord, StableResults, StableData, Verdict> = {
  name: 'repro stable',
  grid: stableSpecs,
  key: stableKey,
  open: (cfg) => new StableData(cfg),
  dispose: (data) => data.dispose(),
  run: runOne,
  module: new URL(import.meta.url),
  record(spec, value, error) {
    // as results.json keeps it (NaN and ±Infinity → null), in this process as in a child
    if (value === null) return { ...spec, result: null, error: error ?? 'no result' };
    return { ...spec, result: JSON.parse(JSON.stringify(value)) as StableResult };
  },
  label: (spec) => spec.id,
  describe(rec) {
    const r = rec.result!;
    if (r.trained) {
      const last = r.trained.at(-1);
      return last ? `N = ${last.depth}: val ${pct(last.valAccuracy, 1)}%, growth ${fmtNum(last.growth)}, loss ${fmtNum(last.trainLoss)}` : 'no levels';
    }
    const rows = r.init ?? r.convInit ?? [];
    const last = rows.at(-1);
    return last ? `growth ${rows.map((x) => `${fmtNum(x.growth)} at N = ${x.depth}`).join(', ')}` : 'no depths';
  },
  claims: (cfg, runs) => judge(cfg, rowsOf(runs, 'init'), rowsOf(runs, 'trained'), rowsOf(runs, 'convInit')),
  assemble(cfg, state: GridState<StableRecord, Verdict>): StableResults {
    return {
      experiment: 'stable', paper: PAPER, complete: state.complete, protocol: cfg, machine: state.machine, startedAt: state.startedAt, wallTimeMs: state.wallTimeMs,
      runs: state.runs, init: rowsOf(state.runs, 'init'), trained: rowsOf(state.runs, 'trained'), convInit: rowsOf(state.runs, 'convInit'), verdicts: state.claims, files: ['results.json'],
    };
  },
  report: reportText,
};
