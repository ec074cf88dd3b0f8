// ReLU whose derivative at exactly 0 is a chosen number s (Bertoin et al.,
// NeurIPS 2021, "Numerical influence of ReLU'(0) on backpropagation"). The
// forward value is libtorch's relu; backward multiplies the incoming gradient
// by 1 where x > 0, by s where x == 0 exactly, and by 0 where x < 0. Every
// s in [0, 1] is an element of the Clarke subdifferential of relu at 0; s
// outside [0, 1] is allowed (the papers' "any s") but is not a subgradient.
import { Function, type FunctionContext } from '../core/autograd.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';

/** What one ReLU call saw: exact zeros among its inputs (set `zeroRecorder.current` to collect them). */
export interface ZeroRecord {
  /** inputs, and inputs exactly 0 (±0) */
  numel: number;
  zeros: number;
  /** samples (size of dimension 0) and samples with at least one exact zero */
  samples: number;
  samplesWithZero: number;
  /** the 0/1 mask of exact zeros, kept only when `zeroRecorder.keepMasks` (dispose it) */
  mask?: Tensor;
}

/** Collects a ZeroRecord per ReLUAt0 call while `current` is an array (in call order). */
export const zeroRecorder: { current: ZeroRecord[] | null; keepMasks: boolean } = { current: null, keepMasks: false };

/** relu(x) with ReLU'(0) = s: `ReLUAt0.apply(x, s)`. */
export class ReLUAt0 extends Function {
  static override forward(ctx: FunctionContext, x: Tensor, s: number): Tensor {
    ctx.saveForBackward(x);
    ctx.data.s = s;
    const rec = zeroRecorder.current;
    if (rec !== null) {
      rec.push(scope(() => {
        const z = x.eq(0);
        const samples = x.ndim > 0 ? x.shape[0] : 1;
        const perSample = x.ndim > 1 ? z.reshape([samples, -1]).sum(1).gt(0) : z;
        const r: ZeroRecord = { numel: x.numel(), zeros: Number(z.sum().item()), samples, samplesWithZero: Number(perSample.sum().item()) };
        if (zeroRecorder.keepMasks) r.mask = z.keep();
        return r;
      }));
    }
    return ops.relu(x);
  }

  static override backward(ctx: FunctionContext, g: Tensor): (Tensor | null)[] {
    const [x] = ctx.savedTensors;
    const s = ctx.data.s as number;
    // derivative: 1 on x > 0, s on x == 0, 0 elsewhere (NaN stays 0 as libtorch's threshold_backward)
    let d = x.gt(0).to(x.dtype);
    if (s !== 0) d = d.add(x.eq(0).to(x.dtype).mul(s));
    return [g.mul(d), null];
  }
}

/** Functional form: relu with ReLU'(0) = s (s = 0 is libtorch's own rule). */
export function reluAt0(x: Tensor, s = 0): Tensor {
  return ReLUAt0.apply<Tensor>(x, s);
}

/** nn.ReLU with a chosen ReLU'(0); the forward value is nn.ReLU's. */
export class ReLUWithDerivativeAt0 extends Module {
  constructor(readonly s = 0) {
    super();
  }

  forward(x: Tensor): Tensor {
    return reluAt0(x, this.s);
  }

  override extraRepr(): string {
    return `derivative_at_0=${this.s}`;
  }
}
