// `keel train`: trains a zoo model on a data set with one of Keel's
// optimizers, writing DIR/metrics.jsonl, DIR/checkpoints/,
// DIR/model.safetensors and DIR/summary.json. `keel train --resume DIR`
// continues a run (killed or finished early) from its latest checkpoint.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as keel from '../index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { fit, type SchedulerLike } from '../train/fit.js';
import { UsageError } from './errors.js';
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
    return { train, test, inChannels: 1, inputSize: 28, transform: norm, evalTransform: norm };
  }
  const train = keel.data.syntheticImages({ n: config.trainSubset ?? 10000, seed: 1 });
  const test = keel.data.syntheticImages({ n: config.testSubset ?? 2000, seed: 2 });
  const norm = keel.data.normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]);
  const transform = config.augment ? keel.data.compose([keel.data.randomCrop(32, { padding: 4 }), keel.data.randomHorizontalFlip(0.5), norm]) : norm;
  return { train, test, inChannels: 3, inputSize: 32, transform, evalTransform: norm };
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

/** Runs a training job from a config; returns the summary written to DIR/summary.json. */
export function runTraining(config: TrainConfig, { resume = false, progress = true } = {}): Record<string, unknown> {
  const out = resolve(config.out);
  mkdirSync(out, { recursive: true });
  if (config.threads !== undefined) keel.setNumThreads(config.threads);
  if (!resume) writeFileAtomic(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  keel.manualSeed(config.seed);
  const data = buildData(config);
  const model = keel.nn.zoo.createModel(config.model, { inChannels: data.inChannels, numClasses: 10, inputSize: data.inputSize });
  const optimizer = buildOptimizer(config, model.parameters());
  const trainLoader = new keel.data.DataLoader(data.train, { batchSize: config.batchSize, shuffle: true, seed: config.seed, dropLast: true, transform: data.transform });
  const evalLoader = new keel.data.DataLoader(data.test, { batchSize: 1000, transform: data.evalTransform });
  const totalSteps = Math.min(config.steps ?? Infinity, config.epochs !== undefined ? config.epochs * trainLoader.length : Infinity);
  const scheduler = buildScheduler(config, optimizer, totalSteps);
  const result = fit({
    model,
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
    ...(config.guard ? { guard: new keel.Guard({ model, optimizer, policy: config.guard }) } : {}),
  });
  keel.nn.saveStateDict(model, join(out, 'model.safetensors'), { model: config.model });
  const summary = {
    testAccuracy: result.evaluation?.accuracy ?? null,
    testLoss: result.evaluation?.loss ?? null,
    trainLoss: result.trainLoss,
    steps: result.steps,
    epochs: result.epochs,
    wallTimeMs: result.wallTimeMs,
    resumedFrom: result.resumedFrom ?? null,
    threads: keel.getNumThreads(),
    config,
  };
  writeFileAtomic(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

/** `keel train` with its parsed options (declared in src/cli/program.ts); returns the exit code. */
export async function trainFromOptions(o: Record<string, unknown>): Promise<number> {
  if (o.resume !== undefined) {
    const dir = resolve(o.resume as string);
    const configPath = join(dir, 'config.json');
    if (!existsSync(configPath)) throw new UsageError(`--resume ${dir}: no config.json there (not a keel train output folder)`);
    const config = { ...readConfig(configPath), out: dir };
    const summary = runTraining(config, { resume: true, progress: o.progress as boolean });
    console.log(JSON.stringify({ testAccuracy: summary.testAccuracy, testLoss: summary.testLoss, steps: summary.steps, resumedFrom: summary.resumedFrom }));
    return 0;
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
    out: o.out as string,
  };
  const summary = runTraining(config, { progress: o.progress as boolean });
  console.log(JSON.stringify({ testAccuracy: summary.testAccuracy, testLoss: summary.testLoss, steps: summary.steps, wallTimeMs: Math.round(summary.wallTimeMs as number) }));
  return 0;
}
