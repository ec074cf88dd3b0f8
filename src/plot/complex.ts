// Points in the complex plane (eigenvalues, usually scaled by the step: hλ),
// with stability regions drawn under them, at equal aspect (a circle looks
// like a circle).
import type { TopLevelSpec } from 'vega-lite';
import { checkNumbers, isFiniteNumber, keepRows, notes, titled } from './finite.js';
import { colours } from './palette.js';
import { BASE_CONFIG, renderSvg } from './render.js';

export interface ComplexSeries {
  name: string;
  re: number[];
  im: number[];
}

/** A region drawn under the points: a closed curve (filled) or a segment (a thick bar). */
export type ComplexUnderlay =
  | { kind: 'region'; label: string; re: number[]; im: number[] }
  | { kind: 'segment'; label: string; from: [re: number, im: number]; to: [re: number, im: number] };

/** Forward Euler's stability region |1 + z| ≤ 1 (z = hλ): the boundary circle, as `n` chords. */
export function forwardEulerDisc(n = 180): ComplexUnderlay {
  const t = Array.from({ length: n + 1 }, (_, k) => (2 * Math.PI * k) / n);
  return { kind: 'region', label: 'forward Euler |1 + z| ≤ 1 (shaded)', re: t.map((a) => -1 + Math.cos(a)), im: t.map((a) => Math.sin(a)) };
}

/** Verlet / leapfrog's stability interval on the imaginary axis, z ∈ (−reach·i, reach·i). */
export function leapfrogSegment(reach = 2): ComplexUnderlay {
  return { kind: 'segment', label: `Verlet/leapfrog z ∈ (−${reach}i, ${reach}i) (bar)`, from: [0, -reach], to: [0, reach] };
}

export interface ComplexScatterOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  underlays?: ComplexUnderlay[];
  /**
   * Half-width of the square window centred on 0. Default: the largest |Re|,
   * |Im| of the points and underlays, + 5 %, at least 2.2 and at most
   * `maxHalfWidth`. Points outside are left out and counted in the subtitle.
   */
  halfWidth?: number;
  maxHalfWidth?: number;
  /** side of the square plot area in pixels (default 380) */
  size?: number;
}

/** SVG scatter of complex numbers. Non-finite points are left out and counted in the subtitle. */
export async function complexScatter(series: ComplexSeries[], o: ComplexScatterOptions): Promise<string> {
  const raw: { series: string; re: number; im: number }[] = [];
  for (const s of series) {
    checkNumbers(s.re, `complexScatter: series '${s.name}' re`);
    checkNumbers(s.im, `complexScatter: series '${s.name}' im`);
    if (s.re.length !== s.im.length) throw new RangeError(`complexScatter: series '${s.name}' has ${s.re.length} real parts but ${s.im.length} imaginary parts`);
    s.re.forEach((re, k) => raw.push({ series: s.name, re, im: s.im[k] }));
  }
  const finite = keepRows(raw, (r) => isFiniteNumber(r.re) && isFiniteNumber(r.im));
  const underlays = o.underlays ?? [];
  const reach = [
    ...finite.rows.flatMap((r) => [Math.abs(r.re), Math.abs(r.im)]),
    ...underlays.flatMap((u) => (u.kind === 'region' ? [...u.re, ...u.im] : [...u.from, ...u.to]).map(Math.abs)),
  ];
  const R = o.halfWidth ?? Math.min(Math.max(2.2, ...reach) * 1.05, o.maxHalfWidth ?? 50);
  if (!(R > 0) || !Number.isFinite(R)) throw new RangeError(`complexScatter: halfWidth must be a positive finite number, got ${R}`);
  const inside = keepRows(finite.rows, (r) => Math.abs(r.re) <= R && Math.abs(r.im) <= R);
  const outside = inside.dropped;
  const scale = { domain: [-R, R], nice: false, zero: false };
  const x = { field: 're', type: 'quantitative', title: o.xLabel ?? 'Re', scale };
  const y = { field: 'im', type: 'quantitative', title: o.yLabel ?? 'Im', scale };
  const layers: unknown[] = underlays.map((u, i) =>
    u.kind === 'region'
      ? {
        name: `underlay${i}`,
        data: { values: u.re.map((re, k) => ({ re, im: u.im[k], k })) },
        mark: { type: 'line', fill: '#bbb', fillOpacity: 0.35, stroke: '#888', strokeWidth: 1, clip: true },
        encoding: { x, y, order: { field: 'k' } },
      }
      : {
        name: `underlay${i}`,
        data: { values: [{ re: u.from[0], im: u.from[1], re2: u.to[0], im2: u.to[1] }] },
        mark: { type: 'rule', stroke: '#555', strokeWidth: 4, opacity: 0.5, clip: true },
        encoding: { x, y, x2: { field: 're2' }, y2: { field: 'im2' } },
      });
  const names = series.map((s) => s.name);
  layers.push({
    name: 'points',
    data: { values: inside.rows },
    mark: { type: 'circle', size: 22, opacity: 0.75, clip: true },
    encoding: { x, y, color: { field: 'series', type: 'nominal', title: null, scale: { domain: names, range: colours(names.length) } } },
  });
  const size = o.size ?? 380;
  const spec = {
    title: titled(o.title, [
      ...(underlays.length ? [`under the points: ${underlays.map((u) => u.label).join('; ')}`] : []),
      ...notes([[finite.dropped, 'non-finite points not shown'], [outside, `points outside |Re|, |Im| ≤ ${Number(R.toPrecision(3))} not shown`]]),
    ]),
    width: size,
    height: size,
    config: BASE_CONFIG,
    layer: layers,
  } as TopLevelSpec;
  return renderSvg(spec);
}
