// Per-layer numerical health, every N steps: per parameter tensor (grouped by
// module path) the gradient's L2 norm and max |g|, the parameter's norm, the
// update/weight ratio ‖Δp‖/‖p‖ and the count of non-finite gradient entries;
// per activation module the saturated fraction (sigmoid/tanh outputs within
// one ulp of their bounds) and the dead fraction (ReLU outputs exactly 0).
// Everything is computed by fused _foreach reductions and read in one host
// read; a step that is not due costs nothing.
import { noGrad } from '../core/autograd.js';
import { unintercepted } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import { ReLU, Sigmoid, Tanh } from '../nn/activation.js';
import { currentModulePath, type Module } from '../nn/module.js';
import { formatOf, type FloatFormat } from '../precision/formats.js';
import { countRounding, RoundingCounter } from '../precision/rounding-count.js';
import * as ops from '../ops/index.js';

export interface LayerHealth {
  /** L2 norm of the layer's gradients (all its parameter tensors together). */
  gradNorm?: number;
  /** Largest |g| over them. */
  gradMax?: number;
  /** L2 norm of its parameters. */
  paramNorm?: number;
  /** ‖p_after − p_before‖ / ‖p_before‖ over the step's update. */
  updateRatio?: number;
  /** Gradient entries that are NaN or ±inf. */
  nonFinite?: number;
  /** Sigmoid/tanh outputs within one ulp of their bounds, as a fraction of the outputs. */
  saturation?: number;
  /** ReLU outputs exactly 0, as a fraction. */
  dead?: number;
  /** Under a precision policy (withPrecision, fp16 autocast's emulation): op outputs in this module that rounding made ±inf (or NaN) from finite values. */
  overflow?: number;
  /** ... and non-zero values that rounding flushed to 0. */
  underflow?: number;
}

export interface HealthRecord {
  event: 'health';
  step: number;
  layers: Record<string, LayerHealth>;
  /** Under a precision policy: per op (summed over modules), the values its outputs lost to overflow and underflow in the format. */
  precision?: { ops: Record<string, { overflow: number; underflow: number }> };
}

export interface HealthOptions {
  /** Record every N-th step (default 50; 0 turns it off). */
  every?: number;
}

/** The float dtypes' formats: the spacing just below 1 (epsilon / 2) and the least positive value bound the saturation test. */
const FLOAT_FORMATS: Record<string, FloatFormat> = Object.fromEntries(['float64', 'float32', 'float16', 'bfloat16'].map((d) => [d, formatOf(d)]));

function moduleOf(paramName: string): string {
  const i = paramName.lastIndexOf('.');
  return i < 0 ? '' : paramName.slice(0, i);
}

/** The health of a model's layers, recorded every `every` steps. */
export class HealthMonitor {
  readonly every: number;
  private readonly named: [string, Tensor][];
  private before: Tensor[] | undefined;
  private hooks: { remove(): void }[] = [];
  /** per activation module: [path, kind, count tensor, total elements] */
  private activations: [string, 'saturation' | 'dead', Tensor, number][] = [];
  /** what rounding to a precision policy's format loses during the due step */
  private rounding: RoundingCounter | undefined;
  private stopRounding: (() => void) | undefined;

  constructor(readonly model: Module, options: HealthOptions = {}) {
    this.every = options.every ?? 50;
    if (!Number.isInteger(this.every) || this.every < 0) throw new RangeError(`health: every must be an integer ≥ 0, got ${String(options.every)}`);
    this.named = model.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  /** Is step (1-based, the step about to run) recorded? */
  due(step: number): boolean {
    return this.every > 0 && step % this.every === 0;
  }

  /** Before a due step's forward: keep the parameters (for the update ratio) and watch the activations. */
  begin(): void {
    this.end();
    this.before = noGrad(() => scope(() => this.named.map(([, p]) => p.detach().clone().keep())));
    this.rounding = new RoundingCounter(currentModulePath);
    this.stopRounding = countRounding(this.rounding);
    for (const [path, m] of this.model.namedModules()) {
      const kind = m instanceof Sigmoid || m instanceof Tanh ? 'saturation' : m instanceof ReLU ? 'dead' : undefined;
      if (kind === undefined) continue;
      const lower = m instanceof Tanh ? -1 : 0;
      this.hooks.push(m.registerForwardHook((_m, _in, out) => {
        if (!(out instanceof Tensor)) return;
        unintercepted(() => noGrad(() => {
          const c = scope(() => {
            const o = out.detach();
            if (kind === 'dead') return ops.countNonzero(o).to('float64').neg().add(o.numel()).keep();
            // within one ulp of a bound: the next representable value toward the inside
            const f = FLOAT_FORMATS[o.dtype];
            if (f === undefined) return ops.zeros([], { dtype: 'float64' }).keep();
            const hi = 1 - f.epsilon / 2;
            const lo = lower === 0 ? f.minSubnormal : -1 + f.epsilon / 2;
            return ops.logicalOr(o.ge(hi), o.le(lo)).sum().to('float64').keep();
          });
          this.activations.push([path, kind, c, out.numel()]);
        }));
      }));
    }
  }

  /** After the due step's update: the record (one host read), and the step's copies freed. */
  record(step: number): HealthRecord {
    const layers: Record<string, LayerHealth> = {};
    const byOp: Record<string, { overflow: number; underflow: number }> = {};
    const before = this.before;
    unintercepted(() => noGrad(() => scope(() => {
      const withGrad = this.named.map(([, p]) => p.grad);
      const grads = withGrad.filter((g): g is Tensor => g !== undefined);
      const params = this.named.map(([, p]) => p.detach());
      const parts: Tensor[] = [];
      const f64 = (ts: Tensor[]): void => { for (const t of ts) parts.push(t.to('float64').reshape([])); };
      f64(ops._foreachNorm(params) as Tensor[]);
      if (grads.length > 0) {
        f64(ops._foreachNorm(grads) as Tensor[]);
        f64(ops._foreachNorm(grads, Infinity) as Tensor[]);
        for (const g of grads) parts.push(ops.logicalNot(ops.isfinite(g)).sum().to('float64'));
      }
      if (before !== undefined) f64(ops._foreachNorm(ops._foreachSub.List(params, before) as Tensor[]) as Tensor[]);
      for (const [, , c] of this.activations) parts.push(c);
      this.stopRounding?.();
      const tallies = [...(this.rounding?.tallies.values() ?? [])];
      for (const t of tallies) parts.push(t.overflow.to('float64'), t.underflow.to('float64'));
      if (parts.length === 0) return;
      const v = ops.stack(parts).data() as Float64Array;
      const n = params.length, ng = grads.length;
      const sq = new Map<string, { p: number; g: number; gmax: number; nf: number; d: number; hasG: boolean }>();
      let gi = 0;
      this.named.forEach(([name], i) => {
        const key = moduleOf(name);
        const s = sq.get(key) ?? { p: 0, g: 0, gmax: 0, nf: 0, d: 0, hasG: false };
        s.p += v[i] ** 2;
        if (withGrad[i] !== undefined) {
          s.g += v[n + gi] ** 2;
          s.gmax = Math.max(s.gmax, v[n + ng + gi]);
          if (Number.isNaN(v[n + ng + gi])) s.gmax = Number.NaN;
          s.nf += v[n + 2 * ng + gi];
          s.hasG = true;
          gi++;
        }
        if (before !== undefined) s.d += v[n + 3 * ng + i] ** 2;
        sq.set(key, s);
      });
      for (const [key, s] of sq) {
        const pn = Math.sqrt(s.p);
        layers[key || '(model)'] = {
          ...(s.hasG ? { gradNorm: Math.sqrt(s.g), gradMax: s.gmax, nonFinite: s.nf } : {}),
          paramNorm: pn,
          ...(before !== undefined ? { updateRatio: pn > 0 ? Math.sqrt(s.d) / pn : 0 } : {}),
        };
      }
      const base = n + 3 * ng + (before !== undefined ? n : 0);
      const acc = new Map<string, [number, number, 'saturation' | 'dead']>();
      this.activations.forEach(([path, kind, , total], k) => {
        const a = acc.get(path) ?? [0, 0, kind];
        a[0] += v[base + k];
        a[1] += total;
        acc.set(path, a);
      });
      for (const [path, [count, total, kind]] of acc) {
        const key = path || '(model)';
        layers[key] = { ...(layers[key] ?? {}), [kind]: total > 0 ? count / total : 0 };
      }
      const at = base + this.activations.length;
      tallies.forEach((t, k) => {
        const over = v[at + 2 * k], under = v[at + 2 * k + 1];
        const key = t.where || '(model)';
        const row = (layers[key] ??= {});
        row.overflow = (row.overflow ?? 0) + over;
        row.underflow = (row.underflow ?? 0) + under;
        const o = (byOp[t.op] ??= { overflow: 0, underflow: 0 });
        o.overflow += over;
        o.underflow += under;
      });
    })));
    this.end();
    return { event: 'health', step, layers, ...(Object.keys(byOp).length > 0 ? { precision: { ops: byOp } } : {}) };
  }

  /** Frees the step's copies and removes the hooks (also when the step failed). */
  end(): void {
    this.stopRounding?.();
    this.stopRounding = undefined;
    this.rounding?.dispose();
    this.rounding = undefined;
    for (const h of this.hooks) h.remove();
    this.hooks = [];
    for (const [, , c] of this.activations) c.dispose();
    this.activations = [];
    if (this.before) for (const t of this.before) t.dispose();
    this.before = undefined;
  }
}
