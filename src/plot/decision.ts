// Decision-boundary map: the class a model predicts on a grid over a box,
// drawn as pale cells, with labelled data points on top, at equal aspect.
import type { TopLevelSpec } from 'vega-lite';
import { checkNumbers, isFiniteNumber, keepRows, notes, titled } from './finite.js';
import { colours } from './palette.js';
import { BASE_CONFIG, renderSvg } from './render.js';

export interface DecisionMapOptions {
  title: string;
  /** [x0, x1, y0, y1]: the box the grid covers (also the plot window) */
  box: [number, number, number, number];
  /** labels[i][k]: predicted class of the cell in row i (y, bottom to top) and column k (x, left to right) */
  grid: number[][];
  /** data points and their true classes */
  points: { x: number[]; y: number[]; label: number[] };
  /** names of the classes, indexed by label (default 'class c') */
  classNames?: string[];
  xLabel?: string;
  yLabel?: string;
  /** longer side of the plot area in pixels (default 380) */
  size?: number;
}

function checkLabel(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new RangeError(`decisionMap: ${where} must be a class index (integer ≥ 0), got ${JSON.stringify(v)}`);
  return v;
}

/**
 * SVG decision-boundary map. Cells of equal class next to each other in a row
 * are merged into one rectangle (a 60×60 grid is a few hundred marks, not
 * 3600). Points with non-finite coordinates, or outside the box, are left out
 * and counted in the subtitle.
 */
export async function decisionMap(o: DecisionMapOptions): Promise<string> {
  const [x0, x1, y0, y1] = o.box ?? [];
  if (![x0, x1, y0, y1].every(isFiniteNumber) || !(x1 > x0) || !(y1 > y0)) throw new RangeError(`decisionMap: box must be finite [x0, x1, y0, y1] with x0 < x1 and y0 < y1, got ${JSON.stringify(o.box)}`);
  const rowsN = o.grid?.length ?? 0;
  if (rowsN === 0) throw new RangeError('decisionMap: grid is empty');
  const colsN = o.grid[0].length;
  if (colsN === 0) throw new RangeError('decisionMap: grid rows are empty');
  const { x, y, label } = o.points;
  checkNumbers(x, 'decisionMap: points.x');
  checkNumbers(y, 'decisionMap: points.y');
  if (x.length !== y.length || x.length !== label.length) throw new RangeError(`decisionMap: points.x, points.y and points.label differ in length (${x.length}, ${y.length}, ${label.length})`);

  const name = (c: number): string => o.classNames?.[c] ?? `class ${c}`;
  const dx = (x1 - x0) / colsN, dy = (y1 - y0) / rowsN;
  const cells: { x: number; x2: number; y: number; y2: number; cls: string }[] = [];
  let maxClass = 0;
  o.grid.forEach((row, i) => {
    if (row.length !== colsN) throw new RangeError(`decisionMap: grid row ${i} has ${row.length} cells, row 0 has ${colsN}`);
    for (let k = 0; k < colsN;) {
      const c = checkLabel(row[k], `grid[${i}][${k}]`);
      let end = k + 1;
      while (end < colsN && row[end] === c) end++;
      cells.push({ x: x0 + k * dx, x2: x0 + end * dx, y: y0 + i * dy, y2: y0 + (i + 1) * dy, cls: name(c) });
      maxClass = Math.max(maxClass, c);
      k = end;
    }
  });
  const raw = x.map((xv, i) => {
    const c = checkLabel(label[i], `points.label[${i}]`);
    maxClass = Math.max(maxClass, c);
    return { x: xv, y: y[i], cls: name(c) };
  });
  const pts = keepRows(raw, (r) => isFiniteNumber(r.x) && isFiniteNumber(r.y));
  const inBox = keepRows(pts.rows, (r) => r.x >= x0 && r.x <= x1 && r.y >= y0 && r.y <= y1);
  const outside = inBox.dropped;

  const names = Array.from({ length: maxClass + 1 }, (_, c) => name(c));
  const colour = { field: 'cls', type: 'nominal', title: null, scale: { domain: names, range: colours(names.length) } };
  const xs = { field: 'x', type: 'quantitative', title: o.xLabel ?? 'x₁', scale: { domain: [x0, x1], nice: false, zero: false } };
  const ys = { field: 'y', type: 'quantitative', title: o.yLabel ?? 'x₂', scale: { domain: [y0, y1], nice: false, zero: false } };
  const size = o.size ?? 380;
  const wide = x1 - x0 >= y1 - y0;
  const spec = {
    title: titled(o.title, notes([[pts.dropped, 'non-finite points not shown'], [outside, 'points outside the box not shown']])),
    width: wide ? size : Math.round((size * (x1 - x0)) / (y1 - y0)),
    height: wide ? Math.round((size * (y1 - y0)) / (x1 - x0)) : size,
    config: BASE_CONFIG,
    layer: [
      {
        name: 'cells',
        data: { values: cells },
        mark: { type: 'rect', opacity: 0.25, strokeWidth: 0 },
        encoding: { x: xs, x2: { field: 'x2' }, y: ys, y2: { field: 'y2' }, color: colour },
      },
      {
        name: 'points',
        data: { values: inBox.rows },
        mark: { type: 'circle', size: 14, opacity: 0.85, clip: true },
        encoding: { x: xs, y: ys, color: colour },
      },
    ],
  } as TopLevelSpec;
  return renderSvg(spec);
}
