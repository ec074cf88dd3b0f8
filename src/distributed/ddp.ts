// DistributedDataParallel, as PyTorch's: rank 0's parameters and buffers are
// broadcast at construction; gradients are averaged across ranks in buckets
// (parameters in reverse order, ~bucketCapMb each), each bucket's all-reduce
// launched from gradient hooks during backward as soon as all its gradients
// are in (so communication overlaps the rest of backward, on Gloo's threads),
// in bucket order on every rank; backward returns once all are averaged.
import { noGrad } from '../core/autograd.js';
import { queueBackwardCallback, Tensor, type RemovableHandle } from '../core/tensor.js';
import { zeros, stack } from '../core/creation.js';
import { scope } from '../core/memory.js';
import { Module } from '../nn/module.js';
import type { GuardDistributed } from '../guard/guard.js';
import { allReduce, broadcast, getRank, getWorldSize, type Work } from './process-group.js';

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

interface Bucket {
  params: Tensor[];
  names: string[];
  offsets: number[];
  flat: Tensor;
  ready: boolean[];
  nReady: number;
  work?: Work;
  /** this rank's gradients in the bucket were finite (before averaging) */
  finite?: Tensor;
}

export class DistributedDataParallel extends Module {
  readonly module: Module;
  readonly findUnusedParameters: boolean;
  readonly broadcastBuffers: boolean;
  private readonly _buckets: Bucket[] = [];
  private readonly _hooks: RemovableHandle[] = [];
  private _syncing = true;
  /** gradient sync armed by the last forward (noSync is read at forward time, as PyTorch) */
  private _syncThisPass = true;
  private _armed = false;
  private _next = 0;
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
    noGrad(() => {
      for (const t of [...module.parameters(), ...module.buffers()]) this.syncFromRank0(t);
    });
    // reverse registration order: the last layers' gradients come first in backward
    const named = module.namedParameters().filter(([, p]) => p.requiresGrad).reverse();
    let cur: [string, Tensor][] = [];
    let bytes = 0;
    const flush = () => {
      if (cur.length > 0) this._buckets.push(this.makeBucket(cur));
      cur = [];
      bytes = 0;
    };
    for (const [name, p] of named) {
      const size = p.numel() * bytesOf(p.dtype);
      if (cur.length > 0 && (bytes + size > capBytes || cur[0][1].dtype !== p.dtype)) flush();
      cur.push([name, p]);
      bytes += size;
    }
    flush();
    this._buckets.forEach((b, bi) => b.params.forEach((p, j) => {
      this._hooks.push(p.registerHook((g) => this.onGrad(bi, j, g)));
    }));
  }

  /** How the gradients are bucketed: parameter names per bucket, in launch order. */
  get buckets(): string[][] {
    return this._buckets.map((b) => [...b.names]);
  }

  forward(...inputs: unknown[]): unknown {
    this._syncThisPass = this._syncing && this._local === 0;
    if (this.broadcastBuffers && this._syncThisPass) noGrad(() => { for (const b of this.module.buffers()) this.syncFromRank0(b); });
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
    try {
      return fn();
    } finally {
      this._local--;
    }
  }

  /** Whether this rank's own gradients were finite before the last average (NaN guard across ranks). */
  get localGradientsFinite(): boolean {
    return this._lastFinite;
  }

  private syncFromRank0(t: Tensor): void {
    const d = t.detach();
    try {
      broadcast(d, 0);
    } finally {
      d.dispose();
    }
  }

  private makeBucket(entries: [string, Tensor][]): Bucket {
    const offsets: number[] = [];
    let n = 0;
    for (const [, p] of entries) {
      offsets.push(n);
      n += p.numel();
    }
    const flat = zeros([n], { dtype: entries[0][1].dtype }).keep();
    return { params: entries.map((e) => e[1]), names: entries.map((e) => e[0]), offsets, flat, ready: entries.map(() => false), nReady: 0 };
  }

  private onGrad(bi: number, j: number, g: Tensor): void {
    if (!this._syncThisPass || this._local > 0) return;
    if (!this._armed) {
      this._armed = true;
      this._next = 0;
      this._lastFinite = true;
      queueBackwardCallback(() => this.finish());
    }
    const b = this._buckets[bi];
    if (b.ready[j]) return;
    const p = b.params[j];
    noGrad(() => {
      const slice = b.flat.narrow(0, b.offsets[j], p.numel());
      // the gradient .grad will hold once this backward accumulates (noSync steps before it included)
      const acc = p.grad;
      if (acc !== undefined) ops3(slice, acc, g);
      else slice.copy_(g.reshape(-1));
    });
    b.ready[j] = true;
    b.nReady++;
    this.launchReady();
  }

  private launchReady(): void {
    while (this._next < this._buckets.length && this._buckets[this._next].nReady === this._buckets[this._next].params.length) {
      this.launch(this._buckets[this._next++]);
    }
  }

  private launch(b: Bucket): void {
    b.finite = noGrad(() => scope(() => b.flat.isfinite().all().keep()));
    b.work = allReduce(b.flat, 'sum', { async: true, check: false });
  }

  private finish(): void {
    this._armed = false;
    try {
      const unused: string[] = [];
      for (const b of this._buckets) b.params.forEach((_, j) => { if (!b.ready[j]) unused.push(b.names[j]); });
      if (unused.length > 0) {
        if (!this.findUnusedParameters) {
          throw new Error(
            `DistributedDataParallel: ${unused.length} parameter(s) got no gradient in this backward (${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', …' : ''}); ` +
            'pass findUnusedParameters: true if the forward does not use every parameter');
        }
        for (const b of this._buckets) {
          b.params.forEach((p, j) => {
            if (b.ready[j]) return;
            noGrad(() => scope(() => {
              const slice = b.flat.narrow(0, b.offsets[j], p.numel());
              const acc = p.grad;
              if (acc !== undefined) slice.copy_(acc.reshape(-1));
              else slice.zero_();
            }));
            b.ready[j] = true;
            b.nReady++;
          });
        }
        this.launchReady();
      }
      const world = getWorldSize();
      for (const b of this._buckets) b.work!.wait();
      noGrad(() => scope(() => {
        const flags = Boolean(stack(this._buckets.map((b) => b.finite!)).all().item());
        this._lastFinite = flags;
        for (const b of this._buckets) {
          b.flat.div_(world);
          b.params.forEach((p, j) => {
            const avg = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.shape);
            const acc = p.grad;
            if (acc !== undefined) acc.copy_(avg);
            else p.grad = avg.clone();
          });
        }
      }));
    } finally {
      for (const b of this._buckets) {
        b.ready.fill(false);
        b.nReady = 0;
        b.work = undefined;
        b.finite?.dispose();
        b.finite = undefined;
      }
    }
  }

  /** Removes the gradient hooks and frees the buckets (the wrapped module stays). */
  override dispose(): void {
    for (const h of this._hooks) h.remove();
    for (const b of this._buckets) b.flat.dispose();
  }

  /** This rank (for logs). */
  get rank(): number {
    return getRank();
  }
}

/** slice ← acc + g, flattened */
function ops3(slice: Tensor, acc: Tensor, g: Tensor): void {
  slice.copy_(acc.reshape(-1));
  slice.add_(g.reshape(-1));
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
