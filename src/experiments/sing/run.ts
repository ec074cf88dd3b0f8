// Runs one training of the SING reproduction through keel.train.fit: model
// from the zoo, AdamW or SING with linear warm-up + cosine decay, a seeded
// loader over a Fashion-MNIST subset, then one evaluation on the test subset.
// A run whose loss goes non-finite is stopped there and counted as diverged.
import * as keel from '../../index.js';
import type { ModelPlan, OptimizerName, Protocol, RunSpec } from './grid.js';
import { median } from '../../stats/index.js';

type Split = keel.data.TensorDataset<[keel.Tensor, keel.Tensor]>;

/** Fashion-MNIST, loaded once for the whole grid. */
export interface SharedData {
  train: Split;
  test: Split;
  dispose(): void;
}

export function loadData(): SharedData {
  const train = keel.data.fashionMnist({ split: 'train' });
  const test = keel.data.fashionMnist({ split: 'test' });
  for (const t of [...train.tensors, ...test.tensors]) t.keep();
  return {
    train,
    test,
    dispose() {
      for (const t of [...train.tensors, ...test.tensors]) t.dispose();
    },
  };
}

/** The first n examples (views, no copy). */
function head(ds: Split, n: number): Split {
  if (n >= ds.length) return ds;
  const [x, y] = ds.tensors;
  return new keel.data.TensorDataset(x.narrow(0, 0, n).keep(), y.narrow(0, 0, n).keep());
}

function disposeIfView(ds: Split, base: Split): void {
  if (ds !== base) for (const t of ds.tensors) t.dispose();
}

export interface RunResult {
  testAccuracy: number;
  testLoss: number;
  /** Running mean of the training loss at the end (EMA 0.98, as fit reports it). */
  trainLoss: number;
  stepsDone: number;
  diverged: boolean;
  /** 'non-finite loss' (stopped at divergedAtStep) or 'chance accuracy', or null. */
  divergence: 'non-finite loss' | 'chance accuracy' | null;
  divergedAtStep: number | null;
  /** Median step time over the run (forward, backward, gradient norm, optimizer step). */
  medianStepMs: number;
  wallTimeMs: number;
  /** [step, mean training loss over the window ending there], about 20 points. */
  lossCurve: [number, number][];
}

const NORMALIZE = { mean: [0.2860], std: [0.3530] };

function buildOptimizer(name: OptimizerName, params: keel.Tensor[], lr: number, weightDecay: number) {
  return name === 'sing' ? new keel.optim.SING(params, { lr, weightDecay }) : new keel.optim.AdamW(params, { lr, weightDecay });
}

/** Linear warm-up over warmupFraction of the steps, then cosine decay to 0 (SequentialLR). */
function buildScheduler(optimizer: keel.optim.OptimizerLike, p: Protocol, steps: number) {
  const warmup = Math.max(1, Math.round(p.warmupFraction * steps));
  const warm = new keel.optim.LinearLR(optimizer, { startFactor: p.warmupStartFactor, endFactor: 1, totalIters: warmup });
  const cosine = new keel.optim.CosineAnnealingLR(optimizer, { tMax: Math.max(1, steps - warmup) });
  return { scheduler: new keel.optim.SequentialLR(optimizer, { schedulers: [warm, cosine], milestones: [warmup] }), warmup };
}

/** One training run; the model and optimizer are freed before it returns. */
export function runOne(spec: RunSpec, plan: ModelPlan, protocol: Protocol, data: SharedData): RunResult & { warmupSteps: number; parameters: number } {
  const train = head(data.train, plan.trainExamples);
  const test = head(data.test, plan.testExamples);
  keel.manualSeed(spec.seed);
  const model = keel.nn.zoo.createModel(plan.zooName, plan.zooOptions);
  const params = model.parameters();
  const parameters = params.reduce((n, t) => n + t.numel(), 0);
  const optimizer = buildOptimizer(spec.optimizer, params, spec.lr, spec.weightDecay);
  try {
    const { scheduler, warmup } = buildScheduler(optimizer, protocol, plan.steps);
    const transform = keel.data.normalize(NORMALIZE.mean, NORMALIZE.std);
    // same seed for both optimizers: the same initial weights and batch order (paired runs)
    const trainLoader = new keel.data.DataLoader(train, { batchSize: plan.batchSize, shuffle: true, seed: spec.seed, dropLast: true, transform });
    const evalLoader = new keel.data.DataLoader(test, { batchSize: 1000, transform });
    const stepTimes: number[] = [];
    const window = Math.max(1, Math.ceil(plan.steps / 20));
    const lossCurve: [number, number][] = [];
    let windowSum = 0;
    let windowCount = 0;
    let divergedAtStep: number | null = null;
    const loss = (o: keel.Tensor, t: keel.Tensor) => keel.losses.crossEntropy(o, t);
    const result = keel.train.fit({
      model,
      optimizer,
      scheduler,
      trainLoader,
      loss,
      steps: plan.steps,
      progress: false,
      callbacks: [{
        onStepEnd(info) {
          stepTimes.push(info.stepTimeMs);
          if (!Number.isFinite(info.loss)) {
            divergedAtStep = info.step;
            lossCurve.push([info.step, info.loss]);
            return false;
          }
          windowSum += info.loss;
          windowCount++;
          if (info.step % window === 0 || info.step === plan.steps) {
            lossCurve.push([info.step, windowSum / windowCount]);
            windowSum = 0;
            windowCount = 0;
          }
          return undefined;
        },
      }],
    });
    const evaluation = keel.train.evaluate(model, evalLoader, loss, true);
    const testAccuracy = evaluation.accuracy ?? Number.NaN;
    const nonFinite = divergedAtStep !== null || !Number.isFinite(evaluation.loss);
    const atChance = !nonFinite && !(testAccuracy > protocol.chanceAccuracyThreshold);
    return {
      testAccuracy,
      testLoss: evaluation.loss,
      trainLoss: result.trainLoss,
      stepsDone: result.steps,
      diverged: nonFinite || atChance,
      divergence: nonFinite ? 'non-finite loss' : atChance ? 'chance accuracy' : null,
      divergedAtStep,
      medianStepMs: median(stepTimes),
      wallTimeMs: result.wallTimeMs,
      lossCurve,
      warmupSteps: warmup,
      parameters,
    };
  } finally {
    model.dispose();
    optimizer.dispose();
    disposeIfView(train, data.train);
    disposeIfView(test, data.test);
  }
}
