// Reading run folders for the dashboard and the report: `keel train` runs
// (metrics.jsonl, summary.json, config.json) and `keel repro`/`audit` outputs
// (results.json, report.md, SVG figures). A metrics file is read by a tail
// that remembers its byte offset, so a growing file costs only its new lines;
// a line that is not a JSON object is counted, never fatal; a last line
// without its newline is held back until the writer finishes it.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

export type JsonRecord = Record<string, unknown>;

/** The read buffer shared by every tail (reads are synchronous). */
let CHUNK = Buffer.allocUnsafe(8 << 20);

/** Columns of the step lines: step and every numeric field (NaN for null / non-finite markers). */
export interface StepColumns {
  step: number[];
  fields: Record<string, number[]>;
}

export interface HealthRow {
  step: number;
  layers: Record<string, Record<string, number>>;
  lossScale?: number;
}

/** Parsed lines of one metrics.jsonl, kept incrementally. */
export class MetricsTail {
  private offset = 0;
  private pending: Buffer = Buffer.alloc(0);
  private ino = -1;
  lines = 0;
  garbled = 0;
  /** 1-based line numbers of the first garbled lines (at most 20). */
  garbledAt: number[] = [];
  steps: StepColumns = { step: [], fields: {} };
  evals: JsonRecord[] = [];
  health: HealthRow[] = [];
  /** guard events, guard warnings, resumes and any other `event` line that is not eval/health. */
  events: JsonRecord[] = [];
  /** Step-line fields that were NaN or ±inf in the line itself (the first 10,000). */
  nonFinite: { step: number; field: string; value: string }[] = [];
  /** Bumped whenever new lines were read. */
  version = 0;

  constructor(readonly path: string) {}

  /** Reads what was appended since the last call; true when anything new was parsed. */
  poll(): boolean {
    let st;
    try {
      st = statSync(this.path);
    } catch {
      return false;
    }
    if (st.ino !== this.ino || st.size < this.offset) {
      // a new file (or one truncated by a resume): start over
      if (this.ino !== -1) this.reset();
      this.ino = st.ino;
    }
    if (st.size === this.offset) return false;
    const fd = openSync(this.path, 'r');
    try {
      // in pieces into one reused buffer: a 140 MB file costs 8 MiB, not a
      // fresh 140 MB allocation (and its page faults) per poll
      const want = st.size - this.offset;
      let got = 0;
      while (got < want) {
        const room = CHUNK.length - this.pending.length;
        this.pending.copy(CHUNK, 0);
        const n = readSync(fd, CHUNK, this.pending.length, Math.min(room, want - got), this.offset + got);
        if (n === 0) break;
        got += n;
        const size = this.pending.length + n;
        const last = CHUNK.lastIndexOf(10, size - 1);
        if (last < 0) {
          // one line longer than the buffer: grow the carry and read on
          this.pending = Buffer.from(CHUNK.subarray(0, size));
          if (this.pending.length >= CHUNK.length) CHUNK = Buffer.allocUnsafe(CHUNK.length * 2);
          continue;
        }
        this.parse(CHUNK, last);
        this.pending = Buffer.from(CHUNK.subarray(last + 1, size));
      }
      this.offset += got;
    } finally {
      closeSync(fd);
    }
    this.version++;
    return true;
  }

  /** The unterminated bytes at the end of the file (a line being written, or torn by a kill). */
  get pendingBytes(): number {
    return this.pending.length;
  }

  private reset(): void {
    this.offset = 0;
    this.pending = Buffer.alloc(0);
    this.lines = 0;
    this.garbled = 0;
    this.garbledAt = [];
    this.steps = { step: [], fields: {} };
    this.evals = [];
    this.health = [];
    this.events = [];
    this.nonFinite = [];
    this.fieldCount = 0;
    this.columnKey = [];
    this.columnAt = [];
  }

  private parse(data: Buffer, end: number): void {
    let start = 0;
    while (start < end) {
      let nl = data.indexOf(10, start);
      if (nl < 0 || nl > end) nl = end;
      if (nl > start) {
        this.lines++;
        if (this.fast.parse(data, start, nl)) {
          this.addStep(this.fast.step, this.fast.keys, this.fast.values, this.fast.n);
          start = nl + 1;
          continue;
        }
        const text = data.toString('utf8', start, nl);
        let rec: unknown;
        try {
          rec = JSON.parse(text);
        } catch {
          rec = undefined;
        }
        if (rec === null || typeof rec !== 'object' || Array.isArray(rec) || !this.add(rec as JsonRecord)) {
          this.garbled++;
          if (this.garbledAt.length < 20) this.garbledAt.push(this.lines);
        }
      }
      start = nl + 1;
    }
  }

  private readonly fast = new FlatLineParser();

  /** A step line from the fast parser: keys[0..n) with their values. */
  private addStep(step: number, keys: string[], values: Float64Array, n: number): void {
    const s = this.steps;
    const i = s.step.length;
    s.step.push(step);
    for (let j = 0; j < n; j++) {
      const k = keys[j];
      const x = values[j];
      if (x !== x || x === Infinity || x === -Infinity) {
        if (this.nonFinite.length < 10000) this.nonFinite.push({ step, field: k, value: label(x) });
      }
      // the same key string as the previous line's at this position (the
      // parser reuses it) has the same column: no lookup by name
      let col = this.columnKey[j] === k ? this.columnAt[j] : s.fields[k];
      if (col === undefined) {
        col = s.fields[k] = new Array<number>(i).fill(Number.NaN);
        this.fieldCount++;
      }
      this.columnKey[j] = k;
      this.columnAt[j] = col;
      col.push(x);
    }
    // a field this line lacks is NaN there (columns stay aligned)
    if (n !== this.fieldCount) for (const k in s.fields) if (s.fields[k].length === i) s.fields[k].push(Number.NaN);
  }

  private fieldCount = 0;
  private columnKey: string[] = [];
  private columnAt: number[][] = [];

  private add(r: JsonRecord): boolean {
    const step = r.step;
    if (typeof step !== 'number' || !Number.isFinite(step)) return r.event !== undefined && (this.events.push(r), true);
    const event = r.event;
    if (event === undefined) {
      const s = this.steps;
      const i = s.step.length;
      s.step.push(step);
      for (const k in r) {
        if (k === 'step') continue;
        const x = num(r[k]);
        if (x === undefined) continue;
        if (!Number.isFinite(x) && this.nonFinite.length < 10000) this.nonFinite.push({ step, field: k, value: label(x) });
        let col = s.fields[k];
        if (col === undefined) {
          col = s.fields[k] = new Array<number>(i).fill(Number.NaN);
          this.fieldCount++;
        }
        col.push(x);
      }
      for (const k in s.fields) if (s.fields[k].length === i) s.fields[k].push(Number.NaN);
    } else if (event === 'eval') this.evals.push(r);
    else if (event === 'health') {
      const layers: Record<string, Record<string, number>> = {};
      const src = (r.layers ?? {}) as Record<string, Record<string, unknown>>;
      for (const [name, m] of Object.entries(src)) {
        if (m === null || typeof m !== 'object') continue;
        const row: Record<string, number> = {};
        for (const [k, v] of Object.entries(m)) {
          const x = num(v);
          if (x !== undefined) row[k] = x;
        }
        layers[name] = row;
      }
      const ls = num(r.lossScale);
      this.health.push({ step, layers, ...(r.lossScale !== undefined && ls !== undefined ? { lossScale: ls } : {}) });
    } else this.events.push(r);
    return true;
  }
}

/** A number from a metrics field: JSON null is NaN (JSON.stringify writes NaN and ±inf as null); 'NaN'/'Infinity' strings too. */
export function num(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === null) return Number.NaN;
  if (typeof v === 'string') {
    const s = v.toLowerCase();
    if (s === 'nan') return Number.NaN;
    if (s === 'infinity' || s === 'inf') return Infinity;
    if (s === '-infinity' || s === '-inf') return -Infinity;
  }
  return undefined;
}

/**
 * Decimation that keeps the shape: the x range is cut into `buckets` equal
 * index ranges and each keeps its first, min, max and last point (M4); every
 * non-finite point is kept. Returns the kept indices, ascending.
 */
export function decimateIndices(ys: number[][], n: number, buckets: number): number[] {
  if (n <= buckets * 4) return Array.from({ length: n }, (_, i) => i);
  const keep = new Uint8Array(n);
  const size = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * size);
    const hi = Math.min(n, Math.floor((b + 1) * size));
    if (hi <= lo) continue;
    keep[lo] = 1;
    keep[hi - 1] = 1;
    for (const y of ys) {
      let iMin = -1, iMax = -1, vMin = Infinity, vMax = -Infinity;
      for (let i = lo; i < hi; i++) {
        const v = y[i];
        if (v !== v || v === Infinity || v === -Infinity) {
          keep[i] = 1;
          continue;
        }
        if (v < vMin) { vMin = v; iMin = i; }
        if (v > vMax) { vMax = v; iMax = i; }
      }
      if (iMin >= 0) keep[iMin] = 1;
      if (iMax >= 0) keep[iMax] = 1;
    }
  }
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (keep[i]) out.push(i);
  return out;
}

/** JSON-safe number: non-finite values travel as null, and are listed apart. */
const safe = (v: number): number | null => (Number.isFinite(v) ? v : null);
const label = (v: number): string => (Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity');

export interface Figure {
  /** path relative to the run folder */
  path: string;
  title: string;
}

export interface RunView {
  id: string;
  /** the folder, as given or found */
  dir: string;
  name: string;
  kind: 'train' | 'repro' | 'empty';
  metrics?: {
    lines: number;
    garbled: number;
    garbledAt: number[];
    pendingBytes: number;
    points: number;
    shown: number;
    steps: { step: number[]; fields: Record<string, (number | null)[]> };
    nonFinite: { step: number; field: string; value: string }[];
    evals: JsonRecord[];
    health: { layers: string[]; metrics: string[]; steps: number[]; values: Record<string, Record<string, (number | string | null)[]>>; lossScale: (number | null)[] };
    events: JsonRecord[];
  };
  summary?: unknown;
  config?: unknown;
  results?: { verdicts: Verdict[]; tables: Table[]; figures: Figure[]; reportMd?: string };
}

export interface Verdict {
  claim: string;
  outcome: string;
  evidence?: string;
  rule?: string;
}

export interface Table {
  title: string;
  columns: string[];
  rows: unknown[][];
  total: number;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function outcomeOf(o: JsonRecord): string | undefined {
  for (const k of ['verdict', 'outcome', 'status', 'result']) if (typeof o[k] === 'string') return o[k] as string;
  if (typeof o.holds === 'boolean') return o.holds ? 'HOLDS' : 'FAILS';
  if (o.holds === null && 'holds' in o) return 'NOT TESTABLE';
  return undefined;
}

/** A claim record: `claim` (stable, mde, nonsmooth) or `statement` (sing) with an outcome. */
function isClaim(x: unknown): boolean {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const o = x as JsonRecord;
  return typeof o.claim === 'string' || (typeof o.statement === 'string' && outcomeOf(o) !== undefined);
}

/**
 * Claims with their verdicts, wherever a study's results.json keeps them
 * (`verdicts`, `claims`, `verdict.claims`, ...): any array of objects with
 * a `claim` and an outcome.
 */
export function findVerdicts(results: unknown): Verdict[] {
  const out: Verdict[] = [];
  const visit = (node: unknown, depth: number) => {
    if (depth > 4 || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const x of node) {
        if (isClaim(x)) {
          const o = x as JsonRecord;
          out.push({ claim: (typeof o.claim === 'string' ? o.claim : o.statement) as string, outcome: outcomeOf(o) ?? '?', ...(o.evidence !== undefined ? { evidence: String(o.evidence) } : {}), ...(o.rule !== undefined ? { rule: String(o.rule) } : {}) });
        } else visit(x, depth + 1);
      }
      return;
    }
    for (const v of Object.values(node)) visit(v, depth + 1);
  };
  visit(results, 0);
  return out;
}

/** Top-level arrays of flat records in results.json, as tables (the first 200 rows). */
export function findTables(results: unknown, maxRows = 200): Table[] {
  const tables: Table[] = [];
  const visit = (node: unknown, path: string, depth: number) => {
    if (depth > 2 || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      const objs = node.filter((x) => x !== null && typeof x === 'object' && !Array.isArray(x)) as JsonRecord[];
      if (objs.length === 0 || objs.length !== node.length || objs.some(isClaim)) return;
      const columns: string[] = [];
      for (const o of objs.slice(0, 50)) for (const [k, v] of Object.entries(o)) if (!columns.includes(k) && (v === null || typeof v !== 'object')) columns.push(k);
      if (columns.length === 0) return;
      tables.push({ title: path, columns, rows: objs.slice(0, maxRows).map((o) => columns.map((c) => o[c] ?? '')), total: objs.length });
      return;
    }
    for (const [k, v] of Object.entries(node)) visit(v, path ? `${path}.${k}` : k, depth + 1);
  };
  visit(results, '', 0);
  return tables;
}

/** SVG figures in a run folder (and one level of sub-folders), sorted. */
export function findFigures(dir: string): Figure[] {
  const out: Figure[] = [];
  const walk = (d: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isFile() && e.name.endsWith('.svg')) out.push({ path: relative(dir, p).split(sep).join('/'), title: e.name.replace(/\.svg$/, '') });
      else if (e.isDirectory() && depth < 1 && e.name !== 'checkpoints' && e.name !== 'tb') walk(p, depth + 1);
    }
  };
  walk(dir, 0);
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** Is `dir` a run folder (something the dashboard can show)? */
export function isRunDir(dir: string): boolean {
  return ['metrics.jsonl', 'results.json', 'summary.json'].some((f) => existsSync(join(dir, f)));
}

/** A run folder as the dashboard and the report see it. */
export class Run {
  readonly tail: MetricsTail;
  private cache: { key: string; view: RunView } | undefined;

  constructor(readonly id: string, readonly dir: string, readonly name: string) {
    this.tail = new MetricsTail(join(dir, 'metrics.jsonl'));
  }

  /** Reads new metrics lines; true when the run changed (new lines, or results/summary written). */
  poll(): boolean {
    const a = this.tail.poll();
    const key = this.sideKey();
    const b = this.cache !== undefined && !this.cache.key.endsWith(key);
    return a || b;
  }

  private sideKey(): string {
    return ['results.json', 'summary.json', 'config.json', 'report.md'].map((f) => {
      try {
        const s = statSync(join(this.dir, f));
        return `${s.size}:${s.mtimeMs}`;
      } catch {
        return '-';
      }
    }).join('|');
  }

  /** The run decimated to at most ~4 × `buckets` points per series, every event kept. */
  view(buckets = 2000): RunView {
    const key = `${this.tail.version}:${buckets}#${this.sideKey()}`;
    if (this.cache?.key === key) return this.cache.view;
    const t = this.tail;
    const results = readJson(join(this.dir, 'results.json'));
    const v: RunView = {
      id: this.id,
      dir: this.dir,
      name: this.name,
      kind: results !== undefined ? 'repro' : t.lines > 0 || existsSync(t.path) ? 'train' : 'empty',
    };
    if (t.lines > 0 || existsSync(t.path)) {
      const cols = t.steps;
      const names = Object.keys(cols.fields);
      const idx = decimateIndices(names.map((k) => cols.fields[k]), cols.step.length, buckets);
      const fields: Record<string, (number | null)[]> = {};
      for (const k of names) fields[k] = idx.map((i) => safe(cols.fields[k][i]));
      const hl = healthView(t.health, buckets);
      v.metrics = {
        lines: t.lines,
        garbled: t.garbled,
        garbledAt: t.garbledAt,
        pendingBytes: t.pendingBytes,
        points: cols.step.length,
        shown: idx.length,
        steps: { step: idx.map((i) => cols.step[i]), fields },
        nonFinite: t.nonFinite,
        evals: t.evals,
        health: hl,
        events: t.events,
      };
    }
    const summary = readJson(join(this.dir, 'summary.json'));
    if (summary !== undefined) v.summary = summary;
    const config = readJson(join(this.dir, 'config.json'));
    if (config !== undefined) v.config = config;
    if (results !== undefined || findFigures(this.dir).length) {
      let reportMd: string | undefined;
      try {
        reportMd = readFileSync(join(this.dir, 'report.md'), 'utf8');
      } catch { /* none */ }
      v.results = { verdicts: findVerdicts(results), tables: findTables(results), figures: findFigures(this.dir), ...(reportMd !== undefined ? { reportMd } : {}) };
      if (v.kind === 'empty') v.kind = 'repro';
    }
    this.cache = { key, view: v };
    return v;
  }
}

/** Health lines as layer × step matrices per metric; more than `buckets` lines are merged by max per bucket (extremes kept). */
function healthView(rows: HealthRow[], buckets: number) {
  const layers: string[] = [];
  const metrics: string[] = [];
  for (const r of rows) {
    for (const [name, m] of Object.entries(r.layers)) {
      if (!layers.includes(name)) layers.push(name);
      for (const k of Object.keys(m)) if (!metrics.includes(k)) metrics.push(k);
    }
  }
  const groups: HealthRow[][] = [];
  if (rows.length <= buckets) for (const r of rows) groups.push([r]);
  else {
    const size = rows.length / buckets;
    for (let b = 0; b < buckets; b++) groups.push(rows.slice(Math.floor(b * size), Math.floor((b + 1) * size)));
  }
  const values: Record<string, Record<string, (number | string | null)[]>> = {};
  for (const m of metrics) {
    values[m] = {};
    for (const l of layers) {
      values[m][l] = groups.map((g) => {
        let best: number | string | undefined;
        for (const r of g) {
          const x = r.layers[l]?.[m];
          if (x === undefined) continue;
          if (!Number.isFinite(x)) return label(x);
          if (best === undefined || (typeof best === 'number' && x > best)) best = x;
        }
        return best === undefined ? null : best;
      });
    }
  }
  return {
    layers,
    metrics,
    steps: groups.map((g) => g[g.length - 1].step),
    values,
    lossScale: groups.map((g) => {
      const x = g[g.length - 1].lossScale;
      return x === undefined ? null : safe(x);
    }),
  };
}

const POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/**
 * The fast path for a million-line file: a step line `{"key":number|null,...}`
 * (ASCII keys, no "event") is read straight from the bytes, without a string
 * or an object per line. Keys are compared with the previous line's key at the
 * same position and their strings reused; numbers with at most 15 significant
 * digits and |exponent| ≤ 22 are exact by one multiplication or division
 * (Clinger's fast path, as strtod does), others go through Number(). Anything
 * else (strings, nesting, escapes, an event line) returns false, and the line
 * is parsed by JSON.parse.
 */
class FlatLineParser {
  step = 0;
  n = 0;
  keys: string[] = [];
  values = new Float64Array(64);
  private cacheBytes: Buffer[] = [];
  private cacheKeys: string[] = [];

  parse(d: Buffer, s: number, e: number): boolean {
    let i = s;
    while (e > i && (d[e - 1] === 13 || d[e - 1] === 32)) e--;
    if (d[i] !== 0x7b || d[e - 1] !== 0x7d) return false;
    i++;
    let n = 0;
    let p = 0;
    let step = Number.NaN;
    for (;;) {
      while (d[i] === 32) i++;
      if (d[i] !== 0x22) return false;
      const ks = ++i;
      while (i < e && d[i] !== 0x22) {
        if (d[i] === 0x5c || d[i] >= 0x80) return false;
        i++;
      }
      const ke = i++;
      while (d[i] === 32) i++;
      if (d[i++] !== 0x3a) return false;
      while (d[i] === 32) i++;
      // the value
      let x: number;
      const c = d[i];
      if (c === 0x6e) {
        if (d[i + 1] !== 0x75 || d[i + 2] !== 0x6c || d[i + 3] !== 0x6c) return false;
        x = Number.NaN;
        i += 4;
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        const vs = i;
        let neg = false;
        if (c === 0x2d) { neg = true; i++; }
        let mant = 0, digits = 0, exp = 0;
        let ok = true;
        while (d[i] >= 0x30 && d[i] <= 0x39) {
          if (digits > 0 || d[i] !== 0x30) digits++;
          mant = mant * 10 + (d[i] - 0x30);
          i++;
        }
        if (d[i] === 0x2e) {
          i++;
          while (d[i] >= 0x30 && d[i] <= 0x39) {
            if (digits > 0 || d[i] !== 0x30) digits++;
            mant = mant * 10 + (d[i] - 0x30);
            exp--;
            i++;
          }
        }
        if (d[i] === 0x65 || d[i] === 0x45) {
          i++;
          let eneg = false;
          if (d[i] === 0x2d) { eneg = true; i++; } else if (d[i] === 0x2b) i++;
          let ev = 0;
          while (d[i] >= 0x30 && d[i] <= 0x39) { ev = ev * 10 + (d[i] - 0x30); i++; }
          exp += eneg ? -ev : ev;
        }
        if (digits > 15 || exp < -22 || exp > 22) ok = false;
        if (ok) x = exp < 0 ? mant / POW10[-exp] : mant * POW10[exp];
        else x = Number(d.toString("latin1", vs, i));
        if (neg && ok) x = -x;
        if (x !== x) return false;
      } else return false;
      // the key: reuse the previous line's string when the bytes at this position match
      const len = ke - ks;
      let kb = this.cacheBytes[p];
      let same = kb !== undefined && kb.length === len;
      if (same) for (let j = 0; j < len; j++) if (kb[j] !== d[ks + j]) { same = false; break; }
      if (!same) {
        kb = this.cacheBytes[p] = Buffer.from(d.subarray(ks, ke));
        this.cacheKeys[p] = d.toString("latin1", ks, ke);
      }
      const key = this.cacheKeys[p];
      p++;
      if (key === 'event') return false;
      if (key === 'step') step = x;
      else {
        if (n >= this.values.length) return false;
        this.keys[n] = key;
        this.values[n] = x;
        n++;
      }
      while (d[i] === 32) i++;
      if (d[i] === 0x2c) { i++; continue; }
      if (d[i] === 0x7d && i === e - 1) break;
      return false;
    }
    if (!Number.isFinite(step)) return false;
    this.step = step;
    this.n = n;
    return true;
  }
}
