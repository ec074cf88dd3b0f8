// Running `keel repro maxpool`'s grid: the learning-rate tuning phase, then
// every planned run, in a process pool (runPool, one libtorch thread per
// child) or, with jobs = 0, one after another in this process. Trajectory
// splits (‖θ − θ_default‖ / ‖θ_default‖, the same seed's default-rule run)
// are computed as runs arrive, so only the default-rule runs' final θ are
// held in memory.
import type { PoolResult } from '../pool.js';
import { runItems } from '../run-items.js';
import { LR_GRID, lrKey, tuningKeys, tuningLoss, type PlannedRun } from './grid.js';
import type { ModelId } from './models.js';
import type { RunRecord } from './summary.js';
import { relativeDistance, runKey, type OptimName, type RunResult, type RunSpec } from './train.js';
import { runItem, type TrainItem } from './worker.js';
import { pct } from '../../stats/index.js';

export interface GridRunOptions {
  /** child processes; 0 runs everything in this process */
  jobs: number;
  nTrain: number;
  nTest: number;
  /** fixed learning rates (no tuning) */
  lr?: Partial<Record<OptimName, number>>;
  log: (line: string) => void;
  /** the progress bar on a TTY (default true) */
  progress?: boolean;
}

export interface TuningRecord {
  model: ModelId;
  data: string;
  optim: OptimName;
  tried: { lr: number; tuningLoss: number; testAccuracy: number; ok: boolean }[];
  chosen: number;
}

const WORKER = new URL('./worker.js', import.meta.url);

const label = (it: TrainItem): string => runKey(it.spec);
const describe = (r: RunResult): string => `acc ${pct(r.testAccuracy, 1)} %${r.collapsed ? ' COLLAPSED' : ''}`;

/** Runs the items in a pool (jobs ≥ 1) or in this process (jobs = 0); results in input order. */
function execute(items: TrainItem[], o: GridRunOptions, name: string, onResult?: (r: PoolResult<RunResult>, i: number) => void): Promise<PoolResult<RunResult>[]> {
  return runItems<TrainItem, RunResult>(items, {
    jobs: o.jobs, worker: WORKER, here: runItem, name, label, describe, log: o.log,
    ...(onResult ? { onResult } : {}),
    ...(o.progress === false ? { progress: false } : {}),
  });
}

const isReference = (s: RunSpec): boolean => s.beta === 0 && s.reluAt0 === 0 && !s.model.avgPool;
const refKey = (s: RunSpec): string => runKey({ ...s, beta: 0, reluAt0: 0 });

/** Tunes the learning rates (unless given), then trains every planned run. */
export async function runGrid(plan: PlannedRun[], o: GridRunOptions): Promise<{ runs: RunRecord[]; tuning: TuningRecord[]; lrs: Record<string, number> }> {
  const lrs: Record<string, number> = {};
  const tuning: TuningRecord[] = [];
  const reuse = new Map<string, PoolResult<RunResult>>();
  const keys = tuningKeys(plan);
  const fixed = o.lr ?? {};
  const toTune = keys.filter((k) => fixed[k.optim] === undefined);
  for (const k of keys) if (fixed[k.optim] !== undefined) lrs[lrKey(k.id, k.data, k.optim)] = fixed[k.optim]!;
  if (toTune.length) {
    const stepsOf = new Map(plan.map((p) => [p.spec.model.id, p.spec.steps] as const));
    const batchSize = plan[0].spec.batchSize;
    const width = plan[0].spec.model.width;
    const items: TrainItem[] = toTune.flatMap((k) => LR_GRID[k.optim].map((lr) => ({
      spec: { model: { id: k.id, width }, data: k.data, format: 'fp32' as const, beta: 0, reluAt0: 0, optim: k.optim, lr, seed: 0, steps: stepsOf.get(k.id)!, batchSize },
      nTrain: o.nTrain, nTest: o.nTest,
    })));
    o.log(`[repro maxpool] tuning the learning rate of ${toTune.length} (model, data, optimizer) combinations: ${items.length} runs in fp32, β = 0, ReLU'(0) = 0, seed 0`);
    const rs = await execute(items, o, 'lr tuning');
    for (const k of toTune) {
      const mine = items.map((it, i) => ({ it, r: rs[i] })).filter(({ it }) => it.spec.model.id === k.id && it.spec.data === k.data && it.spec.optim === k.optim);
      const tried = mine.map(({ it, r }) => ({ lr: it.spec.lr, tuningLoss: r.ok ? tuningLoss(r.value.losses, it.spec.steps) : Infinity, testAccuracy: r.ok ? r.value.testAccuracy : NaN, ok: r.ok }));
      let best = 0;
      tried.forEach((t, i) => { if (t.tuningLoss < tried[best].tuningLoss) best = i; });
      const chosen = tried[best].lr;
      lrs[lrKey(k.id, k.data, k.optim)] = chosen;
      tuning.push({ model: k.id, data: k.data, optim: k.optim, tried, chosen });
      reuse.set(runKey(mine[best].it.spec), mine[best].r);
      o.log(`[repro maxpool] lr ${k.id}|${k.data}|${k.optim}: ${tried.map((t) => `${t.lr} → ${Number.isFinite(t.tuningLoss) ? t.tuningLoss.toFixed(3) : 'diverged'}`).join(', ')}; chosen ${chosen}`);
    }
  }

  const specs: RunSpec[] = plan.map((p) => ({ ...p.spec, lr: lrs[lrKey(p.spec.model.id, p.spec.data, p.spec.optim)] }));
  const records: (RunRecord | undefined)[] = new Array(specs.length);
  const refs = new Map<string, Float64Array>();
  const parked = new Map<string, number[]>();
  const params = new Map<number, Float64Array>();

  const accept = (r: PoolResult<RunResult>, i: number): void => {
    const spec = specs[i];
    const base = { ...spec, key: runKey(spec), role: plan[i].role };
    if (!r.ok) {
      records[i] = { ...base, ok: false, error: r.error, testAccuracy: NaN, finalLoss: NaN, collapsed: false, split: null, wallMs: r.wallMs, losses: [] };
      return;
    }
    const v = r.value;
    records[i] = { ...base, ok: true, testAccuracy: v.testAccuracy, finalLoss: v.finalLoss, collapsed: v.collapsed, split: null, wallMs: v.wallMs, losses: v.losses };
    if (isReference(spec)) {
      records[i]!.split = 0;
      refs.set(runKey(spec), v.params);
      for (const j of parked.get(runKey(spec)) ?? []) {
        records[j]!.split = relativeDistance(params.get(j)!, v.params);
        params.delete(j);
      }
      parked.delete(runKey(spec));
    } else {
      const ref = refs.get(refKey(spec));
      if (ref) records[i]!.split = relativeDistance(v.params, ref);
      else {
        params.set(i, v.params);
        parked.set(refKey(spec), [...(parked.get(refKey(spec)) ?? []), i]);
      }
    }
  };

  const todo: number[] = [];
  specs.forEach((s, i) => {
    const done = reuse.get(runKey(s));
    if (done && s.steps === plan[i].spec.steps) accept(done, i);
    else todo.push(i);
  });
  if (reuse.size) o.log(`[repro maxpool] ${specs.length - todo.length} of ${specs.length} runs reused from the tuning phase; ${todo.length} to train`);
  const items: TrainItem[] = todo.map((i) => ({ spec: specs[i], nTrain: o.nTrain, nTest: o.nTest }));
  await execute(items, o, 'repro maxpool', (r, j) => accept(r, todo[j]));
  return { runs: records as RunRecord[], tuning, lrs };
}
