// The default process group (torch.distributed's WORLD) on libtorch's c10d:
// a TCPStore rendezvous and a Gloo process group, and the collectives on Keel
// tensors. Every wait is bounded by the group's timeout: a peer that dies or
// never arrives is an Error on every other rank, never a hang.
import { native } from '../native/binding.js';
import { Tensor } from '../core/tensor.js';
import { cat, zerosLike } from '../core/creation.js';

export type Backend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'product';

export interface InitOptions {
  backend?: Backend;
  /** This process's rank; default $RANK (torchrun), else 0. */
  rank?: number;
  /** Number of processes; default $WORLD_SIZE, else 1. */
  worldSize?: number;
  /** Where rank 0 serves the rendezvous store; default $MASTER_ADDR, else 127.0.0.1. */
  masterAddr?: string;
  /** Default $MASTER_PORT, else 29500. */
  masterPort?: number;
  /** Bounds the rendezvous and every collective; default 60 s (PyTorch: 30 min). */
  timeoutMs?: number;
  /**
   * Compare each collective's kind, shapes and dtypes across ranks first
   * (c10d's ProcessGroupWrapper, on a second Gloo group), so that a mismatch
   * is an Error on every rank; without it Gloo aborts the process on a size
   * mismatch. Default true; costs one small all-gather per collective
   * (DDP's bucket all-reduces skip it: their shapes are checked once).
   */
  checkCollectives?: boolean;
}

export interface CollectiveOptions {
  /** Return a work handle instead of waiting. */
  async?: boolean;
  /**
   * false: skip the cross-rank shape check for this call (default: the
   * group's checkCollectives). With the check, even an async call waits
   * until every rank has reached the collective.
   */
  check?: boolean;
}

/** An in-flight collective (c10d's Work). */
export class Work {
  private _done = false;
  /** @internal */
  constructor(private readonly _id: number) {}
  /** Waits (at most timeoutMs, default the group's timeout); throws if the collective failed or timed out. */
  wait(timeoutMs?: number): void {
    if (this._done) return;
    this._done = true;
    native.distWait(this._id, timeoutMs ?? null);
  }
  isCompleted(): boolean {
    return this._done || native.distIsCompleted(this._id);
  }
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`initProcessGroup: $${name} must be an integer, got '${v}'`);
  return n;
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`initProcessGroup: ${name} must be an integer ≥ ${min}, got ${v}`);
}

/**
 * Joins the default process group. Arguments left out come from torchrun's
 * environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so a script runs
 * unchanged under `torchrun` and `keel train --nproc N`.
 */
export function initProcessGroup(options: InitOptions = {}): void {
  const backend = options.backend ?? 'gloo';
  if (backend === 'nccl') {
    throw new Error("initProcessGroup: backend 'nccl' needs a CUDA build of libtorch with NCCL; this libtorch is CPU-only (use backend 'gloo')");
  }
  if (backend !== 'gloo') throw new TypeError(`initProcessGroup: backend must be 'gloo' or 'nccl', got '${String(backend)}'`);
  const rank = options.rank ?? envInt('RANK') ?? 0;
  const worldSize = options.worldSize ?? envInt('WORLD_SIZE') ?? 1;
  const masterAddr = options.masterAddr ?? process.env.MASTER_ADDR ?? '127.0.0.1';
  const masterPort = options.masterPort ?? envInt('MASTER_PORT') ?? 29500;
  const timeoutMs = options.timeoutMs ?? 60_000;
  checkInt('worldSize', worldSize, 1);
  checkInt('rank', rank, 0);
  if (rank >= worldSize) throw new RangeError(`initProcessGroup: rank ${rank} is not below worldSize ${worldSize}`);
  checkInt('masterPort', masterPort, 1);
  if (masterPort > 65535) throw new RangeError(`initProcessGroup: masterPort must be ≤ 65535, got ${masterPort}`);
  checkInt('timeoutMs', timeoutMs, 1);
  native.distInit(backend, rank, worldSize, masterAddr, masterPort, timeoutMs, options.checkCollectives ?? true);
}

export function destroyProcessGroup(): void {
  native.distDestroy();
}

export function isInitialized(): boolean {
  return native.distState() !== null;
}

function state() {
  const s = native.distState();
  if (s === null) throw new Error('no process group: call keel.distributed.initProcessGroup() first');
  return s;
}

export function getRank(): number {
  return state().rank;
}

export function getWorldSize(): number {
  return state().worldSize;
}

/** The local rank torchrun (or `keel train --nproc`) gave this process; 0 otherwise. */
export function getLocalRank(): number {
  return envInt('LOCAL_RANK') ?? 0;
}

function result(id: number | undefined): Work | undefined {
  return id === undefined ? undefined : new Work(id);
}

/** Reduces `tensor` across ranks, in place. */
export function allReduce(tensor: Tensor, op?: ReduceOp): void;
export function allReduce(tensor: Tensor, op: ReduceOp, options: { async: true; check?: boolean }): Work;
export function allReduce(tensor: Tensor, op: ReduceOp, options?: CollectiveOptions): Work | undefined;
export function allReduce(tensor: Tensor, op: ReduceOp = 'sum', options: CollectiveOptions = {}): Work | undefined {
  return result(native.distAllReduce(tensor.id, op, options.async ?? false, options.check ?? true));
}

/** Copies rank `src`'s tensor into every rank's `tensor`, in place. */
export function broadcast(tensor: Tensor, src: number, options?: { async?: false; check?: boolean }): void;
export function broadcast(tensor: Tensor, src: number, options: { async: true }): Work;
export function broadcast(tensor: Tensor, src: number, options: CollectiveOptions = {}): Work | undefined {
  return result(native.distBroadcast(tensor.id, src, options.async ?? false, options.check ?? true));
}

/** Every rank's `tensor` (same shape and dtype on every rank), by rank. */
export function allGather(tensor: Tensor, options?: { async?: false; check?: boolean; outputs?: Tensor[] }): Tensor[];
export function allGather(tensor: Tensor, options: { async: true; outputs?: Tensor[] }): { work: Work; outputs: Tensor[] };
export function allGather(tensor: Tensor, options: CollectiveOptions & { outputs?: Tensor[] } = {}): Tensor[] | { work: Work; outputs: Tensor[] } {
  const input = tensor.contiguous();
  const outputs = options.outputs ?? Array.from({ length: getWorldSize() }, () => zerosLike(input));
  try {
    const id = native.distAllGather(outputs.map((t) => t.id), input.id, options.async ?? false, options.check ?? true);
    return id === undefined ? outputs : { work: new Work(id), outputs };
  } finally {
    if (input !== tensor) input.dispose();
  }
}

/**
 * Rank r's `output` becomes the reduction over ranks of chunk r of `input`
 * (`input` holds worldSize × output.numel() elements; chunks along its
 * flattened order).
 */
export function reduceScatter(output: Tensor, input: Tensor | Tensor[], op?: ReduceOp): void;
export function reduceScatter(output: Tensor, input: Tensor | Tensor[], op: ReduceOp, options: { async: true }): Work;
export function reduceScatter(output: Tensor, input: Tensor | Tensor[], op: ReduceOp = 'sum', options: CollectiveOptions = {}): Work | undefined {
  if (Array.isArray(input)) {
    if (input.length !== getWorldSize()) throw new RangeError(`reduceScatter: needs one input per rank (${getWorldSize()}), got ${input.length}`);
    const flat = input.map((t) => t.reshape(-1));
    const joined = cat(flat);
    try {
      return result(native.distReduceScatter(output.id, joined.id, op, options.async ?? false, options.check ?? true));
    } finally {
      joined.dispose();
      for (const f of flat) f.dispose();
    }
  }
  return result(native.distReduceScatter(output.id, input.id, op, options.async ?? false, options.check ?? true));
}

/** Waits until every rank reaches this call. */
export function barrier(): void;
export function barrier(options: { async: true }): Work;
export function barrier(options: CollectiveOptions = {}): Work | undefined {
  return result(native.distBarrier(options.async ?? false, options.check ?? true));
}
