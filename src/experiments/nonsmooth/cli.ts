// `keel audit nonsmooth` and `keel repro maxpool` (declared in src/cli/program.ts).
//
//   runAudit(args)  bifurcation audit (audit.ts) + compensation zone, per precision
//   runRepro(args)  training impact of MaxPool-β / ReLU'(0): the budgeted grid (grid.ts)
//                   run in a process pool (repro.ts, ../pool.ts), summarised (summary.ts)
//
// Both print tables, write DIR/results.json and SVG plots, and return an exit code.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as keel from '../../index.js';
import { barChart, writeChart } from '../../plot/index.js';
import type { FormatName } from '../../precision/formats.js';
import { checkOrder, keelVerdicts, runAuditPlan, summarizePairs, type AuditPlan, type AuditRow, type Protocol } from './audit.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { createProgress } from '../../train/progress.js';
import { checkFashionMnist } from '../../data/fashion-mnist.js';
import { defaultOut } from '../../cli/program.js';
import { UsageError } from '../../cli/errors.js';
import { planGrid, REDUCED_BETAS } from './grid.js';
import { loadData, MODEL_IDS, type DataId, type ModelId, type ModelSpec } from './models.js';
import { runGrid } from './repro.js';
import { table as tableOf } from '../table.js';
import { groupRows, judgeClaims, remedyCosts } from './summary.js';
import type { OptimName } from './train.js';
import { pct } from '../../stats/index.js';

const A = keel.audit;

function str(o: Record<string, string | true>, k: string, d: string): string {
  const v = o[k];
  return typeof v === 'string' ? v : d;
}

function num(o: Record<string, string | true>, k: string, d: number): number {
  const v = o[k];
  if (typeof v !== 'string') return d;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new RangeError(`--${k}: not a number: ${v}`);
  return n;
}

function list<T extends string>(o: Record<string, string | true>, k: string, d: T[], allowed?: readonly string[]): T[] {
  const v = o[k];
  if (typeof v !== 'string') return d;
  const items = v.split(',').map((s) => s.trim()).filter(Boolean) as T[];
  if (allowed) for (const it of items) if (!allowed.includes(it)) throw new RangeError(`--${k}: unknown '${it}' (${allowed.join(', ')})`);
  return items;
}

const share = (s: keel.audit.Share) => A.formatShare(s);
const sci = (v: number) => (v === 0 ? '0' : v.toExponential(2));

const table = (head: string[], rows: string[][]): string => tableOf(head, rows, { style: 'plain' });

/** `keel audit nonsmooth ...` (the whole command line: src/cli/program.ts); returns the exit code. */
export async function runAudit(args: string[]): Promise<number> {
  return (await import('../../cli/main.js')).main(['audit', 'nonsmooth', ...args]);
}

/** `keel repro maxpool ...` (the whole command line: src/cli/program.ts); returns the exit code. */
export async function runRepro(args: string[]): Promise<number> {
  return (await import('../../cli/main.js')).main(['repro', 'maxpool', ...args]);
}

/** θ per ReLU cell and precision in `--protocol paper` (about an hour on this machine with --jobs 2; the paper: 1,000). */
export const PAPER_DRAWS = 500;
/** fp64 θ (the paper's notebook ran 10; fp64 never stops early, so it costs a whole epoch per θ). */
export const PAPER_DRAWS_FP64 = 10;

function positiveInt(o: Record<string, string | true>, k: string, d: number): number {
  const v = num(o, k, d);
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${k}: expected a positive integer, got ${v}`);
  return v;
}

/** `keel audit nonsmooth --protocol paper`: the papers' own protocols (paper.ts, paper-run.ts). */
export async function auditPaper(o: Record<string, string | true>): Promise<number> {
  const t0 = performance.now();
  const os = await import('node:os');
  const load0 = os.loadavg()[0];
  const P = await import('./paper-run.js');
  const quick = o.quick === true;
  let plan: import('./paper-run.js').PaperPlan, jobs: number;
  try {
    const studies = list<'relu' | 'maxpool'>(o, 'study', ['relu', 'maxpool'], ['relu', 'maxpool']);
    const sweeps = o.sweep === true ? ['depth', 'width', 'batch'] as const : list<'depth' | 'width' | 'batch'>(o, 'sweeps', [], ['depth', 'width', 'batch']);
    if (typeof o.model === 'string') throw new RangeError(`--model: --protocol paper uses the papers' models (an MLP for ReLU'(0), VGG-11 for MaxPool); choose the study with --study`);
    for (const k of ['depth', 'hidden']) if (typeof o[k] === 'string') throw new RangeError(`--${k}: --protocol paper takes the MLP from the paper's cells; use --sweeps depth,width,batch`);
    plan = {
      studies: [...new Set(studies)], data: str(o, 'data', 'fashion-mnist') as DataId,
      formats: list<FormatName>(o, 'precision', ['fp64', 'fp32', 'fp16'], A.AUDIT_FORMATS_ACCEPTED),
      draws: positiveInt(o, 'draws', quick ? 8 : PAPER_DRAWS),
      drawsFp64: positiveInt(o, 'draws-fp64', quick ? 2 : PAPER_DRAWS_FP64),
      requiredDraws: PAPER_DRAWS, sweeps: [...sweeps], firstLayer: o['first-layer'] === true,
      maxpoolDraws: positiveInt(o, 'maxpool-draws', 1),
      width: positiveInt(o, 'width', quick ? 8 : 64),
      maxpoolBatch: positiveInt(o, 'batch-size', 128),
      maxpoolBatches: typeof o.batches === 'string' ? positiveInt(o, 'batches', 1) : quick ? 12 : Infinity,
      chunk: positiveInt(o, 'chunk', quick ? 6 : 20),
      ...(typeof o.batches === 'string' ? { reluBatches: positiveInt(o, 'batches', 1) } : quick ? { reluBatches: 40 } : {}),
      ...(typeof o.train === 'string' ? { nTrain: positiveInt(o, 'train', 1) } : {}),
      quick,
    };
    jobs = num(o, 'jobs', P.defaultJobs());
    if (!Number.isInteger(jobs) || jobs < 0) throw new RangeError(`--jobs: expected an integer ≥ 0 (0 = in this process), got ${jobs}`);
  } catch (e) {
    throw e instanceof RangeError ? new UsageError(e.message) : e;
  }
  if (plan.data === 'fashion-mnist') checkFashionMnist();
  const out = resolve(str(o, 'out', defaultOut('audit', 'nonsmooth')));
  mkdirSync(out, { recursive: true });
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const items = P.planItems(plan);
  log(`[audit paper] ${items.length} work items on ${jobs === 0 ? `this process (${keel.getNumThreads()} libtorch threads)` : `${jobs} child processes of 1 libtorch thread`}; load average ${load0.toFixed(1)}`);
  const { saved, failed, previousWallMs } = await P.runPaperItems(plan, out, {
    jobs, resume: o.resume === true, log, progress: o['no-progress'] !== true,
    save: (f) => P.writeFileAtomic(join(out, 'results.json'), JSON.stringify(f)),
  });
  const relu = P.summarizeRelu(saved);
  const maxpool = P.summarizeMaxpool(saved);
  const req = P.requiredFor(plan, PAPER_DRAWS_FP64);
  const verdicts = [...P.reluVerdicts(relu, req.relu, req.fp64, req.reluCut), ...P.maxpoolVerdicts(maxpool, req.maxpool)];
  const notes = {
    ...(plan.studies.includes('relu') ? { relu: (await import('./paper.js')).paperDataNote('mlp', plan.data, plan.nTrain) } : {}),
    ...(plan.studies.includes('maxpool') ? { maxpool: (await import('./paper.js')).paperDataNote('vgg', plan.data, plan.nTrain) } : {}),
  };
  const wallMs = previousWallMs + performance.now() - t0;
  const cpuMs = saved.reduce((s, x) => s + x.wallMs, 0);
  const budget = `${jobs === 0 ? `in-process, ${keel.getNumThreads()} libtorch threads` : `${jobs} processes × 1 libtorch thread`} on ${os.availableParallelism()} cores (load average ${load0.toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end); ` +
    `ReLU: ${plan.studies.includes('relu') ? `${plan.draws} θ per cell and precision (fp64 ${Math.min(plan.draws, plan.drawsFp64)}), ${plan.reluBatches === undefined ? 'whole epochs' : `at most ${plan.reluBatches} minibatches per θ`}${plan.sweeps.length ? `, sweeps ${plan.sweeps.join('/')}` : ''}` : 'not run'}; ` +
    `MaxPool: ${plan.studies.includes('maxpool') ? `${plan.maxpoolDraws} θ, width ${plan.width}, ${Number.isFinite(plan.maxpoolBatches) ? `${plan.maxpoolBatches} minibatches of` : 'the whole epoch of'} ${plan.maxpoolBatch}` : 'not run'}; ` +
    `precisions ${plan.formats.join(', ')}; item time ${(cpuMs / 1000).toFixed(0)} s summed, wall ${(wallMs / 1000).toFixed(0)} s${previousWallMs ? ' (over resumed sessions)' : ''}`;
  console.log(`\n${P.printPaper(plan, relu, maxpool, notes, verdicts, budget)}\n`);
  if (failed.length) console.log(`${failed.length} work items FAILED:\n${failed.slice(0, 10).map((f) => `  ${f}`).join('\n')}\n`);
  const file = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as object;
  writeFileAtomic(join(out, 'results.json'), JSON.stringify({ ...file, protocol: 'paper', budget, notes, summary: { relu, maxpool }, verdicts }));
  console.log(`wrote ${join(out, 'results.json')}`);
  return failed.length ? 1 : 0;
}

/** `keel audit nonsmooth` with its options as { 'long-name': value }; returns the exit code. */
export async function auditNonsmooth(o: Record<string, string | true>): Promise<number> {
  const protocol = str(o, 'protocol', 'keel');
  if (protocol === 'paper') return auditPaper(o);
  if (protocol !== 'keel') throw new UsageError(`--protocol: unknown protocol '${protocol}' (keel, paper)`);
  for (const k of ['study', 'sweeps', 'first-layer', 'jobs', 'resume', 'draws-fp64', 'maxpool-draws', 'chunk', 'train']) {
    if (o[k] !== undefined) throw new UsageError(`--${k}: only with --protocol paper`);
  }
  const t0 = performance.now();
  const quick = o.quick === true;
  const modelId = str(o, 'model', 'vgg11') as ModelId;
  if (!MODEL_IDS.includes(modelId)) throw new UsageError(`--model: unknown model '${modelId}' (${MODEL_IDS.join(', ')})`);
  const data = str(o, 'data', 'fashion-mnist') as DataId;
  const formats = list<FormatName>(o, 'precision', [...A.AUDIT_FORMATS], A.AUDIT_FORMATS_ACCEPTED);
  const out = resolve(str(o, 'out', defaultOut('audit', 'nonsmooth')));
  mkdirSync(out, { recursive: true });
  const spec: ModelSpec = { id: modelId, width: num(o, 'width', quick ? 8 : 16), depth: num(o, 'depth', 3), hidden: num(o, 'hidden', quick ? 64 : 256) };
  const plan: AuditPlan = {
    model: spec, data, formats,
    draws: num(o, 'draws', quick ? 2 : 4),
    batches: num(o, 'batches', quick ? 3 : 16),
    batchSize: num(o, 'batch-size', quick ? 16 : 64),
    protocols: ['relu', 'maxpool'] as Protocol[],
  };
  const { train, test } = loadData(modelId, data, plan.draws * plan.batches * plan.batchSize + plan.batchSize, 1);
  test.x.dispose();
  test.y.dispose();
  // one line per θ draw; on a TTY above a progress bar (src/train/progress.ts)
  const bar = o['no-progress'] !== true && process.stderr.isTTY ? createProgress({ total: plan.draws, label: 'audit', start: 0, every: 0 }) : undefined;
  let draws = 0;
  const log = (s: string) => {
    if (!bar) return void process.stderr.write(`[audit] ${s}\n`);
    bar.log(`[audit] ${s}`);
    if (/^draw \d+/.test(s)) bar.update(++draws);
  };
  let pairs: ReturnType<typeof runAuditPlan>;
  try {
    pairs = runAuditPlan(plan, train, log);
  } finally {
    bar?.stop();
  }
  let rows = summarizePairs(pairs, modelId);

  // Bertoin et al.'s variations for the MLP: depth, width, batch size (fp32 and bf16)
  const sweep: AuditRow[] = [];
  if (modelId === 'mlp' && (o.sweep === true || quick)) {
    const variants: [string, ModelSpec, number][] = quick
      ? [['depth 1', { id: 'mlp', depth: 1, hidden: 64 }, 16], ['depth 6', { id: 'mlp', depth: 6, hidden: 64 }, 16]]
      : [['depth 1', { ...spec, depth: 1 }, plan.batchSize], ['depth 6', { ...spec, depth: 6 }, plan.batchSize],
        ['width 64', { ...spec, hidden: 64 }, plan.batchSize], ['width 1024', { ...spec, hidden: 1024 }, plan.batchSize],
        ['batch 8', spec, 8], ['batch 256', spec, 256]];
    for (const [label, s, b] of variants) {
      const p = runAuditPlan({ ...plan, model: s, batchSize: b, formats: formats.filter((f) => f === 'fp32' || f === 'bf16' || f === 'fp16'), protocols: ['relu'] }, train);
      for (const r of summarizePairs(p, `mlp ${label}`)) sweep.push(r);
    }
  }
  train.x.dispose();
  train.y.dispose();

  // the compensation zone
  const compensation = formats.flatMap((f) => [
    { x: 'fixed', ...A.compensationSweep(f, { points: quick ? 32 : 128 }) },
    { x: 'adjacent', ...A.compensationSweep(f, { points: quick ? 32 : 128, x: 'adjacent' }) },
  ]);

  const order = (['relu', 'maxpool'] as Protocol[]).filter((p) => rows.some((r) => r.protocol === p)).map((p) => ({ protocol: p, ...checkOrder(rows, p) }));
  const wallMs = performance.now() - t0;
  const budget = `${keel.getNumThreads()} libtorch threads on ${(await import('node:os')).availableParallelism()} cores; ` +
    `${plan.draws} θ draws × ${plan.batches} minibatches of ${plan.batchSize} × ${formats.length} precisions; ` +
    `${modelId}${modelId.startsWith('vgg') || modelId === 'resnet18' ? ` width ${spec.width} (64 = full size)` : ''}${modelId === 'mlp' ? ` ${spec.depth}×${spec.hidden}` : ''}; wall ${(wallMs / 1000).toFixed(1)} s`;

  console.log(`\nNonsmooth AD audit: ${modelId} on ${data}. Budget: ${budget}\n`);
  console.log(table(['protocol', 'precision', 'pairs', 'grads differ (95% CI)', 'D > abs. threshold (95% CI)', 'D > tau_p (95% CI)', 'mean D', 'max D'],
    [...rows, ...sweep].map((r) => [`${r.protocol}${r.model !== modelId ? ` (${r.model})` : ''}`, r.format, String(r.pairs), share(r.differ),
      r.aboveAbsolute ? `${share(r.aboveAbsolute)} (> ${A.absoluteThreshold(r.format)})` : 'n/a (none for fp8)', share(r.bifurcation), sci(r.meanD), sci(r.maxD)])));
  console.log('Shares are of (θ, minibatch) pairs. Absolute thresholds: Boustany\'s (1e-3 / 1e-7 / 1e-15 for 16 / 32 / 64 bits); τ_p = 8·u_p·Σ‖∇native‖∞ is Keel\'s relative one, not Boustany\'s.');
  const tieRows = rows.filter((r) => r.protocol === 'maxpool').flatMap((r) => r.ties.map((t) => [r.format, t.label, t.windows.toFixed(0), t.tiedWindows.toFixed(1), t.tiedWithGradient.toFixed(1)]));
  if (tieRows.length) console.log(`\nTied max-pool windows per minibatch (mean), per pool layer:\n${table(['precision', 'layer', 'windows', 'tied', 'tied, gradient ≠ 0'], tieRows)}`);
  const layerRows = rows.flatMap((r) => r.perTensor.filter((t) => t.share > 0).map((t) => [r.protocol, r.format, t.name, `${pct(t.share, 0)} %`, sci(t.maxAbsDiff)]));
  if (layerRows.length) console.log(`\nPer parameter tensor (share of pairs where it differs, largest |difference|):\n${table(['protocol', 'precision', 'tensor', 'share', 'max diff'], layerRows)}`);
  console.log(`\nCompensation zone: f(t) = max_loop(t·x; ReLU'(0)=1) − maxpool_native(t·x) ≡ 0 over the reals, f'(t) = 0; AD in floating point:\n` +
    table(['precision', 'x', 't with AD f\'(t) ≠ 0', 'max |f\'(t)|'], compensation.map((c) => [c.format, c.x, `${c.wrong}/${c.points}`, sci(c.maxAbsDerivative)])));
  const verdicts = keelVerdicts(pairs, PAPER_DRAWS);
  console.log(`\nPairs (θ, minibatch) whose gradients differ, per precision: ${order.map((v) => v.explanation).join(' ')} (the per-pair share is not the papers' statistic; the verdicts below rest on the share of θ)`);
  console.log(`\nVerdicts (each names its statistic, threshold and sample size; Keel's protocol draws too few θ for the papers' claims — use --protocol paper):\n${verdicts.map((v) => `  ${A.verdictLine(v).replace(/\n/g, '\n  ')}`).join('\n')}\n`);

  const charts: string[] = [];
  for (const p of ['relu', 'maxpool'] as Protocol[]) {
    const rs = rows.filter((r) => r.protocol === p);
    if (!rs.length) continue;
    const svg = await barChart(rs.map((r) => ({ label: r.format, values: [{ value: r.differ.p, lo: r.differ.lo, hi: r.differ.hi }, { value: r.bifurcation.p, lo: r.bifurcation.lo, hi: r.bifurcation.hi }] })),
      { title: `${p === 'relu' ? "ReLU'(0)=0 vs 1" : 'MaxPool native vs β=1'}: share of minibatches in the bifurcation zone (${modelId})`, series: ['grads differ', 'D > τ_p'], yMax: 1, yLabel: 'share' });
    const file = `bifurcation-${p}.svg`;
    await writeChart(join(out, file), svg);
    charts.push(file);
  }
  const results = {
    experiment: 'audit-nonsmooth', papers: ['Bertoin et al., NeurIPS 2021', 'Boustany, arXiv 2401.02736'],
    definitions: {
      bifurcationZone: 'the gradients computed with the two backward choices differ in floating point (exact test: not bitwise equal)',
      thresholdTest: 'D = Σ_l ‖∇_native − ∇_β‖_∞ against Boustany\'s absolute thresholds (1e-3 / 1e-7 / 1e-15 for 16 / 32 / 64 bits) and Keel\'s relative τ_p = 8 · u_p · Σ_l ‖∇_native‖_∞ (u_p the unit roundoff; not Boustany\'s)',
      compensationZone: 'AD wrong in floating point where it is right over the reals',
      minimal: 'gradient split equally among the k tied maxima of each window', beta: 'β·minimal + (1 − β)·native',
    },
    quick, budget, plan, rows, sweep, order, verdicts, compensation, charts, wallMs,
    pairs: pairs.map(({ ties, ...p }) => ({ ...p, tiedWindows: ties.reduce((s, t) => s + t.tiedWindows, 0) })),
  };
  writeFileAtomic(join(out, 'results.json'), JSON.stringify(results, null, 1));
  console.log(`wrote ${join(out, 'results.json')} and ${charts.join(', ')}`);
  return 0;
}

/** `keel repro maxpool` with its options as { 'long-name': value }; returns the exit code. */
export async function reproMaxpool(o: Record<string, string | true>): Promise<number> {
  const t0 = performance.now();
  const os = await import('node:os');
  const load0 = os.loadavg()[0];
  const quick = o.quick === true;
  const out = resolve(str(o, 'out', defaultOut('repro', 'maxpool')));
  let models: ModelId[], datas: DataId[], betas: number[], relu0: number[], formats: FormatName[], optims: OptimName[], lrFixed: Partial<Record<OptimName, number>> | undefined;
  let seeds: number, batchSize: number, nTrain: number, nTest: number, width: number, jobs: number, stepsArg: number | undefined;
  try {
    models = list<ModelId>(o, 'models', quick ? ['lenet5'] : ['lenet5', 'vgg11', 'vgg11_bn', 'resnet18'], MODEL_IDS);
    datas = list<DataId>(o, 'data', quick ? ['fashion-mnist'] : ['fashion-mnist', 'synthetic'], ['fashion-mnist', 'synthetic']);
    betas = list(o, 'betas', quick ? ['0', '1', '1000'] : ['0', '1', '10', '100', '1000', '10000']).map(Number);
    for (const b of betas) if (!(Number.isFinite(b) && b >= 0)) throw new RangeError(`--betas: every β must be a number ≥ 0, got ${b}`);
    relu0 = list(o, 'relu0', quick ? ['0'] : ['0', '1']).map(Number);
    for (const r of relu0) if (!Number.isFinite(r)) throw new RangeError(`--relu0: not a number: ${r}`);
    formats = list<FormatName>(o, 'precision', quick ? ['fp32', 'bf16'] : ['fp32', 'bf16', 'fp16'], A.AUDIT_FORMATS_ACCEPTED);
    optims = list<OptimName>(o, 'optims', quick ? ['sgd'] : ['sgd', 'adam'], ['sgd', 'adam']);
    seeds = num(o, 'seeds', quick ? 2 : 3);
    stepsArg = typeof o.steps === 'string' ? num(o, 'steps', 0) : undefined;
    batchSize = num(o, 'batch-size', 32);
    nTrain = num(o, 'train', quick ? 1024 : 8192);
    nTest = num(o, 'test', quick ? 250 : 1000);
    width = num(o, 'width', 8);
    jobs = num(o, 'jobs', os.availableParallelism());
    for (const [k, v] of Object.entries({ seeds, 'batch-size': batchSize, train: nTrain, test: nTest, width, ...(stepsArg !== undefined ? { steps: stepsArg } : {}) })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`--${k}: expected a positive integer, got ${v}`);
    }
    if (!Number.isInteger(jobs) || jobs < 0) throw new RangeError(`--jobs: expected an integer ≥ 0 (0 = in this process), got ${jobs}`);
    if (nTrain < batchSize) throw new RangeError(`--train ${nTrain} is smaller than --batch-size ${batchSize}`);
    if (typeof o.lr === 'string') {
      lrFixed = {};
      for (const part of o.lr.split(',')) {
        const [k, v] = part.split('=');
        if ((k !== 'sgd' && k !== 'adam') || !(Number(v) > 0)) throw new RangeError(`--lr: expected sgd=RATE,adam=RATE with rates > 0, got '${part}'`);
        lrFixed[k] = Number(v);
      }
    } else if (quick) lrFixed = { sgd: 0.03, adam: 1e-3 };
  } catch (e) {
    throw e instanceof RangeError ? new UsageError(e.message) : e;
  }
  mkdirSync(out, { recursive: true });
  // steps per model: the plain VGG-11 is the slowest to start learning
  const STEPS: Record<ModelId, number> = { lenet5: 150, vgg11: 200, vgg11_bn: 100, resnet18: 100, mlp: 150 };
  const steps = (id: ModelId) => stepsArg ?? (quick ? 60 : STEPS[id]);
  const remedies = o['no-remedies'] !== true;
  const log = (s: string) => process.stderr.write(`${s}\n`);

  const plan = planGrid({ models, datas, betas, relu0, formats, optims, seeds, steps, batchSize, width, remedies, full: o.full === true || quick });
  const roles = [...new Set(plan.map((p) => p.role))].map((r) => `${r} ${plan.filter((p) => p.role === r).length}`).join(', ');
  if (o.plan === true) {
    const cells = new Map<string, number>();
    for (const p of plan) {
      const k = `${p.spec.model.id}${p.spec.model.avgPool ? '+avgpool' : ''}|${p.spec.data}|${p.role}|${p.spec.steps} steps`;
      cells.set(k, (cells.get(k) ?? 0) + 1);
    }
    console.log(`${plan.length} runs (${roles})\n${[...cells].map(([k, n]) => `  ${k}: ${n}`).join('\n')}`);
    return 0;
  }
  // the data sets the child processes will load: a missing one is one error here, not one per run
  if (datas.includes('fashion-mnist')) checkFashionMnist();
  log(`[repro maxpool] ${plan.length} runs (${roles}) on ${jobs === 0 ? `this process, ${keel.getNumThreads()} libtorch threads` : `${jobs} child processes of 1 libtorch thread`}; load average ${load0.toFixed(1)}`);
  const { runs, tuning, lrs } = await runGrid(plan, { jobs, nTrain, nTest, lr: lrFixed, log, progress: o['no-progress'] !== true });
  const failed = runs.filter((r) => !r.ok);
  const rows = groupRows(runs);

  const wallMs = performance.now() - t0;
  const load1 = os.loadavg()[0];
  const stepsText = [...new Set(models.map((m) => `${m} ${steps(m)}`))].join(', ');
  const design = o.full === true || quick
    ? 'every model and data set: all β × ReLU\'(0)'
    : `core (all β × ReLU'(0) × precisions, SGD): LeNet-5 on both data sets, VGG-11 on Fashion-MNIST; reduced (β ∈ {${REDUCED_BETAS.join(', ')}}, ReLU'(0) = 0, SGD): VGG-11 on synthetic, VGG-11-BN, ResNet-18; Adam: LeNet-5 and VGG-11, β ∈ {${REDUCED_BETAS.join(', ')}}, bf16/fp16; fp64 (β ∈ {0, ${Math.max(...betas)}}, SGD): every model on ${datas[0]}; avg pool: every model and data set in bf16`;
  const budget = `${jobs === 0 ? `in-process, ${keel.getNumThreads()} libtorch threads` : `${jobs} processes × 1 libtorch thread`} on ${os.availableParallelism()} cores (load average ${load0.toFixed(1)} at start, ${load1.toFixed(1)} at end); ` +
    `${runs.length} runs${tuning.length ? ` + ${tuning.reduce((s, t) => s + t.tried.length - 1, 0)} extra lr-tuning runs` : ''}, ${seeds} seeds; steps ${stepsText}; batch ${batchSize}; ${nTrain} training / ${nTest} test examples (subsets); ` +
    `VGG/ResNet width ${width} (64 = full size); design: ${design}; wall ${(wallMs / 1000).toFixed(1)} s`;
  console.log(`\nMaxPool-β / ReLU'(0) training impact (Boustany 2024). Budget: ${budget}\n`);
  if (tuning.length) {
    console.log(`Learning rates (fp32, β = 0, ReLU'(0) = 0, seed 0; lowest mean training loss over the last 20 % of steps; reused for every rule, precision and seed):\n` +
      table(['model', 'data', 'optim', 'tried: lr → loss', 'chosen'], tuning.map((t) => [t.model, t.data, t.optim,
        t.tried.map((x) => `${x.lr} → ${Number.isFinite(x.tuningLoss) ? x.tuningLoss.toFixed(3) : 'diverged'}`).join(', '), String(t.chosen)])) + '\n');
  } else console.log(`Learning rates fixed: ${JSON.stringify(lrFixed)}\n`);
  console.log(table(['model', 'data', 'prec', 'optim', 'lr', 'β', "ReLU'(0)", 'seeds', 'test acc mean ± std', 'collapsed', '‖θ−θ_default‖/‖θ_default‖', 'ms/run'],
    rows.map((r) => [r.model, r.data, r.format, r.optim, String(r.lr), String(r.beta), String(r.reluAt0), `${r.n}${r.failed ? ` (+${r.failed} failed)` : ''}`,
      `${pct(r.mean, 1)} ± ${pct(r.std, 1)} %`, `${r.collapsed}/${r.n}`, Number.isFinite(r.split) ? r.split.toExponential(2) : 'n/a', r.wallMs.toFixed(0)])));
  if (failed.length) console.log(`\n${failed.length} runs FAILED:\n${failed.slice(0, 10).map((r) => `  ${r.error?.split('\n').slice(0, 3).join(' | ')}`).join('\n')}`);

  // verdicts on the paper's claims, judged only on what ran
  const claims = judgeClaims(rows);
  console.log(`\nClaims (judged on this budget only; few steps can hide slow divergence; rules in summary.ts):\n${claims.map((c) => `  ${c.verdict.padEnd(13)} ${c.claim}\n                ${c.evidence}`).join('\n')}\n`);
  const costs = remedyCosts(rows);
  console.log(`Remedies and their cost (time per run and accuracy at the default rule, against the baseline; times measured on a shared machine):\n` +
    table(['remedy', 'against', 'cells', 'time ×', 'Δacc at β = 0'], costs.map((c) => [c.remedy, c.compared, String(c.cells), Number.isFinite(c.timeRatio) ? c.timeRatio.toFixed(2) : 'n/a',
      Number.isFinite(c.accDelta) ? `${c.accDelta >= 0 ? '+' : ''}${pct(c.accDelta, 1)} pts` : 'n/a'])) + '\n');

  const charts: string[] = [];
  for (const data of datas) for (const id of models) {
    const rs = rows.filter((r) => r.model === id && r.data === data && r.reluAt0 === 0 && r.optim === optims[0] && r.format !== 'fp64');
    if (!rs.length) continue;
    const fs = [...new Set(rs.map((r) => r.format))];
    const svg = await barChart(betas.filter((b) => rs.some((x) => x.beta === b)).map((b) => ({ label: `β=${b}`, values: fs.map((f) => {
      const r = rs.find((x) => x.beta === b && x.format === f);
      return r ? { value: r.mean, lo: r.mean - r.std, hi: r.mean + r.std } : { value: 0 };
    }) })), { title: `${id} on ${data}: test accuracy vs β (${optims[0]}, ReLU'(0)=0)`, series: fs, yMax: 1, yLabel: 'test accuracy' });
    const file = `accuracy-${id}-${data}.svg`;
    await writeChart(join(out, file), svg);
    charts.push(file);
  }
  const results = {
    experiment: 'repro-maxpool', paper: 'Boustany, arXiv 2401.02736', quick, budget, jobs, loadAverage: { start: load0, end: load1 },
    design: { text: design, models, datas, betas, relu0, formats, optims, seeds, steps: Object.fromEntries(models.map((m) => [m, steps(m)])), batchSize, nTrain, nTest, width, remedies },
    lr: lrs, tuning, wallMs, charts, claims, remedyCosts: costs, rows, runs,
  };
  writeFileAtomic(join(out, 'results.json'), JSON.stringify(results, null, 1));
  console.log(`wrote ${join(out, 'results.json')} and ${charts.join(', ')}`);
  return failed.length ? 1 : 0;
}
