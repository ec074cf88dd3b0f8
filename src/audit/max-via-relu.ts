// max written through ReLU: max(a, b) = b + relu(a − b). Over the reals this is
// max; its automatic derivative at a tie (a == b) is (s, 1 − s) for ReLU'(0) = s,
// so the backward choice is made by the ReLU rule. `maxLoop` folds it over the
// last dimension from left to right, as a program written with a loop would.
import type { Tensor } from '../core/tensor.js';
import { reluAt0 } from './relu.js';

/** max(a, b) computed as b + relu(a − b), with ReLU'(0) = s in backward. */
export function maxViaRelu(a: Tensor, b: Tensor, s = 0): Tensor {
  return b.add(reluAt0(a.sub(b), s));
}

/** The max over the last dimension by a left-to-right loop of maxViaRelu: m ← max(x_i, m). */
export function maxLoop(x: Tensor, s = 0): Tensor {
  const n = x.shape[x.ndim - 1];
  let m = x.select(-1, 0);
  for (let i = 1; i < n; i++) m = maxViaRelu(x.select(-1, i), m, s);
  return m;
}
