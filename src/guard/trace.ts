// Locate by replay: run the step again with every forward op's output checked
// (one interceptor on the dispatch path) and every gradient with respect to
// every op output checked during backward (a tensor hook per output). The
// finding is the FIRST op that made a non-finite value from finite inputs:
// in forward, the first op whose output is non-finite while its inputs are
// finite; in backward, the op whose input gradient went non-finite while the
// gradient at its outputs was finite. Before each op runs, every input that
// needs a gradient is replaced by its own alias (one autograd node per
// consumer edge), so that a hook sees each consumer's gradient contribution
// apart: an input shared by a max-pool and a skip connection is no longer
// ambiguous.
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { functionObservers, isGradEnabled, noGrad } from '../core/autograd.js';
import { intercept, replaceTensorInputs, unintercepted, type OpCall } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import { Tensor, type RemovableHandle } from '../core/tensor.js';
import { currentModulePath } from '../nn/module.js';
import * as ops from '../ops/index.js';
import type { FloatFormat } from '../precision/formats.js';
import { currentPolicy, gradientRounded, roundedFrom } from '../precision/policy.js';
import { formatNarrows, roundValues } from '../precision/round.js';
import type { InputStats, Phase } from './report.js';
import { backwardRuleMatches, baseName, type RuleContext } from './rules.js';

const KEEL_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

function isFloat(t: Tensor): boolean {
  const d = t.dtype;
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

function hasNaN(t: Tensor): boolean {
  return unintercepted(() => noGrad(() => scope(() => ops.isnan(t).any().item() as unknown as boolean)));
}

/** Are all values finite? (one reduction and one read) */
export function allFinite(t: Tensor): boolean {
  if (t.isDisposed || !isFloat(t)) return true;
  return unintercepted(() => noGrad(() => scope(() => ops.isfinite(t).all().item() as unknown as boolean)));
}

/** min, max, smallest |x| (over finite values), zeros, negatives, NaNs, infs, dtype, shape. */
export function tensorStats(t: Tensor, name: string): InputStats {
  if (t.isDisposed) return { name, value: '<disposed>' };
  const dtype = t.dtype;
  const shape = t.shape;
  const numel = t.numel();
  if (numel === 0) return { name, dtype, shape, numel, zeros: 0, negatives: 0, nans: 0, infs: 0 };
  return unintercepted(() => noGrad(() => scope(() => {
    const x = t.detach().to('float64');
    const fin = ops.isfinite(x);
    const nFin = fin.sum();
    const big = 1e308;
    const min = ops.where(fin, x, big).min();
    const max = ops.where(fin, x, -big).max();
    const minAbs = ops.where(fin, x.abs(), big).min();
    const v = ops.stack([min, max, minAbs, x.eq(0).sum().to('float64'), x.lt(0).sum().to('float64'), ops.isnan(x).sum().to('float64'), ops.isinf(x).sum().to('float64'), nFin.to('float64')]).data() as Float64Array;
    const anyFinite = v[7] > 0;
    return {
      name, dtype, shape, numel,
      min: anyFinite ? v[0] : Number.NaN, max: anyFinite ? v[1] : Number.NaN, minAbs: anyFinite ? v[2] : Number.NaN,
      zeros: v[3], negatives: v[4], nans: v[5], infs: v[6],
    };
  })));
}

/** The first stack frame outside Keel (and outside Node's internals), 'file:line:col'. */
export function userCallSite(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 60;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?\/[^()]+:\d+:\d+)\)?\s*$/.exec(line.trim());
    if (!m) continue;
    const loc = m[1].startsWith('file://') ? fileURLToPath(m[1].replace(/:\d+:\d+$/, '')) + m[1].match(/:\d+:\d+$/)![0] : m[1];
    if (loc.startsWith(KEEL_ROOT + '/') || loc.includes('node:internal')) continue;
    return loc;
  }
  return '';
}

interface ArgRef {
  name: string;
  /** the tensor the op got (for producer lookup) */
  orig?: Tensor;
  /** a detached handle of it, kept until the trace ends */
  ref?: Tensor;
  value?: unknown;
}

interface OpRecord {
  index: number;
  op: string;
  module: string;
  site: string;
  args: ArgRef[];
  outs: Tensor[];
}

export interface Finding {
  op: string;
  phase: Phase;
  module: string;
  callSite: string;
  inputs: InputStats[];
  output?: InputStats;
  /** The traced op index (its position in the step's forward). */
  index: number;
  logits?: InputStats;
  finalLayer: boolean;
  /** backward: the gradient was finite in fp32 and overflowed only when rounded to the format. */
  roundingOverflow?: boolean;
  /** forward: the op's input already held NaN/inf without any op of the step making it (data, a parameter, a buffer). */
  nonFiniteInput?: { name: string; kind: 'parameter' | 'buffer' | 'data' };
  /** forward: the op turned deliberately written ±inf (a mask) into NaN. */
  fromIntendedInf?: boolean;
}

export interface TraceResult {
  finding?: Finding;
  /** The precision format that was active during the forward, if any. */
  precision?: FloatFormat;
  ops: number;
  lossFinite: boolean;
}

function floatTensorsOf(result: unknown): Tensor[] {
  if (result instanceof Tensor) return isFloat(result) ? [result] : [];
  if (Array.isArray(result)) return result.filter((r): r is Tensor => r instanceof Tensor && isFloat(r));
  return [];
}

/** One replay's bookkeeping. */
class Tracer {
  readonly records: OpRecord[] = [];
  private readonly consumers = new Map<Tensor, number[]>();
  private readonly producer = new Map<Tensor, number>();
  private readonly finiteCache = new Map<Tensor, boolean>();
  private readonly gradFinite = new Map<Tensor, boolean>();
  private readonly hooks: RemovableHandle[] = [];
  private readonly hooked = new Set<Tensor>();
  private readonly kept: Tensor[] = [];
  /** consumer-edge alias → the tensor it stands for */
  private readonly aliasOf = new Map<Tensor, Tensor>();
  forward?: Finding;
  backward?: Finding;
  precisionSeen?: FloatFormat;
  /** Set once forward is over: the format gradients are rounded to. */
  gradFormat?: FloatFormat;
  /** A policy that lowers only some ops ran (autocast's emulation): only gradients that reach its rounding nodes are rounded. */
  selective = false;
  /** ±inf written on purpose (a mask fill, full(-inf)) and what carries it on without NaN: not a fault. */
  private readonly intendedInf = new Set<Tensor>();

  constructor(private readonly finalLayerPath: string, private readonly stateNames: Map<Tensor, [string, 'parameter' | 'buffer']> = new Map()) {}

  /** A custom Function, recorded as one op (its forward's own ops ran without grad). */
  observeFunction = (name: string, inputs: Tensor[], outputs: Tensor[]): void => {
    this.after({ op: `Function ${name}`, inputs, argNames: inputs.map((_, i) => `input${i}`), mutable: inputs.map(() => false) }, outputs);
  };

  private ref(t: Tensor): Tensor {
    const r = unintercepted(() => t.detach()).keep();
    this.kept.push(r);
    return r;
  }

  /** Gives each input that needs a gradient its own alias for this op (a consumer edge). */
  before = (call: OpCall): readonly unknown[] | undefined => {
    if (!isGradEnabled() || call.mutable.includes(true) || this.backward !== undefined || this.forward !== undefined) return undefined;
    return replaceTensorInputs(call.inputs, (t) => {
      if (t.isDisposed || !isFloat(t) || !t.requiresGrad) return t;
      const a = ops.alias(t);
      this.kept.push(a.keep());
      this.aliasOf.set(a, t);
      return a;
    });
  };

  after = (call: OpCall, result: unknown): unknown => {
    const policy = currentPolicy();
    if (policy !== undefined) {
      this.precisionSeen = policy.format;
      if (policy.select !== undefined) this.selective = true;
    }
    const outs = floatTensorsOf(result);
    if (outs.length === 0) return result;
    const index = this.records.length;
    const args: ArgRef[] = [];
    const tensorsIn: Tensor[] = [];
    const edges: [Tensor, string][] = [];
    const take = (v: Tensor, name: string): void => {
      const orig = this.aliasOf.get(v);
      if (orig !== undefined) edges.push([v, name]);
      args.push({ name, orig: orig ?? v, ref: this.ref(v) });
      tensorsIn.push(orig ?? v);
    };
    call.inputs.forEach((v, i) => {
      const name = call.argNames[i] ?? `arg${i}`;
      if (v instanceof Tensor) {
        if (v.isDisposed) return;
        take(v, name);
      } else if (Array.isArray(v) && v.some((x) => x instanceof Tensor)) {
        v.forEach((x, k) => {
          if (x instanceof Tensor && !x.isDisposed) take(x, `${name}[${k}]`);
        });
      } else if (v !== undefined && v !== null) {
        args.push({ name, value: v });
      }
    });
    const rec: OpRecord = { index, op: call.op, module: currentModulePath(), site: userCallSite(), args, outs };
    this.records.push(rec);
    const grad = isGradEnabled();
    for (const x of tensorsIn) {
      // an op run without grad (inside a custom Function's forward) sends no gradient back
      if (!grad) continue;
      let list = this.consumers.get(x);
      if (list === undefined) this.consumers.set(x, (list = []));
      if (!list.includes(index)) list.push(index);
      if (!this.hooked.has(x) && isFloat(x) && x.requiresGrad) this.hook(x);
    }
    if (grad) for (const [a] of edges) this.hooks.push(a.registerHook((g) => this.onEdgeGrad(rec, a, g)));
    if (this.forward === undefined) {
      // a non-finite value no op of the step made: the data, or a parameter or buffer loaded non-finite
      rec.args.forEach((a) => {
        const x = a.orig;
        if (this.forward !== undefined || x === undefined || this.producer.has(x) || this.finiteCache.has(x)) return;
        const f = allFinite(x);
        this.finiteCache.set(x, f);
        if (f) return;
        // under a precision policy the op got a rounded copy of the parameter
        const from = roundedFrom(x);
        const named = this.stateNames.get(x) ?? (from !== undefined ? this.stateNames.get(from) : undefined);
        const name = named?.[0] ?? a.name;
        this.forward = {
          ...this.finding(rec, 'forward', tensorStats(outs[0], 'output')),
          nonFiniteInput: { name, kind: named?.[1] ?? 'data' },
        };
      });
    }
    if (this.forward === undefined) {
      const scalarInf = call.inputs.some((v) => typeof v === 'number' && !Number.isFinite(v) && !Number.isNaN(v));
      const carriesIntended = tensorsIn.some((x) => this.intendedInf.has(x));
      for (const o of outs) {
        let f = allFinite(o);
        if (!f && (scalarInf || carriesIntended) && !hasNaN(o)) {
          // −inf written on purpose (masked_fill(mask, -inf), full(-inf), an additive mask): not a fault
          this.intendedInf.add(o);
          f = true;
        }
        if (!f && this.forward === undefined) {
          const inputsFinite = tensorsIn.every((x) => (x === o ? this.finiteCache.get(x) ?? true : this.finiteCache.get(x) ?? allFinite(x)));
          if (inputsFinite) {
            const fd = this.finding(rec, 'forward', tensorStats(o, 'output'));
            this.forward = carriesIntended ? { ...fd, fromIntendedInf: true } : fd;
          }
        }
        this.finiteCache.set(o, f);
      }
    }
    for (const o of outs) {
      this.producer.set(o, index);
      if (grad && o.requiresGrad && !this.hooked.has(o)) this.hook(o);
    }
    return result;
  };

  private hook(t: Tensor): void {
    this.hooked.add(t);
    this.hooks.push(t.registerHook((g) => {
      this.onGrad(t, g);
    }));
  }

  /** Is g (the gradient at t) finite, also once rounded to the format gradients are rounded to? */
  private gradCheck(g: Tensor, t: Tensor): { finite: boolean; roundingOverflow: boolean } {
    const finite = allFinite(g);
    const f = this.gradFormat;
    // under autocast's emulation a float32 op's gradient stays float32: only those reaching a rounding node are rounded
    if (finite && f !== undefined && formatNarrows(f, g.dtype) && (!this.selective || gradientRounded(t))) {
      const rounded = unintercepted(() => noGrad(() => scope(() => ops.isfinite(roundValues(g, f, {})).all().item() as unknown as boolean)));
      return { finite: rounded, roundingOverflow: !rounded };
    }
    return { finite, roundingOverflow: false };
  }

  /**
   * The gradient one consumer sends back to one of its inputs: non-finite
   * while the gradients at the consumer's outputs were finite makes the
   * consumer the op that produced it.
   */
  private onEdgeGrad(rec: OpRecord, edge: Tensor, g: Tensor): void {
    if (this.backward !== undefined || this.forward !== undefined) return;
    const { finite, roundingOverflow } = this.gradCheck(g, this.aliasOf.get(edge) ?? edge);
    if (finite || !rec.outs.every((o) => this.gradFinite.get(o) !== false)) return;
    this.backward = { ...this.finding(rec, 'backward', tensorStats(g, 'grad')), roundingOverflow };
  }

  private onGrad(t: Tensor, g: Tensor): void {
    if (this.backward !== undefined || this.forward !== undefined) return;
    const { finite, roundingOverflow } = this.gradCheck(g, t);
    this.gradFinite.set(t, finite);
    if (finite) return;
    const candidates = (this.consumers.get(t) ?? []).map((i) => this.records[i]);
    if (candidates.length === 0) return;
    const gradStats = tensorStats(g, 'grad');
    // a consumer whose own output gradients all arrived finite made the non-finite one
    const clean = candidates.filter((r) => r.outs.every((o) => this.gradFinite.get(o) !== false));
    const pool = clean.length > 0 ? clean : candidates;
    let chosen: OpRecord | undefined;
    if (pool.length > 1) {
      const findings = pool.map((r) => this.finding(r, 'backward', gradStats));
      const k = findings.findIndex((fd) => backwardRuleMatches(this.context(fd)));
      if (k >= 0) {
        this.backward = { ...findings[k], roundingOverflow };
        return;
      }
      // prefer a consumer whose output gradient was actually seen
      const seen = pool.filter((r) => r.outs.some((o) => this.gradFinite.get(o) === true));
      chosen = (seen.length > 0 ? seen : pool).reduce((a, b) => (b.index > a.index ? b : a));
    } else {
      chosen = pool[0];
    }
    this.backward = { ...this.finding(chosen, 'backward', gradStats), roundingOverflow };
  }

  context(fd: Finding): RuleContext {
    return {
      op: fd.op, base: baseName(fd.op), phase: fd.phase, module: fd.module, inputs: fd.inputs, output: fd.output,
      precision: this.gradFormat ?? this.precisionSeen, finalLayer: fd.finalLayer, logits: fd.logits,
    };
  }

  private finding(rec: OpRecord, phase: Phase, output: InputStats): Finding {
    const inputs: InputStats[] = rec.args.map((a) => {
      if (a.ref === undefined) return { name: a.name, value: a.value };
      const s = tensorStats(a.ref, a.name);
      const p = a.orig !== undefined ? this.producer.get(a.orig) : undefined;
      if (p !== undefined && p < rec.index) s.producer = this.records[p].op;
      return s;
    });
    let logits: InputStats | undefined;
    const first = rec.args.find((a) => a.ref !== undefined);
    const p = first?.orig !== undefined ? this.producer.get(first.orig) : undefined;
    if (p !== undefined && this.records[p].op.startsWith('aten::sigmoid')) {
      const z = this.records[p].args.find((a) => a.ref !== undefined);
      if (z?.ref) logits = tensorStats(z.ref, 'logits');
    }
    const lastFinal = this.finalLayerPath ? this.records.reduce((m, r) => (r.module === this.finalLayerPath ? r.index : m), -1) : -1;
    const finalLayer = this.finalLayerPath !== '' && (rec.module === this.finalLayerPath || (lastFinal >= 0 && rec.index > lastFinal));
    return { op: rec.op, phase, module: rec.module, callSite: rec.site, inputs, output, index: rec.index, finalLayer, ...(logits ? { logits } : {}) };
  }

  end(): void {
    for (const h of this.hooks) h.remove();
    for (const t of this.kept) t.dispose();
    this.hooks.length = 0;
    this.kept.length = 0;
    this.consumers.clear();
    this.aliasOf.clear();
    this.producer.clear();
    this.finiteCache.clear();
    this.gradFinite.clear();
    this.intendedInf.clear();
  }
}

/**
 * Runs computeLoss and backward once in tracing mode. `format`: wrap the
 * forward in this precision (so that the trace sees rounded values, after the
 * policy's own interceptor) — the guard passes the format a first pass saw.
 * `lossScale`: backward from the loss scaled as the step scaled it.
 */
export function traceStep(
  computeLoss: () => Tensor,
  options: {
    finalLayerPath: string;
    format?: FloatFormat;
    withPrecision?: <T>(f: FloatFormat, fn: () => T) => T;
    /** The model's parameters and buffers by name: a non-finite one is named as such. */
    stateNames?: Map<Tensor, [string, 'parameter' | 'buffer']>;
    /** Backward from loss × this (a GradScaler's scale at the step): the gradients the step had, overflow included. */
    lossScale?: number;
  },
): TraceResult {
  const tracer = new Tracer(options.finalLayerPath, options.stateNames);
  let lossFinite = true;
  try {
    scope(() => {
      let loss: Tensor;
      const forward = (): Tensor => {
        const remove = intercept(tracer);
        functionObservers.push(tracer.observeFunction);
        try {
          return computeLoss();
        } finally {
          remove();
          functionObservers.splice(functionObservers.indexOf(tracer.observeFunction), 1);
        }
      };
      loss = options.format !== undefined && options.withPrecision !== undefined ? options.withPrecision(options.format, forward) : forward();
      tracer.gradFormat = options.format ?? tracer.precisionSeen;
      lossFinite = allFinite(loss);
      if (tracer.forward === undefined && loss.requiresGrad) {
        const scale = options.lossScale;
        try {
          // scaled as GradScaler.scale scales it: outside the trace, in the loss's dtype
          (scale !== undefined && scale !== 1 ? unintercepted(() => loss.mul(scale)) : loss).backward();
        } catch (e) {
          if (lossFinite) throw e; // (a non-finite loss whose backward raises: the forward finding, if any, stands)
        }
      }
    });
  } finally {
    tracer.end();
  }
  const finding = tracer.forward ?? tracer.backward;
  return { ...(finding ? { finding } : {}), ...(tracer.precisionSeen ? { precision: tracer.precisionSeen } : {}), ops: tracer.records.length, lossFinite };
}

export function contextOf(fd: Finding, precision: FloatFormat | undefined): RuleContext {
  return {
    op: fd.op, base: baseName(fd.op), phase: fd.phase, module: fd.module, inputs: fd.inputs, output: fd.output,
    precision, finalLayer: fd.finalLayer, ...(fd.logits ? { logits: fd.logits } : {}),
    ...(fd.nonFiniteInput ? { nonFiniteInput: fd.nonFiniteInput } : {}), ...(fd.fromIntendedInf ? { fromIntendedInf: true } : {}),
  };
}
