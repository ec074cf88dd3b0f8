// Non-finite values in charts. A collapsed run yields NaN, a diverging one
// Inf; vega would silently drop such rows or, worse, stretch an axis to
// ±1e308. Every chart filters its rows here first, counts what it dropped,
// and names the count in the chart's subtitle, so a gap in a figure is never
// silent. (Huge but finite values such as a growth of 1e32 are kept: they are
// data, and the log axes show them.)

/** Rows that pass `keep`, and how many did not. */
export function keepRows<T>(rows: T[], keep: (row: T) => boolean): { rows: T[]; dropped: number } {
  const out = rows.filter(keep);
  return { rows: out, dropped: rows.length - out.length };
}

export const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The subtitle line naming what a chart left out, or undefined when nothing was. */
export function notes(parts: [count: number, what: string][]): string[] {
  return parts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
}

/** vega-lite title object with the given subtitle lines (none → a plain title). */
export function titled(title: string, subtitle: string[]): string | { text: string; subtitle: string[] } {
  return subtitle.length ? { text: title, subtitle } : title;
}

/** Throws a clear error unless `xs` is an array of numbers (NaN/Inf allowed: those are filtered later). */
export function checkNumbers(xs: unknown, what: string): asserts xs is number[] {
  if (!Array.isArray(xs)) throw new TypeError(`${what}: expected an array of numbers, got ${typeof xs}`);
  const bad = xs.findIndex((v) => typeof v !== 'number');
  if (bad >= 0) throw new TypeError(`${what}[${bad}]: expected a number, got ${JSON.stringify(xs[bad])}`);
}
