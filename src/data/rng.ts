// A small seeded generator in JS for the data pipeline. Shuffling and random
// transforms draw from it, not from libtorch's global generator, so that (a)
// a batch is a pure function of (seed, epoch, batch index): a loader resumes
// at any batch without replaying the ones before, and (b) iterating data never
// shifts the stream that model initialisation and dropout draw from.
// sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, PractRand-clean)
// keyed through murmur3's finaliser; the same stream on every platform.
import { randint } from '../core/creation.js';
import { scope } from '../core/memory.js';

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a seed and integer keys into one 32-bit key (order matters). */
function hashKeys(values: number[]): number {
  let h = 0x9e3779b9;
  for (const v of values) {
    if (!Number.isSafeInteger(v)) throw new TypeError(`Rng: seeds and keys must be safe integers, got ${v}`);
    const lo = v >>> 0;
    const hi = Math.floor(v / 0x100000000) >>> 0;
    h = fmix32((h ^ lo) + 0x6a09e667);
    h = fmix32((h ^ hi) + 0xbb67ae85);
  }
  return h;
}

/**
 * A seeded pseudo-random stream. `new Rng(seed, ...keys)` gives the same
 * numbers for the same seed and keys; `fork(...keys)` derives an independent
 * stream from this one's key (not from how far it has been drawn).
 */
export class Rng {
  readonly #key: number[];
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | undefined;

  constructor(seed: number, ...keys: number[]) {
    this.#key = [seed, ...keys];
    const h = hashKeys(this.#key);
    this.#a = fmix32(h ^ 0x243f6a88);
    this.#b = fmix32(h ^ 0x85a308d3);
    this.#c = fmix32(h ^ 0x13198a2e);
    this.#d = 1;
    for (let i = 0; i < 15; i++) this.nextUint32();
  }

  /** An Rng seeded from libtorch's default generator (so `keel.manualSeed` fixes it). */
  static fromGlobal(): Rng {
    return new Rng(drawGlobalSeed());
  }

  /** An independent stream keyed by this one's seed and keys plus `keys`. */
  fork(...keys: number[]): Rng {
    const [seed, ...rest] = this.#key;
    return new Rng(seed, ...rest, ...keys);
  }

  /** Uniform on [0, 2^32). */
  nextUint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** Uniform on [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform on [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.next();
  }

  /** An integer uniform on [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Normal (Box–Muller; each pair of uniforms gives two values). */
  normal(mean = 0, std = 1): number {
    let z = this.#spare;
    if (z === undefined) {
      const u = 1 - this.next(); // (0, 1]
      const v = 2 * Math.PI * this.next();
      const r = Math.sqrt(-2 * Math.log(u));
      z = r * Math.cos(v);
      this.#spare = r * Math.sin(v);
    } else {
      this.#spare = undefined;
    }
    return mean + std * z;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}

/** A seed drawn from libtorch's default generator: fixed by `keel.manualSeed`. */
export function drawGlobalSeed(): number {
  return scope(() => randint(0, 0x7fffffff, []).item() as number);
}
