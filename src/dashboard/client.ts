// The dashboard page's script (runs in the browser; inlined into the page by
// page.ts). Charts are uPlot (global `uPlot`, inlined before this script);
// the layer × step heatmap is drawn on a canvas. Everything the page shows is
// kept on `window.keelDashboard` so that tests can check the data itself.
/* eslint-disable @typescript-eslint/no-explicit-any */

(() => {
  const uPlotLib = (globalThis as any).uPlot;
  const token = new URLSearchParams(location.search).get('token') ?? '';
  const q = (path: string) => `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
  const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

  interface RunRef { id: string; name: string; dir: string }
  const state = {
    runs: [] as RunRef[],
    views: {} as Record<string, any>,
    hidden: new Set<string>(),
    charts: {} as Record<string, any>,
    /** per run id: the heatmap's layers, steps and values (gradient norm; 'NaN'/'Infinity' marked) */
    heatmaps: {} as Record<string, { layers: string[]; steps: number[]; values: (number | string | null)[][]; metric: string }>,
    selectedEvent: null as any,
    renders: 0,
    updates: 0,
  };
  (window as any).keelDashboard = state;

  const el = (tag: string, attrs: Record<string, any> = {}, ...kids: (Node | string | null | undefined)[]) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) (e as any)[k] = v;
      else e.setAttribute(k, String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  };
  const fmt = (x: unknown): string => {
    if (typeof x !== 'number') return x === null || x === undefined ? '' : String(x);
    if (!Number.isFinite(x)) return String(x);
    if (x === 0 || (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5)) return String(Number(x.toPrecision(4)));
    return x.toExponential(3);
  };

  async function fetchRun(id: string) {
    const r = await fetch(q(`/api/run/${id}`));
    if (!r.ok) return;
    state.views[id] = await r.json();
    state.updates++;
    scheduleRender();
  }

  let pending = false;
  function scheduleRender() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  }

  function connect() {
    const live = document.getElementById('live')!;
    const es = new EventSource(q('/api/events'));
    es.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; });
    es.addEventListener('error', () => { live.textContent = 'reconnecting…'; live.className = 'live'; });
    es.addEventListener('runs', (ev: MessageEvent) => {
      const list = JSON.parse(ev.data) as RunRef[];
      state.runs = list;
      for (const r of list) if (!state.views[r.id]) void fetchRun(r.id);
      scheduleRender();
    });
    es.addEventListener('update', (ev: MessageEvent) => void fetchRun(JSON.parse(ev.data).id));
  }

  const shownRuns = () => state.runs.filter((r) => !state.hidden.has(r.id) && state.views[r.id]).map((r) => state.views[r.id]);

  function renderRuns() {
    const box = document.getElementById('runs')!;
    box.replaceChildren(...state.runs.map((r, i) => {
      const v = state.views[r.id];
      const m = v?.metrics;
      const cb = el('input', { type: 'checkbox', 'data-run': r.id }) as HTMLInputElement;
      cb.checked = !state.hidden.has(r.id);
      cb.onchange = () => { if (cb.checked) state.hidden.delete(r.id); else state.hidden.add(r.id); scheduleRender(); };
      const badges: (Node | null)[] = [];
      if (m) {
        badges.push(el('span', { class: 'badge', text: `${m.lines} lines` }));
        if (m.points > m.shown) badges.push(el('span', { class: 'badge', text: `${m.shown} of ${m.points} points shown (extremes and events kept)` }));
        if (m.garbled) badges.push(el('span', { class: 'badge warn garbled', 'data-count': m.garbled, title: `lines ${m.garbledAt.join(', ')}`, text: `${m.garbled} garbled line${m.garbled === 1 ? '' : 's'} skipped` }));
        const guards = m.events.filter((e: any) => e.event === 'guard').length;
        if (guards) badges.push(el('span', { class: 'badge bad', text: `${guards} guard event${guards === 1 ? '' : 's'}` }));
      }
      if (v?.kind === 'repro') badges.push(el('span', { class: 'badge', text: 'repro' }));
      return el('label', { class: 'run', style: `border-left: 6px solid ${COLOURS[i % COLOURS.length]}` }, cb, ` ${r.name}`, ...badges);
    }));
  }

  function destroyCharts() {
    for (const c of Object.values(state.charts)) c.destroy();
    state.charts = {};
  }

  /** A uPlot chart of several (x, y) series (different x per series joined on one axis). */
  function lineChart(parent: HTMLElement, key: string, title: string, series: { label: string; x: number[]; y: (number | null)[]; colour: string; points?: boolean }[], opts: { logY?: boolean; events?: number[] } = {}) {
    if (!series.length) return;
    const box = el('div', { class: 'chart', 'data-chart': key });
    parent.append(box);
    const data = series.length === 1 ? [series[0].x, series[0].y] : uPlotLib.join(series.map((s) => [s.x, s.y]));
    const logOk = opts.logY && series.every((s) => s.y.every((v) => v === null || v > 0));
    const events = opts.events ?? [];
    const chart = new uPlotLib({
      title, width: 440, height: 220,
      scales: { x: { time: false }, y: logOk ? { distr: 3 } : {} },
      axes: [{ label: 'step' }, {}],
      series: [{ label: 'step' }, ...series.map((s) => ({ label: s.label, stroke: s.colour, width: 1.5, spanGaps: false, points: { show: s.points ?? false, size: 5 } }))],
      hooks: {
        draw: [(u: any) => {
          // guard events and non-finite steps as red verticals
          const ctx = u.ctx as CanvasRenderingContext2D;
          ctx.save();
          ctx.strokeStyle = 'rgba(220, 30, 30, 0.7)';
          ctx.lineWidth = 1;
          for (const s of events) {
            const x = u.valToPos(s, 'x', true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    }, data, box);
    state.charts[key] = chart;
  }

  function eventSteps(v: any): number[] {
    const m = v.metrics;
    if (!m) return [];
    return [...m.events.filter((e: any) => e.event === 'guard').map((e: any) => e.step), ...m.nonFinite.map((n: any) => n.step)];
  }

  function renderCurves(main: HTMLElement, views: any[]) {
    const train = views.filter((v) => v.metrics && v.metrics.points + v.metrics.evals.length > 0);
    if (!train.length) return;
    main.append(el('h2', { text: 'Curves' }));
    const box = el('div', { class: 'charts' });
    main.append(box);
    const colourOf = (v: any) => COLOURS[state.runs.findIndex((r) => r.id === v.id) % COLOURS.length];
    const fields = ['loss', 'accuracy', 'lr', 'gradNorm', 'stepTimeMs'];
    const titles: Record<string, string> = { loss: 'loss', accuracy: 'accuracy', lr: 'learning rate', gradNorm: 'gradient norm', stepTimeMs: 'step time (ms)' };
    const events = views.flatMap(eventSteps);
    for (const f of fields) {
      const series: any[] = [];
      for (const v of train) {
        const m = v.metrics;
        if (m.steps.fields[f]) series.push({ label: train.length > 1 ? `${v.name}` : f, x: m.steps.step, y: m.steps.fields[f], colour: colourOf(v) });
        const ev = m.evals.filter((e: any) => typeof e.step === 'number' && f in e);
        if (ev.length) series.push({ label: `eval ${f}${train.length > 1 ? ` ${v.name}` : ''}`, x: ev.map((e: any) => e.step), y: ev.map((e: any) => (typeof e[f] === 'number' ? e[f] : null)), colour: colourOf(v), points: true });
      }
      lineChart(box, f, titles[f], series, { logY: f === 'loss' || f === 'gradNorm' || f === 'lr', events });
    }
  }

  function renderTimeline(main: HTMLElement, views: any[]) {
    const items: { run: any; e: any; kind: string; step: number }[] = [];
    for (const v of views) {
      const m = v.metrics;
      if (!m) continue;
      for (const e of m.events) if (typeof e.step === 'number') items.push({ run: v, e, kind: e.event === 'guard' ? 'guard' : e.event === 'guard-warning' ? 'guard-warning' : 'other', step: e.step });
      const seen = new Set(m.events.filter((e: any) => e.event === 'guard').map((e: any) => e.step));
      for (const n of m.nonFinite) if (!seen.has(n.step)) items.push({ run: v, e: { event: 'non-finite', ...n }, kind: 'nonfinite', step: n.step });
    }
    if (!items.length) return;
    const maxStep = Math.max(1, ...views.flatMap((v) => (v.metrics ? [v.metrics.steps.step.at(-1) ?? 0, ...v.metrics.events.map((e: any) => e.step ?? 0)] : [])));
    main.append(el('h2', { text: `Events (${items.length}) — click one for its report` }));
    const line = el('div', { class: 'timeline', id: 'timeline' });
    for (const it of items.slice(0, 2000)) {
      const b = el('button', {
        class: `event ${it.kind}`, 'data-step': it.step, 'data-run': it.run.id, 'data-kind': it.e.event,
        title: `${it.e.event} at step ${it.step} (${it.run.name})`, style: `left: ${(100 * it.step) / maxStep}%`,
      });
      b.onclick = () => showEvent(it.run, it.e);
      line.append(b);
    }
    main.append(line, el('div', { class: 'legend-note', text: 'red: guard event · orange: guard warning · purple: non-finite metric · grey: other' }));
  }

  function statsText(s: any): string {
    if (!s) return '';
    if (s.shape === undefined) return `= ${JSON.stringify(s.value)}`;
    const parts = [`${s.dtype ?? ''}[${(s.shape as number[]).join(', ')}]`];
    for (const k of ['min', 'max', 'minAbs', 'zeros', 'negatives', 'nans', 'infs', 'numel']) if (s[k] !== undefined && s[k] !== 0) parts.push(`${k} ${fmt(s[k])}`);
    return parts.join('  ');
  }

  function showEvent(run: any, e: any) {
    state.selectedEvent = { run: run.id, event: e };
    const box = document.getElementById('event-detail')!;
    const rows: [string, string][] = [['run', run.name], ['event', String(e.event)], ['step', String(e.step)]];
    if (e.policy !== undefined) rows.push(['policy', String(e.policy)]);
    if (e.action !== undefined) rows.push(['action taken', String(e.action)]);
    if (e.detail !== undefined) rows.push(['detail', String(e.detail)]);
    if (e.kind !== undefined) rows.push(['kind', String(e.kind)]);
    if (e.message !== undefined) rows.push(['message', String(e.message)]);
    if (e.field !== undefined) rows.push([String(e.field), String(e.value)]);
    const r = e.report;
    if (r) {
      rows.push(['op', String(r.op ?? '')], ['phase', String(r.phase ?? '')], ['module', String(r.module || '(unknown)')], ['call site', String(r.callSite || '(unknown)')], ['detected in', String(r.detectedIn ?? '')]);
      if (r.precision) rows.push(['precision', String(r.precision)]);
      for (const s of r.inputs ?? []) rows.push([`input ${s.name}`, statsText(s)]);
      if (r.output) rows.push([r.phase === 'backward' ? 'grad out' : 'output', statsText(r.output)]);
      rows.push(['cause', String(r.cause ?? '')]);
      if (r.causeId) rows.push(['rule', String(r.causeId)]);
    }
    const close = el('button', { text: 'close', onclick: () => { box.hidden = true; state.selectedEvent = null; } });
    box.replaceChildren(...[
      el('h3', { text: `${e.event} at step ${e.step}` }),
      el('table', { class: 'report' }, ...rows.map(([k, v]) => el('tr', {}, el('td', { text: k }), el('td', { class: `field-${k.replace(/\W+/g, '-')}`, text: v })))),
      r?.remedies?.length ? el('div', {}, el('b', { text: 'Remedies' }), el('ul', {}, ...r.remedies.map((x: string) => el('li', { text: x })))) : null,
      close,
    ].filter((x): x is HTMLElement => x !== null));
    box.hidden = false;
  }

  function heatColour(v: number | string | null, lo: number, hi: number): string {
    if (v === null) return '#fff';
    if (typeof v === 'string') return '#ff00ff';
    if (v <= 0) return '#f0f0f0';
    const t = hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 0.5;
    const c = Math.max(0, Math.min(1, t));
    // white → blue → dark red
    const r = Math.round(c < 0.5 ? 255 * (1 - c * 2) + 30 * c * 2 : 30 + 170 * (c - 0.5) * 2);
    const g = Math.round(c < 0.5 ? 255 * (1 - c * 2) + 100 * c * 2 : 100 * (1 - (c - 0.5) * 2));
    const b = Math.round(c < 0.5 ? 255 * (1 - c) : 200 * (1 - (c - 0.5) * 2));
    return `rgb(${r},${g},${b})`;
  }

  function renderHealth(main: HTMLElement, views: any[]) {
    const runs = views.filter((v) => v.metrics?.health?.steps?.length);
    if (!runs.length) return;
    main.append(el('h2', { text: 'Layer health' }));
    for (const v of runs) {
      const h = v.metrics.health;
      main.append(el('h3', { text: `${v.name}: gradient norm per layer (log10 colour; magenta: NaN/inf)` }));
      const g = h.values.gradNorm ?? {};
      const values = h.layers.map((l: string) => g[l] ?? h.steps.map(() => null));
      const finite = values.flat().filter((x: any) => typeof x === 'number' && x > 0) as number[];
      const lo = finite.length ? Math.log10(Math.min(...finite)) : 0;
      const hi = finite.length ? Math.log10(Math.max(...finite)) : 1;
      const labelW = 140;
      const cw = Math.max(2, Math.min(24, Math.floor(700 / Math.max(1, h.steps.length))));
      const ch = 16;
      const canvas = el('canvas', { class: 'heatmap', 'data-run': v.id, width: labelW + cw * h.steps.length, height: ch * h.layers.length + 18 }) as HTMLCanvasElement;
      const ctx = canvas.getContext('2d')!;
      ctx.font = '11px sans-serif';
      ctx.fillStyle = '#222';
      h.layers.forEach((l: string, i: number) => {
        ctx.fillStyle = '#222';
        ctx.fillText(l.length > 22 ? `…${l.slice(-21)}` : l, 2, ch * i + 12);
        values[i].forEach((x: any, j: number) => {
          ctx.fillStyle = heatColour(x, lo, hi);
          ctx.fillRect(labelW + cw * j, ch * i, cw, ch - 1);
        });
      });
      ctx.fillStyle = '#555';
      ctx.fillText(`step ${h.steps[0]}`, labelW, ch * h.layers.length + 13);
      const last = `step ${h.steps.at(-1)}`;
      ctx.fillText(last, Math.max(labelW + 60, canvas.width - ctx.measureText(last).width - 2), ch * h.layers.length + 13);
      canvas.title = `gradient norm: 10^${lo.toFixed(1)} … 10^${hi.toFixed(1)}`;
      canvas.onmousemove = (ev: MouseEvent) => {
        const j = Math.floor((ev.offsetX - labelW) / cw);
        const i = Math.floor(ev.offsetY / ch);
        if (j >= 0 && i >= 0 && i < h.layers.length && j < h.steps.length) canvas.title = `${h.layers[i]} step ${h.steps[j]}: ${fmt(values[i][j])}`;
      };
      main.append(canvas);
      state.heatmaps[v.id] = { metric: 'gradNorm', layers: h.layers, steps: h.steps, values };
      const box = el('div', { class: 'charts' });
      main.append(box);
      const perLayer = (metric: string, title: string, logY: boolean) => {
        const m = h.values[metric];
        if (!m) return;
        lineChart(box, `${metric}:${v.id}`, `${title} (${v.name})`, h.layers.filter((l: string) => m[l].some((x: any) => x !== null)).map((l: string, i: number) => ({
          label: l, x: h.steps, y: m[l].map((x: any) => (typeof x === 'number' ? x : null)), colour: COLOURS[i % COLOURS.length],
        })), { logY });
      };
      perLayer('updateRatio', 'update / weight ratio per layer', true);
      perLayer('saturation', 'saturated fraction per layer', false);
      perLayer('dead', 'dead fraction per layer', false);
      perLayer('overflow', 'precision overflow count per layer', false);
      perLayer('underflow', 'precision underflow count per layer', false);
      perLayer('nonFinite', 'non-finite gradient values per layer', false);
      if (h.lossScale.some((x: any) => x !== null)) lineChart(box, `lossScale:${v.id}`, `loss scale (${v.name})`, [{ label: 'loss scale', x: h.steps, y: h.lossScale, colour: COLOURS[0] }], { logY: true });
    }
  }

  function table(columns: string[], rows: unknown[][]) {
    return el('table', { class: 'data' },
      el('tr', {}, ...columns.map((c) => el('th', { text: c }))),
      ...rows.map((r) => el('tr', {}, ...r.map((x) => el('td', { class: typeof x === 'number' ? '' : 'text', text: fmt(x) })))));
  }

  function renderResults(main: HTMLElement, views: any[]) {
    for (const v of views.filter((x) => x.results)) {
      const r = v.results;
      main.append(el('h2', { text: `${v.name}: results` }));
      if (r.verdicts.length) {
        main.append(el('h3', { text: 'Claims and verdicts' }));
        const t = el('table', { class: 'data verdicts' }, el('tr', {}, el('th', { text: 'verdict' }), el('th', { text: 'claim' }), el('th', { text: 'evidence' })));
        for (const c of r.verdicts) t.append(el('tr', {}, el('td', { class: `text verdict-${String(c.outcome).split(' ')[0]}`, text: c.outcome }), el('td', { class: 'text', text: c.claim }), el('td', { class: 'text', text: c.evidence ?? '' })));
        main.append(t);
      }
      for (const t of r.tables) {
        main.append(el('h3', { text: `${t.title}${t.total > t.rows.length ? ` (first ${t.rows.length} of ${t.total})` : ''}` }), table(t.columns, t.rows));
      }
      if (r.figures.length) {
        main.append(el('h3', { text: 'Figures' }));
        const box = el('div', { class: 'figures' });
        for (const f of r.figures) box.append(el('div', { class: 'figure' }, el('div', { text: f.title }), el('img', { src: q(`/files/${v.id}/${f.path.split('/').map(encodeURIComponent).join('/')}`), alt: f.title })));
        main.append(box);
      }
      if (r.reportMd) main.append(el('h3', { text: 'report.md' }), el('pre', { text: r.reportMd }));
    }
  }

  function renderJson(main: HTMLElement, views: any[]) {
    for (const v of views) {
      if (v.config !== undefined) main.append(el('h3', { text: `${v.name}: config` }), el('pre', { text: JSON.stringify(v.config, null, 2) }));
      if (v.summary !== undefined) main.append(el('h3', { text: `${v.name}: summary` }), el('pre', { text: JSON.stringify(v.summary, null, 2) }));
    }
  }

  function render() {
    renderRuns();
    const main = document.getElementById('main')!;
    destroyCharts();
    state.heatmaps = {};
    main.replaceChildren();
    const views = shownRuns();
    if (!views.length) main.append(el('p', { text: state.runs.length ? 'waiting for data…' : 'no runs yet' }));
    renderTimeline(main, views);
    renderCurves(main, views);
    renderHealth(main, views);
    renderResults(main, views);
    renderJson(main, views);
    state.renders++;
  }

  connect();
})();
