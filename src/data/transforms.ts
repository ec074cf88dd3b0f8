// Batch transforms: each takes a whole batch [B, C, H, W] (dim 0 = examples)
// and returns a new tensor; random ones draw per example from the context's
// seeded Rng, so a batch's augmentation is fixed by (seed, epoch, batch index)
// and a resumed run sees the same crops and flips as an uninterrupted one.
import { tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Rng } from './rng.js';

/** Where a batch is in the data stream, and the seeded stream for its randomness. */
export interface TransformContext {
  rng: Rng;
  epoch: number;
  batchIndex: number;
}

/**
 * A batch transform. `ctx` is supplied by the DataLoader; called by hand
 * without it, a random transform seeds itself from Keel's default generator.
 */
export type Transform = (x: Tensor, ctx?: TransformContext) => Tensor;

function contextOr(ctx: TransformContext | undefined): TransformContext {
  return ctx ?? { rng: Rng.fromGlobal(), epoch: 0, batchIndex: 0 };
}

/** Applies transforms in order; each gets its own stream forked from the context's. */
export function compose(transforms: Transform[]): Transform {
  for (const t of transforms) if (typeof t !== 'function') throw new TypeError('compose: every transform must be a function');
  return (x, ctx) => {
    const base = contextOr(ctx);
    return scope(() => {
      let cur = x;
      transforms.forEach((t, i) => {
        cur = t(cur, { ...base, rng: base.rng.fork(i) });
      });
      return cur;
    });
  };
}

function perChannel(values: number | readonly number[], name: string): number[] {
  const list = typeof values === 'number' ? [values] : [...values];
  if (list.length === 0 || list.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new TypeError(`normalize: ${name} must be a finite number or a non-empty array of them, got ${JSON.stringify(values)}`);
  }
  return list;
}

/**
 * (x − mean[c]) / std[c] along dim 1 (channels), as torchvision's Normalize:
 * a subtraction then a division in x's dtype. A single number applies to
 * every channel.
 */
export function normalize(mean: number | readonly number[], std: number | readonly number[]): Transform {
  const m = perChannel(mean, 'mean');
  const s = perChannel(std, 'std');
  if (s.some((v) => v === 0)) throw new RangeError('normalize: std must be non-zero in every channel');
  if (m.length !== s.length && m.length !== 1 && s.length !== 1) {
    throw new RangeError(`normalize: mean has ${m.length} channels and std ${s.length}`);
  }
  return (x) => {
    if (x.ndim < 2) throw new RangeError(`normalize: expects a batch [B, C, ...], got shape [${x.shape}]`);
    const channels = x.shape[1];
    const n = Math.max(m.length, s.length);
    if (n !== 1 && n !== channels) throw new RangeError(`normalize: ${n} channel values for a batch with ${channels} channels (shape [${x.shape}])`);
    return scope(() => {
      const shape = x.shape.map((d, i) => (i === 1 ? n : 1));
      const dtype = x.dtype;
      const meanT = tensor(Float64Array.from(m.length === n ? m : new Array(n).fill(m[0])), { shape, dtype, device: x.device });
      const stdT = tensor(Float64Array.from(s.length === n ? s : new Array(n).fill(s[0])), { shape, dtype, device: x.device });
      return x.sub(meanT).div(stdT);
    });
  };
}

export interface RandomCropOptions {
  /** Zero padding added before cropping: all sides, [left/right, top/bottom], or [left, top, right, bottom] (torchvision's order). */
  padding?: number | [number, number] | [number, number, number, number];
  /** The padding value; 0 by default. */
  fill?: number;
}

function paddingOf(p: RandomCropOptions['padding']): [number, number, number, number] {
  let out: number[];
  if (p === undefined) out = [0, 0, 0, 0];
  else if (typeof p === 'number') out = [p, p, p, p];
  else if (p.length === 2) out = [p[0], p[1], p[0], p[1]];
  else if (p.length === 4) out = [...p];
  else throw new TypeError(`randomCrop: padding must be a number, [lr, tb] or [l, t, r, b], got ${JSON.stringify(p)}`);
  if (out.some((v) => !Number.isInteger(v) || v < 0)) throw new RangeError(`randomCrop: padding must be non-negative integers, got ${JSON.stringify(p)}`);
  return out as [number, number, number, number];
}

/**
 * Pads each image (zeros by default), then crops a `size` window at a random
 * position drawn per example: the top offset, then the left one, each uniform
 * over the positions that fit. Works on [B, H, W] or [B, ..., H, W]; one
 * advanced-indexing op for the whole batch.
 */
export function randomCrop(size: number | [number, number], options: RandomCropOptions = {}): Transform {
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  if (![h, w].every((v) => Number.isInteger(v) && v > 0)) throw new RangeError(`randomCrop: size must be positive integers, got ${JSON.stringify(size)}`);
  const [left, top, right, bottom] = paddingOf(options.padding);
  const fill = options.fill ?? 0;
  return (x, ctx) => {
    if (x.ndim < 3) throw new RangeError(`randomCrop: expects a batch [B, ..., H, W], got shape [${x.shape}]`);
    const shape = x.shape;
    const b = shape[0];
    const ph = shape[shape.length - 2] + top + bottom;
    const pw = shape[shape.length - 1] + left + right;
    if (h > ph || w > pw) throw new RangeError(`randomCrop: crop ${h}×${w} is larger than the padded image ${ph}×${pw}`);
    const { rng } = contextOr(ctx);
    const rows = new BigInt64Array(b * h);
    const cols = new BigInt64Array(b * w);
    for (let i = 0; i < b; i++) {
      const dy = rng.int(ph - h + 1);
      const dx = rng.int(pw - w + 1);
      for (let r = 0; r < h; r++) rows[i * h + r] = BigInt(dy + r);
      for (let c = 0; c < w; c++) cols[i * w + c] = BigInt(dx + c);
    }
    return scope(() => {
      const middle = shape.slice(1, -2);
      const m = middle.reduce((a, d) => a * d, 1);
      const padded = left + right + top + bottom > 0 ? ops.constantPadNd(x, [left, right, top, bottom], fill) : x;
      const flat = padded.reshape([b, m, ph, pw]);
      const device = x.device;
      const idx = (data: BigInt64Array, s: number[]) => tensor(data, { shape: s, device });
      const batchIdx = idx(BigInt64Array.from({ length: b }, (_, i) => BigInt(i)), [b, 1, 1, 1]);
      const chanIdx = idx(BigInt64Array.from({ length: m }, (_, i) => BigInt(i)), [1, m, 1, 1]);
      const out = ops.index.Tensor(flat, [batchIdx, chanIdx, idx(rows, [b, 1, h, 1]), idx(cols, [b, 1, 1, w])]);
      return out.reshape([b, ...middle, h, w]);
    });
  };
}

/** Mirrors each example left–right (the last dim) with probability p, drawn per example. */
export function randomHorizontalFlip(p = 0.5): Transform {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`randomHorizontalFlip: p must be in [0, 1], got ${p}`);
  return (x, ctx) => {
    if (x.ndim < 2) throw new RangeError(`randomHorizontalFlip: expects a batch [B, ..., W], got shape [${x.shape}]`);
    const { rng } = contextOr(ctx);
    const b = x.shape[0];
    const flags = new Uint8Array(b);
    for (let i = 0; i < b; i++) flags[i] = rng.next() < p ? 1 : 0;
    return scope(() => {
      const mask = tensor(flags, { shape: [b, ...x.shape.slice(1).map(() => 1)], dtype: 'bool', device: x.device });
      return ops.where.self(mask, x.flip(-1), x);
    });
  };
}
