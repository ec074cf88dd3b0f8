// Grouped bar chart with error bars: one group per label, one bar per series.
import type { TopLevelSpec } from 'vega-lite';
import { isFiniteNumber, notes, titled } from './finite.js';
import { colours } from './palette.js';
import { BASE_CONFIG, renderSvg } from './render.js';

export interface BarGroup {
  label: string;
  /** one value per series, in the order of the options' `series`; lo and hi draw an error bar */
  values: { value: number; lo?: number; hi?: number }[];
}

export interface BarChartOptions {
  title: string;
  /** series names, in the order of each group's values (the legend) */
  series: string[];
  yLabel?: string;
  xLabel?: string;
  /** y axis upper bound (default: the data's max); bars and error bars above it are clamped to it */
  yMax?: number;
  /** height of the plot area in pixels (default 260); the width follows the number of bars */
  height?: number;
}

/**
 * SVG grouped bar chart. A non-finite value leaves its bar out (and its error
 * bar); a non-finite lo/hi leaves only the error bar out; both are counted in
 * the subtitle. With `yMax`, values above it are clamped to it (also counted).
 */
export async function barChart(groups: BarGroup[], o: BarChartOptions): Promise<string> {
  if (!Array.isArray(groups)) throw new TypeError('barChart: groups must be an array');
  if (!Array.isArray(o.series) || o.series.length === 0) throw new RangeError('barChart: options.series must name at least one series');
  if (new Set(o.series).size !== o.series.length) throw new RangeError(`barChart: series names must differ, got ${JSON.stringify(o.series)}`);
  if (new Set(groups.map((g) => g.label)).size !== groups.length) throw new RangeError('barChart: group labels must differ');
  if (o.yMax !== undefined && !(isFiniteNumber(o.yMax) && o.yMax > 0)) throw new RangeError(`barChart: yMax must be a positive finite number, got ${o.yMax}`);
  const bars: { group: string; series: string; value: number }[] = [];
  const errs: { group: string; series: string; lo: number; hi: number }[] = [];
  let badBars = 0, badErrs = 0, clamped = 0;
  const clamp = (v: number): number => {
    if (o.yMax !== undefined && v > o.yMax) { clamped++; return o.yMax; }
    return v;
  };
  for (const g of groups) {
    if (g.values.length > o.series.length) throw new RangeError(`barChart: group '${g.label}' has ${g.values.length} values for ${o.series.length} series`);
    g.values.forEach((v, si) => {
      const series = o.series[si];
      if (!isFiniteNumber(v.value)) { badBars++; return; }
      bars.push({ group: g.label, series, value: clamp(v.value) });
      if (v.lo === undefined && v.hi === undefined) return;
      if (!isFiniteNumber(v.lo) || !isFiniteNumber(v.hi)) { badErrs++; return; }
      errs.push({ group: g.label, series, lo: clamp(Math.min(v.lo, v.hi)), hi: clamp(Math.max(v.lo, v.hi)) });
    });
  }
  const all = [...bars.map((b) => b.value), ...errs.flatMap((e) => [e.lo, e.hi])];
  const top = o.yMax ?? Math.max(1e-12, ...all);
  const bottom = Math.min(0, ...all);
  const x = { field: 'group', type: 'nominal', title: o.xLabel ?? null, sort: groups.map((g) => g.label), axis: { labelAngle: 0 } };
  const xOffset = { field: 'series', type: 'nominal', sort: o.series, scale: { domain: o.series } };
  const y = { type: 'quantitative', title: o.yLabel ?? null, scale: { domain: [bottom, top], nice: o.yMax === undefined } };
  const spec = {
    title: titled(o.title, notes([[badBars, 'non-finite values not shown'], [badErrs, 'non-finite error bars not shown'], [clamped, `values above ${o.yMax} clamped to it`]])),
    width: { step: Math.max(8, Math.min(22, 60 / o.series.length)) },
    height: o.height ?? 260,
    config: BASE_CONFIG,
    layer: [
      {
        name: 'bars',
        data: { values: bars },
        mark: { type: 'bar' },
        encoding: {
          x, xOffset, y: { ...y, field: 'value' },
          color: { field: 'series', type: 'nominal', title: null, scale: { domain: o.series, range: colours(o.series.length) }, legend: { orient: 'bottom', direction: 'horizontal' } },
        },
      },
      {
        name: 'errorbars',
        data: { values: errs },
        mark: { type: 'rule', color: 'black', strokeWidth: 1.2 },
        encoding: { x, xOffset, y: { ...y, field: 'lo' }, y2: { field: 'hi' } },
      },
    ],
  } as TopLevelSpec;
  return renderSvg(spec);
}
