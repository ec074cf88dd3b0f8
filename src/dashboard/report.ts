// `keel report DIR [--out FILE.html]`: one self-contained HTML file (inline
// SVG and CSS, no external URL; a run folder's own SVG figures as data: URIs,
// where no script in them can run) and its Markdown twin (FILE.md, figures
// linked by relative path) for a training run or a repro/audit output:
// config, summary, curves, the layer-health table at a few steps, every guard
// event with its report, and for repros the verdict tables.
import { mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { lineChart, type LineSeries } from '../plot/line.js';
import { guardEventMarkdown } from '../log/tfevents.js';
import { Run, type JsonRecord, type RunView } from './runs.js';

export interface ReportOptions {
  /** The HTML file (default DIR/run-report.html); the Markdown twin is the same path with .md. */
  out?: string;
  /** Health rows in the table (default 5: first, last, evenly between, and every step with non-finite values up to 5 more). */
  healthSteps?: number;
}

const esc = (s: unknown): string => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const mdCell = (s: unknown): string => String(s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');

function fmt(x: unknown): string {
  if (typeof x !== 'number') return x === null || x === undefined ? '' : typeof x === 'object' ? JSON.stringify(x) : String(x);
  if (!Number.isFinite(x)) return String(x);
  if (x === 0 || Number.isInteger(x) || (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5)) return String(Number(x.toPrecision(5)));
  return x.toExponential(3);
}

interface Table { columns: string[]; rows: unknown[][] }

function htmlTable(t: Table, cls = ''): string {
  return `<table class="${cls}"><tr>${t.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>${t.rows.map((r) => `<tr>${r.map((x) => `<td${typeof x === 'number' ? ' class="n"' : ''}>${esc(fmt(x))}</td>`).join('')}</tr>`).join('')}</table>`;
}

function mdTable(t: Table): string {
  return [`| ${t.columns.map(mdCell).join(' | ')} |`, `|${t.columns.map(() => '---').join('|')}|`, ...t.rows.map((r) => `| ${r.map((x) => mdCell(fmt(x))).join(' | ')} |`)].join('\n');
}

function kvTable(obj: unknown): Table {
  const rows: unknown[][] = [];
  const walk = (o: unknown, prefix: string) => {
    if (o !== null && typeof o === 'object' && !Array.isArray(o) && prefix.split('.').length < 3) {
      for (const [k, v] of Object.entries(o)) walk(v, prefix ? `${prefix}.${k}` : k);
    } else rows.push([prefix, Array.isArray(o) && o.length > 20 ? `[${o.length} items]` : o]);
  };
  walk(obj, '');
  return { columns: ['key', 'value'], rows };
}

const HEALTH_METRICS = ['gradNorm', 'gradMax', 'paramNorm', 'updateRatio', 'nonFinite', 'saturation', 'dead', 'overflow', 'underflow'];

/** Health lines at a few steps: first, last, evenly between, and those with non-finite values. */
function healthTable(run: Run, count: number): Table | undefined {
  const rows = run.tail.health;
  if (!rows.length) return undefined;
  const pick = new Set<number>();
  for (let k = 0; k < count; k++) pick.add(Math.round((k * (rows.length - 1)) / Math.max(1, count - 1)));
  let extra = 0;
  rows.forEach((r, i) => {
    if (extra < 5 && Object.values(r.layers).some((m) => (m.nonFinite ?? 0) > 0 || Object.values(m).some((x) => !Number.isFinite(x)))) {
      if (!pick.has(i)) extra++;
      pick.add(i);
    }
  });
  const metrics = HEALTH_METRICS.filter((m) => rows.some((r) => Object.values(r.layers).some((l) => m in l)));
  const out: unknown[][] = [];
  for (const i of [...pick].sort((a, b) => a - b)) {
    for (const [layer, m] of Object.entries(rows[i].layers)) out.push([rows[i].step, layer, ...metrics.map((k) => m[k])]);
  }
  return { columns: ['step', 'layer', ...metrics], rows: out };
}

async function curves(v: RunView): Promise<{ title: string; svg: string }[]> {
  const m = v.metrics;
  if (!m) return [];
  const out: { title: string; svg: string }[] = [];
  const nn = (ys: (number | null)[]) => ys.map((y) => (y === null ? Number.NaN : y));
  for (const [field, title, logY] of [['loss', 'loss', true], ['accuracy', 'accuracy', false], ['lr', 'learning rate', true], ['gradNorm', 'gradient norm', true]] as const) {
    const series: LineSeries[] = [];
    if (m.steps.fields[field]) series.push({ name: `train ${field}`, x: m.steps.step, y: nn(m.steps.fields[field]) });
    const ev = m.evals.filter((e) => typeof e.step === 'number' && typeof e[field] === 'number');
    if (ev.length) series.push({ name: `eval ${field}`, x: ev.map((e) => e.step as number), y: ev.map((e) => e[field] as number) });
    if (!series.length || series.every((s) => s.y.every((y) => !Number.isFinite(y)))) continue;
    const positive = series.every((s) => s.y.every((y) => !Number.isFinite(y) || y > 0));
    out.push({ title, svg: await lineChart(series, { title, xLabel: 'step', yLabel: field, logY: logY && positive, points: m.shown < 200, width: 380, height: 220 }) });
  }
  return out;
}

function guardHtml(e: JsonRecord): string {
  const r = (e.report ?? {}) as JsonRecord;
  const rows: [string, unknown][] = [['step', e.step], ['policy', e.policy], ['action taken', e.action], ['detail', e.detail]];
  if (e.event === 'guard-warning') rows.push(['kind', e.kind], ['message', e.message]);
  if (e.report) {
    rows.push(['op', r.op], ['phase', r.phase], ['module', r.module || '(unknown)'], ['call site', r.callSite || '(unknown)'], ['detected in', r.detectedIn], ['precision', r.precision]);
    for (const s of (Array.isArray(r.inputs) ? r.inputs : []) as JsonRecord[]) rows.push([`input ${String(s.name)}`, statsLine(s)]);
    if (r.output) rows.push([r.phase === 'backward' ? 'grad out' : 'output', statsLine(r.output as JsonRecord)]);
    rows.push(['cause', r.cause], ['rule', r.causeId]);
  }
  const remedies = Array.isArray(r.remedies) ? (r.remedies as unknown[]) : [];
  return `<div class="event ${esc(e.event)}"><h3>${esc(e.event)} at step ${esc(e.step)}</h3><table>${rows.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>${remedies.length ? `<p><b>Remedies</b></p><ul>${remedies.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : ''}</div>`;
}

function statsLine(s: JsonRecord): string {
  if (s.shape === undefined) return `= ${JSON.stringify(s.value)}`;
  const parts = [`${String(s.dtype ?? '')}[${(s.shape as number[]).join(', ')}]`];
  for (const k of ['min', 'max', 'minAbs', 'zeros', 'negatives', 'nans', 'infs', 'numel']) if (s[k] !== undefined && s[k] !== 0) parts.push(`${k} ${fmt(s[k])}`);
  return parts.join('  ');
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;margin-top:28px}h3{font-size:14px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right}
.event{border-left:4px solid #d33;padding-left:10px;margin:10px 0}.event.guard-warning{border-color:#e9a23b}
.charts{display:flex;flex-wrap:wrap;gap:12px}.fig{display:inline-block;margin:6px;vertical-align:top}.fig img{max-width:100%}
.HOLDS{color:#176f2c;font-weight:bold}.FAILS,.DOES{color:#b00;font-weight:bold}pre{background:#f6f6f6;padding:8px;overflow:auto}`;

/** Writes the HTML report and its Markdown twin; returns their paths. */
export async function writeReport(dir: string, options: ReportOptions = {}): Promise<{ html: string; md: string }> {
  const root = resolve(dir);
  const htmlPath = resolve(options.out ?? join(root, 'run-report.html'));
  const mdPath = htmlPath.replace(/\.html?$/i, '') + '.md';
  const run = new Run('r0', root, basename(root));
  run.poll();
  const v = run.view(500);
  const h: string[] = [];
  const md: string[] = [];
  const title = `keel report: ${v.name}`;
  h.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head><body><h1>${esc(title)}</h1><p>${esc(root)} · ${esc(v.kind === 'repro' ? 'reproduction / audit output' : 'training run')} · written ${esc(new Date().toISOString())}</p>`);
  md.push(`# ${title}`, '', `${root} · ${v.kind === 'repro' ? 'reproduction / audit output' : 'training run'} · written ${new Date().toISOString()}`, '');
  const section = (name: string) => {
    h.push(`<h2>${esc(name)}</h2>`);
    md.push(`## ${name}`, '');
  };
  if (v.config !== undefined) {
    section('Config');
    const t = kvTable(v.config);
    h.push(htmlTable(t));
    md.push(mdTable(t), '');
  }
  if (v.summary !== undefined) {
    section('Summary');
    const t = kvTable(v.summary);
    h.push(htmlTable(t));
    md.push(mdTable(t), '');
  }
  const m = v.metrics;
  if (m) {
    section('Metrics');
    const notes = [`${m.lines} lines, ${m.points} steps${m.shown < m.points ? ` (curves decimated to ${m.shown} points, extremes kept)` : ''}`];
    if (m.garbled) notes.push(`${m.garbled} garbled line(s) skipped (line ${m.garbledAt.join(', ')})`);
    if (m.nonFinite.length) notes.push(`${m.nonFinite.length} non-finite value(s): ${m.nonFinite.slice(0, 10).map((n) => `${n.field} = ${n.value} at step ${n.step}`).join('; ')}`);
    h.push(`<ul>${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
    md.push(...notes.map((n) => `- ${n}`), '');
    const figs = await curves(v);
    if (figs.length) {
      h.push(`<div class="charts">${figs.map((f) => `<div class="fig">${f.svg}</div>`).join('')}</div>`);
      md.push('Curves: see the HTML report (inline SVG).', '');
    }
    const last = m.steps.step.length ? m.steps.step.length - 1 : -1;
    if (last >= 0) {
      const t: Table = { columns: ['step', ...Object.keys(m.steps.fields)], rows: [[m.steps.step[last], ...Object.values(m.steps.fields).map((c) => c[last])]] };
      h.push('<h3>Last step</h3>', htmlTable(t));
      md.push('### Last step', '', mdTable(t), '');
    }
    if (m.evals.length) {
      const cols = [...new Set(m.evals.flatMap((e) => Object.keys(e)))].filter((c) => c !== 'event');
      const t: Table = { columns: cols, rows: m.evals.map((e) => cols.map((c) => e[c])) };
      h.push('<h3>Evaluations</h3>', htmlTable(t));
      md.push('### Evaluations', '', mdTable(t), '');
    }
    const ht = healthTable(run, options.healthSteps ?? 5);
    if (ht) {
      section('Layer health');
      h.push(htmlTable(ht, 'health'));
      md.push(mdTable(ht), '');
    }
    const events = m.events.filter((e) => e.event === 'guard' || e.event === 'guard-warning');
    section(`Guard events (${events.filter((e) => e.event === 'guard').length}) and warnings (${events.filter((e) => e.event === 'guard-warning').length})`);
    if (!events.length) {
      h.push('<p>none</p>');
      md.push('none', '');
    }
    for (const e of events) {
      h.push(guardHtml(e));
      md.push(`### ${String(e.event)} at step ${String(e.step)}`, '', guardEventMarkdown(e), '');
    }
  }
  const r = v.results;
  if (r) {
    if (r.verdicts.length) {
      section('Claims and verdicts');
      h.push(`<table><tr><th>verdict</th><th>claim</th><th>evidence</th></tr>${r.verdicts.map((c) => `<tr><td class="${esc(c.outcome.split(' ')[0])}">${esc(c.outcome)}</td><td>${esc(c.claim)}</td><td>${esc(c.evidence ?? '')}</td></tr>`).join('')}</table>`);
      md.push(mdTable({ columns: ['verdict', 'claim', 'evidence'], rows: r.verdicts.map((c) => [c.outcome, c.claim, c.evidence ?? '']) }), '');
    }
    for (const t of r.tables) {
      section(`Results: ${t.title}${t.total > t.rows.length ? ` (first ${t.rows.length} of ${t.total})` : ''}`);
      h.push(htmlTable(t));
      md.push(mdTable(t), '');
    }
    if (r.figures.length) {
      section('Figures');
      for (const f of r.figures) {
        const data = readFileSync(join(root, f.path)).toString('base64');
        h.push(`<div class="fig"><div>${esc(f.title)}</div><img alt="${esc(f.title)}" src="data:image/svg+xml;base64,${data}"></div>`);
        md.push(`![${f.title}](${relative(dirname(mdPath), join(root, f.path)).split('\\').join('/')})`, '');
      }
    }
    if (r.reportMd) {
      section('report.md');
      h.push(`<pre>${esc(r.reportMd)}</pre>`);
      md.push(r.reportMd.replace(/^#/gm, '###'), '');
    }
  }
  h.push('</body></html>');
  mkdirSync(dirname(htmlPath), { recursive: true });
  writeFileAtomic(htmlPath, h.join('\n'));
  writeFileAtomic(mdPath, md.join('\n'));
  return { html: htmlPath, md: mdPath };
}
