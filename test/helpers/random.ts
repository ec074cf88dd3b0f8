// Seeded xorshift32 streams for test data: the same numbers on every run and
// in every file, independent of libtorch's generator.

/** Raw 32-bit words. */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Uniform numbers in [-1, 1). */
export function uniformPM1(seed: number): () => number {
  const next = xorshift32(seed);
  return () => (next() / 2 ** 32) * 2 - 1;
}

/** Uniform float32 values in [-1, 1). */
export function uniformPM1Float32(seed: number): () => number {
  const next = uniformPM1(seed);
  return () => Math.fround(next());
}
