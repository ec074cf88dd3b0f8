// keel.plot: figures as standalone SVG, drawn by vega-lite (rendered offline
// by vega's headless view; every data point inline, nothing fetched).
//
//   line.ts      line chart, several series, optional log y
//   complex.ts   points in the complex plane over stability regions
//   decision.ts  decision-boundary map: class cells under labelled points
//   bar.ts       grouped bars with error bars
//   finite.ts    what to do with NaN / ±Inf (left out, counted in the subtitle)
//   render.ts    vega-lite spec → SVG string
//   write.ts     atomic write of a chart
//   palette.ts   series colours
export { lineChart, logTicks, type LineSeries, type LineChartOptions } from './line.js';
export { complexScatter, forwardEulerDisc, leapfrogSegment, type ComplexSeries, type ComplexUnderlay, type ComplexScatterOptions } from './complex.js';
export { decisionMap, type DecisionMapOptions } from './decision.js';
export { barChart, type BarGroup, type BarChartOptions } from './bar.js';
export { renderSvg, type VegaLiteSpec } from './render.js';
export { writeChart } from './write.js';
export { PALETTE, colours } from './palette.js';
