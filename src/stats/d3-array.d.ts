// The few d3-array functions src/stats uses (d3-array ships no types of its
// own and @types/d3-array is not installed; the package comes with vega).
declare module 'd3-array' {
  export function mean(values: Iterable<number>): number | undefined;
  export function median(values: Iterable<number>): number | undefined;
  export function quantile(values: Iterable<number>, p: number): number | undefined;
}
