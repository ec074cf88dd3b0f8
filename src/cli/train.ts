// `keel train`: trains a zoo model on a data set with one of Keel's
// optimizers, writing DIR/metrics.jsonl, DIR/checkpoints/,
// DIR/model.safetensors and DIR/summary.json. `keel train --resume DIR`
// continues a run (killed or finished early) from its latest checkpoint.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import * as keel from '../index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { fitAsync, type SchedulerLike } from '../train/fit.js';
import { handleInterrupts } from '../train/interrupt.js';
import { acquireLock, mergeResumeFlags, prepareFreshRun, removeLeftovers, RunFolderError } from '../train/run-folder.js';

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

const MODELS = ['lenet5', 'mlp', 'vgg11', 'vgg11_bn', 'resnet18'];

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

function nonNegativeNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative number`);
    return n;
  };
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
}

/**
 * Runs a training job from a config; returns the summary written to
 * DIR/summary.json, or `{ interrupted, exitCode }` when Ctrl-C / SIGTERM
 * stopped it (after a checkpoint). Holds DIR's lock throughout.
 */
export async function runTraining(config: TrainConfig, { resume = false, progress = true, overwrite = false, changed = {} }: RunOptions = {}): Promise<Record<string, unknown>> {
  const out = resolve(config.out);
  mkdirSync(out, { recursive: true });
  const lock = acquireLock(out);
  const interrupt = handleInterrupts('keel train', (sig) => process.stderr.write(`\nkeel train: ${sig}: stopping after the current step and saving a checkpoint (again to exit at once)\n`));
  try {
    if (lock.staleNote) console.error(`keel train: ${out}: ${lock.staleNote}`);
    if (!resume) prepareFreshRun(out, overwrite);
    const removed = removeLeftovers(out);
    if (removed.length > 0) console.error(`keel train: removed what a killed run left: ${removed.join(', ')}`);
    return await trainLocked(config, out, resume, progress, changed, interrupt.signal, () => interrupt.exitCode);
  } finally {
    interrupt.dispose();
    lock.release();
  }
}

async function trainLocked(config: TrainConfig, out: string, resume: boolean, progress: boolean, changed: Record<string, [unknown, unknown]>, signal: AbortSignal, exitCode: () => number | undefined): Promise<Record<string, unknown>> {
  if (config.threads !== undefined) keel.setNumThreads(config.threads);
  keel.manualSeed(config.seed);
  const data = buildData(config);
  const modelArgs = { inChannels: data.inChannels, numClasses: 10, inputSize: data.inputSize };
  // what a user needs to use the weights elsewhere (README: "Using the weights in PyTorch")
  const usage = { modelArgs, preprocessing: data.preprocessing, ...(data.classes ? { classes: data.classes } : {}) };
  if (!resume || Object.keys(changed).length > 0) writeFileAtomic(join(out, 'config.json'), `${JSON.stringify({ ...config, ...usage }, null, 2)}\n`);
  const model = keel.nn.zoo.createModel(config.model, modelArgs);
  const optimizer = buildOptimizer(config, model.parameters());
  const trainLoader = new keel.data.DataLoader(data.train, { batchSize: config.batchSize, shuffle: true, seed: config.seed, dropLast: true, transform: data.transform });
  const evalLoader = new keel.data.DataLoader(data.test, { batchSize: 1000, transform: data.evalTransform });
  const totalSteps = Math.min(config.steps ?? Infinity, config.epochs !== undefined ? config.epochs * trainLoader.length : Infinity);
  const scheduler = buildScheduler(config, optimizer, totalSteps);
  const result = await fitAsync({
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
    signal,
    warn: (line) => console.error(`keel train: ${line}`),
    ...(Object.keys(changed).length > 0 ? { resumeEvent: { changed } } : {}),
    ...(config.guard ? { guard: new keel.Guard({ model, optimizer, policy: config.guard }) } : {}),
  });
  if (result.interrupted) {
    return { interrupted: true, exitCode: exitCode() ?? 130, steps: result.steps, totalSteps };
  }
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
  'warmup', 'checkpointEvery', 'keepCheckpoints', 'trainSubset', 'testSubset', 'augment', 'threads', 'guard'];

/** The one line printed at the end, or where to resume after an interrupt; returns the exit code. */
function report(summary: Record<string, unknown>, dir: string, extra: Record<string, unknown>): number {
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

export async function train(args: string[]): Promise<number> {
  const program = new Command('keel train')
    .description('train a zoo model; writes DIR/metrics.jsonl, DIR/checkpoints/, DIR/model.safetensors, DIR/summary.json')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .option('--model <name>', `model: ${MODELS.join('|')}`, 'lenet5')
    .addOption(new Option('--data <name>', 'data set').choices(['fashion-mnist', 'synthetic']).default('fashion-mnist'))
    .addOption(new Option('--optim <name>', 'optimizer').choices(['sgd', 'adam', 'adamw', 'sing']).default('adamw'))
    .option('--lr <x>', 'learning rate (default per optimizer: sgd 0.05, adam/adamw 1e-3, sing 1e-2)', positiveNumber('--lr'))
    .option('--weight-decay <x>', 'weight decay (default per optimizer)', nonNegativeNumber('--weight-decay'))
    .option('--momentum <x>', 'SGD momentum', nonNegativeNumber('--momentum'), 0.9)
    .option('--epochs <n>', 'epochs', positiveInt('--epochs'))
    .option('--steps <n>', 'optimizer steps (overrides --epochs when smaller)', positiveInt('--steps'))
    .option('--batch-size <n>', 'batch size', positiveInt('--batch-size'), 128)
    .option('--seed <n>', 'seed of initialisation, shuffling and augmentation', nonNegativeInt('--seed'), 0)
    .option('--standardize-grads', 'standardise gradients (SING\'s layer-wise standardisation) in front of the optimizer', false)
    .addOption(new Option('--schedule <name>', 'learning-rate schedule after warm-up').choices(['cosine', 'constant']).default('cosine'))
    .option('--warmup <n>', 'linear warm-up steps', nonNegativeInt('--warmup'), 0)
    .option('--checkpoint-every <n>', 'a checkpoint every N steps (and at the end)', positiveInt('--checkpoint-every'), 200)
    .option('--keep-checkpoints <n>', 'checkpoints kept', positiveInt('--keep-checkpoints'), 3)
    .option('--train-subset <n>', 'use the first N training examples', positiveInt('--train-subset'))
    .option('--test-subset <n>', 'use the first N test examples', positiveInt('--test-subset'))
    .option('--augment', 'random crop and flip (synthetic data)', false)
    .option('--threads <n>', 'intra-op threads (default: all cores)', positiveInt('--threads'))
    .addOption(new Option('--guard <policy>', 'NaN guard: check every step; on a non-finite one replay it, name the op, and raise|skip|rollback|repair').choices(['raise', 'skip', 'rollback', 'repair']))
    .option('--no-progress', 'no progress bar or progress lines')
    .option('--out <dir>', 'output folder')
    .option('--resume <dir>', 'continue the run in DIR from its latest intact checkpoint (--steps, --epochs, --checkpoint-every, --threads, --guard may change)')
    .option('--overwrite', 'start afresh in an --out folder that holds a run (removes that run\'s files)', false);
  try {
    program.parse(args, { from: 'user' });
  } catch (e) {
    const code = (e as { exitCode?: number; code?: string }).exitCode;
    if ((e as { code?: string }).code === 'commander.helpDisplayed' || (e as { code?: string }).code === 'commander.help') return 0;
    return code === 0 ? 0 : 2;
  }
  const o = program.opts();
  if (o.resume !== undefined) {
    const dir = resolve(o.resume as string);
    const configPath = join(dir, 'config.json');
    if (!existsSync(configPath)) {
      console.error(`keel train: --resume ${dir}: no config.json there (not a keel train output folder)`);
      return 2;
    }
    try {
      if (o.overwrite) throw new RunFolderError('--resume and --overwrite exclude each other');
      if (o.out !== undefined && resolve(o.out as string) !== dir) throw new RunFolderError(`--resume ${dir} writes into ${dir}; --out ${o.out as string} differs`);
      const given = Object.fromEntries(CONFIG_KEYS.filter((k) => program.getOptionValueSource(k) === 'cli').map((k) => [k, o[k]]));
      const { config, changed } = mergeResumeFlags({ ...readConfig(configPath), out: dir }, given);
      const summary = await runTraining(config, { resume: true, progress: o.progress as boolean, changed });
      return report(summary, dir, { resumedFrom: summary.resumedFrom });
    } catch (e) {
      console.error(`keel train: ${(e as Error).message}`);
      return (e as { exitCode?: number }).exitCode ?? 1;
    }
  }
  if (o.out === undefined) {
    console.error('keel train: --out DIR is required (or --resume DIR)');
    return 2;
  }
  if (!MODELS.includes(o.model as string)) {
    console.error(`keel train: --model must be one of ${MODELS.join(', ')}, got '${o.model as string}'`);
    return 2;
  }
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
  try {
    const summary = await runTraining(config, { progress: o.progress as boolean, overwrite: o.overwrite as boolean });
    return report(summary, resolve(config.out), { wallTimeMs: Math.round(summary.wallTimeMs as number) });
  } catch (e) {
    console.error(`keel train: ${(e as Error).message}`);
    return (e as { exitCode?: number }).exitCode ?? 1;
  }
}
