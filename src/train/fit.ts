// The fit loop: epochs or steps, evaluation, callbacks at step and epoch
// boundaries, metrics as JSON lines, progress, and checkpoints from which a
// resumed run ends bitwise identical to an uninterrupted one (model,
// optimizer, scheduler, libtorch's generator and the data position are all
// saved; the data loader's order and transforms are functions of its seed
// and position).
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../core/autograd.js';
import { getRngState, setRngState } from '../core/creation.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import type { DataLoader } from '../data/loader.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Guard } from '../guard/guard.js';
import type { Module } from '../nn/module.js';
import { clipGradNorm, gradNorm } from '../optim/clip.js';
import type { OptimizerLike, OptimizerStateDict } from '../optim/optimizer.js';
import type { GuardAction, GuardState } from '../guard/guard.js';
import { stem } from './checkpoint-files.js';
import { listCheckpoints, loadCheckpoint, removeCheckpointsAfter, restoreLatestIntact, saveCheckpoint, type CheckpointContent, type SkippedCheckpoint } from './checkpoint.js';
import { HealthMonitor } from '../log/health.js';
import { MetricsLog, readMetrics, type MetricsRecord } from '../log/metrics.js';
import { TfEventsWriter } from '../log/tfevents.js';
import { TrainingPrecision, type PrecisionName } from './precision.js';
import { createProgress, type Progress } from './progress.js';

/** What a scheduler must offer the loop (every keel.optim scheduler does). */
export interface SchedulerLike {
  step(): void;
  getLastLr(): number[];
  stateDict(): Record<string, unknown>;
  loadStateDict(state: Record<string, unknown>): void;
}

export interface StepInfo {
  step: number;
  epoch: number;
  loss: number;
  accuracy?: number;
  lr: number;
  gradNorm: number;
  stepTimeMs: number;
}

export interface EvalInfo {
  step: number;
  epoch: number;
  loss: number;
  accuracy?: number;
}

/** Called at the loop's boundaries; return false from onStepEnd to stop. */
export interface Callback {
  onTrainStart?(state: FitState): void;
  onStepEnd?(info: StepInfo, state: FitState): void | boolean;
  onEpochEnd?(epoch: number, evaluation: EvalInfo | undefined, state: FitState): void;
  onTrainEnd?(result: FitResult, state: FitState): void;
}

export interface FitOptions {
  model: Module<[Tensor], Tensor>;
  optimizer: OptimizerLike;
  /** Stepped after every optimizer step (schedulerInterval 'step', the default) or every epoch. */
  scheduler?: SchedulerLike;
  schedulerInterval?: 'step' | 'epoch';
  trainLoader: DataLoader;
  evalLoader?: DataLoader;
  /** (model output, target) → scalar loss. */
  loss: (output: Tensor, target: Tensor) => Tensor;
  /** Accuracy of argmax over dim 1 against integer targets (default: on when targets are integers). */
  accuracy?: boolean;
  /** Train this many epochs... */
  epochs?: number;
  /** ...or this many optimizer steps (whichever ends first when both are given). */
  steps?: number;
  /** Where metrics.jsonl and checkpoints/ go. Without it nothing is written. */
  outDir?: string;
  /** A metrics line every N steps (default 1). */
  logEvery?: number;
  /** A checkpoint every N steps (and at the end); 0 for none. */
  checkpointEvery?: number;
  keepCheckpoints?: number;
  /** Clip the global gradient norm to this before each step. */
  clipGradNorm?: number;
  /** Start from the latest checkpoint in outDir/checkpoints if there is one. */
  resume?: boolean;
  callbacks?: Callback[];
  /** A progress bar on a TTY, plain lines otherwise; false for none. */
  progress?: boolean;
  /** Extra JSON saved in each checkpoint (e.g. the CLI's config). */
  extraState?: Record<string, unknown>;
  /**
   * A NaN guard (keel.Guard over the same model and optimizer): each step goes
   * through guard.stepSync, which checks it, replays and diagnoses a
   * non-finite step and acts by its policy; its events go to the metrics log.
   * Under `rollback` the guard puts back the step, data position and
   * scheduler with its snapshot and has the loop skip batches (each logged).
   * With precision 'fp16-mixed' the guard steps through its GradScaler: a
   * step the scaler skips is no event (see GuardOptions.scaler); the guard's
   * step and skip counts are saved in checkpoints with the scaler's state.
   */
  guard?: Guard;
  /**
   * How each step runs, by Lightning's names ('32-true', 'bf16-mixed',
   * 'fp16-mixed' with its GradScaler, 'bf16-true', '*-emulated', ...), or a
   * TrainingPrecision. Its state (the loss scale) is saved in checkpoints.
   */
  precision?: PrecisionName | TrainingPrecision;
  /** Per-layer health lines in the metrics log every N steps (default { every: 50 } when outDir is given; false for none). */
  health?: { every?: number } | false;
  /** Also write TensorBoard event files to outDir/tb (default true when outDir is given). */
  tensorboard?: boolean;
  /** Extra fields for the metrics log's resume event (e.g. the flags changed on resume). */
  resumeEvent?: Record<string, unknown>;
  /** Where warnings go (a damaged checkpoint skipped on resume); default: a line on stderr. */
  warn?: (line: string) => void;
  /**
   * Data-parallel training: this process is one rank of several and `model`
   * a DistributedDataParallel (keel.distributed.fitHook(ddp) makes this).
   * Every rank resumes from outDir's checkpoints; only rank 0 writes there
   * (metrics, checkpoints, TensorBoard) and shows progress. The logged loss
   * and accuracy are means over the ranks, and a stop (fitAsync's signal)
   * seen by any rank stops every rank after the same step.
   */
  distributed?: FitDistributed;
}

/** What fit needs to know of data-parallel training (see FitOptions.distributed). */
export interface FitDistributed {
  readonly rank: number;
  readonly worldSize: number;
  /** The model without its wrapper: checkpoints hold its state, and evaluation and health lines run on it alone (no collective). */
  readonly module: Module;
  /** The element-wise mean over ranks of a few numbers: one small collective that every rank calls after every step. */
  mean(values: number[]): number[];
}

export interface FitAsyncOptions extends FitOptions {
  /** When it aborts, the loop stops after the step in flight, writes a checkpoint (with outDir) and returns with `interrupted`. */
  signal?: AbortSignal;
  /** Yield to the event loop (so signal handlers run) once this many ms have passed since the last yield; default 50. */
  yieldEveryMs?: number;
}

export interface FitState {
  step: number;
  epoch: number;
  readonly totalSteps: number;
}

export interface FitResult {
  steps: number;
  epochs: number;
  /** The last evaluation, if an eval loader was given. */
  evaluation?: EvalInfo;
  trainLoss: number;
  wallTimeMs: number;
  resumedFrom?: number;
  /** Checkpoints skipped on resume as damaged, newest first. */
  skippedCheckpoints?: SkippedCheckpoint[];
  /** The guard's events of this run, counted by action. */
  guardEvents?: Partial<Record<GuardAction, number>>;
  /** Set when fitAsync's signal stopped the run (after a checkpoint when outDir was given). */
  interrupted?: boolean;
}

const CHECKPOINTS = 'checkpoints';

function isIntegerTarget(t: Tensor): boolean {
  const d = t.dtype;
  return d === 'int64' || d === 'int32' || d === 'int16' || d === 'int8' || d === 'uint8';
}

function splitBatch(batch: unknown): [Tensor, Tensor] {
  if (Array.isArray(batch) && batch.length >= 2 && batch[0] instanceof Tensor && batch[1] instanceof Tensor) return [batch[0], batch[1]];
  throw new TypeError('fit: the training loader must yield [input, target] batches');
}


/** Loss and accuracy over a loader, without gradients, in eval mode. */
export function evaluate(model: Module, loader: DataLoader, loss: (o: Tensor, t: Tensor) => Tensor, accuracy?: boolean, precision?: TrainingPrecision): { loss: number; accuracy?: number } {
  const wasTraining = model.training;
  model.eval();
  let total = 0;
  let correct = 0;
  let count = 0;
  let withAccuracy = accuracy;
  try {
    noGrad(() => {
      for (let k = 0; k < loader.length; k++) {
        scope(() => {
          const [x0, y] = splitBatch(loader.batchAt(0, k));
          const x = precision ? precision.castInput(x0) : x0;
          const out = (precision ? precision.forward(() => model.call(x)) : model.call(x)) as Tensor;
          const n = x.shape[0];
          total += loss(out, y).item() * n;
          withAccuracy ??= isIntegerTarget(y);
          if (withAccuracy) correct += out.argmax(1).eq(y).sum().item();
          count += n;
        });
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return { loss: count > 0 ? total / count : Number.NaN, ...(withAccuracy ? { accuracy: count > 0 ? correct / count : Number.NaN } : {}) };
}

/** The module whose state checkpoints hold (the wrapped one under data parallelism). */
function stateModule(options: FitOptions): Module {
  return options.distributed?.module ?? options.model;
}

/** A DistributedSampler under the loader: its shared order is a function of the epoch (PyTorch's sampler.set_epoch). */
function setSamplerEpoch(loader: DataLoader, epoch: number): void {
  const sampler = loader.dataset as { setEpoch?: unknown };
  if (typeof sampler.setEpoch === 'function') (sampler.setEpoch as (e: number) => void)(epoch);
}

function saveState(options: FitOptions, state: FitState, dir: string, keep: number, precision?: TrainingPrecision, guardEvents?: Partial<Record<GuardAction, number>>): void {
  const { optimizer, scheduler, trainLoader } = options;
  const model = stateModule(options);
  scope(() => {
    const tensors: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(model.stateDict())) tensors[`model.${k}`] = t;
    const opt = optimizer.stateDict();
    for (const [k, t] of Object.entries(opt.tensors)) tensors[`optimizer.${k}`] = t;
    tensors['rng.cpu'] = getRngState();
    saveCheckpoint(dir, state.step, {
      tensors,
      state: {
        step: state.step,
        epoch: state.epoch,
        optimizer: { state: opt.state, paramGroups: opt.paramGroups },
        scheduler: scheduler ? scheduler.stateDict() : null,
        data: trainLoader.stateDict(),
        ...(options.extraState ? { extra: options.extraState } : {}),
        ...(precision ? { precision: precision.stateDict() } : {}),
        ...(options.guard ? { guard: { ...options.guard.stateDict(), events: guardEvents ?? {} } } : {}),
      },
    }, keep);
  });
}

/**
 * Puts a checkpoint's state back. `withGuard` false is the guard's own
 * rollback to a checkpoint: the guard keeps its history (events, skipped
 * batches, statistics) and sets its step count itself.
 */
function restoreState(options: FitOptions, ckpt: CheckpointContent & { step: number }, precision?: TrainingPrecision, withGuard = true): { step: number; epoch: number; guardEvents?: Partial<Record<GuardAction, number>> } {
  {
    const { optimizer, scheduler, trainLoader } = options;
    const model = stateModule(options);
    const modelState: Record<string, Tensor> = {};
    const optimizerTensors: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(ckpt.tensors)) {
      if (k.startsWith('model.')) modelState[k.slice(6)] = t;
      else if (k.startsWith('optimizer.')) optimizerTensors[k.slice(10)] = t;
    }
    model.loadStateDict(modelState);
    const saved = ckpt.state.optimizer as Omit<OptimizerStateDict, 'tensors'>;
    optimizer.loadStateDict({ ...saved, tensors: optimizerTensors });
    if (scheduler && ckpt.state.scheduler) scheduler.loadStateDict(ckpt.state.scheduler as Record<string, unknown>);
    trainLoader.loadStateDict(ckpt.state.data as Parameters<DataLoader['loadStateDict']>[0]);
    const rng = ckpt.tensors['rng.cpu'];
    if (rng) setRngState(rng);
    if (precision && ckpt.state.precision) precision.loadStateDict(ckpt.state.precision as { name?: unknown; scaler?: unknown });
    // the guard's skips, statistics and step count (its LR backoff came back with the optimizer's param groups)
    if (!withGuard) return { step: ckpt.step, epoch: ckpt.state.epoch as number };
    const guardState = ckpt.state.guard as (GuardState & { events?: Partial<Record<GuardAction, number>> }) | undefined;
    if (options.guard && guardState) {
      options.guard.loadStateDict(guardState);
      return { step: ckpt.step, epoch: ckpt.state.epoch as number, guardEvents: { ...guardState.events } };
    }
    if (options.guard) options.guard.stepCount = ckpt.step;  // a guard added on resume counts from here
    return { step: ckpt.step, epoch: ckpt.state.epoch as number };
  }
}

/** Keeps the metrics lines of steps up to `step` (a killed run may have logged past its last checkpoint). */
function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readMetrics(path).filter((r: MetricsRecord) => typeof r.step !== 'number' || r.step <= step);
  writeFileAtomic(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** Trains synchronously (see fitAsync for a loop that Ctrl-C can stop cleanly). */
export function fit(options: FitOptions): FitResult {
  const loop = fitLoop(options);
  for (;;) {
    const r = loop.next(false);
    if (r.done) return r.value;
  }
}

/**
 * fit, yielding to the event loop between steps once `yieldEveryMs` have
 * passed, so that a signal handler can abort `signal`: the run then stops
 * after the step in flight, with a checkpoint. The check between steps costs
 * one clock read (bench/train-step.mjs measures it).
 */
export async function fitAsync(options: FitAsyncOptions): Promise<FitResult> {
  const every = options.yieldEveryMs ?? 50;
  const signal = options.signal;
  const loop = fitLoop(options);
  let last = performance.now();
  let stop = false;
  for (;;) {
    const r = loop.next(stop);
    if (r.done) return r.value;
    const now = performance.now();
    if (now - last >= every) {
      await new Promise<void>((ok) => setImmediate(ok));
      last = performance.now();
    }
    stop = signal?.aborted ?? false;
  }
}

/** The loop itself: yields after each step; `true` sent back stops it after a checkpoint. */
function* fitLoop(options: FitOptions): Generator<void, FitResult, boolean | undefined> {
  const { model, optimizer, trainLoader, evalLoader, scheduler } = options;
  const interval = options.schedulerInterval ?? 'step';
  const logEvery = Math.max(1, options.logEvery ?? 1);
  const checkpointEvery = options.checkpointEvery ?? 0;
  const keep = options.keepCheckpoints ?? 3;
  const batchesPerEpoch = trainLoader.length;
  if (batchesPerEpoch === 0) throw new Error('fit: the training loader yields no batches');
  if (options.epochs === undefined && options.steps === undefined) throw new Error('fit: give epochs or steps');
  const totalSteps = Math.min(options.steps ?? Infinity, options.epochs !== undefined ? options.epochs * batchesPerEpoch : Infinity);
  const dist = options.distributed;
  // under data parallelism every rank reads the checkpoints, rank 0 alone writes
  const writer = dist === undefined || dist.rank === 0;
  const stateModel = stateModule(options);
  const ckptDir = options.outDir ? join(options.outDir, CHECKPOINTS) : undefined;
  const metricsPath = options.outDir && writer ? join(options.outDir, 'metrics.jsonl') : undefined;
  if (options.outDir) mkdirSync(options.outDir, { recursive: true });

  const precision = typeof options.precision === 'string' ? new TrainingPrecision(options.precision) : options.precision;
  // the guard steps through the precision's GradScaler (fp16-mixed): a step the scaler skips is not an event
  if (precision?.scaler !== undefined && options.guard?.scaler !== undefined && options.guard.scaler !== precision.scaler) {
    throw new Error(`fit: the guard's scaler is not precision ${precision.name}'s GradScaler: give the guard no scaler (fit attaches the precision's) or the precision's (precision.scaler)`);
  }
  const state: FitState = { step: 0, epoch: 0, totalSteps };
  let resumedFrom: number | undefined;
  let skipped: SkippedCheckpoint[] = [];
  const warn = options.warn ?? ((line: string) => process.stderr.write(`keel: ${line}\n`));
  const restored = options.resume && ckptDir ? restoreLatestIntact(ckptDir, (c) => restoreState(options, c, precision)) : undefined;
  if (restored) {
    skipped = restored.skipped;
    for (const s of skipped) warn(`skipped checkpoint step ${s.step}: ${s.reason}`);
  }
  let guardEventsRestored: Partial<Record<GuardAction, number>> = {};
  if (restored?.step !== undefined) {
    guardEventsRestored = restored.result.guardEvents ?? {};
    if (restored.step > totalSteps) throw new Error(`the run is at step ${restored.step}, past the ${totalSteps} steps it is now asked to train (a shorter run cannot be resumed)`);
    state.step = restored.step;
    state.epoch = trainLoader.epoch;
    resumedFrom = restored.step;
    if (metricsPath) truncateMetrics(metricsPath, restored.step);
  } else {
    trainLoader.setEpoch(0);
    // a resume before the first checkpoint starts afresh: so does its log
    if (options.resume && metricsPath) rmSync(metricsPath, { force: true });
  }
  const guardEventsBefore = options.guard?.events.length ?? 0;

  const log = metricsPath ? new MetricsLog(metricsPath) : undefined;
  // TensorBoard follows the metrics log (step, eval, health and guard lines alike)
  const tb = log !== undefined && options.tensorboard !== false && options.outDir ? new TfEventsWriter(join(options.outDir, 'tb')) : undefined;
  if (tb !== undefined) log!.listeners.push((r) => tb.addMetricsLine(r));
  const health = log !== undefined && options.health !== false ? new HealthMonitor(stateModel, { every: options.health?.every ?? 50 }) : undefined;
  if (options.guard !== undefined) {
    if (log !== undefined && options.guard.log === undefined) options.guard.log = log;
    if (options.clipGradNorm !== undefined && options.guard.clipGradNorm === undefined) options.guard.clipGradNorm = options.clipGradNorm;
  }
  const callbacks = options.callbacks ?? [];
  const params = model.parameters();
  const start = performance.now();
  let progress: Progress | undefined;
  if (options.progress !== false && writer) progress = createProgress({ total: totalSteps, label: 'train' });
  progress?.update(state.step);
  for (const c of callbacks) c.onTrainStart?.(state);
  if (options.resume) {
    log?.write({
      event: 'resume', step: resumedFrom ?? 0, time: new Date().toISOString(),
      ...(skipped.length > 0 ? { skippedCheckpoints: skipped } : {}), ...options.resumeEvent,
    });
  }

  let lastEval: EvalInfo | undefined;
  let runningLoss = Number.NaN;
  let stop = false;
  let interrupted = false;
  let savedAt = -1;
  const signal = (options as FitAsyncOptions).signal;
  // the guard's events of the whole run (those before a resume came with its checkpoint)
  const guardEvents = (): Partial<Record<GuardAction, number>> => {
    const counts: Partial<Record<GuardAction, number>> = { ...guardEventsRestored };
    for (const e of options.guard?.events.slice(guardEventsBefore) ?? []) counts[e.action] = (counts[e.action] ?? 0) + 1;
    return counts;
  };
  // the guard's rollback saves and puts back the loop's position with its snapshots, and tells it which batches to skip
  const detachGuard = options.guard?.attachRollback({
    save: () => ({ step: state.step, data: trainLoader.stateDict(), scheduler: scheduler?.stateDict() }),
    restore: (saved) => {
      const s = saved as { step: number; data: Parameters<DataLoader['loadStateDict']>[0]; scheduler?: Record<string, unknown> };
      state.step = s.step;
      trainLoader.loadStateDict(s.data);
      if (scheduler && s.scheduler) scheduler.loadStateDict(s.scheduler);
    },
    // rollback with source 'checkpoints': back to a checkpoint of this run folder (every rank reads it; rank 0 removes the newer ones)
    ...(ckptDir !== undefined ? {
      checkpoints: {
        steps: () => listCheckpoints(ckptDir),
        restore: (c: number) => {
          const ckpt = loadCheckpoint(ckptDir, c);
          try {
            restoreState(options, ckpt, precision, false);
          } finally {
            for (const t of Object.values(ckpt.tensors)) t.dispose();
          }
          state.step = c;
          if (writer) removeCheckpointsAfter(ckptDir, c);
          return join(CHECKPOINTS, stem(c));
        },
      },
    } : {}),
  });
  const detachScaler = precision?.scaler !== undefined && options.guard !== undefined && options.guard.scaler === undefined ? options.guard.attachScaler(precision.scaler) : undefined;
  model.train();
  try {
    while (state.step < totalSteps && !stop) {
      while (options.guard !== undefined && options.guard.pendingSkipBatches > 0) {
        options.guard.skipBatch(trainLoader.epoch * batchesPerEpoch + trainLoader.batchIndex);
        trainLoader.advance();
      }
      const epoch = trainLoader.epoch;
      state.epoch = epoch;
      setSamplerEpoch(trainLoader, epoch);
      const k = trainLoader.batchIndex;
      const t0 = performance.now();
      const healthDue = health?.due(state.step + 1) === true;
      if (healthDue) health!.begin();
      const measured = scope(() => {
        const [x0, y] = splitBatch(trainLoader.batchAt(epoch, k));
        const x = precision ? precision.castInput(x0) : x0;
        const guard = options.guard;
        if (guard !== undefined) {
          const withAccuracy = options.accuracy ?? isIntegerTarget(y);
          let accuracy: number | undefined;
          const r = guard.stepSync(() => {
            const forward = (): Tensor => {
              const out = model.call(x) as Tensor;
              if (withAccuracy) accuracy = noGrad(() => out.argmax(1).eq(y).float().mean().item());
              return options.loss(out, y);
            };
            return precision ? precision.forward(forward) : forward();
          });
          return { loss: r.loss, gradNorm: r.gradNorm, accuracy, rolledBack: r.rolledBackTo !== undefined };
        }
        const [out, lossT] = precision
          ? precision.forward(() => { const o = model.call(x) as Tensor; return [o, options.loss(o, y)] as const; })
          : (() => { const o = model.call(x) as Tensor; return [o, options.loss(o, y)] as const; })();
        optimizer.zeroGrad(true);
        if (precision) {
          precision.backward(lossT);
          precision.unscale(optimizer); // clipping and the logged norm see the true gradients
        } else {
          lossT.backward();
        }
        const norm = options.clipGradNorm !== undefined ? clipGradNorm(params, options.clipGradNorm) : gradNorm(params);
        if (precision) precision.step(optimizer);
        else optimizer.step();
        const withAccuracy = options.accuracy ?? isIntegerTarget(y);
        const accuracy = withAccuracy ? noGrad(() => out.argmax(1).eq(y).float().mean().item()) : undefined;
        return { loss: lossT.item(), gradNorm: norm, accuracy };
      });
      // rolled back: the guard put the step and data position back
      if (measured.rolledBack === true) continue;
      // the data position moves past the batch just used
      trainLoader.advance();
      const lr = optimizer.paramGroups[0].lr;
      if (scheduler && interval === 'step') scheduler.step();
      state.step++;
      const stepTimeMs = performance.now() - t0;
      // data parallel: the step's loss and accuracy over every rank, and whether any rank was asked to stop
      let agreedStop = false;
      if (dist !== undefined) {
        const [loss, accuracy, stopFlag] = dist.mean([measured.loss, measured.accuracy ?? 0, signal?.aborted === true ? 1 : 0]);
        measured.loss = loss;
        if (measured.accuracy !== undefined) measured.accuracy = accuracy;
        agreedStop = stopFlag > 0;
      }
      runningLoss = Number.isNaN(runningLoss) ? measured.loss : 0.98 * runningLoss + 0.02 * measured.loss;
      const info: StepInfo = { step: state.step, epoch, loss: measured.loss, lr, gradNorm: measured.gradNorm, stepTimeMs, ...(measured.accuracy !== undefined ? { accuracy: measured.accuracy } : {}) };
      if (log && (state.step % logEvery === 0 || state.step === totalSteps)) {
        log.write({ ...info, ...(precision?.scaler ? { lossScale: precision.scaler.getScale() } : {}) });
      }
      if (healthDue) {
        log!.write({ ...health!.record(state.step), ...(precision?.scaler ? { lossScale: precision.scaler.getScale() } : {}) });
        if (tb) scope(() => {
          tb.addHistograms('weights', stateModel.namedParameters(), state.step);
          tb.addHistograms('grads', stateModel.namedParameters().map(([n, p]) => [n, p.grad] as [string, Tensor | undefined]), state.step);
        });
      }
      progress?.update(state.step, { epoch: epoch + 1, loss: runningLoss });
      for (const c of callbacks) if (c.onStepEnd?.(info, state) === false) stop = true;

      const epochDone = k + 1 === batchesPerEpoch;
      if (epochDone) {
        if (scheduler && interval === 'epoch') scheduler.step();
        if (evalLoader) {
          const e = evaluate(stateModel, evalLoader, options.loss, options.accuracy, precision);
          lastEval = { step: state.step, epoch, ...e };
          log?.write({ event: 'eval', ...lastEval });
        }
        for (const c of callbacks) c.onEpochEnd?.(epoch, lastEval, state);
      }
      const last = state.step === totalSteps || stop;
      if (ckptDir && ((checkpointEvery > 0 && state.step % checkpointEvery === 0) || (last && checkpointEvery > 0))) {
        // a checkpoint holds no update the guard has not checked (on every rank alike: they stay equal)
        options.guard?.flush();
        if (writer) saveState(options, state, ckptDir, keep, precision, guardEvents());
        savedAt = state.step;
      }
      if (!last) {
        const requested = yield;
        if (dist !== undefined ? agreedStop : requested) {
          interrupted = true;
          if (ckptDir && savedAt !== state.step) {
            options.guard?.flush();
            if (writer) saveState(options, state, ckptDir, keep, precision, guardEvents());
          }
          break;
        }
      }
    }
    options.guard?.flush();  // the last update's check (the guard reads each one with the next step's)
    if (!interrupted && evalLoader && (lastEval === undefined || lastEval.step !== state.step)) {
      const e = evaluate(stateModel, evalLoader, options.loss, options.accuracy, precision);
      lastEval = { step: state.step, epoch: state.epoch, ...e };
      log?.write({ event: 'eval', ...lastEval });
    }
  } finally {
    progress?.stop();
    detachGuard?.();
    detachScaler?.();
    health?.end();
    if (options.guard !== undefined && options.guard.log === log) options.guard.log = undefined;
    log?.close();
    tb?.close();
  }
  const result: FitResult = {
    steps: state.step,
    epochs: state.step / batchesPerEpoch,
    trainLoss: runningLoss,
    wallTimeMs: performance.now() - start,
    ...(lastEval ? { evaluation: lastEval } : {}),
    ...(resumedFrom !== undefined ? { resumedFrom } : {}),
    ...(skipped.length > 0 ? { skippedCheckpoints: skipped } : {}),
    ...(interrupted ? { interrupted } : {}),
  };
  if (options.guard !== undefined) result.guardEvents = guardEvents();
  for (const c of callbacks) c.onTrainEnd?.(result, state);
  return result;
}
