// The SING reproduction's protocol: which models, learning rates, weight
// decays, seeds, schedule and compute budget. A plain data spec, read by the
// runner (run.ts), printed by the CLI and written whole into results.json.
//
// Paper: Courtois, Scieur, Morel, Arias, Eboli, "SING: A Plug-and-play DNN
// Learning Technique", arXiv:2305.15997 (2023); official code and advice:
// https://github.com/AdrienCourtois/SING. The authors advise a learning rate
// ~10× AdamW's ("the highest value possible before exploding"; search space
// {5e-3, 1e-2, 5e-2, 1e-1}), a weight decay ~10× lower than AdamW's, and a
// linear warm-up over 5 % of the iterations followed by cosine decay. So each
// optimizer is swept over its own recommended range: the SING grid is the
// AdamW grid × 10, which also makes three values common to both.
//
// Full-length training of ResNet-18 on all of Fashion-MNIST, 50 runs per
// model, is days of CPU time on this 2-core machine. The default protocol is
// therefore BUDGETED (a fixed number of steps on a subset of the training
// set, ResNet-18 at a quarter of its width); every budget choice is printed
// and saved with the results, and the verdict is judged on what this budget
// can resolve. `--quick` is a smoke run for the test suite, not evidence.

export type OptimizerName = 'adamw' | 'sing';
export const OPTIMIZERS: readonly OptimizerName[] = ['adamw', 'sing'];

export type ModelId = 'lenet5' | 'resnet18' | 'plain-mlp';
export const MODEL_IDS: readonly ModelId[] = ['lenet5', 'resnet18', 'plain-mlp'];

/** One model of the grid and its compute budget. */
export interface ModelPlan {
  id: ModelId;
  /** What it is, in words (for tables and the JSON). */
  label: string;
  /** keel.nn.zoo.createModel's name and options. */
  zooName: 'lenet5' | 'resnet18' | 'mlp';
  zooOptions: Record<string, unknown>;
  /** Why it is in the grid. */
  role: string;
  /** Depth in weight layers (convolutions + linear layers on the longest path). */
  depth: number;
  residual: boolean;
  normalization: boolean;
  steps: number;
  batchSize: number;
  /** The first N images of Fashion-MNIST's training split. */
  trainExamples: number;
  /** The first N images of the test split. */
  testExamples: number;
}

export interface Protocol {
  mode: 'quick' | 'budgeted';
  dataset: string;
  models: ModelPlan[];
  /** Learning rates per optimizer: its recommended range, and one 3× above (budgeted mode). */
  lrs: Record<OptimizerName, number[]>;
  /** The part of `lrs` inside the recommended range. */
  recommendedLrs: Record<OptimizerName, number[]>;
  /** Decoupled weight decay per optimizer (SING: 10× lower, as the authors advise). */
  weightDecay: Record<OptimizerName, number>;
  seeds: number[];
  /** Linear warm-up over this fraction of the steps, from warmupStartFactor × lr, then cosine decay to 0. */
  warmupFraction: number;
  warmupStartFactor: number;
  schedule: string;
  /** SING's other settings (the authors' defaults). */
  singOptions: string;
  adamwOptions: string;
  /** A run counts as diverged if its loss went non-finite or its test accuracy is ≤ this (chance is 0.1). */
  chanceAccuracyThreshold: number;
  /** In words, for the printed header and the JSON. */
  budgetNote: string;
}

export interface ProtocolOptions {
  quick?: boolean;
  /** Only these models. */
  models?: ModelId[];
  /** Number of seeds (0, 1, ... n-1). */
  seeds?: number;
  /** ResNet-18's base width (64 as the paper; the budgeted default is 16). */
  resnetWidth?: number;
}

// five values over the recommended range, and one 3× above its top, where
// instability (the paper's "stability" claim) should show first
const ADAMW_LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2];
const SING_LRS = ADAMW_LRS.map((lr) => Number((lr * 10).toPrecision(3)));

function lenet5(quick: boolean): ModelPlan {
  return {
    id: 'lenet5',
    label: 'LeNet-5 (2 conv + 3 linear, ReLU, max pool)',
    zooName: 'lenet5',
    zooOptions: { inChannels: 1, numClasses: 10 },
    role: 'shallow baseline (the paper\'s claims should hold, the depth effect should be small)',
    depth: 5,
    residual: false,
    normalization: false,
    ...(quick
      ? { steps: 60, batchSize: 32, trainExamples: 1920, testExamples: 500 }
      : { steps: 800, batchSize: 128, trainExamples: 20000, testExamples: 10000 }),
  };
}

function resnet18(quick: boolean, width: number | undefined): ModelPlan {
  const w = width ?? (quick ? 4 : 16);
  return {
    id: 'resnet18',
    label: `ResNet-18, CIFAR-style 3×3 stem, 1 input channel, width ${w}${w === 64 ? ' (the paper\'s)' : ` (${w}/64 of the paper's channels)`}`,
    zooName: 'resnet18',
    zooOptions: { inChannels: 1, numClasses: 10, width: w },
    role: 'a residual network with BatchNorm, as in the paper\'s image-classification experiments',
    depth: 18,
    residual: true,
    normalization: true,
    ...(quick
      ? { steps: 24, batchSize: 16, trainExamples: 768, testExamples: 256 }
      : { steps: 400, batchSize: 64, trainExamples: 12800, testExamples: 10000 }),
  };
}

function plainMlp(quick: boolean): ModelPlan {
  const depth = quick ? 16 : 20;
  const width = quick ? 32 : 128;
  return {
    id: 'plain-mlp',
    label: `deep plain MLP: ${depth} hidden Linear(${width}) + ReLU layers, no residuals, no normalisation, PyTorch default init`,
    zooName: 'mlp',
    zooOptions: { inChannels: 1, numClasses: 10, inputSize: 28, hidden: Array.from({ length: depth }, () => width) },
    role: 'where the paper\'s depth argument applies: per-layer gradient scales spread over orders of magnitude without residuals or normalisation, which layer-wise standardisation removes',
    depth: depth + 1,
    residual: false,
    normalization: false,
    ...(quick
      ? { steps: 60, batchSize: 32, trainExamples: 1920, testExamples: 500 }
      : { steps: 800, batchSize: 128, trainExamples: 20000, testExamples: 10000 }),
  };
}

/** The grid for a mode; options narrow it. */
export function makeProtocol(options: ProtocolOptions = {}): Protocol {
  const quick = options.quick ?? false;
  const all: ModelPlan[] = [lenet5(quick), resnet18(quick, options.resnetWidth), plainMlp(quick)];
  const models = options.models ? all.filter((m) => options.models!.includes(m.id)) : all;
  const nSeeds = options.seeds ?? (quick ? 2 : 3);
  const lrs: Record<OptimizerName, number[]> = quick
    ? { adamw: [1e-3, 1e-2], sing: [1e-2, 1e-1] }
    : { adamw: ADAMW_LRS, sing: SING_LRS };
  const budgetNote = quick
    ? '--quick smoke run: tiny subsets, a few dozen steps, 2 learning rates and ' + `${nSeeds} seed(s) per optimizer; the numbers test the machinery, not the paper`
    : 'budgeted protocol for a 2-core CPU: fixed step counts on the first N training images (a few epochs, not training to convergence), ' +
      'ResNet-18 at reduced width unless --resnet-width 64; the paper trains to convergence at full size, so absolute accuracies are lower ' +
      'and small differences (< ~0.5 pp) are below what 3 seeds resolve';
  return {
    mode: quick ? 'quick' : 'budgeted',
    dataset: 'Fashion-MNIST (28×28 grey, 10 classes), normalised with mean 0.2860, std 0.3530; no augmentation',
    models,
    lrs,
    recommendedLrs: quick ? lrs : { adamw: ADAMW_LRS.slice(0, 5), sing: SING_LRS.slice(0, 5) },
    weightDecay: { adamw: 1e-2, sing: 1e-3 },
    seeds: Array.from({ length: nSeeds }, (_, i) => i),
    warmupFraction: 0.05,
    warmupStartFactor: 0.01,
    schedule: 'linear warm-up over 5 % of the steps (from 1 % of the lr), then cosine decay to 0 (the SING authors\' recommended schedule), stepped every optimizer step',
    singOptions: 'keel.optim.SING defaults (the authors\' code): betas [0.9, 0.999], eps 1e-8, softplus β 50, gradient centralisation + normalisation, Lookahead k 5 α 0.5',
    adamwOptions: 'keel.optim.AdamW defaults (PyTorch\'s): betas [0.9, 0.999], eps 1e-8',
    chanceAccuracyThreshold: 0.15,
    budgetNote,
  };
}

/** Runs in the protocol, in the order they are run (model, optimizer, lr, seed). */
export interface RunSpec {
  id: string;
  model: ModelId;
  optimizer: OptimizerName;
  lr: number;
  weightDecay: number;
  seed: number;
}

export function runSpecs(p: Protocol): RunSpec[] {
  const out: RunSpec[] = [];
  for (const m of p.models) {
    for (const optimizer of OPTIMIZERS) {
      for (const lr of p.lrs[optimizer]) {
        for (const seed of p.seeds) {
          out.push({ id: `${m.id}/${optimizer}/lr=${lr}/seed=${seed}`, model: m.id, optimizer, lr, weightDecay: p.weightDecay[optimizer], seed });
        }
      }
    }
  }
  return out;
}

/** What decides the runs' numbers (not their descriptions): --resume reuses runs only when this matches. */
export function runDefiningKey(p: Protocol): string {
  return JSON.stringify({
    models: p.models.map((m) => ({ id: m.id, zooName: m.zooName, zooOptions: m.zooOptions, steps: m.steps, batchSize: m.batchSize, trainExamples: m.trainExamples, testExamples: m.testExamples })),
    lrs: p.lrs,
    weightDecay: p.weightDecay,
    seeds: p.seeds,
    warmupFraction: p.warmupFraction,
    warmupStartFactor: p.warmupStartFactor,
    chanceAccuracyThreshold: p.chanceAccuracyThreshold,
  });
}
