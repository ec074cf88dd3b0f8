// The series colours every chart uses, in order (Tableau 10, as in matplotlib's
// default cycle), so a series keeps its colour from one figure to the next.
export const PALETTE: readonly string[] = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** `n` colours from the palette, cycling when there are more series than colours. */
export function colours(n: number): string[] {
  return Array.from({ length: n }, (_, i) => PALETTE[i % PALETTE.length]);
}
