// Numeric assertions with explicit tolerances.
import assert from 'node:assert/strict';

export type Nested = number | boolean | null | Nested[];

export function flat(x: Nested): number[] {
  if (Array.isArray(x)) return x.flatMap(flat);
  if (x === null) return [Number.NaN];
  return [Number(x)];
}

/** |a - b| <= atol + rtol * |b| elementwise (NaN equals NaN, inf equals inf). */
export function assertClose(actual: Nested, expected: Nested, { rtol = 1e-6, atol = 1e-8, what = 'value' } = {}): void {
  const a = flat(actual);
  const b = flat(expected);
  assert.equal(a.length, b.length, `${what}: ${a.length} elements, expected ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(b[i]) && Number.isNaN(a[i])) continue;
    if (a[i] === b[i]) continue;
    const err = Math.abs(a[i] - b[i]);
    if (!(err <= atol + rtol * Math.abs(b[i]))) {
      assert.fail(`${what}[${i}]: ${a[i]} vs expected ${b[i]} (|diff| ${err} > atol ${atol} + rtol ${rtol}·|expected|)`);
    }
  }
}
