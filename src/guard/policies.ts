// What the guard does about an event: the state it can go back to (the step's
// pre-step state, the last good in-memory snapshot), the learning-rate
// back-off, and the repairs — built-in (re-initialise the final layer small,
// back the LR off) and registered ones (guard.onRepair(causeId, fn), e.g. the
// MDE study swapping its loss for the safe SILog).
import type { GradScalerState } from '../amp/grad-scaler.js';
import { noGrad } from '../core/autograd.js';
import { getRngState, setRngState } from '../core/creation.js';
import { Tensor } from '../core/tensor.js';
import type { Module } from '../nn/module.js';
import { copyAll, sameShape } from '../optim/multi-tensor.js';
import type { CopyDeferring, OptimizerLike, OptimizerStateDict } from '../optim/optimizer.js';
import { native } from '../native/binding.js';
import * as ops from '../ops/index.js';
import type { GuardReport } from './report.js';

export type Policy = 'raise' | 'skip' | 'rollback' | 'repair';
export const POLICIES: readonly Policy[] = ['raise', 'skip', 'rollback', 'repair'];

function cloneKept(t: Tensor): Tensor {
  return noGrad(() => t.detach().clone()).keep();
}

/** Under a GradScaler: its state and the guard's count of skips in a row, saved and restored together. */
export interface ScalerSnapshot {
  state: GradScalerState | Record<string, never>;
  consecutiveSkips: number;
}

/** Model tensors (parameters and buffers), optimizer state and RNG, copied. */
export class Snapshot {
  private constructor(
    readonly step: number,
    private readonly model: Record<string, Tensor>,
    private readonly optimizer: OptimizerStateDict,
    private readonly rng: Tensor,
    /** What a training loop attached to the guard saved with it (its step, data position). */
    readonly loop?: unknown,
    /** The loss scaler's state (the guard puts it back). */
    readonly scaler?: ScalerSnapshot,
  ) {}

  static take(step: number, model: Module, optimizer: OptimizerLike, loop?: unknown, scaler?: ScalerSnapshot): Snapshot {
    const m: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(model.stateDict())) m[k] = cloneKept(t);
    const sd = optimizer.stateDict();
    const tensors: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(sd.tensors)) tensors[k] = cloneKept(t);
    const opt: OptimizerStateDict = { state: JSON.parse(JSON.stringify(sd.state)), paramGroups: JSON.parse(JSON.stringify(sd.paramGroups)), tensors };
    return new Snapshot(step, m, opt, getRngState().keep(), loop === undefined ? undefined : structuredClone(loop), scaler === undefined ? undefined : structuredClone(scaler));
  }

  /** Puts everything back (learning rates too: rollback backs them off afterwards). */
  restore(model: Module, optimizer: OptimizerLike): void {
    model.loadStateDict(this.model);
    optimizer.loadStateDict(this.optimizer);
    setRngState(this.rng);
  }

  dispose(): void {
    for (const t of Object.values(this.model)) t.dispose();
    for (const t of Object.values(this.optimizer.tensors)) t.dispose();
    this.rng.dispose();
  }
}

/**
 * The cheap per-step state: RNG and buffers at the step's start (the forward
 * moves both), and — taken just before optimizer.step — the parameters and the
 * optimizer's tensors, copied into buffers reused from step to step.
 */
export class StepState {
  private rng?: Tensor;
  private buffers: [Tensor, Tensor][] = [];
  private params: [Tensor, Tensor][] = [];
  private optState?: { state: OptimizerStateDict['state']; paramGroups: OptimizerStateDict['paramGroups']; tensors: Record<string, Tensor> };
  hasUpdateState = false;
  private readonly hasBuffers: boolean;

  constructor(private readonly model: Module, private readonly optimizer: OptimizerLike) {
    this.hasBuffers = model.buffers().length > 0;
  }

  /**
   * At the step's start (a replay needs the RNG and buffers as they were
   * before the forward, so they are taken every step; natively the
   * generator's engine is copied into the same bytes each step and the
   * buffers in one call).
   */
  begin(): void {
    if (native.rngSave !== undefined) {
      // the generator's engine into the same bytes each step (a getRngState() tensor, large enough, holds them)
      if (this.rng === undefined || this.rng.isDisposed) this.rng = getRngState().keep();
      native.rngSave(this.rng.id);
    } else {
      this.rng?.dispose();
      this.rng = getRngState().keep();
    }
    if (!this.hasBuffers) return;
    const bufs = this.model.buffers();
    const copies = this.buffers.map(([, c]) => c);
    if (bufs.length !== copies.length || !copyAll(copies, bufs)) {
      for (const c of copies) c.dispose();
      this.buffers = bufs.map((b) => [b, cloneKept(b)]);
    } else {
      for (let i = 0; i < bufs.length; i++) this.buffers[i][0] = bufs[i];
    }
  }

  /** Restores RNG and buffers to the step's start (gradients are cleared by the caller). */
  rewindForward(): void {
    if (this.rng) {
      if (native.rngRestore !== undefined) native.rngRestore(this.rng.id);
      else setRngState(this.rng);
    }
    this.rewindBuffers();
  }

  /** Restores the buffers only (a step the loss scaler skipped keeps its RNG draws, as without the guard). */
  rewindBuffers(): void {
    noGrad(() => { for (const [b, c] of this.buffers) b.copy_(c); });
  }

  /**
   * Just before optimizer.step: parameters and optimizer state. Copies go
   * into buffers kept from step to step, in one native call (one copy_ per
   * tensor; else _foreach_zero_ then _foreach_add_), so the healthy path
   * stays cheap.
   */
  beforeUpdate(params: Tensor[]): void {
    const live = liveState(this.optimizer);
    if (live === undefined) {
      this.beforeUpdateByStateDict(params);
      return;
    }
    const sources: Tensor[] = [...params];
    const scalars: Record<string, number | boolean>[] = [];
    for (const st of live.values()) {
      for (const t of Object.values(st.tensors)) sources.push(t);
      scalars.push({ ...st.scalars });
    }
    const deferring = this.optimizer as Partial<CopyDeferring>;
    if (typeof deferring.deferCopy === 'function' && sameSources(this.copies, sources)) {
      // the optimizer takes the copy in its update pass where it can (Adam's fused pass reads the values anyway)
      deferring.deferCopy(sources, this.copies.copies);
      this.deferredIn = deferring as CopyDeferring;
    } else {
      copyInto(this.copies, sources);
    }
    this.scalars = scalars;
    this.stateKeys = [...live.keys()];
    this.hasUpdateState = true;
    this.byStateDict = false;
  }

  /** This step's update is not copied (it is provably small: guard.ts, STEP_NORM_LIMIT): there is nothing to undo. */
  noUpdateCopy(): void {
    this.hasUpdateState = false;
  }

  /** Just after optimizer.step (or where it would have run): the deferred copy completed. */
  afterUpdate(): void {
    this.deferredIn?.settleCopy();
    this.deferredIn = undefined;
  }

  private deferredIn: CopyDeferring | undefined;
  private copies: { sources: Tensor[]; copies: Tensor[] } = { sources: [], copies: [] };
  private scalars: Record<string, number | boolean>[] = [];
  private byStateDict = false;
  private stateKeys: Tensor[] = [];

  private beforeUpdateByStateDict(params: Tensor[]): void {
    if (params.length !== this.params.length || params.some((p, i) => this.params[i][0] !== p)) {
      for (const [, c] of this.params) c.dispose();
      this.params = params.map((p) => [p, cloneKept(p)]);
    } else {
      noGrad(() => { for (const [p, c] of this.params) c.copy_(p); });
    }
    const sd = this.optimizer.stateDict();
    const old = this.optState?.tensors ?? {};
    const tensors: Record<string, Tensor> = {};
    noGrad(() => {
      for (const [k, t] of Object.entries(sd.tensors)) {
        const o = old[k];
        if (o !== undefined && !o.isDisposed && sameShape(o, t)) {
          o.copy_(t);
          tensors[k] = o;
        } else {
          o?.dispose();
          tensors[k] = cloneKept(t);
        }
      }
    });
    for (const [k, t] of Object.entries(old)) if (tensors[k] !== t) t.dispose();
    this.optState = { state: structuredClone(sd.state), paramGroups: structuredClone(sd.paramGroups), tensors };
    this.hasUpdateState = true;
    this.byStateDict = true;
  }

  /** Undoes the optimizer step (parameters and optimizer state). */
  rewindUpdate(): void {
    if (!this.hasUpdateState) return;
    if (this.byStateDict) {
      if (this.optState === undefined) return;
      noGrad(() => { for (const [p, c] of this.params) p.copy_(c); });
      this.optimizer.loadStateDict({ state: this.optState.state, paramGroups: this.optState.paramGroups, tensors: this.optState.tensors });
      return;
    }
    const { sources, copies } = this.copies;
    noGrad(() => sources.forEach((t, i) => t.copy_(copies[i])));
    const live = liveState(this.optimizer);
    if (live !== undefined) {
      // state the failed step created (a parameter's first step) goes
      for (const p of [...live.keys()]) {
        if (!this.stateKeys.includes(p)) {
          for (const t of Object.values(live.get(p)!.tensors)) t.dispose();
          live.delete(p);
        }
      }
      let k = 0;
      for (const st of live.values()) {
        const saved = this.scalars[k++];
        if (saved !== undefined) {
          for (const key of Object.keys(st.scalars)) delete st.scalars[key];
          Object.assign(st.scalars, saved);
        }
      }
    }
  }

  dispose(): void {
    this.rng?.dispose();
    for (const [, c] of this.buffers) c.dispose();
    for (const [, c] of this.params) c.dispose();
    for (const t of Object.values(this.optState?.tensors ?? {})) t.dispose();
    for (const t of this.copies.copies) t.dispose();
  }
}

interface LiveParamState { scalars: Record<string, number | boolean>; tensors: Record<string, Tensor> }

/** keel.optim optimizers keep per-parameter state in a Map (tensors updated in place): read it directly. */
function liveState(optimizer: OptimizerLike): Map<Tensor, LiveParamState> | undefined {
  const st = (optimizer as unknown as { state?: unknown }).state;
  return st instanceof Map ? (st as Map<Tensor, LiveParamState>) : undefined;
}

function sameSources(buf: { sources: Tensor[] }, sources: Tensor[]): boolean {
  return buf.sources.length === sources.length && sources.every((t, i) => buf.sources[i] === t);
}

/** copies ← sources, reusing the copies when the sources are the same tensors (of the same shapes). */
function copyInto(buf: { sources: Tensor[]; copies: Tensor[] }, sources: Tensor[]): void {
  if (sameSources(buf, sources) && copyAll(buf.copies, sources)) return;
  for (const c of buf.copies) c.dispose();
  buf.sources = sources;
  buf.copies = sources.map(cloneKept);
}

/** Multiplies every group's learning rate by factor; returns the new first-group LR. */
export function backOffLr(optimizer: OptimizerLike, factor: number): number {
  for (const g of optimizer.paramGroups) {
    g.lr *= factor;
    const any = g as unknown as Record<string, unknown>;
    if (typeof any.initialLr === 'number') any.initialLr = (any.initialLr as number) * factor;
  }
  return optimizer.paramGroups[0]?.lr ?? Number.NaN;
}

/** The model's last module with its own parameters (its dotted path and itself). */
export function finalLayer(model: Module): [string, Module] | undefined {
  let last: [string, Module] | undefined;
  for (const [path, m] of model.namedModules()) if (m.namedParameters('', false).length > 0) last = [path, m];
  return last;
}

/** Re-initialises a layer small: weight ~ N(0, std²), bias 0 (the MDE paper's final-layer init). */
export function reinitSmall(layer: Module, std = 1e-3): void {
  noGrad(() => {
    for (const [name, p] of layer.namedParameters('', false)) {
      if (name === 'bias') p.zero_();
      else ops.normal_(p, 0, std);
    }
  });
}

/** A registered repair: applies a remedy for a report; returns a line saying what it did (or false if it did nothing). */
export type RepairFn = (report: GuardReport, context: RepairContext) => string | boolean | void;

export interface RepairContext {
  model: Module;
  optimizer: OptimizerLike;
  /** Back every group's LR off by this factor. */
  backOffLr(factor?: number): number;
  /** Re-initialise the model's final layer small. */
  reinitFinalLayer(std?: number): string;
}
