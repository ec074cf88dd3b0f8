// The guard: `await guard.step(computeLoss)` runs zeroGrad, the forward (the
// user's closure), backward, the cheap checks and the optimizer step; on a
// non-finite event it replays the step in tracing mode to find the first bad
// op, diagnoses it, and acts by its policy (raise, skip, rollback, repair).
// With a GradScaler it runs PyTorch's AMP step instead, and a step the scaler
// skips is no event unless the skips persist or the scale falls too low.
import type { GradScaler } from '../amp/grad-scaler.js';
import { noGrad } from '../core/autograd.js';
import { unintercepted } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import { isFloatingDType } from '../core/dtype.js';
import { Tensor } from '../core/tensor.js';
import type { Module } from '../nn/module.js';
import type { OptimizerLike } from '../optim/optimizer.js';
import { isUpdateBounding } from '../optim/update-bound.js';
import type { FloatFormat } from '../precision/formats.js';
import { withPrecision } from '../precision/policy.js';
import type { MetricsLog } from '../log/metrics.js';
import * as ops from '../ops/index.js';
import { checkGradients, checkParamGradients, checkParameters, ForwardWatch, GradNormMonitor, LossMonitor, type GradCheck } from './detect.js';
import { backOffLr, finalLayer, reinitSmall, Snapshot, StepState, type Policy, type RepairContext, type RepairFn } from './policies.js';
import { GuardReport, NonFiniteError, type ScalerTrigger } from './report.js';
import { diagnose, type RuleContext } from './rules.js';
import { allFinite, contextOf, tensorStats, traceStep, type TraceResult } from './trace.js';

/**
 * An update that moves no parameter tensor by more than this (L2) needs no
 * pre-update copy under skip and repair: it cannot make an entry non-finite
 * (2^103 is half an ulp at FLT_MAX), nor take a tensor's norm past what the
 * check's float32 squared norms hold (1.8e19) unless it was already within
 * 1e15 of it. The same line as the immediate check's lr·(‖g‖ + 1) > 1e15.
 */
const STEP_NORM_LIMIT = 1e15;

export interface GuardOptions {
  model: Module;
  optimizer: OptimizerLike;
  /** What to do on a non-finite event (default 'raise'). */
  policy?: Policy;
  /** Every event (and warning) becomes a line here. */
  log?: MetricsLog;
  /** Clip the global gradient norm to this before each step (on the norm the check already read: no second pass). */
  clipGradNorm?: number;
  /** rollback / repair multiply the learning rate by this (default 0.5). */
  lrBackoff?: number;
  /** rollback: take the in-memory snapshot every this many steps (default 20; `rollback.every` wins). */
  snapshotEvery?: number;
  /**
   * The `rollback` policy as large runs do it by hand (PaLM, OPT): keep K
   * snapshots, go back N steps on an event or a loss spike, skip the next M
   * batches of the data order (each logged by its index), back the LR off.
   */
  rollback?: RollbackOptions;
  /**
   * Check the updated parameters (default true). Under skip and repair the
   * pre-step parameters and optimizer state are copied (one native call, one
   * pass over them: less than the update itself) so that a bad update can be
   * undone. Non-finite parameters make the next
   * step's loss or gradients non-finite, so the parameters are read only
   * then (to tell a bad update from a bad step), at once when the step looks
   * risky (a gradient-norm spike, lr·‖g‖ > 1e15), and on `flush()`: healthy
   * steps pay nothing for it.
   */
  checkUpdate?: boolean;
  /** Early warnings in the forward: sigmoid saturation and precision range (default true). */
  watch?: boolean;
  /** Watch every N-th step's forward (default 10: saturation builds up over many steps). */
  watchEvery?: number;
  /** The std of the final layer's re-initialisation by `repair` (default 1e-3). */
  finalInitStd?: number;
  /**
   * `repair` runs the same batch again after applying the remedy, up to this
   * many times (default 1); if the step is still not finite, it is dropped as
   * `skip` would drop it.
   */
  repairRetries?: number;
  /**
   * Data-parallel training (keel.distributed.guardHook(ddp)): each rank
   * checks its own gradients from before the average, one small all-reduce
   * of the flags makes every rank take the same decision, and the report
   * names the rank(s) whose step was not finite.
   */
  distributed?: GuardDistributed;
  /**
   * Mixed precision with dynamic loss scaling (a keel.amp.GradScaler): the
   * guard runs PyTorch's AMP step — `scaler.scale(loss).backward()`,
   * `scaler.unscale_(optimizer)` (the check, `clipGradNorm` and the logged
   * norm see the true gradients), `scaler.step(optimizer)`,
   * `scaler.update()`; computeLoss runs the forward under autocast, as in
   * PyTorch. A step the scaler skips (inf/NaN gradients; the scale backs
   * off) is not an event: it is counted (`scalerSkips`) and logged
   * (`{event: 'guard-scaler-skip', step, lossScale, consecutiveSkips}`). It
   * is one when the back-off leaves the scale below `scaleFloor` or after
   * `maxConsecutiveSkips` skips in a row: the step is replayed in the same
   * precision at the scale it ran at, and the report names the op. fit
   * attaches the scaler of precision 'fp16-mixed' itself.
   */
  scaler?: GradScaler;
  /** With a scaler: a skip whose back-off leaves the loss scale below this is an event (default 1). */
  scaleFloor?: number;
  /** With a scaler: this many skipped steps in a row is an event (default 10; Infinity for no limit). */
  maxConsecutiveSkips?: number;
}

/** What the guard needs from a data-parallel wrapper (see keel.distributed.guardHook). */
export interface GuardDistributed {
  readonly rank: number;
  /** This rank's own gradients were finite before they were averaged across ranks. */
  localGradientsFinite(): boolean;
  /** Every rank's flag in; the ranks whose flag was set out, the same on every rank. */
  agree(localBad: boolean): number[];
  /** Runs fn (the guard's replay of a step) with no collective. */
  localOnly<T>(fn: () => T): T;
}

export interface RollbackOptions {
  /** Snapshots kept in memory, oldest dropped first (default 1). */
  snapshots?: number;
  /** Take a snapshot before every this many-th step (default `snapshotEvery`, 20). */
  every?: number;
  /** Go back to the newest snapshot taken at least this many steps before the bad step (default 0: the newest; the oldest kept if none is that old). */
  back?: number;
  /** After going back, skip this many batches of the data order (default 0). The training loop must attach its data position (fit does). */
  skipBatches?: number;
  /** A finite loss whose z-score against its running mean and variance exceeds this is a spike, acted on as an event (default: off). */
  lossZ?: number;
  /** Steps of loss statistics before a spike can be called (default 10). */
  lossWarmup?: number;
  /**
   * Where the states to go back to come from: 'memory' (default) keeps
   * `snapshots` copies taken every `every` steps; 'checkpoints' takes none
   * and goes back to the training loop's checkpoints on disk (fit's
   * `checkpointEvery` / `keepCheckpoints` are then the interval and K), through
   * the loop's RollbackHook.checkpoints.
   */
  source?: 'memory' | 'checkpoints';
}

/** The checkpoints a training loop keeps on disk, for rollback with `source: 'checkpoints'` (fit attaches its run folder's). */
export interface RollbackCheckpoints {
  /** Steps done at each complete checkpoint, oldest first. */
  steps(): number[];
  /**
   * Puts the model, optimizer, RNG and the loop's position back to the
   * checkpoint of `step` (steps done), and drops the newer ones (a later
   * resume must not go forward to the abandoned states); returns where it
   * read from. Throws if the checkpoint is damaged: the guard tries the next.
   */
  restore(step: number): string;
}

/**
 * What rollback saves with each snapshot and puts back with it: the training
 * loop's own position (its step, the data position, the scheduler). fit
 * attaches one; `save` runs before the step, when the next batch is the step's.
 */
export interface RollbackHook {
  save(): unknown;
  restore(saved: unknown): void;
  /** The loop's checkpoints on disk (rollback with `source: 'checkpoints'`). */
  checkpoints?: RollbackCheckpoints;
}

/**
 * What a checkpoint keeps of the guard (fit saves it with each checkpoint), so
 * that a resumed run — `keel train --resume`, or a restart under
 * `--max-restarts` — goes on as the uninterrupted one would: its step count,
 * the running statistics its spike tests compare against, the batches it
 * skipped and still has to skip. The learning rate it backed off lives in the
 * optimizer's param groups (lr and initialLr) and comes back with them.
 */
export interface GuardState {
  stepCount: number;
  gradNorms: { mean: number; variance: number; count: number };
  losses: { mean: number; variance: number; count: number };
  skippedBatches: number[];
  pendingSkip: number;
  /** Steps the loss scaler skipped (0 without one). */
  scalerSkips: number;
  /** Of them, the last ones in a row (an event after `maxConsecutiveSkips`). */
  consecutiveSkips: number;
}

export type GuardAction = 'raised' | 'skipped' | 'rolled-back' | 'repaired';

export interface GuardWarning {
  step: number;
  kind: 'grad-norm-spike' | 'saturation' | 'precision-range';
  message: string;
}

export interface GuardEvent {
  step: number;
  action: GuardAction;
  report: GuardReport;
  /** What the policy did, in words (the repair applied, the new LR). */
  detail: string[];
}

export interface GuardStepResult {
  step: number;
  /** The loss (NaN or ±inf on an event). */
  loss: number;
  gradNorm: number;
  /** The update was applied (under `repair`, possibly by a retry of the batch after the remedy). */
  ok: boolean;
  /** The first event of the step (under `repair` with retries, `events` has each). */
  event?: GuardEvent;
  /** Every event of the step: more than one when `repair` retried the batch and it failed again. */
  events: GuardEvent[];
  /** How many times `repair` ran the batch again after a remedy. */
  retries: number;
  /** Under a GradScaler: the scaler skipped this step (inf/NaN gradients), an event only with `event`. */
  scalerSkipped?: boolean;
  /** Under a GradScaler: the loss scale after the step's update. */
  lossScale?: number;
  /**
   * rollback went back: the state (and an attached loop's position) is that
   * before this step; the loop must not count the step or move past its batch.
   */
  rolledBackTo?: number;
  warnings: GuardWarning[];
}

/** The report of a rank whose own step was finite when another rank's was not. */
function otherRankReport(step: number, ranks: number[], rank: number): GuardReport {
  return new GuardReport({
    op: 'unknown', phase: 'backward', module: '', inputs: [], step, callSite: '', detectedIn: 'gradients', causeId: 'other-rank', ranks,
    cause: `the step was not finite on rank ${ranks.join(', ')} (this rank, ${rank}, was finite): that rank's report names the op`,
    remedies: ['see the report of rank ' + ranks[0]],
  });
}

export class Guard {
  readonly model: Module;
  readonly optimizer: OptimizerLike;
  policy: Policy;
  log?: MetricsLog;
  clipGradNorm?: number;
  readonly lrBackoff: number;
  readonly snapshotEvery: number;
  readonly rollback: Required<Omit<RollbackOptions, 'lossZ'>> & { lossZ?: number };
  readonly checkUpdate: boolean;
  readonly watch: boolean;
  readonly watchEvery: number;
  readonly finalInitStd: number;
  readonly repairRetries: number;
  private readonly distributed: GuardDistributed | undefined;
  /** The loss scaler the guard steps through (options.scaler, or attached: fit attaches fp16-mixed's). */
  scaler: GradScaler | undefined;
  readonly scaleFloor: number;
  readonly maxConsecutiveSkips: number;
  /** Steps the scaler skipped (none an event by itself). */
  scalerSkips = 0;
  /** Skips in a row up to the last step (a step that updates resets it, and so does the event it leads to). */
  consecutiveSkips = 0;
  /**
   * Under skip and repair: updates copied first so that they could be undone,
   * and updates proven small (the optimizer bounds every |Δp| from the checked
   * gradient norm, optim/update-bound.ts; no tensor moves by more than
   * STEP_NORM_LIMIT), which need no copy.
   */
  readonly updates = { copied: 0, proven: 0 };
  /** The last update was applied without reading the parameters: [its step, its gradient norm]. */
  private unchecked?: [number, number];
  /** Steps taken (healthy or not). */
  stepCount = 0;
  readonly events: GuardEvent[] = [];
  readonly warnings: GuardWarning[] = [];
  readonly gradNorms = new GradNormMonitor();
  /** Running statistics of the loss (for rollback's loss-spike test). */
  readonly losses: LossMonitor;
  /** Batches skipped after a rollback, by their index in the data order. */
  readonly skippedBatches: number[] = [];
  private pendingSkip = 0;
  private hook?: RollbackHook;
  private readonly state: StepState;
  /** rollback's snapshots, oldest first. */
  private snapshots: Snapshot[] = [];
  private rolledBack?: number;
  private readonly repairs = new Map<string, RepairFn[]>();
  private readonly params: Tensor[];
  /** Floating-point buffers (running statistics): checked with the gradients, in the same fused read. */
  private readonly buffers: Tensor[];

  constructor(options: GuardOptions) {
    if (!options || !options.model || !options.optimizer) throw new TypeError('new Guard({ model, optimizer, policy }): model and optimizer are required');
    this.model = options.model;
    this.optimizer = options.optimizer;
    this.policy = options.policy ?? 'raise';
    if (!['raise', 'skip', 'rollback', 'repair'].includes(this.policy)) throw new TypeError(`Guard: policy must be raise, skip, rollback or repair, got ${String(this.policy)}`);
    this.log = options.log;
    this.clipGradNorm = options.clipGradNorm;
    this.lrBackoff = options.lrBackoff ?? 0.5;
    this.snapshotEvery = options.snapshotEvery ?? 20;
    const rb = options.rollback ?? {};
    this.rollback = {
      snapshots: rb.snapshots ?? 1, every: rb.every ?? this.snapshotEvery, back: rb.back ?? 0, skipBatches: rb.skipBatches ?? 0, lossWarmup: rb.lossWarmup ?? 10, source: rb.source ?? 'memory',
      ...(rb.lossZ !== undefined ? { lossZ: rb.lossZ } : {}),
    };
    for (const k of ['snapshots', 'every'] as const) if (!Number.isInteger(this.rollback[k]) || this.rollback[k] < 1) throw new RangeError(`Guard: rollback.${k} must be an integer ≥ 1, got ${String(this.rollback[k])}`);
    for (const k of ['back', 'skipBatches'] as const) if (!Number.isInteger(this.rollback[k]) || this.rollback[k] < 0) throw new RangeError(`Guard: rollback.${k} must be an integer ≥ 0, got ${String(this.rollback[k])}`);
    if (this.rollback.source !== 'memory' && this.rollback.source !== 'checkpoints') throw new TypeError(`Guard: rollback.source must be 'memory' or 'checkpoints', got ${String(this.rollback.source)}`);
    if (rb.lossZ !== undefined && !(rb.lossZ > 0)) throw new RangeError(`Guard: rollback.lossZ must be > 0, got ${String(rb.lossZ)}`);
    this.losses = new LossMonitor(0.95, this.rollback.lossWarmup);
    this.checkUpdate = options.checkUpdate ?? true;
    this.watch = options.watch ?? true;
    this.watchEvery = Math.max(1, Math.floor(options.watchEvery ?? 10));
    this.finalInitStd = options.finalInitStd ?? 1e-3;
    this.repairRetries = options.repairRetries ?? 1;
    this.distributed = options.distributed;
    if (!Number.isInteger(this.repairRetries) || this.repairRetries < 0) throw new RangeError(`Guard: repairRetries must be an integer ≥ 0, got ${String(options.repairRetries)}`);
    this.scaleFloor = options.scaleFloor ?? 1;
    if (typeof this.scaleFloor !== 'number' || !Number.isFinite(this.scaleFloor) || this.scaleFloor < 0) throw new RangeError(`Guard: scaleFloor must be a finite number ≥ 0, got ${String(options.scaleFloor)}`);
    this.maxConsecutiveSkips = options.maxConsecutiveSkips ?? 10;
    if (this.maxConsecutiveSkips !== Infinity && (!Number.isInteger(this.maxConsecutiveSkips) || this.maxConsecutiveSkips < 1)) {
      throw new RangeError(`Guard: maxConsecutiveSkips must be an integer ≥ 1 (or Infinity for no limit), got ${String(options.maxConsecutiveSkips)}`);
    }
    this.scaler = undefined;
    if (options.scaler !== undefined) this.attachScaler(options.scaler);
    this.state = new StepState(this.model, this.optimizer);
    this.params = this.optimizer.paramGroups.flatMap((g) => g.params);
    this.buffers = this.model.buffers().filter((b) => isFloatingDType(b.dtype));
  }

  /**
   * The optimizer bounds every |Δp| of this step from the checked gradient
   * norm (≥ every |gᵢ|; optim/update-bound.ts) so that no parameter tensor
   * moves by more than STEP_NORM_LIMIT in L2 norm (√N·max|Δp|, N the
   * parameters' elements), and the check saw every gradient it will apply.
   */
  private updateProvablySmall(gradNorm: number): boolean {
    const o = this.optimizer;
    if (!isUpdateBounding(o)) return false;
    let params = 0;
    for (const g of o.paramGroups) params += g.params.length;
    // parameters added to the optimizer after the guard was made: their gradients went unchecked
    if (params !== this.params.length) return false;
    this.paramElements ??= this.params.reduce((n, p) => n + p.numel(), 0);
    // the step follows at once, with these gradients: it carries the optimizer's bounds on its state forward
    const bound = o.boundNextStep(gradNorm);
    return bound !== undefined && bound * Math.sqrt(this.paramElements) < STEP_NORM_LIMIT;
  }

  private paramElements: number | undefined;

  /** Some param group has an Adam-style eps of 0 (or less). */
  private get zeroEps(): boolean {
    return this.optimizer.paramGroups.some((g) => typeof (g as { eps?: unknown }).eps === 'number' && ((g as unknown as { eps: number }).eps <= 0));
  }

  /** The guard's state for a checkpoint (see GuardState); call between steps. */
  stateDict(): GuardState {
    const stats = (m: { mean: number; variance: number; count: number }) => ({ mean: m.mean, variance: m.variance, count: m.count });
    return {
      stepCount: this.stepCount,
      gradNorms: stats(this.gradNorms),
      losses: stats(this.losses),
      skippedBatches: [...this.skippedBatches],
      pendingSkip: this.pendingSkip,
      scalerSkips: this.scalerSkips,
      consecutiveSkips: this.consecutiveSkips,
    };
  }

  /** Puts back a state from stateDict() (a resumed run); throws naming the field that does not fit. */
  loadStateDict(state: GuardState): void {
    const bad = (what: string, v: unknown) => new TypeError(`Guard.loadStateDict: ${what}, got ${JSON.stringify(v)}`);
    if (state === null || typeof state !== 'object') throw bad('expected an object from stateDict()', state);
    const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
    if (!count(state.stepCount)) throw bad('stepCount must be a non-negative integer', state.stepCount);
    if (!count(state.pendingSkip)) throw bad('pendingSkip must be a non-negative integer', state.pendingSkip);
    if (!Array.isArray(state.skippedBatches) || !state.skippedBatches.every(count)) throw bad('skippedBatches must be a list of batch indices', state.skippedBatches);
    // a checkpoint from before the loss-scaler counters has none: 0
    for (const k of ['scalerSkips', 'consecutiveSkips'] as const) if (state[k] !== undefined && !count(state[k])) throw bad(`${k} must be a non-negative integer`, state[k]);
    for (const k of ['gradNorms', 'losses'] as const) {
      const m = state[k];
      if (m === null || typeof m !== 'object' || !Number.isFinite(m.mean) || !(m.variance >= 0) || !count(m.count)) throw bad(`${k} must be { mean, variance ≥ 0, count }`, m);
    }
    this.stepCount = state.stepCount;
    this.pendingSkip = state.pendingSkip;
    this.scalerSkips = state.scalerSkips ?? 0;
    this.consecutiveSkips = state.consecutiveSkips ?? 0;
    this.skippedBatches.splice(0, this.skippedBatches.length, ...state.skippedBatches);
    Object.assign(this.gradNorms, { mean: state.gradNorms.mean, variance: state.gradNorms.variance, count: state.gradNorms.count });
    Object.assign(this.losses, { mean: state.losses.mean, variance: state.losses.variance, count: state.losses.count });
    // what was unchecked, snapshotted or rolled back belonged to the process that saved this
    this.unchecked = undefined;
    this.rolledBack = undefined;
    for (const s of this.snapshots) s.dispose();
    this.snapshots = [];
  }

  /** Registers a repair for a cause id ('sqrt-at-zero', 'log-sigmoid-underflow', ...): the `repair` policy calls it. */
  onRepair(causeId: string, fn: RepairFn): () => void {
    let list = this.repairs.get(causeId);
    if (list === undefined) this.repairs.set(causeId, (list = []));
    list.push(fn);
    return () => {
      const l = this.repairs.get(causeId);
      const i = l ? l.indexOf(fn) : -1;
      if (l && i >= 0) l.splice(i, 1);
    };
  }

  /**
   * The training loop's position, saved with each rollback snapshot and put
   * back with it (fit attaches its step, data position and scheduler).
   * Returns the detach function.
   */
  attachRollback(hook: RollbackHook): () => void {
    this.hook = hook;
    return () => {
      if (this.hook === hook) this.hook = undefined;
    };
  }

  /**
   * Steps through this GradScaler from now on (options.scaler does the same;
   * fit attaches precision fp16-mixed's). Returns the detach function.
   */
  attachScaler(scaler: GradScaler): () => void {
    checkScaler(scaler);
    if (this.scaler !== undefined && this.scaler !== scaler) throw new Error('Guard: scaler: the guard already steps through another GradScaler');
    this.scaler = scaler;
    return () => {
      if (this.scaler === scaler) this.scaler = undefined;
    };
  }

  /** Batches still to skip after a rollback (the loop calls skipBatch for each before its next step). */
  get pendingSkipBatches(): number {
    return this.pendingSkip;
  }

  /** The loop skipped the batch with this index in the data order: logged as `{event: 'guard-skip-batch', step, batch}` (step: steps done). */
  skipBatch(index: number): void {
    if (this.pendingSkip <= 0) throw new Error('guard.skipBatch: no batches to skip');
    this.pendingSkip--;
    this.skippedBatches.push(index);
    this.log?.write({ event: 'guard-skip-batch', step: this.stepCount, batch: index });
  }

  /** One guarded training step. computeLoss runs the forward and returns the scalar loss (synchronously). */
  async step(computeLoss: () => Tensor): Promise<GuardStepResult> {
    return this.stepSync(computeLoss);
  }

  /** The same, for synchronous loops (the fit loop). */
  stepSync(computeLoss: () => Tensor): GuardStepResult {
    const step = ++this.stepCount;
    this.rolledBack = undefined;
    const newest = this.snapshots[this.snapshots.length - 1];
    if (this.policy === 'rollback' && this.rollback.source === 'memory' && (newest === undefined || step - newest.step >= this.rollback.every)) {
      while (this.snapshots.length >= this.rollback.snapshots) this.snapshots.shift()!.dispose();
      const scaler = this.scaler !== undefined ? { state: this.scaler.stateDict(), consecutiveSkips: this.consecutiveSkips } : undefined;
      this.snapshots.push(Snapshot.take(step, this.model, this.optimizer, this.hook?.save(), scaler));
    }
    let r = this.attempt(computeLoss, step, this.policy);
    const events = r.event ? [r.event] : [];
    let retries = 0;
    // repair: the remedy is in place and the state is the step's start: the same batch again
    while (r.event?.action === 'repaired' && retries < this.repairRetries) {
      retries++;
      r.event.detail.push(`batch retried (${retries}/${this.repairRetries})`);
      const last = retries === this.repairRetries;
      r = this.attempt(computeLoss, step, last ? 'skip' : 'repair');
      if (r.event) events.push(r.event);
      else this.log?.write({ event: 'guard-retry', step, retry: retries, ok: r.ok, loss: r.loss });
    }
    // built key by key: V8 took ~10 µs a step to spread r into an object literal with more keys
    const out: GuardStepResult = { step: r.step, loss: r.loss, gradNorm: r.gradNorm, ok: r.ok, events, retries, warnings: r.warnings };
    if (events.length > 0) out.event = events[0];
    if (r.scalerSkipped !== undefined) out.scalerSkipped = r.scalerSkipped;
    if (this.rolledBack !== undefined) out.rolledBackTo = this.rolledBack;
    if (this.scaler !== undefined) out.lossScale = this.scaler.getScale();
    return out;
  }

  /** One try at the step: forward, backward, checks, update; an event acted on by this policy. */
  private attempt(computeLoss: () => Tensor, step: number, policy: Policy): Omit<GuardStepResult, 'events' | 'retries'> {
    this.state.begin();
    this.optimizer.zeroGrad(true);
    const watch = this.watch && (step - 1) % this.watchEvery === 0 ? new ForwardWatch() : undefined;
    const warnings: GuardWarning[] = [];
    const scaler = this.scaler;
    // the scale the step runs at (a replay uses it), and whether unscale_ recorded a check that step()/update() must consume
    const scale = scaler?.getScale() ?? 1;
    let unscaled = false;
    let check;
    try {
      check = scope(() => {
        watch?.start();
        let loss: Tensor;
        try {
          loss = computeLoss();
        } finally {
          watch?.stop();
        }
        if (!(loss instanceof Tensor)) throw new TypeError('guard.step(computeLoss): computeLoss must return the loss tensor (synchronously)');
        if (loss.requiresGrad) {
          try {
            if (scaler !== undefined) scaler.scale(loss).backward();
            else loss.backward();
          } catch (e) {
            // libtorch's backward may raise on the very values that made the
            // loss non-finite (e.g. VarBackward0 over one element): that is a
            // non-finite event to locate and act on, not a crash of the run
            if (Number.isFinite(loss.item() as number)) throw e;
            return checkGradients(loss, [], watch?.counts ?? [], watch?.at ?? [], this.buffers);
          }
          if (scaler !== undefined) {
            // as PyTorch's AMP loop: unscale_ before the check and clipping, which see the true gradients
            scaler.unscale_(this.optimizer);
            unscaled = true;
          }
        }
        return checkParamGradients(loss, this.params, watch?.counts ?? [], watch?.at ?? [], this.buffers);
      });
    } finally {
      watch?.dispose();
    }
    // the scaler's verdict, read once (step() and update() reuse it)
    const skippedByScaler = unscaled && scaler!.foundInf(this.optimizer);
    // a step dropped for an event: update() as PyTorch's loop would (the scale backs off when the gradients were inf/NaN), so the next step starts clean
    const dropScalerStep = (): void => {
      if (!unscaled) return;
      unscaled = false;
      scaler!.update();
    };
    let ranks: number[] | undefined;
    const dist = this.distributed;
    if (dist !== undefined) {
      ranks = dist.agree(!Number.isFinite(check.loss) || !dist.localGradientsFinite() || check.badBuffer >= 0);
      // a step the scaler skips is skipped on every rank alike: its inf check read the averaged gradients, the same everywhere
      if (ranks.length > 0 && !ranks.includes(dist.rank) && !skippedByScaler) {
        // this rank's own step was finite, another's was not: every rank drops the step alike
        // (and updates its scaler as that rank does, so that the scales stay equal)
        dropScalerStep();
        this.optimizer.zeroGrad(true);
        this.state.rewindForward();
        return { step, loss: check.loss, gradNorm: Number.NaN, ok: false, event: this.act(otherRankReport(step, ranks, dist.rank), policy), warnings };
      }
    }
    const previous = this.unchecked;
    this.unchecked = undefined;
    if (!check.finite && previous !== undefined && !checkParameters(this.params)) {
      // the previous step's update made parameters non-finite: this step ran on them; undo that update
      dropScalerStep();
      this.optimizer.zeroGrad(true);
      const report = this.updateReport(previous[0], previous[1]);
      this.state.rewindUpdate();
      this.state.rewindForward();
      return { step, loss: Number.NaN, gradNorm: Number.NaN, ok: false, event: this.act(report, policy), warnings };
    }
    if (check.saturated > 0) warnings.push({ step, kind: 'saturation', message: `${check.saturated} sigmoid outputs within one ulp of 0 or 1 (${check.where.filter((w) => w.startsWith('aten::sigmoid')).join(', ')}): a final layer whose init scale saturates its activation? (initialise it small, or compute the loss on logits)` });
    if (check.beyondRange > 0) warnings.push({ step, kind: 'precision-range', message: `${check.beyondRange} values beyond the precision's range (${check.where.filter((w) => !w.startsWith('aten::sigmoid')).join(', ')})` });
    if (check.finite && this.gradNorms.observe(check.gradNorm)) {
      warnings.push({ step, kind: 'grad-norm-spike', message: `gradient norm ${check.gradNorm.toExponential(3)} against a running mean ${this.gradNorms.mean.toExponential(3)}` });
    }
    for (const w of warnings) {
      this.warnings.push(w);
      this.log?.write({ event: 'guard-warning', ...w });
    }
    if (skippedByScaler) {
      unscaled = false;
      return this.scalerSkip(computeLoss, step, check, scale, policy, warnings, ranks);
    }
    if (check.finite && check.badBuffer >= 0) {
      // the loss and gradients are finite but the forward wrote NaN/inf into running statistics
      dropScalerStep();
      const report = this.bufferReport(step, this.buffers[check.badBuffer]);
      this.optimizer.zeroGrad(true);
      this.state.rewindForward();
      return { step, loss: check.loss, gradNorm: check.gradNorm, ok: false, event: this.act(report, policy), warnings };
    }
    if (!check.finite && Number.isFinite(check.loss) && check.badBuffer < 0 && this.gradientsFinite()) {
      // finite gradients whose squared norm overflowed the check's float32 read (‖g‖ > 1.8e19):
      // nothing non-finite to replay; the run is diverging
      const report = this.gradNormReport(step);
      this.optimizer.zeroGrad(true);
      this.state.rewindForward();
      return { step, loss: check.loss, gradNorm: check.gradNorm, ok: false, event: this.act(report, policy), warnings };
    }
    if (!check.finite) {
      dropScalerStep();
      const detectedIn = Number.isFinite(check.loss) ? 'gradients' : 'loss';
      const report = dist !== undefined ? dist.localOnly(() => this.locate(computeLoss, step, detectedIn)) : this.locate(computeLoss, step, detectedIn);
      if (ranks !== undefined && ranks.length > 0) report.ranks = ranks;
      return { step, loss: check.loss, gradNorm: check.gradNorm, ok: false, event: this.act(report, policy), warnings };
    }
    if (policy === 'rollback' && this.rollback.lossZ !== undefined && this.losses.observe(check.loss, this.rollback.lossZ)) {
      const report = this.lossSpikeReport(step, check.loss);
      dropScalerStep();
      this.optimizer.zeroGrad(true);
      this.state.rewindForward();
      return { step, loss: check.loss, gradNorm: check.gradNorm, ok: false, event: this.act(report, policy), warnings };
    }
    // clipping reuses the norm the check computed (as clip_grad_norm_: g ← g·min(1, max / (‖g‖ + 1e-6))): no second pass
    if (this.clipGradNorm !== undefined) this.clip(check.gradNorm, this.clipGradNorm);
    const lr = Math.max(...this.optimizer.paramGroups.map((g) => g.lr));
    // an Adam-style eps of 0 divides by √v̂ = 0 wherever a gradient entry has stayed 0: check at once
    const risky = warnings.some((w) => w.kind === 'grad-norm-spike') || !(lr * (check.gradNorm + 1) <= 1e15) || this.zeroEps;
    // the pre-update copy is what skip and repair restore (rollback has its snapshot; raise only reports),
    // unless the update is provably small: then there is nothing to undo or check
    const undoable = this.checkUpdate && (this.policy === 'skip' || this.policy === 'repair');
    const proven = undoable && !risky && this.updateProvablySmall(check.gradNorm);
    if (proven) {
      this.state.noUpdateCopy();
      this.updates.proven++;
    } else if (undoable) {
      this.state.beforeUpdate(this.params);
      this.updates.copied++;
    }
    try {
      if (unscaled) {
        unscaled = false;
        scaler!.step(this.optimizer);
        scaler!.update();
        this.consecutiveSkips = 0;
      } else {
        this.optimizer.step();
      }
    } finally {
      this.state.afterUpdate();
    }
    if (this.checkUpdate && !risky && !proven) this.unchecked = [step, check.gradNorm];
    if (this.checkUpdate && risky && !checkParameters(this.params)) {
      const report = this.updateReport(step, check.gradNorm);
      this.state.rewindUpdate();
      this.optimizer.zeroGrad(true);
      return { step, loss: check.loss, gradNorm: check.gradNorm, ok: false, event: this.act(report, policy), warnings };
    }
    return { step, loss: check.loss, gradNorm: check.gradNorm, ok: true, warnings };
  }

  /**
   * The scaler skipped the step (inf/NaN gradients): it steps (skipping) and
   * backs the scale off, as without the guard. An event only when the new
   * scale is below `scaleFloor` or the skips in a row reach
   * `maxConsecutiveSkips`: then the step is replayed at the scale it ran at.
   */
  private scalerSkip(computeLoss: () => Tensor, step: number, check: GradCheck, scale: number, policy: Policy, warnings: GuardWarning[], ranks?: number[]): Omit<GuardStepResult, 'events' | 'retries'> {
    const scaler = this.scaler!;
    scaler.step(this.optimizer);
    scaler.update();
    this.optimizer.zeroGrad(true);
    // running statistics a bad forward wrote are put back (the RNG keeps its draws, as without the guard)
    if (check.badBuffer >= 0) this.state.rewindBuffers();
    this.scalerSkips++;
    const consecutiveSkips = ++this.consecutiveSkips;
    const newScale = scaler.getScale();
    this.log?.write({ event: 'guard-scaler-skip', step, lossScale: newScale, consecutiveSkips, loss: check.loss });
    const trigger: ScalerTrigger['trigger'] | undefined = newScale < this.scaleFloor ? 'scale-floor' : consecutiveSkips >= this.maxConsecutiveSkips ? 'max-consecutive-skips' : undefined;
    if (trigger === undefined) return { step, loss: check.loss, gradNorm: check.gradNorm, ok: false, scalerSkipped: true, warnings };
    const detectedIn = Number.isFinite(check.loss) ? 'gradients' : 'loss';
    const dist = this.distributed;
    let report: GuardReport;
    if (dist === undefined) report = this.locate(computeLoss, step, detectedIn, scale);
    else if (ranks !== undefined && ranks.includes(dist.rank)) {
      // this rank's own gradients overflowed: its replay (no collective) names the op
      report = dist.localOnly(() => this.locate(computeLoss, step, detectedIn, scale));
      report.ranks = ranks;
    } else if (ranks !== undefined && ranks.length > 0) report = otherRankReport(step, ranks, dist.rank);
    else {
      report = new GuardReport({
        op: 'unknown', phase: 'backward', module: '', inputs: [], step, callSite: '', detectedIn: 'gradients', causeId: 'average-overflow', ranks: [],
        cause: `every rank's own gradients were finite at loss scale ${scale}, their sum across ranks overflowed`,
        remedies: ['lower the GradScaler\'s initial scale or its growth factor', 'clip the gradients before they are scaled up'],
      });
    }
    report.scaler = { trigger, consecutiveSkips, scale, newScale, scaleFloor: this.scaleFloor, maxConsecutiveSkips: this.maxConsecutiveSkips };
    this.consecutiveSkips = 0;
    return { step, loss: check.loss, gradNorm: check.gradNorm, ok: false, scalerSkipped: true, event: this.act(report, policy), warnings };
  }

  /** Scales the gradients by min(1, maxNorm / (norm + 1e-6)), norm being their global L2 norm from the check. */
  private clip(norm: number, maxNorm: number): void {
    const coef = maxNorm / (norm + 1e-6);
    if (!(coef < 1)) return;
    const grads: Tensor[] = [];
    for (const p of this.params) {
      const g = p.grad;
      if (g !== undefined) grads.push(g);
    }
    if (grads.length > 0) noGradUnintercepted(() => ops._foreachMul_.Scalar(grads, coef));
  }

  /** A loss spike (rollback's lossZ): finite but far above the running statistics. */
  private lossSpikeReport(step: number, loss: number): GuardReport {
    const sd = Math.sqrt(this.losses.variance);
    return new GuardReport({
      op: 'loss', phase: 'forward', module: '', inputs: [], step, callSite: '', detectedIn: 'loss', causeId: 'loss-spike',
      cause: `loss spike: ${loss.toExponential(3)} against a running mean ${this.losses.mean.toExponential(3)} (σ ${sd.toExponential(3)}, z ${((loss - this.losses.mean) / sd).toFixed(1)} > ${this.rollback.lossZ})`,
      remedies: ['go back to an earlier state and skip the batches around the spike (PaLM)', 'lower the learning rate (OPT)', 'check the skipped batches for bad data'],
    });
  }

  /** Checks the last update now (at the end of training); the event, if any. */
  flush(): GuardEvent | undefined {
    const previous = this.unchecked;
    this.unchecked = undefined;
    if (previous === undefined || checkParameters(this.params)) return undefined;
    const report = this.updateReport(previous[0], previous[1]);
    this.state.rewindUpdate();
    return this.act(report);
  }

  /**
   * Replays the step (state rewound to its start) in tracing mode and
   * diagnoses the first op that went non-finite. Leaves the pre-step state.
   * `lossScale`: the backward starts from loss × this (a GradScaler's scale at the step).
   */
  locate(computeLoss: () => Tensor, step: number, detectedIn: string, lossScale?: number): GuardReport {
    const finalPath = finalLayer(this.model)?.[0] ?? '';
    const stateNames = new Map<Tensor, [string, 'parameter' | 'buffer']>();
    for (const [n, p] of this.model.namedParameters()) stateNames.set(p, [n, 'parameter']);
    for (const [n, b] of this.model.namedBuffers()) stateNames.set(b, [n, 'buffer']);
    const replay = (format?: FloatFormat): TraceResult => {
      this.optimizer.zeroGrad(true);
      this.state.rewindForward();
      return traceStep(computeLoss, {
        finalLayerPath: finalPath, stateNames, ...(lossScale !== undefined ? { lossScale } : {}),
        ...(format ? { format, withPrecision: (f, fn) => withPrecision(f, fn) } : {}),
      });
    };
    let r = replay();
    // under a precision policy the trace must see rounded values: replay inside it
    if (r.precision !== undefined && r.precision.name !== 'fp32' && r.precision.name !== 'fp64') r = replay(r.precision);
    this.optimizer.zeroGrad(true);
    this.state.rewindForward();
    const fd = r.finding;
    if (fd === undefined) {
      return new GuardReport({
        op: 'unknown', phase: 'forward', module: '', inputs: [], step, callSite: '', detectedIn, causeId: 'not-reproduced',
        cause: 'the non-finite value did not come back when the step was replayed (a non-deterministic op, or state outside the model and optimizer)',
        remedies: ['clip gradients', 'lower the learning rate', 'run with keel.detectAnomaly to cross-check'],
        ...(r.precision ? { precision: r.precision.name } : {}),
      });
    }
    const extreme = this.largestParameter();
    const ctx: RuleContext = { ...contextOf(fd, r.precision), ...(extreme !== undefined && extreme.maxAbs > SQRT_FP32_MAX ? { extremeParameter: extreme } : {}) };
    let d = diagnose(ctx);
    if (fd.roundingOverflow && ctx.precision) {
      d = diagnose({ ...ctx, output: { ...(ctx.output ?? { name: 'grad' }), infs: 1, nans: 0 }, op: fd.op, base: 'precision-overflow-only' });
    }
    return new GuardReport({
      op: fd.op, phase: fd.phase, module: fd.module, inputs: fd.inputs, ...(fd.output ? { output: fd.output } : {}),
      cause: d.cause, causeId: d.causeId, remedies: d.remedies, step, callSite: fd.callSite, detectedIn,
      ...(r.precision ? { precision: r.precision.name } : {}),
    });
  }

  /** Every gradient is finite (read only on an event). */
  private gradientsFinite(): boolean {
    for (const p of this.params) {
      const g = p.grad;
      if (g !== undefined && !allFinite(g)) return false;
    }
    return true;
  }

  /** The parameter holding the largest finite |value| (read only on an event). */
  private largestParameter(): { name: string; maxAbs: number } | undefined {
    return largestAbs(this.model.namedParameters());
  }

  /** The gradients are finite but their global norm overflows float32: a diverging run, reported on the gradients. */
  private gradNormReport(step: number): GuardReport {
    const named = this.model.namedParameters().filter(([, p]) => p.grad !== undefined).map(([n, p]) => [n, p.grad!] as [string, Tensor]);
    const largest = largestAbs(named);
    const grad = largest === undefined ? undefined : named.find(([n]) => n === largest.name)?.[1];
    const name = largest?.name ?? '';
    const module = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
    const inputs = grad ? [tensorStats(grad, `grad of ${name}`)] : [];
    const lr = Math.max(...this.optimizer.paramGroups.map((g) => g.lr));
    const d = diagnose({
      op: 'gradient norm', base: 'grad_norm', phase: 'backward', module, inputs, finalLayer: false, lr, gradNorm: Number.POSITIVE_INFINITY, gradNormMean: this.gradNorms.mean,
      ...(largest ? { largestGradient: largest } : {}),
    });
    return new GuardReport({
      op: 'gradient norm (all parameters)', phase: 'backward', module, inputs, cause: d.cause, causeId: d.causeId, remedies: d.remedies,
      step, callSite: '', detectedIn: 'gradients',
    });
  }

  /** The forward wrote a non-finite value into a buffer (BatchNorm's running statistics). */
  private bufferReport(step: number, buffer: Tensor): GuardReport {
    const name = this.model.namedBuffers().find(([, b]) => b === buffer)?.[0] ?? '(buffer)';
    const module = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
    const inputs = [tensorStats(buffer, name)];
    const runningVar = /running_var$/.test(name);
    return new GuardReport({
      op: `buffer ${name}`, phase: 'forward', module, inputs, step, callSite: '', detectedIn: 'buffers', causeId: 'non-finite-buffer',
      cause: `the forward wrote non-finite values into ${name} while the loss and gradients stayed finite${runningVar ? ': BatchNorm updates running_var with the unbiased variance n/(n − 1), infinite (or NaN) when a batch has one value per channel' : ''}; evaluation would use it`,
      remedies: [
        'use batches with more than one value per channel (drop the last incomplete batch: dropLast)',
        'check the batch for NaN/inf (a bad input reaches running_mean before any loss)',
        'freeze the norm layers (eval mode) or use GroupNorm/LayerNorm for tiny batches',
      ],
    });
  }

  /** The optimizer step made parameters non-finite from finite gradients. */
  private updateReport(step: number, gradNorm: number): GuardReport {
    const named = this.model.namedParameters();
    let bad: [string, Tensor] | undefined;
    for (const [n, p] of named) {
      if (!allFinite(p)) {
        bad = [n, p];
        break;
      }
    }
    const inputs = [];
    if (bad) {
      inputs.push(tensorStats(bad[1], 'param (after the step)'));
      const g = bad[1].grad;
      if (g) inputs.push(tensorStats(g, 'grad'));
    }
    const name = bad?.[0] ?? '';
    const module = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
    const lr = this.optimizer.paramGroups[0]?.lr;
    const eps = this.optimizer.paramGroups.map((g) => (g as { eps?: unknown }).eps).find((e): e is number => typeof e === 'number');
    const ctx: RuleContext = {
      op: 'optimizer.step', base: 'optimizer.step', phase: 'update', module, inputs, finalLayer: false, lr, gradNorm, gradNormMean: this.gradNorms.mean,
      ...(eps !== undefined ? { eps } : {}),
    };
    const d = diagnose(ctx);
    return new GuardReport({
      op: `optimizer.step (${this.optimizer.constructor.name})`, phase: 'update', module, inputs, cause: d.cause, causeId: d.causeId, remedies: d.remedies,
      step, callSite: '', detectedIn: 'parameters',
    });
  }

  private repairContext(): RepairContext {
    return {
      model: this.model,
      optimizer: this.optimizer,
      backOffLr: (factor = this.lrBackoff) => backOffLr(this.optimizer, factor),
      reinitFinalLayer: (std = this.finalInitStd) => {
        const f = finalLayer(this.model);
        if (!f) return 'no final layer with parameters';
        reinitSmall(f[1], std);
        return `re-initialised ${f[0] || '(model)'} with N(0, ${std}²), bias 0`;
      },
    };
  }

  /** Applies the policy to a report (the state is already the step's start). */
  private act(report: GuardReport, policy: Policy = this.policy): GuardEvent {
    const detail: string[] = [];
    let action: GuardAction;
    this.optimizer.zeroGrad(true);
    switch (policy) {
      case 'raise':
        action = 'raised';
        break;
      case 'skip':
        action = 'skipped';
        detail.push(policy === this.policy ? 'step dropped; parameters and optimizer state as before it' : `still not finite after ${this.repairRetries} repair(s): step dropped; parameters and optimizer state as before it`);
        break;
      case 'rollback': {
        action = 'rolled-back';
        if (this.rollback.source === 'checkpoints') {
          // with no usable checkpoint nothing went back: the step was dropped, as skip drops it
          if (!this.rollbackToCheckpoint(report.step, detail)) action = 'skipped';
          const lr = backOffLr(this.optimizer, this.lrBackoff);
          detail.push(`learning rate backed off ×${this.lrBackoff} to ${lr}`);
          break;
        }
        // the newest snapshot at least `back` steps before the bad step (else the oldest kept); newer ones go
        const target = report.step - this.rollback.back;
        let k = this.snapshots.length - 1;
        while (k > 0 && this.snapshots[k].step > target) k--;
        const snap = this.snapshots[k];
        if (snap) {
          for (const s of this.snapshots.splice(k + 1)) s.dispose();
          snap.restore(this.model, this.optimizer);
          if (snap.loop !== undefined) this.hook?.restore(snap.loop);
          if (snap.scaler !== undefined && this.scaler !== undefined) {
            if (this.scaler.isEnabled()) this.scaler.loadStateDict(snap.scaler.state);
            this.consecutiveSkips = snap.scaler.consecutiveSkips;
          }
          this.stepCount = snap.step - 1;
          this.rolledBack = snap.step - 1;
          this.unchecked = undefined;
          detail.push(`restored the snapshot from before step ${snap.step}`);
          if (this.rollback.skipBatches > 0) {
            this.pendingSkip = this.rollback.skipBatches;
            detail.push(`skipping the next ${this.rollback.skipBatches} batches of the data order`);
          }
        }
        const lr = backOffLr(this.optimizer, this.lrBackoff);
        detail.push(`learning rate backed off ×${this.lrBackoff} to ${lr}`);
        break;
      }
      case 'repair': {
        action = 'repaired';
        const ctx = this.repairContext();
        for (const fn of this.repairs.get(report.causeId) ?? []) {
          const r = fn(report, ctx);
          if (r !== false && r !== undefined) detail.push(typeof r === 'string' ? r : `repair for ${report.causeId} applied`);
        }
        if (detail.length === 0 && (report.causeId === 'saturated-final-layer' || report.remedies.some((m) => m.includes('final layer small')))) {
          detail.push(ctx.reinitFinalLayer());
        }
        if (detail.length === 0 || report.causeId === 'lr-blowup') {
          const lr = ctx.backOffLr();
          detail.push(`learning rate backed off ×${this.lrBackoff} to ${lr}`);
        }
        break;
      }
    }
    const event: GuardEvent = { step: report.step, action, report, detail };
    this.events.push(event);
    this.log?.write({ event: 'guard', step: report.step, policy: this.policy, action, detail, report: report.toJSON() });
    if (action === 'raised') throw new NonFiniteError(report);
    return event;
  }

  /**
   * rollback from disk: the newest checkpoint taken at least `back` steps
   * before the bad step (a checkpoint after c steps is the state before step
   * c + 1), else the oldest; a damaged one is passed over for the next. With
   * none usable the step is dropped as `skip` drops it.
   */
  private rollbackToCheckpoint(badStep: number, detail: string[]): boolean {
    const source = this.hook?.checkpoints;
    const steps = (source?.steps() ?? []).filter((c) => c < badStep);
    const eligible = steps.filter((c) => c + 1 <= badStep - this.rollback.back).reverse();
    const order = eligible.length > 0 ? eligible : steps;
    for (const c of order) {
      let where: string;
      try {
        where = source!.restore(c);
      } catch (e) {
        detail.push(`checkpoint of step ${c} not used: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      this.stepCount = c;
      this.rolledBack = c;
      this.unchecked = undefined;
      detail.push(`restored the checkpoint of step ${c} (${where}); newer checkpoints removed`);
      if (this.rollback.skipBatches > 0) {
        this.pendingSkip = this.rollback.skipBatches;
        detail.push(`skipping the next ${this.rollback.skipBatches} batches of the data order`);
      }
      return true;
    }
    detail.push(source === undefined
      ? 'no checkpoints attached (rollback.source is \'checkpoints\': train with fit and an outDir with checkpointEvery): step dropped; parameters and optimizer state as before it'
      : 'no usable checkpoint on disk yet: step dropped; parameters and optimizer state as before it');
    return false;
  }

  /** Frees the guard's copies. */
  dispose(): void {
    this.unchecked = undefined;
    this.state.dispose();
    for (const s of this.snapshots) s.dispose();
    this.snapshots = [];
  }
}

/** A GradScaler by what the guard calls on it. */
function checkScaler(scaler: unknown): asserts scaler is GradScaler {
  const methods = ['scale', 'unscale_', 'step', 'update', 'getScale', 'foundInf', 'stateDict', 'loadStateDict', 'isEnabled'];
  const s = scaler as Record<string, unknown> | null;
  if (s === null || typeof s !== 'object' || methods.some((m) => typeof s[m] !== 'function')) {
    throw new TypeError(`Guard: scaler must be a keel.amp.GradScaler, got ${s === null || typeof s !== 'object' ? String(s) : `an object without ${methods.filter((m) => typeof s[m] !== 'function').join(', ')}`}`);
  }
}

/** √(float32 max): a value beyond it squares to inf; no trained weight is that large. */
const SQRT_FP32_MAX = Math.sqrt(3.4028234663852886e38);

/** The named tensor with the largest finite |value|, and that value (one amax per tensor, off the tape). */
function largestAbs(named: [string, Tensor][]): { name: string; maxAbs: number } | undefined {
  let best: { name: string; maxAbs: number } | undefined;
  noGradUnintercepted(() => scope(() => {
    for (const [name, t] of named) {
      if (!isFloatingDType(t.dtype) || t.numel() === 0) continue;
      const a = t.abs();
      const m = ops.where.ScalarOther(ops.isfinite(a), a, 0).amax().item() as number;
      if (best === undefined || m > best.maxAbs) best = { name, maxAbs: m };
    }
  }));
  return best;
}

function noGradUnintercepted<T>(fn: () => T): T {
  return unintercepted(() => noGrad(fn));
}
