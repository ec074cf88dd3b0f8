// `keel train`: trains a zoo model on a data set with one of Keel's
// optimizers, writing DIR/metrics.jsonl, DIR/checkpoints/,
// DIR/model.safetensors and DIR/summary.json. `keel train --resume DIR`
// continues a run (killed or finished early) from its latest checkpoint.
//
// Started as a worker (torchrun's environment: by `keel train --nproc N`,
// src/cli/train-agent.ts, or by torchrun itself) it trains data-parallel:
// a Gloo process group, the model in DistributedDataParallel, a
// DistributedSampler (--batch-size is per rank), every rank resuming from the
// run folder's latest checkpoint, rank 0 alone writing the run folder and
// drawing progress.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as keel from '../index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { fitAsync, type SchedulerLike } from '../train/fit.js';
import { handleInterrupts } from '../train/interrupt.js';
import { acquireLock, mergeResumeFlags, prepareFreshRun, removeLeftovers, type RunLock } from '../train/run-folder.js';
import { readWorkerEnv, type WorkerEnv } from '../distributed/worker-env.js';
import type { Command } from 'commander';
import { UsageError } from './errors.js';
import { resumeFolder } from './resume-folder.js';
import { TRAIN_MODELS } from './program.js';

export interface TrainConfig {
  model: string;
  data: 'fashion-mnist' | 'synthetic';
  optim: 'sgd' | 'adam' | 'adamw' | 'sing';
  lr: number;
  weightDecay: number;
  momentum: number;
  epochs?: number;
  steps?: number;
  batchSize: number;
  seed: number;
  standardizeGrads: boolean;
  schedule: 'cosine' | 'constant';
  warmup: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  trainSubset?: number;
  testSubset?: number;
  augment: boolean;
  threads?: number;
  /** NaN guard policy (none by default). */
  guard?: 'raise' | 'skip' | 'rollback' | 'repair';
  /** Lightning's precision names (default 32-true). */
  precision?: string;
  /** A health line every N steps (default 50; 0 for none). */
  healthEvery?: number;
  /** Processes of a data-parallel run (absent: one); batchSize is per process. */
  worldSize?: number;
  out: string;
}

/** Reads back a run's saved config (DIR/config.json). */
function readConfig(path: string): TrainConfig {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as TrainConfig;
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Defaults per optimizer: SING's authors advise ~10× AdamW's lr and ~10× less weight decay. */
const DEFAULT_LR: Record<TrainConfig['optim'], number> = { sgd: 0.05, adam: 1e-3, adamw: 1e-3, sing: 1e-2 };
const DEFAULT_WD: Record<TrainConfig['optim'], number> = { sgd: 5e-4, adam: 0, adamw: 1e-2, sing: 1e-3 };

function buildData(config: TrainConfig) {
  const subset = (ds: keel.data.TensorDataset<[keel.Tensor, keel.Tensor]>, n: number | undefined) => {
    if (n === undefined || n >= ds.length) return ds;
    const [x, y] = ds.tensors;
    return new keel.data.TensorDataset(x.narrow(0, 0, n).keep(), y.narrow(0, 0, n).keep());
  };
  if (config.data === 'fashion-mnist') {
    const train = subset(keel.data.fashionMnist({ split: 'train' }), config.trainSubset);
    const test = subset(keel.data.fashionMnist({ split: 'test' }), config.testSubset);
    // Fashion-MNIST's pixel mean and std
    const norm = keel.data.normalize([0.2860], [0.3530]);
    return {
      train, test, inChannels: 1, inputSize: 28, transform: norm, evalTransform: norm,
      preprocessing: { channels: 1, size: 28, divideBy: 255, mean: [0.2860], std: [0.3530] },
      classes: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
    };
  }
  const train = keel.data.syntheticImages({ n: config.trainSubset ?? 10000, seed: 1 });
  const test = keel.data.syntheticImages({ n: config.testSubset ?? 2000, seed: 2 });
  const norm = keel.data.normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]);
  const transform = config.augment ? keel.data.compose([keel.data.randomCrop(32, { padding: 4 }), keel.data.randomHorizontalFlip(0.5), norm]) : norm;
  return {
    train, test, inChannels: 3, inputSize: 32, transform, evalTransform: norm,
    preprocessing: { channels: 3, size: 32, divideBy: 1, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    classes: undefined as string[] | undefined,
  };
}

function buildOptimizer(config: TrainConfig, params: keel.Tensor[]): keel.optim.OptimizerLike {
  const base = (() => {
    switch (config.optim) {
      case 'sgd': return new keel.optim.SGD(params, { lr: config.lr, momentum: config.momentum, weightDecay: config.weightDecay });
      case 'adam': return new keel.optim.Adam(params, { lr: config.lr, weightDecay: config.weightDecay });
      case 'adamw': return new keel.optim.AdamW(params, { lr: config.lr, weightDecay: config.weightDecay });
      case 'sing': return new keel.optim.SING(params, { lr: config.lr, weightDecay: config.weightDecay });
    }
  })();
  return config.standardizeGrads && config.optim !== 'sing' ? new keel.optim.GradientStandardization(base) : base;
}

function buildScheduler(config: TrainConfig, optimizer: keel.optim.OptimizerLike, totalSteps: number): SchedulerLike | undefined {
  if (config.schedule === 'constant' && config.warmup === 0) return undefined;
  const warmup = Math.min(config.warmup, Math.max(0, totalSteps - 1));
  const main = config.schedule === 'cosine'
    ? new keel.optim.CosineAnnealingLR(optimizer, { tMax: Math.max(1, totalSteps - warmup) })
    : new keel.optim.ConstantLR(optimizer, { factor: 1, totalIters: 0 });
  if (warmup === 0) return main;
  const warm = new keel.optim.LinearLR(optimizer, { startFactor: 0.01, endFactor: 1, totalIters: warmup });
  return new keel.optim.SequentialLR(optimizer, { schedulers: [warm, main], milestones: [warmup] });
}

export interface RunOptions {
  resume?: boolean;
  progress?: boolean;
  /** Start afresh in a folder that holds a run (its run files are removed). */
  overwrite?: boolean;
  /** Flags changed on resume, [old, new] by config key (recorded in the metrics log). */
  changed?: Record<string, [unknown, unknown]>;
  /** This process is a launched worker (torchrun's environment). */
  worker?: WorkerEnv;
}

/**
 * Runs a training job from a config; returns the summary written to
 * DIR/summary.json, or `{ interrupted, exitCode }` when Ctrl-C / SIGTERM
 * stopped it (after a checkpoint). Holds DIR's lock throughout.
 */
export async function runTraining(config: TrainConfig, { resume = false, progress = true, overwrite = false, changed = {}, worker }: RunOptions = {}): Promise<Record<string, unknown>> {
  const out = resolve(config.out);
  mkdirSync(out, { recursive: true });
  // a restarted worker (--max-restarts) resumes from the latest checkpoint, as torchrun's scripts do
  if (worker !== undefined && worker.restartCount > 0) resume = true;
  // the run folder's one owner: this process, or the agent that started it (it holds the lock across restarts), or under another launcher rank 0
  const ownsFolder = worker === undefined || (worker.agentPid === undefined && worker.rank === 0);
  const lead = worker === undefined || worker.rank === 0;
  let lock: RunLock | undefined;
  const interrupt = handleInterrupts('keel train', (sig) => {
    if (lead) process.stderr.write(`\nkeel train: ${sig}: stopping after the current step and saving a checkpoint (again to exit at once)\n`);
  });
  // started by an agent that has died (SIGKILL): do not train on as an orphan
  const orphanWatch = worker?.agentPid !== undefined ? setInterval(() => { if (process.ppid !== worker.agentPid) process.kill(process.pid, 'SIGKILL'); }, 1000) : undefined;
  orphanWatch?.unref();
  try {
    if (ownsFolder) {
      lock = acquireLock(out);
      if (lock.staleNote) console.error(`keel train: ${out}: ${lock.staleNote}`);
      if (!resume) prepareFreshRun(out, overwrite);
      const removed = removeLeftovers(out);
      if (removed.length > 0) console.error(`keel train: removed what a killed run left: ${removed.join(', ')}`);
    }
    return await trainLocked(config, out, resume, progress, changed, interrupt.signal, () => interrupt.exitCode, worker);
  } finally {
    if (orphanWatch) clearInterval(orphanWatch);
    interrupt.dispose();
    lock?.release();
  }
}

async function trainLocked(config: TrainConfig, out: string, resume: boolean, progress: boolean, changed: Record<string, [unknown, unknown]>, signal: AbortSignal, exitCode: () => number | undefined, worker?: WorkerEnv): Promise<Record<string, unknown>> {
  const world = worker?.worldSize ?? 1;
  const lead = worker === undefined || worker.rank === 0;
  if ((config.worldSize ?? 1) !== world) throw new UsageError(`the run in ${out} was trained by ${config.worldSize ?? 1} process(es); resume it with --nnodes × --nproc = ${config.worldSize ?? 1} (now ${world}): its data position and batch size are per process`);
  if (config.threads !== undefined) keel.setNumThreads(config.threads);
  if (world > 1) keel.distributed.initProcessGroup({ backend: 'gloo' });
  try {
    return await trainRank(config, out, resume, progress && lead, changed, signal, exitCode, worker, lead);
  } finally {
    if (world > 1) keel.distributed.destroyProcessGroup();
  }
}

async function trainRank(config: TrainConfig, out: string, resume: boolean, progress: boolean, changed: Record<string, [unknown, unknown]>, signal: AbortSignal, exitCode: () => number | undefined, worker: WorkerEnv | undefined, lead: boolean): Promise<Record<string, unknown>> {
  const world = worker?.worldSize ?? 1;
  keel.manualSeed(config.seed);
  const data = buildData(config);
  const modelArgs = { inChannels: data.inChannels, numClasses: 10, inputSize: data.inputSize };
  // what a user needs to use the weights elsewhere (README: "Using the weights in PyTorch")
  const usage = { modelArgs, preprocessing: data.preprocessing, ...(data.classes ? { classes: data.classes } : {}) };
  if (lead && (!resume || Object.keys(changed).length > 0)) writeFileAtomic(join(out, 'config.json'), `${JSON.stringify({ ...config, ...usage }, null, 2)}\n`);
  const model = keel.nn.zoo.createModel(config.model, modelArgs);
  const precision = new keel.train.TrainingPrecision(config.precision ?? '32-true');
  precision.setupModel(model);  // bf16-true, 64-true: parameters in that dtype before the optimizer sees them
  // data parallel: rank 0's weights broadcast, gradients averaged; each rank its 1/world of every epoch's shared order, --batch-size examples a step
  const ddp = world > 1 ? new keel.distributed.DistributedDataParallel(model) : undefined;
  const optimizer = buildOptimizer(config, model.parameters());
  const trainLoader = ddp
    ? new keel.data.DataLoader(new keel.distributed.DistributedSampler(data.train, { shuffle: true, seed: config.seed }), { batchSize: config.batchSize, shuffle: false, seed: config.seed, dropLast: true, transform: data.transform })
    : new keel.data.DataLoader(data.train, { batchSize: config.batchSize, shuffle: true, seed: config.seed, dropLast: true, transform: data.transform });
  const evalLoader = new keel.data.DataLoader(data.test, { batchSize: 1000, transform: data.evalTransform });
  const totalSteps = Math.min(config.steps ?? Infinity, config.epochs !== undefined ? config.epochs * trainLoader.length : Infinity);
  const scheduler = buildScheduler(config, optimizer, totalSteps);
  const killAt = worker?.killAtStep;
  const result = await fitAsync({
    model: (ddp ?? model) as keel.nn.Module<[keel.Tensor], keel.Tensor>,
    ...(ddp ? { distributed: keel.distributed.fitHook(ddp) } : {}),
    // the restart tests' fault: this worker dies by SIGKILL after that step (first start only)
    ...(killAt !== undefined ? { callbacks: [{ onStepEnd: (info: { step: number }) => { if (info.step === killAt) process.kill(process.pid, 'SIGKILL'); } }] } : {}),
    optimizer,
    scheduler,
    trainLoader,
    evalLoader,
    loss: (o, t) => keel.losses.crossEntropy(o, t),
    ...(config.epochs !== undefined ? { epochs: config.epochs } : {}),
    ...(config.steps !== undefined ? { steps: config.steps } : {}),
    outDir: out,
    checkpointEvery: config.checkpointEvery,
    keepCheckpoints: config.keepCheckpoints,
    resume,
    progress,
    signal,
    warn: (line) => { if (lead) console.error(`keel train: ${line}`); },
    ...(Object.keys(changed).length > 0 ? { resumeEvent: { changed } } : {}),
    ...(config.guard ? { guard: new keel.Guard({ model, optimizer, policy: config.guard, ...(ddp ? { distributed: keel.distributed.guardHook(ddp) } : {}) }) } : {}),
    precision,
    health: config.healthEvery === 0 ? false : { every: config.healthEvery ?? 50 },
  });
  if (result.interrupted) {
    return { interrupted: true, exitCode: exitCode() ?? 130, steps: result.steps, totalSteps, ...(lead ? {} : { quiet: true }) };
  }
  // the other ranks hold the same weights; rank 0 writes them
  if (!lead) return { quiet: true, steps: result.steps };
  keel.nn.saveStateDict(model, join(out, 'model.safetensors'), {
    model: config.model,
    modelArgs: JSON.stringify(modelArgs),
    preprocessing: JSON.stringify(data.preprocessing),
    ...(data.classes ? { classes: JSON.stringify(data.classes) } : {}),
  });
  const summary = {
    testAccuracy: result.evaluation?.accuracy ?? null,
    testLoss: result.evaluation?.loss ?? null,
    trainLoss: result.trainLoss,
    steps: result.steps,
    epochs: result.epochs,
    ...(result.guardEvents ? { guardEvents: result.guardEvents } : {}),
    wallTimeMs: result.wallTimeMs,
    resumedFrom: result.resumedFrom ?? null,
    ...(result.skippedCheckpoints ? { skippedCheckpoints: result.skippedCheckpoints } : {}),
    threads: keel.getNumThreads(),
    config,
  };
  writeFileAtomic(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

/** The config keys that flags set (commander's attribute names). */
const CONFIG_KEYS = ['model', 'data', 'optim', 'lr', 'weightDecay', 'momentum', 'epochs', 'steps', 'batchSize', 'seed', 'standardizeGrads', 'schedule',
  'warmup', 'checkpointEvery', 'keepCheckpoints', 'trainSubset', 'testSubset', 'augment', 'threads', 'guard', 'precision', 'healthEvery'];

/** The one line printed at the end, or where to resume after an interrupt; returns the exit code. */
function report(summary: Record<string, unknown>, dir: string, extra: Record<string, unknown>): number {
  if (summary.quiet) return summary.interrupted ? summary.exitCode as number : 0;
  if (summary.interrupted) {
    console.error(`keel train: stopped at step ${summary.steps as number} of ${summary.totalSteps as number}, checkpoint saved; continue with: keel train --resume ${dir}`);
    return summary.exitCode as number;
  }
  console.log(JSON.stringify({
    testAccuracy: summary.testAccuracy, testLoss: summary.testLoss, steps: summary.steps,
    ...(summary.guardEvents ? { guardEvents: summary.guardEvents } : {}), ...extra,
  }));
  return 0;
}

/** `keel train` with its parsed options (declared in src/cli/program.ts); returns the exit code. */
export async function trainFromOptions(o: Record<string, unknown>, cmd?: Command): Promise<number> {
  let worker: WorkerEnv | undefined;
  try {
    worker = readWorkerEnv();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (o.resume !== undefined) {
    const { dir, configPath } = resumeFolder(o);
    const given = Object.fromEntries(CONFIG_KEYS.filter((k) => cmd?.getOptionValueSource(k) === 'cli').map((k) => [k, o[k]]));
    const { config, changed } = mergeResumeFlags({ ...readConfig(configPath), out: dir }, given);
    const summary = await runTraining(config, { resume: true, progress: o.progress as boolean, changed, ...(worker ? { worker } : {}) });
    return report(summary, dir, { resumedFrom: summary.resumedFrom });
  }
  if (o.out === undefined) throw new UsageError('--out DIR is required (or --resume DIR)');
  if (!TRAIN_MODELS.includes(o.model as string)) throw new UsageError(`--model must be one of ${TRAIN_MODELS.join(', ')}, got '${o.model as string}'`);
  if (o.epochs === undefined && o.steps === undefined) o.epochs = 2;
  const optim = o.optim as TrainConfig['optim'];
  const config: TrainConfig = {
    model: o.model as string,
    data: o.data as TrainConfig['data'],
    optim,
    lr: (o.lr as number | undefined) ?? DEFAULT_LR[optim],
    weightDecay: (o.weightDecay as number | undefined) ?? DEFAULT_WD[optim],
    momentum: o.momentum as number,
    ...(o.epochs !== undefined ? { epochs: o.epochs as number } : {}),
    ...(o.steps !== undefined ? { steps: o.steps as number } : {}),
    batchSize: o.batchSize as number,
    seed: o.seed as number,
    standardizeGrads: o.standardizeGrads as boolean,
    schedule: o.schedule as TrainConfig['schedule'],
    warmup: o.warmup as number,
    checkpointEvery: o.checkpointEvery as number,
    keepCheckpoints: o.keepCheckpoints as number,
    ...(o.trainSubset !== undefined ? { trainSubset: o.trainSubset as number } : {}),
    ...(o.testSubset !== undefined ? { testSubset: o.testSubset as number } : {}),
    augment: o.augment as boolean,
    ...(o.threads !== undefined ? { threads: o.threads as number } : {}),
    ...(o.guard !== undefined ? { guard: o.guard as TrainConfig['guard'] } : {}),
    ...(o.precision !== undefined ? { precision: o.precision as string } : {}),
    ...(o.healthEvery !== undefined ? { healthEvery: o.healthEvery as number } : {}),
    ...(worker !== undefined && worker.worldSize > 1 ? { worldSize: worker.worldSize } : {}),
    out: o.out as string,
  };
  const summary = await runTraining(config, { progress: o.progress as boolean, overwrite: o.overwrite as boolean, ...(worker ? { worker } : {}) });
  // a restarted worker resumed: say from where, as --resume does
  return report(summary, resolve(config.out), worker !== undefined && worker.restartCount > 0 ? { resumedFrom: summary.resumedFrom } : { wallTimeMs: Math.round(summary.wallTimeMs as number) });
}
