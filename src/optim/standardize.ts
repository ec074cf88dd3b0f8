// Gradient standardisation, SING's first half, usable with any optimizer:
// per parameter tensor, centre the gradient per output channel (gradient
// centralization, Yong et al. 2020; tensors of ≥ 2 dims only), then divide
// the whole tensor by its L2 norm. As the SING authors' code does it
// (github.com/AdrienCourtois/SING, sing.py: centralize_gradient,
// normalize_gradient), gradients are changed in place.
import { enableGrad } from '../core/autograd.js';
import { Tensor } from '../core/tensor.js';
import { standardizeInPlace } from './multi-tensor.js';
import type { OptimizerLike, OptimizerStateDict, ParamGroup } from './optimizer.js';

export interface StandardizeOptions {
  /** Subtract each output channel's mean (dims 1..n-1) from tensors of ≥ 2 dims. Default true. */
  centralize?: boolean;
  /** Divide by the tensor's L2 norm + eps. Default true. */
  normalize?: boolean;
  /** Added to the norm. Default 1e-8. */
  eps?: number;
}

/** Centres (≥ 2-d) and normalises one gradient tensor in place. */
export function standardizeGradient(grad: Tensor, options: StandardizeOptions = {}): void {
  const { centralize = true, normalize = true, eps = 1e-8 } = options;
  standardizeInPlace([grad], centralize, normalize, eps);
}

/** Standardises, in place, the gradient of every parameter that has one (one native pass over the list). */
export function standardizeGradients(params: Tensor | Tensor[], options: StandardizeOptions = {}): void {
  const { centralize = true, normalize = true, eps = 1e-8 } = options;
  const grads: Tensor[] = [];
  for (const p of params instanceof Tensor ? [params] : params) {
    const g = p.grad;
    if (g !== undefined) grads.push(g);
  }
  standardizeInPlace(grads, centralize, normalize, eps);
}

/**
 * Wraps an optimizer: each step standardises the gradients in place, then
 * runs the inner optimizer's step (`new GradientStandardization(new
 * keel.optim.AdamW(params, opts))`). Parameter groups, zeroGrad and the state
 * dict are the inner optimizer's, so schedulers drive it directly.
 */
export class GradientStandardization implements OptimizerLike {
  readonly options: Required<StandardizeOptions>;

  constructor(readonly inner: OptimizerLike, options: StandardizeOptions = {}) {
    this.options = { centralize: options.centralize ?? true, normalize: options.normalize ?? true, eps: options.eps ?? 1e-8 };
  }

  get paramGroups(): ParamGroup[] {
    return this.inner.paramGroups;
  }

  get defaults(): OptimizerLike['defaults'] {
    return this.inner.defaults;
  }

  step<T = undefined>(closure?: () => T): T | undefined {
    const loss = closure ? enableGrad(closure) : undefined;
    for (const g of this.inner.paramGroups) standardizeGradients(g.params, this.options);
    this.inner.step();
    return loss;
  }

  zeroGrad(setToNone = true): void {
    this.inner.zeroGrad(setToNone);
  }

  stateDict(): OptimizerStateDict {
    return this.inner.stateDict();
  }

  loadStateDict(state: OptimizerStateDict): void {
    this.inner.loadStateDict(state);
  }

  dispose(): void {
    (this.inner as { dispose?: () => void }).dispose?.();
  }
}

/** `new GradientStandardization(optimizer, options)`. */
export function withStandardizedGradients(optimizer: OptimizerLike, options: StandardizeOptions = {}): GradientStandardization {
  return new GradientStandardization(optimizer, options);
}
