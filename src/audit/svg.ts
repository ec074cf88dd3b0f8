// A tiny SVG writer for the reports: grouped bars with error bars, and lines.
// No dependencies; the output is a standalone string.

export interface BarGroup {
  label: string;
  /** one value per series; lo/hi draw an error bar */
  values: { value: number; lo?: number; hi?: number }[];
}

export interface ChartOptions {
  title: string;
  series: string[];
  yLabel?: string;
  width?: number;
  height?: number;
  /** y axis upper bound (default: the data's max) */
  yMax?: number;
  logY?: boolean;
}

const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 || a < 0.01 ? v.toExponential(0) : Number(v.toPrecision(3)).toString();
}

function frame(o: ChartOptions, w: number, h: number, body: string[], yOf: (v: number) => number, ticks: number[]): string {
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="11">`,
    `<rect width="${w}" height="${h}" fill="white"/>`, `<text x="${w / 2}" y="16" text-anchor="middle" font-size="13">${esc(o.title)}</text>`];
  for (const t of ticks) {
    const y = yOf(t);
    out.push(`<line x1="50" x2="${w - 10}" y1="${y}" y2="${y}" stroke="#ddd"/>`, `<text x="46" y="${y + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  if (o.yLabel) out.push(`<text transform="translate(12 ${h / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  out.push(...body);
  o.series.forEach((s, i) => {
    out.push(`<rect x="${60 + i * 110}" y="${h - 14}" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/>`, `<text x="${74 + i * 110}" y="${h - 5}">${esc(s)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function scaleY(o: ChartOptions, values: number[], top: number, bottom: number): { yOf: (v: number) => number; ticks: number[] } {
  const finite = values.filter((v) => Number.isFinite(v));
  if (o.logY) {
    const pos = finite.filter((v) => v > 0);
    const lo = Math.floor(Math.log10(pos.length ? Math.min(...pos) : 1e-8));
    const hi = Math.ceil(Math.log10(pos.length ? Math.max(...pos) : 1));
    const span = Math.max(1, hi - lo);
    const yOf = (v: number) => bottom - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / span) * (bottom - top);
    return { yOf, ticks: Array.from({ length: span + 1 }, (_, i) => 10 ** (lo + i)) };
  }
  const max = o.yMax ?? Math.max(1e-12, ...finite);
  const yOf = (v: number) => bottom - (Math.max(0, Math.min(v, max)) / max) * (bottom - top);
  return { yOf, ticks: [0, 0.25, 0.5, 0.75, 1].map((f) => f * max) };
}

/** Grouped bar chart with optional error bars. */
export function barChart(groups: BarGroup[], o: ChartOptions): string {
  const w = o.width ?? Math.max(360, 70 + groups.length * (o.series.length * 14 + 24));
  const h = o.height ?? 300;
  const top = 28, bottom = h - 48;
  const all = groups.flatMap((g) => g.values.flatMap((v) => [v.value, v.hi ?? v.value]));
  const { yOf, ticks } = scaleY(o, all, top, bottom);
  const gw = (w - 60) / Math.max(1, groups.length);
  const bw = Math.max(3, Math.min(18, (gw - 10) / Math.max(1, o.series.length)));
  const body: string[] = [];
  groups.forEach((g, gi) => {
    const x0 = 55 + gi * gw + (gw - bw * o.series.length) / 2;
    g.values.forEach((v, si) => {
      const x = x0 + si * bw;
      const y = yOf(v.value);
      body.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${Math.max(0, bottom - y).toFixed(1)}" fill="${COLOURS[si % COLOURS.length]}"/>`);
      if (v.lo !== undefined && v.hi !== undefined) {
        const cx = (x + bw / 2 - 0.5).toFixed(1);
        body.push(`<line x1="${cx}" x2="${cx}" y1="${yOf(v.lo).toFixed(1)}" y2="${yOf(v.hi).toFixed(1)}" stroke="black"/>`);
      }
    });
    body.push(`<text x="${(55 + gi * gw + gw / 2).toFixed(1)}" y="${bottom + 14}" text-anchor="middle">${esc(g.label)}</text>`);
  });
  body.push(`<line x1="50" x2="${w - 10}" y1="${bottom}" y2="${bottom}" stroke="black"/>`);
  return frame(o, w, h, body, yOf, ticks);
}

/** Line chart: one polyline per series over shared x values. */
export function lineChart(xs: number[], series: number[][], o: ChartOptions & { xLabel?: string }): string {
  const w = o.width ?? 480;
  const h = o.height ?? 300;
  const top = 28, bottom = h - 48;
  const { yOf, ticks } = scaleY(o, series.flat(), top, bottom);
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const xOf = (x: number) => 55 + ((x - xmin) / Math.max(1e-12, xmax - xmin)) * (w - 70);
  const body: string[] = [`<line x1="50" x2="${w - 10}" y1="${bottom}" y2="${bottom}" stroke="black"/>`];
  series.forEach((ys, si) => {
    const pts = ys.map((y, i) => (Number.isFinite(y) ? `${xOf(xs[i]).toFixed(1)},${yOf(y).toFixed(1)}` : '')).filter(Boolean).join(' ');
    body.push(`<polyline points="${pts}" fill="none" stroke="${COLOURS[si % COLOURS.length]}" stroke-width="1.5"/>`);
  });
  body.push(`<text x="55" y="${bottom + 14}">${fmt(xmin)}</text>`, `<text x="${w - 10}" y="${bottom + 14}" text-anchor="end">${fmt(xmax)}</text>`);
  if (o.xLabel) body.push(`<text x="${w / 2}" y="${bottom + 14}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  return frame(o, w, h, body, yOf, ticks);
}
