// keel.plot: the vega-lite charts as SVG text. Each test renders a chart from
// known data and reads the SVG back: how many marks of each layer, where they
// sit (equal aspect, log spacing, bar heights), which tick labels the axes
// carry, and what happens to NaN / ±Inf.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const P = keel.plot;

/** Contents of every `<g class="mark-TYPE role-mark NAME_marks">…</g>` group (mark items are never nested groups). */
function markGroups(svg: string, type: string, name: string): string[] {
  const re = new RegExp(`<g class="mark-${type} role-mark ${name}_marks"[^>]*?(?:/>|>(.*?)</g>)`, 'g');
  return [...svg.matchAll(re)].map((m) => m[1] ?? '');
}

/** Number of items (paths for areas/symbols/rects/lines, <line> for rules) in the named layer. */
function count(svg: string, type: string, name: string): number {
  const tag = type === 'rule' ? '<line' : '<path';
  return markGroups(svg, type, name).reduce((n, g) => n + g.split(tag).length - 1, 0);
}

/** translate(x,y) of each item of a layer, in document order. */
function positions(svg: string, type: string, name: string): [number, number][] {
  return markGroups(svg, type, name).flatMap((g) => [...g.matchAll(/transform="translate\(([-\d.e]+),([-\d.e]+)\)"/g)].map((m) => [Number(m[1]), Number(m[2])] as [number, number]));
}

/** The labels of each axis, one array per axis. */
function axisLabels(svg: string): string[][] {
  return [...svg.matchAll(/<g class="mark-text role-axis-label"[^>]*>(.*?)<\/g>/g)].map((m) => [...m[1].matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((t) => t[1]));
}

/** y pixel of each label of the axis whose labels are `labels`. */
function axisLabelYs(svg: string, labels: string[]): number[] {
  const g = [...svg.matchAll(/<g class="mark-text role-axis-label"[^>]*>(.*?)<\/g>/g)].map((m) => m[1]).find((s) => s.includes(`>${labels[0]}<`) && s.includes(`>${labels.at(-1)}<`));
  assert.ok(g, `no axis with labels ${labels.join(', ')}`);
  return [...g.matchAll(/<text[^>]*transform="translate\(([-\d.e]+),([-\d.e]+)\)"[^>]*>/g)].map((m) => Number(m[2]));
}

function assertSvgDocument(svg: string, title: string): void {
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>$/);
  assert.ok(svg.includes(`>${title}<`), `title '${title}' in the SVG`);
  assert.ok(!/NaN|Infinity/.test(svg), 'no NaN or Infinity in the SVG');
  // balanced <g> groups: a well-formed tree, not a truncated document
  assert.equal((svg.match(/<g(\s[^>]*[^/])?>/g) ?? []).length, (svg.match(/<\/g>/g) ?? []).length);
}

test('lineChart: one line per series, a dot per finite point, non-finite points dropped and counted', async () => {
  const svg = await P.lineChart([
    { name: 'resnet', x: [2, 4, 6, 8], y: [1, 3, 2, 5] },
    { name: 'hamiltonian', x: [2, 4, 6, 8], y: [1, NaN, Infinity, 2] },
    { name: 'leapfrog', x: [2, NaN, 6], y: [0.5, 1, -Infinity] },
  ], { title: 'accuracy vs depth', xLabel: 'log2 depth N', yLabel: 'accuracy %' });
  assertSvgDocument(svg, 'accuracy vs depth');
  assert.equal(markGroups(svg, 'line', 'layer_0').length, 3, 'three line paths');
  assert.equal(count(svg, 'symbol', 'layer_1'), 4 + 2 + 1, 'a dot per finite point');
  assert.ok(svg.includes('4 non-finite points not shown'));
  for (const t of ['log2 depth N', 'accuracy %', 'resnet', 'hamiltonian', 'leapfrog']) assert.ok(svg.includes(`>${t}<`), t);
  // whole-number x: integer ticks only
  const x = axisLabels(svg).find((l) => l.includes('2') && l.includes('8'));
  assert.deepEqual(x, ['2', '4', '6', '8'], 'a tick at each whole-number x, no repeated labels');
});

test('lineChart with logY: decade ticks labelled 1e-2 … 1e4, evenly spaced; y ≤ 0 and NaN dropped; 1e32 kept', async () => {
  const svg = await P.lineChart([
    { name: 'a', x: [0, 1, 2, 3], y: [0.03, 1, 70, 9000] },
    { name: 'b', x: [0, 1, 2, 3], y: [0, -1, NaN, 5] },
  ], { title: 'log chart', yLabel: 'growth', logY: true });
  assertSvgDocument(svg, 'log chart');
  const decades = ['1e-2', '1e-1', '1e0', '1e1', '1e2', '1e3', '1e4'];
  assert.ok(axisLabels(svg).some((l) => JSON.stringify(l) === JSON.stringify(decades)), `y labels ${JSON.stringify(axisLabels(svg))}`);
  const ys = axisLabelYs(svg, decades);
  const gaps = ys.slice(1).map((y, i) => ys[i] - y);
  for (const g of gaps) assert.ok(Math.abs(g - gaps[0]) < 1e-6 && g > 0, `log ticks equally spaced: ${gaps}`);
  assert.equal(count(svg, 'symbol', 'layer_1'), 5);
  assert.ok(svg.includes('1 non-finite points not shown'));
  assert.ok(svg.includes('2 points ≤ 0 not shown on the log axis'));
  assert.ok(svg.includes('>growth (log scale)<'));

  const huge = await P.lineChart([{ name: 'resnet', x: [4, 16, 64, 256], y: [3, 1e6, 1e18, 1e32] }], { title: 'growth', logY: true });
  const labels = axisLabels(huge).find((l) => l.includes('1e32'));
  assert.ok(labels && labels[0] === '1e0' && labels.length <= 10, `thinned decade labels ${labels}`);
  assert.equal(count(huge, 'symbol', 'layer_1'), 4);
});

test('logTicks: domains on whole decades, 1-2-5 ticks under two decades, at most ~9 labels', () => {
  assert.deepEqual(P.logTicks(0.03, 7), { domain: [0.01, 10], values: [0.01, 0.1, 1, 10] });
  assert.deepEqual(P.logTicks(2, 3), { domain: [1, 10], values: [1, 2, 5, 10] });
  const t = P.logTicks(1, 1e32);
  assert.deepEqual(t.domain, [1, 1e32]);
  assert.deepEqual(t.values, [1, 1e4, 1e8, 1e12, 1e16, 1e20, 1e24, 1e28, 1e32]);
  assert.throws(() => P.logTicks(0, 1), /0 < lo/);
});

test('complexScatter: equal aspect, underlays drawn, points outside the window and NaN dropped and counted', async () => {
  const svg = await P.complexScatter([
    { name: 'resnet', re: [0, 1, 0], im: [0, 0, 1] },
    { name: 'hamiltonian', re: [NaN, -0.5, 0], im: [0, 0.5, 80] },
  ], { title: 'eigenvalues', xLabel: 'Re hλ', yLabel: 'Im hλ', underlays: [P.forwardEulerDisc(), P.leapfrogSegment(2)], maxHalfWidth: 3 });
  assertSvgDocument(svg, 'eigenvalues');
  assert.equal(count(svg, 'line', 'underlay0'), 1, 'the disc boundary is one closed path');
  assert.match(markGroups(svg, 'line', 'underlay0')[0], /fill="#bbb"/, 'the disc is filled');
  assert.equal(count(svg, 'rule', 'underlay1'), 1, 'the imaginary-axis segment');
  assert.equal(count(svg, 'symbol', 'points'), 4);
  assert.ok(svg.includes('1 non-finite points not shown'));
  assert.ok(svg.includes('1 points outside |Re|, |Im| ≤ 3 not shown'));
  assert.ok(svg.includes('forward Euler |1 + z| ≤ 1'));
  // the first three points are 0, 1 and i: one unit is the same number of pixels along both axes
  const [o, one, i] = positions(svg, 'symbol', 'points');
  const ux = one[0] - o[0], uy = o[1] - i[1];
  assert.ok(ux > 10 && Math.abs(ux - uy) < 1e-6, `equal aspect: 1 → ${ux} px, i → ${uy} px`);
  assert.equal(one[1], o[1]);
  // the segment runs from −2i to 2i on the imaginary axis
  const rule = markGroups(svg, 'rule', 'underlay1')[0];
  const m = rule.match(/translate\(([-\d.e]+),([-\d.e]+)\)" x2="([-\d.e]+)" y2="([-\d.e]+)"/);
  assert.ok(m, rule);
  assert.ok(Math.abs(Number(m[1]) - o[0]) < 1e-6 && Number(m[3]) === 0, 'vertical through Re = 0');
  assert.ok(Math.abs(Math.abs(Number(m[4])) - 4 * uy) < 1e-6, 'length 4 units');
});

test('decisionMap: equal-class runs merged into cells, points on top, equal aspect on a wide box', async () => {
  const grid = [
    [0, 0, 1, 1],
    [0, 1, 1, 2],
    [2, 2, 2, 2],
  ];
  const svg = await P.decisionMap({
    title: 'boundary', box: [-2, 2, -1, 1], grid,
    points: { x: [-2, 2, 0, NaN, 5], y: [-1, 1, 0, 0, 0], label: [0, 1, 2, 1, 0] },
  });
  assertSvgDocument(svg, 'boundary');
  assert.equal(count(svg, 'rect', 'cells'), 2 + 3 + 1, 'one rectangle per run of equal class in a row');
  assert.equal(count(svg, 'symbol', 'points'), 3);
  assert.ok(svg.includes('1 non-finite points not shown') && svg.includes('1 points outside the box not shown'));
  for (const c of ['class 0', 'class 1', 'class 2']) assert.ok(svg.includes(`>${c}<`), c);
  const [lo, hi] = positions(svg, 'symbol', 'points');
  const w = hi[0] - lo[0], h = lo[1] - hi[1];
  assert.ok(Math.abs(w / h - 2) < 1e-9, `box 4 × 2 drawn ${w} × ${h} px`);
  await assert.rejects(P.decisionMap({ title: 't', box: [0, 1, 0, 1], grid: [[0, 1], [0]], points: { x: [], y: [], label: [] } }), /grid row 1 has 1 cells/);
  await assert.rejects(P.decisionMap({ title: 't', box: [0, 1, 0, 1], grid: [[0, -1]], points: { x: [], y: [], label: [] } }), /grid\[0\]\[1\] must be a class index/);
  await assert.rejects(P.decisionMap({ title: 't', box: [1, 0, 0, 1], grid: [[0]], points: { x: [], y: [], label: [] } }), /x0 < x1/);
});

test('barChart: a bar per finite value, a rule per error bar, bar heights on the yMax scale, clamping counted', async () => {
  const svg = await P.barChart([
    { label: 'fp32', values: [{ value: 0.5, lo: 0.4, hi: 0.6 }, { value: 0.25, lo: 0.2, hi: 0.3 }] },
    { label: 'bf16', values: [{ value: 0.75, lo: 0.7, hi: 0.8 }, { value: NaN, lo: 0, hi: 1 }] },
    { label: 'fp8', values: [{ value: 1.5, lo: 0.9, hi: 2 }, { value: 0.1 }] },
  ], { title: 'share of minibatches', series: ['grads differ', 'D > τ_p'], yMax: 1, yLabel: 'share' });
  assertSvgDocument(svg, 'share of minibatches');
  assert.equal(count(svg, 'rect', 'bars'), 5);
  assert.equal(count(svg, 'rule', 'errorbars'), 4, 'fp32 ×2, bf16 0.75, fp8 1.5 (the NaN bar loses its error bar too)');
  assert.ok(svg.includes('1 non-finite values not shown'));
  assert.ok(svg.includes('2 values above 1 clamped to it'), 'the 1.5 bar and its hi = 2');
  assert.ok(svg.includes('>grads differ<') && svg.includes('>D &gt; τ_p<') && svg.includes('>share<'));
  assert.ok(axisLabels(svg).some((l) => JSON.stringify(l) === JSON.stringify(['fp32', 'bf16', 'fp8'])), 'groups in the given order');
  assert.ok(axisLabels(svg).some((l) => l[0] === '0.0' && l.at(-1) === '1.0'), 'y from 0 to yMax');
  // bar heights in pixels are proportional to the values: 0.5, 0.25, 0.75, 1 (clamped), 0.1
  const heights = markGroups(svg, 'rect', 'bars')[0].match(/d="M[-\d.e]+,[-\d.e]+h[-\d.e]+v([-\d.e]+)/g)!.map((d) => Number(d.split('v')[1]));
  assert.equal(heights.length, 5);
  const unit = heights[3];
  assert.deepEqual(heights.map((h) => Number((h / unit).toFixed(6))), [0.5, 0.25, 0.75, 1, 0.1]);
  await assert.rejects(P.barChart([{ label: 'a', values: [{ value: 1 }, { value: 2 }] }], { title: 't', series: ['one'] }), /group 'a' has 2 values for 1 series/);
});

test('charts carry their data inline: a spec with a URL is refused', async () => {
  await assert.rejects(P.renderSvg({ data: { url: 'https://example.com/data.csv' }, mark: 'point' }), /inline/);
});

test('writeChart: writes the SVG atomically (no temporary file left), refuses a non-SVG', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-plot-'));
  const svg = await P.lineChart([{ name: 's', x: [1, 2], y: [3, 4] }], { title: 'saved' });
  assert.equal(await P.writeChart(join(dir, 'a.svg'), svg), join(dir, 'a.svg'));
  await P.writeChart(join(dir, 'b.svg'), P.lineChart([{ name: 's', x: [1, 2], y: [3, 4] }], { title: 'saved' }));
  assert.equal(readFileSync(join(dir, 'a.svg'), 'utf8'), svg);
  const clipIds = (t: string): string => t.replace(/clip\d+/g, 'clip#'); // vega numbers clip paths globally
  assert.equal(clipIds(readFileSync(join(dir, 'b.svg'), 'utf8')), clipIds(svg), 'rendering is deterministic');
  assert.deepEqual(readdirSync(dir).sort(), ['a.svg', 'b.svg']);
  await assert.rejects(P.writeChart(join(dir, 'c.svg'), 'not svg'), /not an SVG document/);
  assert.deepEqual(readdirSync(dir).sort(), ['a.svg', 'b.svg']);
});

test('all-NaN input renders an empty but valid chart', async () => {
  const svg = await P.lineChart([{ name: 'collapsed', x: [1, 2, 3], y: [NaN, NaN, NaN] }], { title: 'collapsed run', logY: true });
  assertSvgDocument(svg, 'collapsed run');
  assert.equal(count(svg, 'symbol', 'layer_1'), 0);
  assert.ok(svg.includes('3 non-finite points not shown'));
});
