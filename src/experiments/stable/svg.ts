// A small SVG plot helper: scatter, lines (optionally log-y) and a filled
// class map, with axes and a legend. No dependencies.

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export interface Series {
  name: string;
  x: number[];
  y: number[];
  color?: string;
  /** 'points' (default for scatter) or 'line' */
  style?: 'points' | 'line';
  radius?: number;
}

export interface PlotOptions {
  title: string;
  xlabel?: string;
  ylabel?: string;
  width?: number;
  height?: number;
  logY?: boolean;
  /** fixed ranges; default from the data */
  xrange?: [number, number];
  yrange?: [number, number];
  /** extra SVG drawn in data coordinates through the given mappers (regions, boundaries) */
  underlay?: (sx: (x: number) => number, sy: (y: number) => number) => string;
  equalAspect?: boolean;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(0) : String(Number(v.toPrecision(3))));

function ticks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12 * span; v += step) out.push(Math.abs(v) < 1e-12 * span ? 0 : v);
  return out;
}

export function plot(series: Series[], o: PlotOptions): string {
  const W = o.width ?? 520, H = o.height ?? 400;
  const m = { l: 60, r: 130, t: 30, b: 45 };
  const tr = (v: number): number => (o.logY ? Math.log10(Math.max(v, 1e-300)) : v);
  const xs = series.flatMap((s) => s.x).filter(Number.isFinite);
  const ys = series.flatMap((s) => s.y.map(tr)).filter(Number.isFinite);
  let [x0, x1] = o.xrange ?? [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = o.yrange ? [tr(o.yrange[0]), tr(o.yrange[1])] : [Math.min(...ys), Math.max(...ys)];
  if (!Number.isFinite(x0) || !Number.isFinite(x1)) [x0, x1] = [0, 1];
  if (!Number.isFinite(y0) || !Number.isFinite(y1)) [y0, y1] = [0, 1];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  if (!o.xrange) { const p = 0.05 * (x1 - x0); x0 -= p; x1 += p; }
  if (!o.yrange) { const p = 0.05 * (y1 - y0); y0 -= p; y1 += p; }
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  if (o.equalAspect) {
    const sx = pw / (x1 - x0), sy = ph / (y1 - y0);
    if (sx > sy) { const c = (x0 + x1) / 2, hw = pw / sy / 2; x0 = c - hw; x1 = c + hw; } else { const c = (y0 + y1) / 2, hh = ph / sx / 2; y0 = c - hh; y1 = c + hh; }
  }
  const sx = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => m.t + ph - ((tr(y) - y0) / (y1 - y0)) * ph;
  const syRaw = (y: number): number => m.t + ph - ((y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<defs><clipPath id="c"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath></defs>`);
  if (o.underlay) parts.push(`<g clip-path="url(#c)">${o.underlay(sx, (y) => sy(y))}</g>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  for (const t of ticks(x0, x1)) parts.push(`<line x1="${sx(t)}" y1="${m.t + ph}" x2="${sx(t)}" y2="${m.t + ph + 4}" stroke="#333"/><text x="${sx(t)}" y="${m.t + ph + 16}" text-anchor="middle">${fmt(t)}</text>`);
  for (const t of ticks(y0, y1)) {
    const label = o.logY ? `1e${Math.round(t * 10) / 10}` : fmt(t);
    parts.push(`<line x1="${m.l - 4}" y1="${syRaw(t)}" x2="${m.l}" y2="${syRaw(t)}" stroke="#333"/><text x="${m.l - 6}" y="${syRaw(t) + 4}" text-anchor="end">${label}</text>`);
  }
  parts.push(`<text x="${m.l + pw / 2}" y="18" text-anchor="middle" font-size="13">${esc(o.title)}</text>`);
  if (o.xlabel) parts.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">${esc(o.xlabel)}</text>`);
  if (o.ylabel) parts.push(`<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.ylabel)}${o.logY ? ' (log)' : ''}</text>`);
  parts.push(`<g clip-path="url(#c)">`);
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const pts = s.x.map((x, k) => [x, s.y[k]] as const).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(tr(y)));
    if (s.style === 'line') {
      if (pts.length > 0) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of pts) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${color}"/>`);
    } else {
      for (const [x, y] of pts) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="${s.radius ?? 2.2}" fill="${color}" fill-opacity="0.75"/>`);
    }
  });
  parts.push('</g>');
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const y = m.t + 10 + i * 16;
    parts.push(`<rect x="${W - m.r + 10}" y="${y - 8}" width="10" height="10" fill="${color}"/><text x="${W - m.r + 25}" y="${y + 1}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Cells of a class map (decision regions) for plot()'s underlay: labels[i][k] on an n×n grid over the box. */
export function classMap(labels: number[][], box: [number, number, number, number]): (sx: (x: number) => number, sy: (y: number) => number) => string {
  return (sx, sy) => {
    const n = labels.length;
    const [x0, x1, y0, y1] = box;
    const dx = (x1 - x0) / n, dy = (y1 - y0) / n;
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) {
        const xa = sx(x0 + k * dx), xb = sx(x0 + (k + 1) * dx);
        const ya = sy(y0 + (i + 1) * dy), yb = sy(y0 + i * dy);
        out.push(`<rect x="${xa.toFixed(1)}" y="${ya.toFixed(1)}" width="${(xb - xa + 0.5).toFixed(1)}" height="${(yb - ya + 0.5).toFixed(1)}" fill="${PALETTE[labels[i][k] % PALETTE.length]}" fill-opacity="0.22"/>`);
      }
    }
    return out.join('');
  };
}
