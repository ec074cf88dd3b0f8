// How a share prints: one pct() for every study's tables and claims.

/** 100·x with `digits` decimals ("12.50"); 'n/a' when x is not finite. The caller adds " %" where it wants one. */
export function pct(x: number, digits = 2): string {
  return Number.isFinite(x) ? (100 * x).toFixed(digits) : 'n/a';
}
