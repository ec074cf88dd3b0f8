// keel.stats, the studies' one statistics module, and the one table writer:
// values by hand or from R / scipy, and the shapes the study reports print.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as keel from 'keel';

const tableUrl = new URL('../../dist/experiments/table.js', import.meta.url).href;
const { table } = (await import(tableUrl)) as { table: (h: string[], r: (string | number | null | boolean)[][], o?: Record<string, unknown>) => string };
const S = keel.stats;

test('stats: mean, median, quantile (R-7), sample std; NaN for no values or a NaN among them', () => {
  assert.equal(S.mean([1, 2, 3, 4]), 2.5);
  assert.equal(S.median([3, 1, 2]), 2);
  assert.equal(S.median([4, 1, 3, 2]), 2.5);
  assert.equal(S.quantile([1, 2, 3, 4, 5], 0.25), 2);
  assert.equal(S.quantile([1, 2, 3, 4], 0.9), 3.7); // R: quantile(1:4, 0.9) = 3.7
  assert.ok(Math.abs(S.sampleStd([2, 4, 4, 4, 5, 5, 7, 9]) - 2.138089935299395) < 1e-15);
  assert.equal(S.sampleStd([5]), 0);
  for (const f of [S.mean, S.median]) {
    assert.ok(Number.isNaN(f([])));
    assert.ok(Number.isNaN(f([1, Number.NaN])));
  }
  // the same running sum as the studies' earlier mean: bit for bit
  const xs = [0.1, 0.2, 0.3, 0.7, 0.11];
  assert.equal(S.mean(xs), xs.reduce((a, b) => a + b, 0) / xs.length);
});

test('stats: Wilson interval, Fisher exact (one-sided), Welch t, pct', () => {
  const w = S.wilson(3, 20);
  assert.ok(Math.abs(w.lo - 0.0524) < 1e-4 && Math.abs(w.hi - 0.3604) < 1e-4, `${w.lo} ${w.hi}`);
  assert.equal(S.formatShare(w), '15.0 % [5.2, 36.0]');
  // P(X ≥ 8) for the hypergeometric of [[8, 2], [1, 5]]: (C(9,8)·C(7,2) + C(9,9)·C(7,1)) / C(16,10) = 196/8008
  assert.ok(Math.abs(S.fisherGreater(8, 2, 1, 5) - 196 / 8008) < 1e-12);
  assert.equal(S.fisherGreater(0, 5, 0, 5), 1);
  // Welch: mean(b) − mean(a) over sqrt(va/na + vb/nb)
  assert.ok(Math.abs(S.welchT([1, 2, 3], [4, 5, 6]) - 3 / Math.sqrt(2 / 3)) < 1e-12);
  assert.ok(Number.isNaN(S.welchT([1], [2, 3])));
  assert.equal(S.pct(0.12345), '12.35');
  assert.equal(S.pct(0.5, 0), '50');
  assert.equal(S.pct(Number.NaN), 'n/a');
});

test('table: Markdown by default, plain on request (left- or right-aligned, numbers formatted)', () => {
  assert.equal(table(['a', 'bb'], [['xyz', '1']]), '| a   | bb |\n| --- | -- |\n| xyz | 1  |');
  assert.equal(table(['a', 'bb'], [['xyz', '']], { style: 'plain' }), 'a    bb\n---  --\nxyz');
  assert.equal(table(['n', 'v'], [[1, null], [22, 0.5]], { style: 'plain', align: 'right', number: (v: number | null) => (v === null ? '—' : String(v)) }),
    ' n    v\n--  ---\n 1    —\n22  0.5');
});
