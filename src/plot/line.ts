// Line chart: several named series of (x, y) points, optional log y axis.
import type { TopLevelSpec } from 'vega-lite';
import { checkNumbers, isFiniteNumber, keepRows, notes, titled } from './finite.js';
import { colours } from './palette.js';
import { BASE_CONFIG, renderSvg } from './render.js';

export interface LineSeries {
  name: string;
  x: number[];
  y: number[];
}

export interface LineChartOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  /** log10 y axis, ticks at the powers of ten (values ≤ 0 are left out and counted) */
  logY?: boolean;
  /** plot area in pixels (default 420 × 300) */
  width?: number;
  height?: number;
  /** draw a dot at every point (default true) */
  points?: boolean;
}

/**
 * Log-axis domain and ticks covering [lo, hi] (lo > 0): whole decades; ticks
 * at 1-2-5 steps when the data span less than two decades, at every power of
 * ten up to ten decades, and at every k-th power beyond (at most ~9 labels).
 */
export function logTicks(lo: number, hi: number): { domain: [number, number]; values: number[] } {
  if (!(lo > 0) || !(hi >= lo) || !Number.isFinite(hi)) throw new RangeError(`logTicks: need 0 < lo ≤ hi < ∞, got ${lo}, ${hi}`);
  const a = Math.floor(Math.log10(lo) + 1e-9);
  let b = Math.ceil(Math.log10(hi) - 1e-9);
  if (b <= a) b = a + 1;
  const step = b - a > 10 ? Math.ceil((b - a) / 8) : 1;
  b = a + step * Math.ceil((b - a) / step);
  const values: number[] = [];
  for (let e = a; e <= b; e += step) {
    for (const m of b - a < 2 ? [1, 2, 5] : [1]) {
      const v = Number(`${m}e${e}`);
      if (v <= Number(`1e${b}`)) values.push(v);
    }
  }
  return { domain: [Number(`1e${a}`), Number(`1e${b}`)], values };
}

/** vega expression labelling a log tick as 1e-3, 1e0, 2e1, 1e32. */
export const LOG_LABEL = "replace(format(datum.value, '~e'), '+', '')";

/** SVG line chart. Non-finite points (and y ≤ 0 on a log axis) are left out, and the subtitle says how many. */
export async function lineChart(series: LineSeries[], o: LineChartOptions): Promise<string> {
  if (!Array.isArray(series)) throw new TypeError('lineChart: series must be an array');
  const raw: { series: string; x: number; y: number; k: number }[] = [];
  for (const s of series) {
    checkNumbers(s.x, `lineChart: series '${s.name}' x`);
    checkNumbers(s.y, `lineChart: series '${s.name}' y`);
    if (s.x.length !== s.y.length) throw new RangeError(`lineChart: series '${s.name}' has ${s.x.length} x values but ${s.y.length} y values`);
    s.x.forEach((x, k) => raw.push({ series: s.name, x, y: s.y[k], k }));
  }
  const finite = keepRows(raw, (r) => isFiniteNumber(r.x) && isFiniteNumber(r.y));
  const shown = o.logY ? keepRows(finite.rows, (r) => r.y > 0) : { rows: finite.rows, dropped: 0 };
  const rows = shown.rows;
  const names = series.map((s) => s.name);
  let y: Record<string, unknown> = { field: 'y', type: 'quantitative', title: o.yLabel ?? 'y', scale: { zero: false } };
  if (o.logY) {
    const ys = rows.map((r) => r.y);
    const t = ys.length ? logTicks(Math.min(...ys), Math.max(...ys)) : logTicks(1, 10);
    y = { ...y, title: `${o.yLabel ?? 'y'} (log scale)`, scale: { type: 'log', domain: t.domain, nice: false }, axis: { values: t.values, labelExpr: LOG_LABEL } };
  }
  // whole-number x (depths, log2 depths, epochs): no fractional ticks
  const xInts = [...new Set(rows.map((r) => r.x))].sort((a, b) => a - b);
  const xAxis = !rows.length || !xInts.every(Number.isInteger) ? {} : xInts.length <= 16 ? { values: xInts, format: 'd' } : { tickMinStep: 1, format: 'd' };
  const spec = {
    title: titled(o.title, notes([[finite.dropped, 'non-finite points not shown'], [shown.dropped, 'points ≤ 0 not shown on the log axis']])),
    width: o.width ?? 420,
    height: o.height ?? 300,
    config: BASE_CONFIG,
    data: { values: rows },
    mark: { type: 'line', point: o.points ?? true, strokeWidth: 1.8, clip: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: o.xLabel ?? 'x', scale: { zero: false }, axis: xAxis },
      y,
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: names, range: colours(names.length) } },
      order: { field: 'k' },
    },
  } as TopLevelSpec;
  return renderSvg(spec);
}
