// A procedural colour image-classification set for when no real data set is
// installed: small, deterministic, and hard enough that a model must look at
// both shape and colour.
import { tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import { TensorDataset } from './dataset.js';
import { Rng } from './rng.js';

export interface SyntheticImagesOptions {
  /** Number of examples. */
  n: number;
  /** Number of classes, ≥ 2 (default 10). */
  numClasses?: number;
  /** The seed; the same seed gives the same images, bit for bit (default 0). */
  seed?: number;
  /** Image side in pixels (default 32). */
  size?: number;
}

const SHAPES = 5; // disc, ring, square, cross, striped disc
const STREAM = 0x5e7;

function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (k: number) => {
    const x = (k + h * 6) % 6;
    return v - v * s * Math.max(0, Math.min(x, 4 - x, 1));
  };
  return [f(5), f(3), f(1)];
}

// Pixel noise: the sum of the four bytes of one 32-bit draw, centred and
// scaled to unit variance (Irwin–Hall: near-Gaussian, tails cut at ±3.45σ),
// five times cheaper than Box–Muller and the images' main cost.
const NOISE = 0.06;
const BYTE_SUM_SD = Math.sqrt((4 * (256 * 256 - 1)) / 12);
function noise(rng: Rng): number {
  const x = rng.nextUint32();
  return ((x & 255) + ((x >>> 8) & 255) + ((x >>> 16) & 255) + (x >>> 24) - 510) / BYTE_SUM_SD;
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/**
 * SYNTHETIC data, not a real data set: n colour images float32 [n, 3, size,
 * size] in [0, 1] and labels int64 [n], drawn procedurally and deterministically
 * from `seed` (example i depends only on the seed and i, so a larger n extends a
 * smaller one). Labels cycle 0, 1, …, numClasses − 1.
 *
 * Class c is a shape (c mod 5: disc, ring, square, cross, striped disc) in a
 * colour family (⌊c / 5⌋: hues spaced evenly round the wheel, 2 families for
 * 10 classes). Neither cue alone tells the classes apart: shape alone or colour
 * alone caps accuracy near 50 % and 20 % for 10 classes; a model has to combine
 * them. Each image varies its position, scale, rotation, hue (± a quarter of
 * the spacing between families), saturation and brightness, over a random
 * low-saturation gradient background, with a small distractor blob of a random
 * colour and near-Gaussian pixel noise (σ = 0.06). Learnable, not trivial.
 */
export function syntheticImages(options: SyntheticImagesOptions): TensorDataset<[Tensor, Tensor]> {
  const { n } = options;
  const numClasses = options.numClasses ?? 10;
  const seed = options.seed ?? 0;
  const size = options.size ?? 32;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`syntheticImages: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(numClasses) || numClasses < 2) throw new RangeError(`syntheticImages: numClasses must be an integer ≥ 2, got ${numClasses}`);
  if (!Number.isInteger(size) || size < 8) throw new RangeError(`syntheticImages: size must be an integer ≥ 8, got ${size}`);
  if (!Number.isSafeInteger(seed)) throw new TypeError(`syntheticImages: seed must be a safe integer, got ${seed}`);

  const families = Math.ceil(numClasses / SHAPES);
  const plane = size * size;
  const pixels = new Float32Array(n * 3 * plane);
  const labels = new BigInt64Array(n);
  const px = 2 / size; // one pixel in [-1, 1] coordinates
  for (let i = 0; i < n; i++) {
    const rng = new Rng(seed, STREAM, i);
    const c = i % numClasses;
    labels[i] = BigInt(c);
    const shape = c % SHAPES;
    const family = Math.floor(c / SHAPES);
    const hue = (((family + 0.05) / families + (rng.next() - 0.5) * (0.5 / families)) % 1 + 1) % 1;
    const fg = hsv(hue, rng.uniform(0.55, 1), rng.uniform(0.55, 1));
    const bgA = hsv(rng.next(), rng.uniform(0, 0.3), rng.uniform(0.15, 0.85));
    const bgB = hsv(rng.next(), rng.uniform(0, 0.3), rng.uniform(0.15, 0.85));
    const gradAngle = rng.uniform(0, 2 * Math.PI);
    const [gx, gy] = [Math.cos(gradAngle), Math.sin(gradAngle)];
    const cx = rng.uniform(-0.3, 0.3);
    const cy = rng.uniform(-0.3, 0.3);
    const r = rng.uniform(0.35, 0.6);
    const theta = rng.uniform(0, Math.PI);
    const [cos, sin] = [Math.cos(theta), Math.sin(theta)];
    const stripes = rng.uniform(2.5, 3.5);
    const blob = { x: rng.uniform(-0.9, 0.9), y: rng.uniform(-0.9, 0.9), r: rng.uniform(0.06, 0.14), colour: hsv(rng.next(), rng.uniform(0.3, 1), rng.uniform(0.3, 1)) };
    const edge = px / r; // one pixel in the shape's unit coordinates
    const base = i * 3 * plane;
    for (let yy = 0; yy < size; yy++) {
      const v = (yy + 0.5) * px - 1;
      for (let xx = 0; xx < size; xx++) {
        const u = (xx + 0.5) * px - 1;
        const lx = ((u - cx) * cos + (v - cy) * sin) / r;
        const ly = (-(u - cx) * sin + (v - cy) * cos) / r;
        const rad = Math.sqrt(lx * lx + ly * ly);
        let d: number; // signed distance to the shape's edge, in shape units
        switch (shape) {
          case 0: d = rad - 1; break;
          case 1: d = Math.abs(rad - 0.72) - 0.28; break;
          case 2: d = Math.max(Math.abs(lx), Math.abs(ly)) - 0.8; break;
          case 3: d = Math.min(Math.max(Math.abs(lx) - 1, Math.abs(ly) - 0.3), Math.max(Math.abs(lx) - 0.3, Math.abs(ly) - 1)); break;
          default: d = Math.max(rad - 1, -Math.sin(lx * stripes * Math.PI) * (0.5 / (stripes * Math.PI)));
        }
        const alpha = clamp01(0.5 - d / edge);
        const t = clamp01(0.5 + 0.5 * (u * gx + v * gy));
        const bu = u - blob.x;
        const bv = v - blob.y;
        const blobAlpha = clamp01(0.5 - (Math.sqrt(bu * bu + bv * bv) - blob.r) / px);
        const p = base + yy * size + xx;
        for (let ch = 0; ch < 3; ch++) {
          let value = bgA[ch] * (1 - t) + bgB[ch] * t;
          value = value * (1 - alpha) + fg[ch] * alpha;
          value = value * (1 - blobAlpha) + blob.colour[ch] * blobAlpha;
          pixels[p + ch * plane] = clamp01(value + NOISE * noise(rng));
        }
      }
    }
  }
  const [x, y] = scope(() => [tensor(pixels, { shape: [n, 3, size, size] }), tensor(labels, { shape: [n] })]);
  return new TensorDataset<[Tensor, Tensor]>(x, y);
}
