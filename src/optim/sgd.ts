// Stochastic gradient descent with momentum, dampening, Nesterov momentum,
// L2 weight decay and maximize: torch.optim.SGD's update (PyTorch 1.13,
// single-tensor path), op for op, so float32 results match it.
import * as ops from '../ops/index.js';
import { clone } from '../ops/index.js';
import { zerosLike } from '../core/creation.js';
import { interceptionActive } from '../core/dispatch.js';
import { native } from '../native/binding.js';
import type { Tensor } from '../core/tensor.js';
import { ids } from './multi-tensor.js';
import { checkRange, knownOptions, Optimizer, type GroupOf, type ParamsArg } from './optimizer.js';
import { boundableDTypes, maxAbs, ownUpdate, widen, type StepBound } from './update-bound.js';

export interface SGDHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
  /** One multi-tensor (_foreach) call per stage for the whole group (default true; bitwise the same numbers). */
  foreach: boolean;
}

export type SGDGroup = GroupOf<SGDHyper>;
export type SGDOptions = Partial<SGDHyper> & { lr: number };

/**
 *     g ← ∇ (−∇ if maximize) + weightDecay·p
 *     b ← g on the first step, else momentum·b + (1 − dampening)·g
 *     g ← g + momentum·b (nesterov) or b (momentum > 0)
 *     p ← p − lr·g
 */
export class SGD extends Optimizer<SGDHyper> {
  constructor(params: ParamsArg<SGDHyper>, options: SGDOptions) {
    knownOptions('SGD', options, ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov', 'maximize', 'foreach']);
    super(params, {
      lr: options.lr,
      momentum: options.momentum ?? 0,
      dampening: options.dampening ?? 0,
      weightDecay: options.weightDecay ?? 0,
      nesterov: options.nesterov ?? false,
      maximize: options.maximize ?? false,
      foreach: options.foreach ?? true,
    });
  }

  protected override validateGroup(g: SGDGroup): void {
    checkRange('SGD', 'learning rate', g.lr, 0);
    checkRange('SGD', 'momentum', g.momentum, 0);
    checkRange('SGD', 'weight decay', g.weightDecay, 0);
    checkRange('SGD', 'dampening', g.dampening, -Infinity);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new RangeError('SGD: Nesterov momentum requires a momentum and zero dampening');
  }

  /** The group's update in one native pass per tensor, the same numbers bitwise; false (nothing written) where it declines. */
  private updateFused(g: SGDGroup, ps: Tensor[], grads: Tensor[]): boolean {
    const { lr, momentum, dampening, weightDecay, nesterov, maximize } = g;
    if (momentum === 0) return native.sgdStep!(ids(ps), ids(grads), null, null, lr, 0, dampening, weightDecay, nesterov, maximize);
    // a parameter's first step makes its buffer (written with d by the pass)
    const fresh = new Map<Tensor, Tensor>();
    const bufs = ps.map((p) => {
      const b = this.state.get(p)?.tensors.momentum_buffer;
      if (b !== undefined) return b;
      const made = zerosLike(p);
      fresh.set(p, made);
      return made;
    });
    const first = ps.map((p) => fresh.has(p));
    if (!native.sgdStep!(ids(ps), ids(grads), ids(bufs), first, lr, momentum, dampening, weightDecay, nesterov, maximize)) {
      for (const b of fresh.values()) b.dispose();
      return false;
    }
    for (const [p, b] of fresh) this.stateOf(p, () => {}).tensors.momentum_buffer = b.keep();
    return true;
  }

  /**
   * |Δp| ≤ lr·d, d = |g| + weightDecay·|p| (|p| read when some group decays),
   * or with momentum lr·b (lr·(d + momentum·b) with Nesterov), b the buffer's
   * bound momentum·b₀ + |1 − dampening|·d (d on its first step).
   */
  protected override stepBound(gradMax: number): StepBound | undefined {
    if (!(gradMax >= 0 && gradMax < Infinity) || !ownUpdate(this, [SGD]) || !boundableDTypes(this.paramGroups)) return undefined;
    const decays = this.paramGroups.some((g) => g.weightDecay !== 0);
    const pMax = decays ? maxAbs(this.paramGroups.flatMap((g) => g.params)) : 0;
    const b0 = this.stateBounds?.buf ?? maxAbs([...this.state.values()].flatMap((s) => (s.tensors.momentum_buffer ? [s.tensors.momentum_buffer] : [])));
    let bufAfter = b0;
    let step = 0;
    for (const g of this.paramGroups) {
      const d = widen(widen(gradMax) + g.weightDecay * pMax);
      let delta = d;
      if (g.momentum !== 0) {
        const b = widen(Math.max(g.momentum * b0 + Math.abs(1 - g.dampening) * d, d));
        bufAfter = Math.max(bufAfter, b);
        delta = g.nesterov ? d + g.momentum * b : b;
      }
      step = Math.max(step, widen(g.lr * delta));
    }
    if (!(bufAfter < Infinity && step < Infinity)) return undefined;
    return { step, state: { buf: bufAfter } };
  }

  protected updateGroup(g: SGDGroup, params: [Tensor, Tensor][]): void {
    if (g.foreach && params.length > 0) {
      this.updateGroupForeach(g, params);
      return;
    }
    const { lr, momentum, dampening, weightDecay, nesterov, maximize } = g;
    for (const [p, grad] of params) {
      let d = maximize ? grad.neg() : grad;
      if (weightDecay !== 0) d = d.add(p, weightDecay);
      if (momentum !== 0) {
        const s = this.state.get(p);
        let buf = s?.tensors.momentum_buffer;
        if (buf === undefined) {
          const b = clone(d).detach();
          this.stateOf(p, () => {}).tensors.momentum_buffer = b.keep();
          buf = b;
        } else {
          buf.mul_(momentum).add_(d, 1 - dampening);
        }
        d = nesterov ? d.add(buf, momentum) : buf;
      }
      p.add_(d, -lr);
    }
  }

  /** torch.optim's _multi_tensor_sgd, fused into one native pass per tensor where every tensor is CPU float32 (native/sgd.cc). */
  private updateGroupForeach(g: SGDGroup, params: [Tensor, Tensor][]): void {
    const { lr, momentum, dampening, weightDecay, nesterov, maximize } = g;
    const ps = params.map(([p]) => p);
    let ds = params.map(([, gr]) => gr);
    if (native.sgdStep !== undefined && !interceptionActive() && this.updateFused(g, ps, ds)) return;
    if (maximize) ds = ops._foreachNeg(ds);
    if (weightDecay !== 0) ds = ops._foreachAdd.List(ds, ps, { alpha: weightDecay });
    if (momentum !== 0) {
      const bufs: Tensor[] = [];
      const existing: Tensor[] = [];
      ps.forEach((p, i) => {
        const buf = this.state.get(p)?.tensors.momentum_buffer;
        if (buf === undefined) {
          const b = clone(ds[i]).detach();
          this.stateOf(p, () => {}).tensors.momentum_buffer = b.keep();
          bufs.push(b);
        } else {
          bufs.push(buf);
          existing.push(buf);
        }
      });
      if (existing.length > 0) {
        const grads = ps.flatMap((p, i) => (existing.includes(bufs[i]) ? [ds[i]] : []));
        ops._foreachMul_.Scalar(existing, momentum);
        ops._foreachAdd_.List(existing, grads, { alpha: 1 - dampening });
      }
      ds = nesterov ? ops._foreachAdd.List(ds, bufs, { alpha: momentum }) : bufs;
    }
    ops._foreachAdd_.List(ps, ds, { alpha: -lr });
  }
}
