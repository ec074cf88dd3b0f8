// Learning-rate schedules, as torch.optim.lr_scheduler (PyTorch 1.13): the same
// recursive ("chainable") updates of each group's lr, the same closed forms
// where PyTorch uses them (step(epoch), SequentialLR's milestones), so the
// sequences match PyTorch's to the last bits of a double. Call
// `scheduler.step()` after `optimizer.step()`, once per step or epoch.
import type { HyperValue, OptimizerLike, ParamGroup } from './optimizer.js';

export type SchedulerState = Record<string, unknown>;

export abstract class LRScheduler {
  readonly optimizer: OptimizerLike;
  /** Each group's lr when the schedule started (its `initialLr`). */
  baseLrs: number[];
  /** Steps taken; 0 after construction. */
  lastEpoch: number;
  protected stepCount = 0;
  protected lastLr: number[] = [];

  /**
   * Subclasses set their fields, then call initialStep(). Resuming with
   * lastEpoch ≥ 0 needs each group's `initialLr`, as in PyTorch.
   */
  constructor(optimizer: OptimizerLike, lastEpoch = -1) {
    this.optimizer = optimizer;
    const groups = optimizer.paramGroups;
    if (lastEpoch === -1) {
      for (const g of groups) if (g.initialLr === undefined) g.initialLr = g.lr;
    } else {
      groups.forEach((g, i) => {
        if (g.initialLr === undefined) throw new Error(`${this.constructor.name}: param group ${i} has no 'initialLr' to resume from (lastEpoch ${lastEpoch})`);
      });
    }
    this.baseLrs = groups.map((g) => g.initialLr as number);
    this.lastEpoch = lastEpoch;
  }

  protected get groups(): ParamGroup[] {
    return this.optimizer.paramGroups;
  }

  /** @internal the first step, made by the constructor (and by SequentialLR) */
  initialStep(): void {
    this.stepCount = 0;
    this.step();
  }

  /**
   * Advances the schedule one step and sets each group's lr. With `epoch`,
   * jumps there, using the closed form where the schedule has one
   * (deprecated in PyTorch; SequentialLR uses it at its milestones).
   */
  step(epoch?: number): void {
    this.stepCount += 1;
    let values: number[];
    if (epoch === undefined) {
      this.lastEpoch += 1;
      values = this.getLr();
    } else {
      this.lastEpoch = epoch;
      values = this.closedFormLr() ?? this.getLr();
    }
    this.groups.forEach((g, i) => {
      g.lr = values[i];
    });
    this.lastLr = this.groups.map((g) => g.lr);
  }

  /** The lr of each group set by the last step. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  /** The chainable form: each group's next lr from its current one. */
  protected abstract getLr(): number[];

  /** The closed form at lastEpoch, where there is one. */
  protected closedFormLr(): number[] | undefined {
    return undefined;
  }

  /** The schedule's position and settings, as JSON (the optimizer is not included). */
  stateDict(): SchedulerState {
    const out: SchedulerState = {};
    for (const [k, v] of Object.entries(this)) {
      if (k === 'optimizer' || typeof v === 'function') continue;
      out[k] = v === undefined ? v : JSON.parse(JSON.stringify(v));
    }
    return out;
  }

  loadStateDict(state: SchedulerState): void {
    for (const [k, v] of Object.entries(state)) {
      if (k === 'optimizer') continue;
      if (!(k in this)) throw new Error(`${this.constructor.name}.loadStateDict: unknown key '${k}'`);
      (this as Record<string, unknown>)[k] = v === undefined ? v : JSON.parse(JSON.stringify(v));
    }
  }
}

/** lr ← lr·gamma every stepSize steps. */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: OptimizerLike, options: { stepSize: number; gamma?: number; lastEpoch?: number }) {
    super(optimizer, options.lastEpoch);
    this.stepSize = options.stepSize;
    this.gamma = options.gamma ?? 0.1;
    if (!(Number.isInteger(this.stepSize) && this.stepSize > 0)) throw new RangeError(`StepLR: stepSize must be a positive integer, got ${this.stepSize}`);
    this.initialStep();
  }

  protected getLr(): number[] {
    if (this.lastEpoch === 0 || this.lastEpoch % this.stepSize !== 0) return this.groups.map((g) => g.lr);
    return this.groups.map((g) => g.lr * this.gamma);
  }

  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** Math.floor(this.lastEpoch / this.stepSize));
  }
}

/** lr ← lr·gamma at each milestone (a milestone listed twice applies gamma twice). */
export class MultiStepLR extends LRScheduler {
  readonly milestones: number[];
  readonly gamma: number;

  constructor(optimizer: OptimizerLike, options: { milestones: number[]; gamma?: number; lastEpoch?: number }) {
    super(optimizer, options.lastEpoch);
    this.milestones = [...options.milestones].sort((a, b) => a - b);
    this.gamma = options.gamma ?? 0.1;
    this.initialStep();
  }

  protected getLr(): number[] {
    const count = this.milestones.filter((m) => m === this.lastEpoch).length;
    if (count === 0) return this.groups.map((g) => g.lr);
    return this.groups.map((g) => g.lr * this.gamma ** count);
  }

  protected override closedFormLr(): number[] {
    const passed = this.milestones.filter((m) => m <= this.lastEpoch).length;
    return this.baseLrs.map((b) => b * this.gamma ** passed);
  }
}

/** lr·factor until totalIters steps, then lr. */
export class ConstantLR extends LRScheduler {
  readonly factor: number;
  readonly totalIters: number;

  constructor(optimizer: OptimizerLike, options: { factor?: number; totalIters?: number; lastEpoch?: number } = {}) {
    super(optimizer, options.lastEpoch);
    this.factor = options.factor ?? 1 / 3;
    this.totalIters = options.totalIters ?? 5;
    if (!(this.factor >= 0 && this.factor <= 1)) throw new RangeError('ConstantLR: factor must be in [0, 1]');
    this.initialStep();
  }

  protected getLr(): number[] {
    if (this.lastEpoch === 0) return this.groups.map((g) => g.lr * this.factor);
    if (this.lastEpoch !== this.totalIters) return this.groups.map((g) => g.lr);
    return this.groups.map((g) => g.lr * (1.0 / this.factor));
  }

  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * (this.factor + Number(this.lastEpoch >= this.totalIters) * (1 - this.factor)));
  }
}

/**
 * Linear warm-up (or decay): the lr's factor goes linearly from startFactor
 * to endFactor over totalIters steps, then stays. Defaults 1/3 → 1 over 5.
 */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;

  constructor(optimizer: OptimizerLike, options: { startFactor?: number; endFactor?: number; totalIters?: number; lastEpoch?: number } = {}) {
    super(optimizer, options.lastEpoch);
    this.startFactor = options.startFactor ?? 1 / 3;
    this.endFactor = options.endFactor ?? 1;
    this.totalIters = options.totalIters ?? 5;
    if (!(this.startFactor > 0 && this.startFactor <= 1)) throw new RangeError('LinearLR: startFactor must be in (0, 1]');
    if (!(this.endFactor >= 0 && this.endFactor <= 1)) throw new RangeError('LinearLR: endFactor must be in [0, 1]');
    this.initialStep();
  }

  protected getLr(): number[] {
    if (this.lastEpoch === 0) return this.groups.map((g) => g.lr * this.startFactor);
    if (this.lastEpoch > this.totalIters) return this.groups.map((g) => g.lr);
    const { startFactor: s, endFactor: e, totalIters: n } = this;
    return this.groups.map((g) => g.lr * (1 + (e - s) / (n * s + (this.lastEpoch - 1) * (e - s))));
  }

  protected override closedFormLr(): number[] {
    const { startFactor: s, endFactor: e, totalIters: n } = this;
    return this.baseLrs.map((b) => b * (s + ((e - s) * Math.min(n, this.lastEpoch)) / n));
  }
}

/** lr ← lr·gamma every step. */
export class ExponentialLR extends LRScheduler {
  readonly gamma: number;

  constructor(optimizer: OptimizerLike, options: { gamma: number; lastEpoch?: number }) {
    super(optimizer, options.lastEpoch);
    this.gamma = options.gamma;
    this.initialStep();
  }

  protected getLr(): number[] {
    if (this.lastEpoch === 0) return this.groups.map((g) => g.lr);
    return this.groups.map((g) => g.lr * this.gamma);
  }

  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** this.lastEpoch);
  }
}

/** lr = initialLr·fn(step), one function or one per group (functions are not saved in the state dict). */
export class LambdaLR extends LRScheduler {
  private readonly lrLambdas: ((epoch: number) => number)[];

  constructor(optimizer: OptimizerLike, lrLambda: ((epoch: number) => number) | ((epoch: number) => number)[], options: { lastEpoch?: number } = {}) {
    super(optimizer, options.lastEpoch);
    const n = optimizer.paramGroups.length;
    if (Array.isArray(lrLambda) && lrLambda.length !== n) throw new Error(`LambdaLR: expected ${n} lrLambdas, got ${lrLambda.length}`);
    this.lrLambdas = Array.isArray(lrLambda) ? [...lrLambda] : Array.from({ length: n }, () => lrLambda);
    this.initialStep();
  }

  protected getLr(): number[] {
    return this.baseLrs.map((b, i) => b * this.lrLambdas[i](this.lastEpoch));
  }

  override stateDict(): SchedulerState {
    const out = super.stateDict();
    delete out.lrLambdas;
    return out;
  }
}

/**
 * Cosine annealing from each group's lr to etaMin over tMax steps (SGDR
 * without restarts, Loshchilov & Hutter 2017), in PyTorch's recursive form.
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;

  constructor(optimizer: OptimizerLike, options: { tMax: number; etaMin?: number; lastEpoch?: number }) {
    super(optimizer, options.lastEpoch);
    this.tMax = options.tMax;
    this.etaMin = options.etaMin ?? 0;
    if (!(this.tMax > 0)) throw new RangeError(`CosineAnnealingLR: tMax must be > 0, got ${this.tMax}`);
    this.initialStep();
  }

  protected getLr(): number[] {
    const { tMax, etaMin, lastEpoch: t } = this;
    if (t === 0) return this.groups.map((g) => g.lr);
    if (this.stepCount === 1 && t > 0) {
      return this.baseLrs.map((b) => etaMin + ((b - etaMin) * (1 + Math.cos((t * Math.PI) / tMax))) / 2);
    }
    if (pyMod(t - 1 - tMax, 2 * tMax) === 0) {
      return this.groups.map((g, i) => g.lr + ((this.baseLrs[i] - etaMin) * (1 - Math.cos(Math.PI / tMax))) / 2);
    }
    return this.groups.map(
      (g) => ((1 + Math.cos((Math.PI * t) / tMax)) / (1 + Math.cos((Math.PI * (t - 1)) / tMax))) * (g.lr - etaMin) + etaMin,
    );
  }

  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => this.etaMin + ((b - this.etaMin) * (1 + Math.cos((Math.PI * this.lastEpoch) / this.tMax))) / 2);
  }
}

interface Phase {
  endStep: number;
  startLr: string;
  endLr: string;
  startMomentum: string;
  endMomentum: string;
}

export interface OneCycleOptions {
  /** The peak lr, or one per group. */
  maxLr: number | number[];
  /** The cycle's length; or give epochs and stepsPerEpoch. */
  totalSteps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  /** The fraction of the cycle spent increasing the lr. Default 0.3. */
  pctStart?: number;
  /** Default 'cos'. */
  annealStrategy?: 'cos' | 'linear';
  /** Cycle momentum (SGD, RMSprop) or beta1 (Adam, AdamW, SING) inversely to the lr. Default true. */
  cycleMomentum?: boolean;
  baseMomentum?: number | number[];
  maxMomentum?: number | number[];
  /** initialLr = maxLr / divFactor. Default 25. */
  divFactor?: number;
  /** minLr = initialLr / finalDivFactor. Default 1e4. */
  finalDivFactor?: number;
  /** Warm-up, symmetric cool-down, then annihilation (fast.ai's schedule). Default false. */
  threePhase?: boolean;
  lastEpoch?: number;
}

/** The 1cycle policy (Smith & Topin 2017): one call of step() per batch. */
export class OneCycleLR extends LRScheduler {
  readonly totalSteps: number;
  readonly annealStrategy: 'cos' | 'linear';
  readonly cycleMomentum: boolean;
  readonly useBeta1: boolean;
  readonly schedulePhases: Phase[];

  constructor(optimizer: OptimizerLike, options: OneCycleOptions) {
    const groups = optimizer.paramGroups;
    const perGroup = (name: string, v: number | number[]): number[] => {
      if (!Array.isArray(v)) return groups.map(() => v);
      if (v.length !== groups.length) throw new Error(`OneCycleLR: expected ${groups.length} values for ${name}, got ${v.length}`);
      return v;
    };
    let totalSteps: number;
    if (options.totalSteps !== undefined) {
      if (!(Number.isInteger(options.totalSteps) && options.totalSteps > 0)) throw new RangeError(`OneCycleLR: totalSteps must be a positive integer, got ${options.totalSteps}`);
      totalSteps = options.totalSteps;
    } else if (options.epochs !== undefined && options.stepsPerEpoch !== undefined) {
      if (!(Number.isInteger(options.epochs) && options.epochs > 0)) throw new RangeError(`OneCycleLR: epochs must be a positive integer, got ${options.epochs}`);
      if (!(Number.isInteger(options.stepsPerEpoch) && options.stepsPerEpoch > 0)) throw new RangeError(`OneCycleLR: stepsPerEpoch must be a positive integer, got ${options.stepsPerEpoch}`);
      totalSteps = options.epochs * options.stepsPerEpoch;
    } else {
      throw new Error('OneCycleLR: give totalSteps, or epochs and stepsPerEpoch');
    }
    const pctStart = options.pctStart ?? 0.3;
    if (!(pctStart >= 0 && pctStart <= 1)) throw new RangeError(`OneCycleLR: pctStart must be in [0, 1], got ${pctStart}`);
    const annealStrategy = options.annealStrategy ?? 'cos';
    if (annealStrategy !== 'cos' && annealStrategy !== 'linear') throw new RangeError(`OneCycleLR: annealStrategy must be 'cos' or 'linear', got ${String(annealStrategy)}`);
    const lastEpoch = options.lastEpoch ?? -1;
    const divFactor = options.divFactor ?? 25;
    const finalDivFactor = options.finalDivFactor ?? 1e4;
    const maxLrs = perGroup('maxLr', options.maxLr);
    if (lastEpoch === -1) {
      groups.forEach((g, i) => {
        g.initialLr = maxLrs[i] / divFactor;
        g.maxLr = maxLrs[i];
        g.minLr = (g.initialLr as number) / finalDivFactor;
      });
    }
    const cycleMomentum = options.cycleMomentum ?? true;
    let useBeta1 = false;
    if (cycleMomentum) {
      const d = optimizer.defaults;
      if (!('momentum' in d) && !('betas' in d)) throw new Error('OneCycleLR: the optimizer has no momentum or betas to cycle (cycleMomentum: false)');
      useBeta1 = 'betas' in d;
      const maxM = perGroup('maxMomentum', options.maxMomentum ?? 0.95);
      const baseM = perGroup('baseMomentum', options.baseMomentum ?? 0.85);
      if (lastEpoch === -1) {
        groups.forEach((g, i) => {
          if (useBeta1) g.betas = [maxM[i], ...(g.betas as number[]).slice(1)];
          else g.momentum = maxM[i];
          g.maxMomentum = maxM[i];
          g.baseMomentum = baseM[i];
        });
      }
    }
    super(optimizer, lastEpoch);
    this.totalSteps = totalSteps;
    this.annealStrategy = annealStrategy;
    this.cycleMomentum = cycleMomentum;
    this.useBeta1 = useBeta1;
    this.schedulePhases = options.threePhase
      ? [
          { endStep: pctStart * totalSteps - 1, startLr: 'initialLr', endLr: 'maxLr', startMomentum: 'maxMomentum', endMomentum: 'baseMomentum' },
          { endStep: 2 * pctStart * totalSteps - 2, startLr: 'maxLr', endLr: 'initialLr', startMomentum: 'baseMomentum', endMomentum: 'maxMomentum' },
          { endStep: totalSteps - 1, startLr: 'initialLr', endLr: 'minLr', startMomentum: 'maxMomentum', endMomentum: 'maxMomentum' },
        ]
      : [
          { endStep: pctStart * totalSteps - 1, startLr: 'initialLr', endLr: 'maxLr', startMomentum: 'maxMomentum', endMomentum: 'baseMomentum' },
          { endStep: totalSteps - 1, startLr: 'maxLr', endLr: 'minLr', startMomentum: 'baseMomentum', endMomentum: 'maxMomentum' },
        ];
    this.initialStep();
  }

  private anneal(start: number, end: number, pct: number): number {
    if (this.annealStrategy === 'linear') return (end - start) * pct + start;
    const cosOut = Math.cos(Math.PI * pct) + 1;
    return end + ((start - end) / 2.0) * cosOut;
  }

  protected getLr(): number[] {
    const stepNum = this.lastEpoch;
    if (stepNum > this.totalSteps) {
      throw new Error(`OneCycleLR: tried to step ${stepNum + 1} times; the specified number of total steps is ${this.totalSteps}`);
    }
    return this.groups.map((g) => {
      let startStep = 0;
      let lr = 0;
      let momentum = 0;
      const phases = this.schedulePhases;
      for (let i = 0; i < phases.length; i++) {
        const phase = phases[i];
        const endStep = phase.endStep;
        if (stepNum <= endStep || i === phases.length - 1) {
          const pct = (stepNum - startStep) / (endStep - startStep);
          lr = this.anneal(g[phase.startLr] as number, g[phase.endLr] as number, pct);
          if (this.cycleMomentum) momentum = this.anneal(g[phase.startMomentum] as number, g[phase.endMomentum] as number, pct);
          break;
        }
        startStep = phase.endStep;
      }
      if (this.cycleMomentum) {
        if (this.useBeta1) g.betas = [momentum, ...(g.betas as number[]).slice(1)];
        else g.momentum = momentum;
      }
      return lr;
    });
  }
}

/**
 * Runs schedulers one after another: schedulers[i] from milestones[i-1]
 * on (e.g. LinearLR warm-up for 5 % of the steps, then CosineAnnealingLR).
 * Build the inner schedulers on the same optimizer first, as in PyTorch.
 */
export class SequentialLR extends LRScheduler {
  readonly schedulers: LRScheduler[];
  readonly milestones: number[];

  constructor(optimizer: OptimizerLike, options: { schedulers: LRScheduler[]; milestones: number[]; lastEpoch?: number }) {
    const { schedulers, milestones } = options;
    if (schedulers.length === 0) throw new Error('SequentialLR: give at least one scheduler');
    schedulers.forEach((s, i) => {
      if (s.optimizer !== optimizer) throw new Error(`SequentialLR: scheduler ${i} belongs to another optimizer`);
    });
    if (milestones.length !== schedulers.length - 1) {
      throw new Error(`SequentialLR: expected ${schedulers.length - 1} milestones for ${schedulers.length} schedulers, got ${milestones.length}`);
    }
    super(optimizer, -1);
    this.schedulers = [...schedulers];
    this.milestones = [...milestones];
    this.lastEpoch = (options.lastEpoch ?? -1) + 1;
    for (const g of optimizer.paramGroups) g.lr = g.initialLr as number;
    for (const s of this.schedulers) s.lastEpoch -= 1;
    this.schedulers[0].initialStep();
    this.lastLr = this.schedulers[0].getLastLr();
  }

  override step(): void {
    this.lastEpoch += 1;
    const idx = bisectRight(this.milestones, this.lastEpoch);
    const s = this.schedulers[idx];
    if (idx > 0 && this.milestones[idx - 1] === this.lastEpoch) s.step(0);
    else s.step();
    this.lastLr = s.getLastLr();
  }

  protected getLr(): number[] {
    return this.lastLr;
  }

  override stateDict(): SchedulerState {
    const out = super.stateDict();
    out.schedulers = this.schedulers.map((s) => s.stateDict());
    return out;
  }

  override loadStateDict(state: SchedulerState): void {
    const { schedulers, ...rest } = state;
    super.loadStateDict({ ...rest });
    this.restoreInner(schedulers);
  }

  private restoreInner(states: unknown): void {
    if (!Array.isArray(states) || states.length !== this.schedulers.length) throw new Error(`${this.constructor.name}.loadStateDict: expected ${this.schedulers.length} inner scheduler states`);
    states.forEach((s, i) => this.schedulers[i].loadStateDict(s as SchedulerState));
  }
}

/** Steps every scheduler at each step (their factors multiply), as torch's ChainedScheduler. */
export class ChainedScheduler {
  readonly schedulers: LRScheduler[];
  readonly optimizer: OptimizerLike;
  private lastLr: number[];

  constructor(schedulers: LRScheduler[]) {
    if (schedulers.length === 0) throw new Error('ChainedScheduler: give at least one scheduler');
    this.optimizer = schedulers[0].optimizer;
    schedulers.forEach((s, i) => {
      if (s.optimizer !== this.optimizer) throw new Error(`ChainedScheduler: scheduler ${i} belongs to another optimizer`);
    });
    this.schedulers = [...schedulers];
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  step(): void {
    for (const s of this.schedulers) s.step();
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): SchedulerState {
    return { lastLr: [...this.lastLr], schedulers: this.schedulers.map((s) => s.stateDict()) };
  }

  loadStateDict(state: SchedulerState): void {
    const inner = state.schedulers;
    if (!Array.isArray(inner) || inner.length !== this.schedulers.length) throw new Error(`ChainedScheduler.loadStateDict: expected ${this.schedulers.length} inner scheduler states`);
    inner.forEach((s, i) => this.schedulers[i].loadStateDict(s as SchedulerState));
    if (Array.isArray(state.lastLr)) this.lastLr = [...(state.lastLr as number[])];
  }
}

/** Python's a % b for b > 0 (non-negative). */
function pyMod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

function bisectRight(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x < sorted[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export type { HyperValue };
