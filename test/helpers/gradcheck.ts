// A float64 gradient checker by central finite differences: the scalar
// L(x) = Σ_k sum(output_k · W_k), with fixed random weights W_k, is
// differentiated by Keel's autograd and by (L(x + h·e_i) - L(x - h·e_i)) / 2h
// for every element i of every input that requires grad; the two must agree
// within atol + rtol·|numeric|. Random weights (rather than all ones) make a
// wrong gradient of one output element unable to hide in a sum.
import assert from 'node:assert/strict';
import * as keel from 'keel';
import type { Tensor } from 'keel';

export type Nested = number | boolean | Nested[];

/** A small seeded generator (mulberry32), so inputs and weights are the same on every run. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform on [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor((hi - lo) * this.next());
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Flat values → nested arrays of the given shape (a bare number for shape []). */
export function nest(flatValues: ArrayLike<number | boolean>, shape: readonly number[]): Nested {
  if (shape.length === 0) return flatValues[0];
  let pos = 0;
  const build = (d: number): Nested[] => {
    const out: Nested[] = new Array(shape[d]);
    for (let i = 0; i < shape[d]; i++) out[i] = d === shape.length - 1 ? flatValues[pos++] : build(d + 1);
    return out;
  };
  return build(0);
}

/**
 * Weights for an output of this shape: uniform on [-1, 1], rounded to float32
 * so that the same numbers serve float32 and float64 outputs exactly.
 */
export function randomWeights(shape: readonly number[], rng: Rng): Float64Array {
  const w = new Float64Array(numel(shape));
  for (let i = 0; i < w.length; i++) w[i] = Math.fround(rng.uniform(-1, 1));
  return w;
}

export type GradFn = (...inputs: Tensor[]) => Tensor | Tensor[];

export interface GradcheckOptions {
  /** Finite-difference step (central differences: truncation error O(h²)). */
  h?: number;
  atol?: number;
  rtol?: number;
  /** Seeds the output weights unless `weights` gives them. */
  seed?: number;
  /** Fixed weights, one flat array per output. */
  weights?: Float64Array[];
  /** Prefix for failure messages. */
  what?: string;
}

export interface GradcheckReport {
  /** Output values and shapes at the unperturbed inputs. */
  outputs: { shape: number[]; values: number[] }[];
  weights: Float64Array[];
  /** Autograd's gradient per input that requires grad (zeros where autograd says unused). */
  analytic: Float64Array[];
  numeric: Float64Array[];
  /** Largest |analytic - numeric| seen. */
  maxAbsErr: number;
  /** Number of finite-difference evaluations of fn. */
  evaluations: number;
}

function asList(r: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(r) ? r : [r];
}

/** Σ_k Σ_i out_k[i] · w_k[i] in JS double precision, with Neumaier's compensated sum. */
function weightedSum(outs: Tensor[], weights: Float64Array[]): number {
  let sum = 0;
  let comp = 0;
  outs.forEach((o, k) => {
    const d = o.data();
    const w = weights[k];
    for (let i = 0; i < w.length; i++) {
      const term = Number(d[i]) * w[i];
      const t = sum + term;
      comp += Math.abs(sum) >= Math.abs(term) ? sum - t + term : term - t + sum;
      sum = t;
    }
  });
  return sum + comp;
}

/** A copy of a float64 input with one element moved by delta, same requiresGrad flag. */
function perturbed(x: Tensor, base: Float64Array, i: number, delta: number): Tensor {
  const v = Float64Array.from(base);
  v[i] += delta;
  return keel.tensor(v, { shape: x.shape, dtype: 'float64', requiresGrad: x.requiresGrad });
}

/**
 * Checks autograd's gradient of fn against central finite differences.
 * Every input that requires grad must be float64 and is checked; the other
 * inputs (indices, masks, targets) are held fixed. Throws an AssertionError
 * naming the input and element on a mismatch; returns what it computed.
 */
export function gradcheck(fn: GradFn, inputs: Tensor[], options: GradcheckOptions = {}): GradcheckReport {
  const h = options.h ?? 1e-6;
  const atol = options.atol ?? 1e-7;
  const rtol = options.rtol ?? 1e-6;
  const what = options.what ?? 'gradcheck';
  const diff = inputs.map((x, i) => (x.requiresGrad ? i : -1)).filter((i) => i >= 0);
  assert.ok(diff.length > 0, `${what}: no input requires grad`);
  for (const i of diff) {
    assert.equal(inputs[i].dtype, 'float64', `${what}: input ${i} is ${inputs[i].dtype}; finite differences need float64`);
  }

  return keel.scope(() => {
    const outs = asList(fn(...inputs));
    const rng = new Rng(options.seed ?? 1234);
    const weights = options.weights ?? outs.map((o) => randomWeights(o.shape, rng));
    assert.equal(weights.length, outs.length, `${what}: ${weights.length} weight arrays for ${outs.length} outputs`);
    outs.forEach((o, k) => {
      assert.equal(weights[k].length, o.numel(), `${what}: weights of output ${k} have ${weights[k].length} elements, output has ${o.numel()}`);
    });

    // analytic: autograd's gradient of L = Σ sum(out_k * W_k)
    const wTensors = outs.map((o, k) => keel.tensor(weights[k], { shape: o.shape, dtype: o.dtype }));
    let loss: Tensor | undefined;
    outs.forEach((o, k) => {
      if (!o.requiresGrad) return;
      const term = keel.ops.sum(keel.ops.mul(o, wTensors[k]));
      loss = loss === undefined ? term : keel.ops.add(loss, term);
    });
    const diffInputs = diff.map((i) => inputs[i]);
    const grads: (Tensor | null)[] = loss === undefined
      ? diffInputs.map(() => null)
      : keel.autograd.grad(loss, diffInputs, { allowUnused: true });
    const analytic = diffInputs.map((x, j) => {
      const g = grads[j];
      if (g === null) return new Float64Array(x.numel());
      assert.deepEqual(g.shape, x.shape, `${what}: gradient of input ${diff[j]} has shape ${JSON.stringify(g.shape)}, input ${JSON.stringify(x.shape)}`);
      return Float64Array.from(g.data() as Float64Array);
    });

    // numeric: central differences, one element at a time
    let evaluations = 0;
    const evalAt = (xs: Tensor[]): number =>
      keel.scope(() => {
        evaluations++;
        const r = asList(fn(...xs));
        return weightedSum(r, weights);
      });
    const numeric = diffInputs.map((x, j) => {
      const base = Float64Array.from(x.data() as Float64Array);
      const out = new Float64Array(base.length);
      for (let e = 0; e < base.length; e++) {
        const xs = inputs.slice();
        xs[diff[j]] = perturbed(x, base, e, h);
        const up = evalAt(xs);
        xs[diff[j]].dispose();
        xs[diff[j]] = perturbed(x, base, e, -h);
        const down = evalAt(xs);
        xs[diff[j]].dispose();
        out[e] = (up - down) / (2 * h);
      }
      return out;
    });

    let maxAbsErr = 0;
    analytic.forEach((a, j) => {
      const n = numeric[j];
      for (let e = 0; e < a.length; e++) {
        const err = Math.abs(a[e] - n[e]);
        maxAbsErr = Math.max(maxAbsErr, err);
        if (!(err <= atol + rtol * Math.abs(n[e]))) {
          assert.fail(
            `${what}: d/d input${diff[j]}[${e}]: autograd ${a[e]} vs finite differences ${n[e]} ` +
              `(|diff| ${err.toExponential(3)} > atol ${atol} + rtol ${rtol}·|numeric|)`,
          );
        }
      }
    });

    return {
      outputs: outs.map((o) => ({ shape: o.shape, values: Array.from(o.data() as ArrayLike<number | bigint>, Number) })),
      weights,
      analytic,
      numeric,
      maxAbsErr,
      evaluations,
    };
  });
}
