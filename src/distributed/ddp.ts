// DistributedDataParallel, as PyTorch's: rank 0's parameters and buffers are
// broadcast at construction; gradients are averaged across ranks in buckets
// (parameters in reverse order, ~bucketCapMb each), each bucket's all-reduce
// launched from gradient hooks during backward as soon as all its gradients
// are in (so communication overlaps the rest of backward, on Gloo's threads),
// in bucket order on every rank; backward returns once all are averaged.
// The hooks, buckets and all-reduces are the addon's (native/distributed.cc,
// Reducer): no JS call per gradient; this class decides the buckets, arms
// each forward's pass and turns the finish's verdict into Errors.
import { noGrad } from '../core/autograd.js';
import { queueBackwardCallback, Tensor } from '../core/tensor.js';
import { zeros } from '../core/creation.js';
import { native } from '../native/binding.js';
import { scope } from '../core/memory.js';
import { Module } from '../nn/module.js';
import type { GuardDistributed } from '../guard/guard.js';
import { allReduce, broadcast, getRank, getWorldSize } from './process-group.js';

export interface DDPOptions {
  /** Bucket size in MiB (default 25, as PyTorch). */
  bucketCapMb?: number;
  /**
   * Parameters that get no gradient in a backward are allowed (their slice
   * of the bucket is zero locally); without it such a backward is an Error
   * naming them (PyTorch's find_unused_parameters).
   */
  findUnusedParameters?: boolean;
  /** Broadcast rank 0's buffers (running statistics) before each forward (default true). */
  broadcastBuffers?: boolean;
}

export class DistributedDataParallel extends Module {
  readonly module: Module;
  readonly findUnusedParameters: boolean;
  readonly broadcastBuffers: boolean;
  /** parameter names per bucket, in launch order */
  private readonly _bucketNames: string[][] = [];
  private readonly _paramNames: string[] = [];
  /** the native reducer (gradient hooks, buckets, their all-reduces) */
  private _reducer = -1;
  private _syncing = true;
  /** gradient sync armed by the last forward (noSync is read at forward time, as PyTorch) */
  private _syncThisPass = true;
  private _local = 0;
  private _lastFinite = true;

  constructor(module: Module, options: DDPOptions = {}) {
    super();
    this.module = module;
    this.findUnusedParameters = options.findUnusedParameters ?? false;
    this.broadcastBuffers = options.broadcastBuffers ?? true;
    const capBytes = (options.bucketCapMb ?? 25) * 1024 * 1024;
    if (!(capBytes > 0)) throw new RangeError(`DistributedDataParallel: bucketCapMb must be positive, got ${options.bucketCapMb}`);
    getWorldSize(); // throws without a process group
    // checked broadcasts: the shapes of every parameter and buffer are compared across ranks here, once
    noGrad(() => {
      for (const t of [...module.parameters(), ...module.buffers()]) this.syncFromRank0(t);
    });
    // reverse registration order: the last layers' gradients come first in backward
    const named = module.namedParameters().filter(([, p]) => p.requiresGrad).reverse();
    const params: Tensor[] = [];
    const sizes: number[] = [];
    let cur: string[] = [];
    let curDtype = '';
    let bytes = 0;
    const flush = () => {
      if (cur.length > 0) {
        this._bucketNames.push(cur);
        sizes.push(cur.length);
      }
      cur = [];
      bytes = 0;
    };
    for (const [name, p] of named) {
      const size = p.numel() * bytesOf(p.dtype);
      if (cur.length > 0 && (bytes + size > capBytes || curDtype !== p.dtype)) flush();
      cur.push(name);
      curDtype = p.dtype;
      params.push(p);
      this._paramNames.push(name);
      bytes += size;
    }
    flush();
    this._reducer = native.distReducerNew(params.map((p) => p.id), sizes, () => queueBackwardCallback(() => this.finish()));
    native.distReducerArm(this._reducer, true, true);
  }

  /** How the gradients are bucketed: parameter names per bucket, in launch order. */
  get buckets(): string[][] {
    return this._bucketNames.map((b) => [...b]);
  }

  forward(...inputs: unknown[]): unknown {
    this._syncThisPass = this._syncing && this._local === 0;
    native.distReducerArm(this.reducer, this._syncThisPass, true);
    if (this.broadcastBuffers && this._syncThisPass) {
      const buffers = this.module.buffers();
      if (buffers.length > 0) native.distBroadcastCoalesced(buffers.map((b) => b.id), 0);
    }
    return this.module.call(...inputs);
  }

  /** Runs fn (forward and backward) without averaging gradients: they accumulate locally until the next synced backward. */
  noSync<T>(fn: () => T): T {
    const prev = this._syncing;
    this._syncing = false;
    try {
      return fn();
    } finally {
      this._syncing = prev;
    }
  }

  /**
   * Runs fn with no collective at all (no buffer broadcast, no gradient
   * averaging): for work one rank does alone, as the guard's replay.
   */
  localOnly<T>(fn: () => T): T {
    this._local++;
    native.distReducerArm(this.reducer, false, false);
    try {
      return fn();
    } finally {
      this._local--;
      if (this._reducer >= 0) native.distReducerArm(this._reducer, this._syncThisPass && this._local === 0, false);
    }
  }

  /** Whether this rank's own gradients were finite before the last average (NaN guard across ranks). */
  get localGradientsFinite(): boolean {
    return this._lastFinite;
  }

  private get reducer(): number {
    if (this._reducer < 0) throw new Error('DistributedDataParallel: disposed');
    return this._reducer;
  }

  private syncFromRank0(t: Tensor): void {
    const d = t.detach();
    try {
      broadcast(d, 0);
    } finally {
      d.dispose();
    }
  }

  // after the outermost backward in which a gradient hook saw an armed pass
  private finish(): void {
    const r = native.distReducerFinish(this.reducer, this.findUnusedParameters);
    if (typeof r === 'boolean') {
      this._lastFinite = r;
      return;
    }
    const unused = r.map((i) => this._paramNames[i]);
    throw new Error(
      `DistributedDataParallel: ${unused.length} parameter(s) got no gradient in this backward (${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', …' : ''}); ` +
      'pass findUnusedParameters: true if the forward does not use every parameter');
  }

  /** Removes the gradient hooks and frees the buckets (the wrapped module stays). */
  override dispose(): void {
    if (this._reducer >= 0) native.distReducerFree(this._reducer);
    this._reducer = -1;
  }

  /** This rank (for logs). */
  get rank(): number {
    return getRank();
  }
}

function bytesOf(dtype: string): number {
  if (dtype === 'float64' || dtype === 'int64' || dtype === 'complex64') return 8;
  if (dtype === 'float16' || dtype === 'bfloat16' || dtype === 'int16') return 2;
  if (dtype === 'int8' || dtype === 'uint8' || dtype === 'bool') return 1;
  if (dtype === 'complex128') return 16;
  return 4;
}

/**
 * The NaN guard across ranks: `new keel.Guard({ ..., distributed: guardHook(ddp) })`.
 * Each rank's flag (its own loss and pre-average gradients not finite) goes
 * into one small all-reduce; every rank learns which ranks were bad.
 */
export function guardHook(ddp: DistributedDataParallel): GuardDistributed {
  return {
    rank: getRank(),
    localGradientsFinite: () => ddp.localGradientsFinite,
    agree: (localBad: boolean) => {
      const flags = zeros([getWorldSize()], { dtype: 'float32' });
      try {
        if (localBad) noGrad(() => scope(() => { flags.narrow(0, getRank(), 1).fill_(1); }));
        allReduce(flags, 'max', { check: false });
        const v = flags.data() as Float32Array;
        const out: number[] = [];
        v.forEach((x, r) => { if (x !== 0) out.push(r); });
        return out;
      } finally {
        flags.dispose();
      }
    },
    localOnly: <T>(fn: () => T): T => ddp.localOnly(fn),
  };
}
