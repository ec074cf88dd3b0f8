// TensorBoard event files, written in TypeScript: TFRecord framing (uint64
// length, masked CRC-32C of the length, the bytes, masked CRC-32C of the
// bytes) around `tensorflow.Event` protobufs. Field numbers are the published
// ones (tensorflow/core/util/event.proto, framework/summary.proto,
// framework/tensor.proto); the encoding is @bufbuild/protobuf's wire writer
// and the checksum @aws-crypto/crc32c: no native code, nothing downloaded.
//
// Non-finite values: a scalar keeps NaN and ±inf as its value (float32 holds
// them); a histogram is built over the finite values, and the NaN, +inf and
// −inf counts go beside it as scalars `<tag>/nan`, `<tag>/+inf`, `<tag>/-inf`
// (always written, zeros included, so that their absence means nothing).
import { appendFileSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@aws-crypto/crc32c';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

// event.proto / summary.proto / tensor.proto field numbers
const EVENT = { wallTime: 1, step: 2, fileVersion: 3, summary: 5 } as const;
const SUMMARY = { value: 1 } as const;
const VALUE = { tag: 1, simpleValue: 2, histo: 5, tensor: 8, metadata: 9 } as const;
const HISTO = { min: 1, max: 2, num: 3, sum: 4, sumSquares: 5, bucketLimit: 6, bucket: 7 } as const;
const METADATA = { pluginData: 1 } as const;
const PLUGIN_DATA = { pluginName: 1 } as const;
const TENSOR = { dtype: 1, shape: 2, stringVal: 8 } as const;
const DT_STRING = 7;

const MASK_DELTA = 0xa282ead8;

/** TFRecord's masked CRC-32C: rotate right by 15, add a constant (mod 2³²). */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data) >>> 0;
  return ((((c >>> 15) | (c << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** One TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** What a histogram was built from: the finite values, and the non-finite ones counted apart. */
export interface HistogramCounts {
  finite: number;
  nan: number;
  posInf: number;
  negInf: number;
}

export type HistogramInput = ArrayLike<number> | { data(): ArrayLike<number | bigint> | BigInt64Array };

function valuesOf(x: HistogramInput): ArrayLike<number> {
  if (typeof (x as { data?: unknown }).data === 'function') {
    const d = (x as { data(): ArrayLike<number | bigint> }).data();
    if (d instanceof BigInt64Array) return Float64Array.from(d, (v) => Number(v));
    return d as ArrayLike<number>;
  }
  return x as ArrayLike<number>;
}

/** Summary.Value bytes for a histogram of the finite values (30 equal-width buckets between min and max). */
function histogramProto(values: ArrayLike<number>, bins: number): { bytes: Uint8Array; counts: HistogramCounts } {
  let nan = 0, posInf = 0, negInf = 0, n = 0, min = Infinity, max = -Infinity, sum = 0, sumSq = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) nan++;
    else if (v === Infinity) posInf++;
    else if (v === -Infinity) negInf++;
    else {
      n++;
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      sumSq += v * v;
    }
  }
  const limits: number[] = [];
  const buckets: number[] = [];
  if (n === 0) {
    min = 0;
    max = 0;
  } else if (min === max) {
    limits.push(max);
    buckets.push(n);
  } else {
    const width = (max - min) / bins;
    for (let b = 0; b < bins; b++) {
      limits.push(b === bins - 1 ? max : min + width * (b + 1));
      buckets.push(0);
    }
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (!Number.isFinite(v)) continue;
      buckets[Math.min(bins - 1, Math.floor((v - min) / width))]++;
    }
  }
  const w = new BinaryWriter();
  w.tag(HISTO.min, WireType.Bit64).double(min);
  w.tag(HISTO.max, WireType.Bit64).double(max);
  w.tag(HISTO.num, WireType.Bit64).double(n);
  w.tag(HISTO.sum, WireType.Bit64).double(sum);
  w.tag(HISTO.sumSquares, WireType.Bit64).double(sumSq);
  w.tag(HISTO.bucketLimit, WireType.LengthDelimited).fork();
  for (const l of limits) w.double(l);
  w.join();
  w.tag(HISTO.bucket, WireType.LengthDelimited).fork();
  for (const c of buckets) w.double(c);
  w.join();
  return { bytes: w.finish(), counts: { finite: n, nan, posInf, negInf } };
}

export interface TfEventsWriterOptions {
  /** Bytes buffered before a write to the file (default 64 KiB; flush() and close() write at once). */
  flushBytes?: number;
  /** Histogram buckets between the finite min and max (default 30). */
  bins?: number;
  /** File name suffix instead of the host name (tests). */
  host?: string;
}

/**
 * Writes `events.out.tfevents.<unix seconds>.<host>` in `logDir`, readable
 * by TensorBoard (and by any TFRecord + protobuf reader).
 */
export class TfEventsWriter {
  readonly path: string;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private closed = false;
  private readonly flushBytes: number;
  private readonly bins: number;

  constructor(readonly logDir: string, options: TfEventsWriterOptions = {}) {
    mkdirSync(logDir, { recursive: true });
    const now = Date.now() / 1000;
    this.path = join(logDir, `events.out.tfevents.${Math.floor(now)}.${options.host ?? hostname()}`);
    closeSync(openSync(this.path, 'a'));
    this.flushBytes = options.flushBytes ?? 64 * 1024;
    this.bins = options.bins ?? 30;
    const w = new BinaryWriter();
    w.tag(EVENT.wallTime, WireType.Bit64).double(now);
    w.tag(EVENT.fileVersion, WireType.LengthDelimited).string('brain.Event:2');
    this.push(w.finish());
    this.flush();
  }

  /** A scalar; NaN and ±inf are written as they are (TensorBoard shows them). */
  addScalar(tag: string, value: number, step: number, wallTime?: number): void {
    this.event(step, wallTime, (v) => {
      v.tag(VALUE.tag, WireType.LengthDelimited).string(tag);
      v.tag(VALUE.simpleValue, WireType.Bit32).float(value);
    });
  }

  /**
   * A histogram of the finite values of a tensor or array; the NaN, +inf and
   * −inf counts are written as scalars `<tag>/nan`, `<tag>/+inf`, `<tag>/-inf`.
   */
  addHistogram(tag: string, values: HistogramInput, step: number, wallTime?: number): HistogramCounts {
    const h = histogramProto(valuesOf(values), this.bins);
    this.event(step, wallTime, (v) => {
      v.tag(VALUE.tag, WireType.LengthDelimited).string(tag);
      v.tag(VALUE.histo, WireType.LengthDelimited).bytes(h.bytes);
    });
    this.addScalar(`${tag}/nan`, h.counts.nan, step, wallTime);
    this.addScalar(`${tag}/+inf`, h.counts.posInf, step, wallTime);
    this.addScalar(`${tag}/-inf`, h.counts.negInf, step, wallTime);
    return h.counts;
  }

  /**
   * Histograms of named tensors under `prefix/` (weights: `model.namedParameters()`;
   * gradients: the same names with `p.grad`); entries without a tensor are skipped.
   */
  addHistograms(prefix: string, named: Iterable<[string, HistogramInput | null | undefined]>, step: number, wallTime?: number): Record<string, HistogramCounts> {
    const out: Record<string, HistogramCounts> = {};
    for (const [name, t] of named) if (t !== null && t !== undefined) out[name] = this.addHistogram(`${prefix}/${name}`, t, step, wallTime);
    return out;
  }

  /** A text summary (TensorBoard's text plugin renders it as Markdown). */
  addText(tag: string, text: string, step: number, wallTime?: number): void {
    this.event(step, wallTime, (v) => {
      v.tag(VALUE.tag, WireType.LengthDelimited).string(tag);
      v.tag(VALUE.metadata, WireType.LengthDelimited).fork()
        .tag(METADATA.pluginData, WireType.LengthDelimited).fork()
        .tag(PLUGIN_DATA.pluginName, WireType.LengthDelimited).string('text')
        .join().join();
      v.tag(VALUE.tensor, WireType.LengthDelimited).fork()
        .tag(TENSOR.dtype, WireType.Varint).int32(DT_STRING)
        .tag(TENSOR.shape, WireType.LengthDelimited).bytes(new Uint8Array(0))
        .tag(TENSOR.stringVal, WireType.LengthDelimited).bytes(new TextEncoder().encode(text))
        .join();
    });
  }

  /** Applies what `eventsFromMetricsLine` makes of one metrics.jsonl record. */
  addMetricsLine(record: Record<string, unknown>, wallTime?: number): void {
    for (const e of eventsFromMetricsLine(record)) {
      if (e.kind === 'scalar') this.addScalar(e.tag, e.value, e.step, wallTime);
      else this.addText(e.tag, e.text, e.step, wallTime);
    }
  }

  /** Writes what is buffered to the file. */
  flush(): void {
    if (this.buffered === 0) return;
    appendFileSync(this.path, Buffer.concat(this.chunks));
    this.chunks = [];
    this.buffered = 0;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  private event(step: number, wallTime: number | undefined, value: (w: BinaryWriter) => void): void {
    if (this.closed) throw new Error(`tfevents ${this.path} is closed`);
    if (!Number.isInteger(step)) throw new TypeError(`tfevents: step must be an integer, got ${step}`);
    const w = new BinaryWriter();
    w.tag(EVENT.wallTime, WireType.Bit64).double(wallTime ?? Date.now() / 1000);
    w.tag(EVENT.step, WireType.Varint).int64(step);
    w.tag(EVENT.summary, WireType.LengthDelimited).fork();
    w.tag(SUMMARY.value, WireType.LengthDelimited).fork();
    value(w);
    w.join().join();
    this.push(w.finish());
  }

  private push(event: Uint8Array): void {
    const rec = tfRecord(event);
    this.chunks.push(rec);
    this.buffered += rec.length;
    if (this.buffered >= this.flushBytes) this.flush();
  }
}

// ---------------------------------------------------------------------------
// metrics.jsonl → TensorBoard

export type TfEvent =
  | { kind: 'scalar'; tag: string; step: number; value: number }
  | { kind: 'text'; tag: string; step: number; text: string };

/**
 * A number from a metrics field. JSON has no NaN or inf: JSON.stringify writes
 * them as null, so null in a numeric field is NaN; the strings 'NaN',
 * 'Infinity', '-Infinity' (and 'inf', '-inf') are read as what they name.
 */
export function metricNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === null) return Number.NaN;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'nan') return Number.NaN;
    if (s === 'infinity' || s === 'inf' || s === '+inf' || s === '+infinity') return Infinity;
    if (s === '-infinity' || s === '-inf') return -Infinity;
  }
  return undefined;
}

const STEP_TAGS: Record<string, string> = {
  loss: 'train/loss', accuracy: 'train/accuracy', lr: 'train/lr', gradNorm: 'train/grad_norm',
  stepTimeMs: 'train/step_time_ms', epoch: 'train/epoch',
};
/** Step-line fields that are not data (or are the step itself). */
const NOT_SCALARS = new Set(['step', 'event', 'time', 'wallTime']);

function snake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Markdown text of a guard event (TensorBoard's text plugin renders it). */
export function guardEventMarkdown(record: Record<string, unknown>): string {
  const r = (record.report ?? {}) as Record<string, unknown>;
  const lines = [
    `**${String(record.event)}** at step ${String(record.step)}: policy \`${String(record.policy ?? '')}\`, action \`${String(record.action ?? '')}\``,
  ];
  if (record.detail) lines.push('', String(record.detail));
  if (record.event === 'guard-warning') {
    if (record.kind) lines.push('', `kind: \`${String(record.kind)}\``);
    if (record.message) lines.push('', String(record.message));
  }
  const row = (k: string, v: unknown) => { if (v !== undefined && v !== '') lines.push(`| ${k} | ${String(v).replace(/\|/g, '\\|')} |`); };
  if (record.report) {
    lines.push('', '| | |', '|---|---|');
    row('op', r.op);
    row('phase', r.phase);
    row('module', r.module);
    row('call site', r.callSite);
    row('detected in', r.detectedIn);
    row('precision', r.precision);
    for (const s of (Array.isArray(r.inputs) ? r.inputs : []) as Record<string, unknown>[]) row(`input ${String(s.name)}`, statsText(s));
    if (r.output) row('output', statsText(r.output as Record<string, unknown>));
    row('cause', r.cause);
    const remedies = Array.isArray(r.remedies) ? (r.remedies as unknown[]) : [];
    if (remedies.length) lines.push('', 'Remedies:', ...remedies.map((x) => `- ${String(x)}`));
  }
  return lines.join('\n');
}

/** One line of input statistics (dtype[shape] min max, NaN/inf counts). */
export function statsText(s: Record<string, unknown>): string {
  if (s.shape === undefined) return `= ${JSON.stringify(s.value)}`;
  const parts = [`${String(s.dtype ?? '')}[${(s.shape as number[]).join(', ')}]`];
  for (const k of ['min', 'max', 'minAbs', 'zeros', 'negatives', 'nans', 'infs']) if (s[k] !== undefined && s[k] !== 0) parts.push(`${k} ${fmt(s[k])}`);
  return parts.join(' ');
}

function fmt(v: unknown): string {
  const x = metricNumber(v);
  if (x === undefined) return String(v);
  if (!Number.isFinite(x)) return String(x);
  return x === 0 || (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5) ? String(Number(x.toPrecision(4))) : x.toExponential(3);
}

/**
 * What one metrics.jsonl record becomes in TensorBoard:
 * - a step line `{step, epoch, loss, accuracy, lr, gradNorm, stepTimeMs, ...}`:
 *   `train/loss`, `train/accuracy`, `train/lr`, `train/grad_norm`, ... (every numeric field);
 * - an eval line `{event:'eval', step, loss, accuracy, ...}`: `eval/<field>`;
 * - a health line `{event:'health', step, layers:{path:{gradNorm, ...}}, lossScale?}`:
 *   `health/<metric>/<layer path>` (metric in snake case) and `amp/loss_scale`;
 * - a guard event or warning: a text summary `guard/events` or `guard/warnings`
 *   (the report as Markdown), and a scalar `guard/nonfinite_steps` = 1 at an event's step.
 * Other events (resume, ...) make nothing. NaN (null) and ±inf stay values.
 */
export function eventsFromMetricsLine(record: Record<string, unknown>): TfEvent[] {
  const step = metricNumber(record.step);
  if (step === undefined || !Number.isInteger(step)) return [];
  const out: TfEvent[] = [];
  const scalars = (prefix: string, obj: Record<string, unknown>, skip: Set<string>, names?: Record<string, string>) => {
    for (const [k, v] of Object.entries(obj)) {
      if (skip.has(k)) continue;
      const value = metricNumber(v);
      if (value === undefined) continue;
      out.push({ kind: 'scalar', tag: names?.[k] ?? `${prefix}/${snake(k)}`, step, value });
    }
  };
  const event = record.event;
  if (event === undefined) scalars('train', record, NOT_SCALARS, STEP_TAGS);
  else if (event === 'eval') scalars('eval', record, NOT_SCALARS);
  else if (event === 'health') {
    const layers = (record.layers ?? {}) as Record<string, Record<string, unknown>>;
    for (const [layer, m] of Object.entries(layers)) {
      if (m === null || typeof m !== 'object') continue;
      for (const [k, v] of Object.entries(m)) {
        const value = metricNumber(v);
        if (value !== undefined) out.push({ kind: 'scalar', tag: `health/${snake(k)}/${layer}`, step, value });
      }
    }
    const perOp = ((record.precision ?? {}) as { ops?: Record<string, Record<string, unknown>> }).ops ?? {};
    for (const [op, m] of Object.entries(perOp)) {
      for (const k of ['overflow', 'underflow']) {
        const value = metricNumber(m?.[k]);
        if (value !== undefined) out.push({ kind: 'scalar', tag: `precision/${k}/${op}`, step, value });
      }
    }
    const scale = metricNumber(record.lossScale);
    if (record.lossScale !== undefined && scale !== undefined) out.push({ kind: 'scalar', tag: 'amp/loss_scale', step, value: scale });
  } else if (event === 'guard') {
    out.push({ kind: 'text', tag: 'guard/events', step, text: guardEventMarkdown(record) });
    out.push({ kind: 'scalar', tag: 'guard/nonfinite_steps', step, value: 1 });
  } else if (event === 'guard-warning') {
    out.push({ kind: 'text', tag: 'guard/warnings', step, text: guardEventMarkdown(record) });
  }
  return out;
}
