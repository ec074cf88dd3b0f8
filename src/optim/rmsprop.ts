// RMSprop (Hinton's lecture 6e; centred as Graves 2013): torch.optim.RMSprop's
// update (PyTorch 1.13, single-tensor path), op for op.
import type { Tensor } from '../core/tensor.js';
import { zerosLike } from '../core/creation.js';
import * as ops from '../ops/index.js';
import { checkRange, knownOptions, Optimizer, type GroupOf, type ParamsArg } from './optimizer.js';

export interface RMSpropHyper {
  lr: number;
  alpha: number;
  eps: number;
  weightDecay: number;
  momentum: number;
  centered: boolean;
  maximize: boolean;
}

export type RMSpropGroup = GroupOf<RMSpropHyper>;
export type RMSpropOptions = Partial<RMSpropHyper>;

/**
 *     g ← ∇ (−∇ if maximize) + weightDecay·p
 *     v ← α·v + (1 − α)·g²;  centred: ḡ ← α·ḡ + (1 − α)·g, v' = v − ḡ², else v' = v
 *     b ← momentum·b + g/(√v' + eps), p ← p − lr·b   (momentum > 0)
 *     p ← p − lr·g/(√v' + eps)                       (otherwise)
 * Defaults: lr 1e-2, alpha 0.99, eps 1e-8, weightDecay 0, momentum 0.
 */
export class RMSprop extends Optimizer<RMSpropHyper> {
  constructor(params: ParamsArg<RMSpropHyper>, options: RMSpropOptions = {}) {
    knownOptions('RMSprop', options, ['lr', 'alpha', 'eps', 'weightDecay', 'momentum', 'centered', 'maximize']);
    super(params, {
      lr: options.lr ?? 1e-2,
      alpha: options.alpha ?? 0.99,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0,
      momentum: options.momentum ?? 0,
      centered: options.centered ?? false,
      maximize: options.maximize ?? false,
    });
  }

  protected override validateGroup(g: RMSpropGroup): void {
    checkRange('RMSprop', 'learning rate', g.lr, 0);
    checkRange('RMSprop', 'epsilon value', g.eps, 0);
    checkRange('RMSprop', 'momentum value', g.momentum, 0);
    checkRange('RMSprop', 'weight_decay value', g.weightDecay, 0);
    checkRange('RMSprop', 'alpha value', g.alpha, 0);
  }

  protected updateGroup(g: RMSpropGroup, params: [Tensor, Tensor][]): void {
    const { lr, alpha, eps, weightDecay, momentum, centered, maximize } = g;
    for (const [p, gradient] of params) {
      const s = this.stateOf(p, (st) => {
        st.scalars.step = 0;
        st.tensors.square_avg = zerosLike(p);
        if (momentum > 0) st.tensors.momentum_buffer = zerosLike(p);
        if (centered) st.tensors.grad_avg = zerosLike(p);
      });
      s.scalars.step += 1;
      let grad = maximize ? gradient.neg() : gradient;
      if (weightDecay !== 0) grad = grad.add(p, weightDecay);
      const squareAvg = s.tensors.square_avg;
      ops.addcmul_(squareAvg.mul_(alpha), grad, grad, { value: 1 - alpha });
      let avg: Tensor;
      if (centered) {
        const gradAvg = (s.tensors.grad_avg ??= zerosLike(p).keep());
        gradAvg.mul_(alpha).add_(grad, 1 - alpha);
        avg = ops.sqrt_(ops.addcmul(squareAvg, gradAvg, gradAvg, { value: -1 }));
      } else {
        avg = squareAvg.sqrt();
      }
      avg.add_(eps);
      if (momentum > 0) {
        const buf = (s.tensors.momentum_buffer ??= zerosLike(p).keep());
        ops.addcdiv_(buf.mul_(momentum), grad, avg);
        p.add_(buf, -lr);
      } else {
        ops.addcdiv_(p, grad, avg, { value: -lr });
      }
    }
  }
}
