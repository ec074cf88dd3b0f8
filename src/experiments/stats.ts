// Small statistics shared by the experiments' summaries.

/** The arithmetic mean; NaN for no values. */
export function mean(xs: number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}
