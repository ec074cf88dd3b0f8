// An ODE block: N layers with weights (K_j, b_j), j = 0..N−1, stacked in time
// as K: [N, ...kernel], b: [N, features], integrated with step h = T/N.
// Each architecture (one file each) gives its integrator step and the
// right-hand side F_j(u) of the first-order system the step discretises, so
// that the stability analysis sees what the integrator sees.
import { noGrad } from '../core/autograd.js';
import { empty, tensor } from '../core/creation.js';
import type { DType } from '../core/dtype.js';
import type { Tensor } from '../core/tensor.js';
import { Module, Parameter } from '../nn/module.js';
import * as ops from '../ops/index.js';
import type { ActivationName } from './activation.js';
import { biasSize, fanIn, kernelShape, type KernelSpec } from './operator.js';

export type Architecture = 'resnet' | 'antisymmetric' | 'hamiltonian' | 'leapfrog' | 'parabolic';
/** forward Euler (ResNet, antisymmetric, parabolic), Verlet (Hamiltonian), leapfrog (second order). */
export type Integrator = 'forward-euler' | 'verlet' | 'leapfrog';
/**
 * - random: one draw K entries N(0, initScale²/fanIn), repeated over all
 *   layers (K(t) constant in time, as Meganet's repmat(θ₀, nt, 1) starts,
 *   e.g. EResNN_Circle's repmat(1e-2·randn, nt, 1)), b_j = 0;
 * - random-per-layer: an independent draw per layer (a conventional ResNet
 *   init; the weights are then not smooth in time and the ODE view is lost);
 * - identity: K_j = I (centre tap for convolutions), b_j = 0 — Meganet's
 *   EResNN_SwissRollHam start, theta = repmat([1;0;0;1;0], nt, 1);
 * - zeros: K_j = 0, b_j = 0 — Meganet's EResNN_SwissRollAntiSym start, theta = 0.
 */
export type InitName = 'random' | 'random-per-layer' | 'identity' | 'zeros';

export interface OdeBlockOptions {
  kernel: KernelSpec;
  /** number of layers N */
  depth: number;
  /** step size; default T/N */
  h?: number;
  /** final time T; default 1 (ignored when h is given) */
  T?: number;
  activation?: ActivationName;
  init?: InitName;
  initScale?: number;
  dtype?: DType;
  /** antisymmetric only: the damping γ in K = W − Wᵀ − γI */
  gamma?: number;
  /** antisymmetric only: use the paper's ½(W − Wᵀ − γI) */
  halfFactor?: boolean;
}

/** What integrate() gives back. */
export interface Integration {
  /** the block's output (y_N for the Hamiltonian block, Y_N otherwise) */
  out: Tensor;
  /** the first-order states u_j at which layer j's right-hand side is evaluated (when asked for), then u_N */
  states: Tensor[];
}

export abstract class OdeBlock extends Module {
  abstract readonly architecture: Architecture;
  abstract readonly integrator: Integrator;
  readonly kernel: KernelSpec;
  readonly depth: number;
  readonly h: number;
  readonly activation: ActivationName;
  /** [N, ...kernel shape] */
  K: Tensor;
  /** [N, features] */
  b: Tensor;
  protected readonly _options: OdeBlockOptions;

  constructor(options: OdeBlockOptions) {
    super();
    const { kernel, depth } = options;
    if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`depth must be a positive integer, got ${depth}`);
    const h = options.h ?? (options.T ?? 1) / depth;
    if (!(h > 0)) throw new RangeError(`step size h must be positive, got ${h}`);
    this._options = { ...options };
    this.kernel = kernel;
    this.depth = depth;
    this.h = h;
    this.activation = options.activation ?? 'tanh';
    const dtype = options.dtype ?? 'float32';
    this.K = Parameter(empty([depth, ...kernelShape(kernel)], { dtype }));
    this.b = Parameter(empty([depth, biasSize(kernel)], { dtype }));
    this.initialise(options.init ?? 'random', options.initScale ?? 1);
  }

  /** Final time T = N·h. */
  get T(): number {
    return this.depth * this.h;
  }

  initialise(init: InitName, scale = 1): void {
    noGrad(() => {
      this.b.zero_();
      if (init === 'zeros') this.K.zero_();
      else if (init === 'random-per-layer') this.K.normal_(0, scale / Math.sqrt(fanIn(this.kernel)));
      else if (init === 'random') {
        const K0 = this.K.select(0, 0);
        K0.normal_(0, scale / Math.sqrt(fanIn(this.kernel)));
        for (let j = 1; j < this.depth; j++) {
          const Kj = this.K.select(0, j);
          Kj.copy_(K0);
          Kj.dispose();
        }
        K0.dispose();
      }
      else if (init === 'identity') {
        this.K.zero_();
        const shape = kernelShape(this.kernel);
        const n = shape[0];
        const c = shape.length === 4 ? Math.floor(shape[2] / 2) : -1;
        for (let j = 0; j < this.depth; j++) {
          const Kj = this.K.select(0, j);
          for (let i = 0; i < n; i++) {
            const e = c < 0 ? Kj.select(0, i).select(0, i) : Kj.select(0, i).select(0, i).select(0, c).select(0, c);
            e.fill_(scale);
            e.dispose();
          }
          Kj.dispose();
        }
      } else throw new TypeError(`unknown init '${String(init)}' (random, identity, zeros)`);
    });
  }

  /** The bias b_j shaped to broadcast over a state (dense: [m]; images: [m, 1, 1]). */
  protected biasOf(b: Tensor): Tensor {
    return this.kernel.type === 'dense' ? b : b.reshape([-1, 1, 1]);
  }

  /** The layers' weights, one tensor per layer (one unbind: its backward is a single stack). */
  protected layers(): { K: Tensor[]; b: Tensor[] } {
    return { K: this.K.unbind(0), b: this.b.unbind(0) };
  }

  /** Forward Euler, Y_{j+1} = Y_j + h·force(K_j, b_j, Y_j): the first-order blocks' integrator. */
  protected forwardEuler(Y0: Tensor, keepStates: boolean, force: (K: Tensor, b: Tensor, Y: Tensor) => Tensor): Integration {
    const { K, b } = this.layers();
    let Y = Y0;
    const states: Tensor[] = [];
    for (let j = 0; j < this.depth; j++) {
      if (keepStates) states.push(Y);
      Y = ops.add(Y, force(K[j], b[j], Y), { alpha: this.h });
    }
    if (keepStates) states.push(Y);
    return { out: Y, states };
  }

  /** Integrates from Y0; with keepStates, also returns every first-order state u_j. */
  abstract integrate(Y0: Tensor, keepStates?: boolean): Integration;

  /** The right-hand side F_j(u) of the first-order ODE system at layer j. */
  abstract rhs(j: number, u: Tensor): Tensor;

  /** The first-order state u_0 the integration starts from (Y0, or [y0, z0] / [Y0, V0]). */
  abstract initialState(Y0: Tensor): Tensor;

  forward(Y0: Tensor): Tensor {
    return this.integrate(Y0, false).out;
  }

  /**
   * The smoothness-in-time regulariser (1/2h)·Σ_{j≥1} ‖K_j − K_{j−1}‖² + ‖b_j − b_{j−1}‖²:
   * Meganet's tikhonovReg(opTimeDer(·, nt, h), h·α), i.e. (hα/2)‖(θ_j − θ_{j−1})/h‖²,
   * with α left to the caller.
   */
  smoothness(): Tensor {
    const N = this.depth;
    if (N < 2) return ops.mul(ops.sum(this.K), 0);
    const dK = ops.sub(this.K.slice(0, 1, N), this.K.slice(0, 0, N - 1));
    const db = ops.sub(this.b.slice(0, 1, N), this.b.slice(0, 0, N - 1));
    return ops.mul(ops.add(ops.sum(ops.square(dK)), ops.sum(ops.square(db))), 1 / (2 * this.h));
  }

  /** A copy of this block (same architecture, options and weights) in another dtype, e.g. float64 for the analysis. */
  withDtype(dtype: DType): this {
    const Ctor = this.constructor as new (o: OdeBlockOptions) => this;
    const copy = new Ctor({ ...this._options, depth: this.depth, h: this.h, T: undefined, dtype, init: 'zeros' });
    noGrad(() => {
      copy.K.copy_(this.K);
      copy.b.copy_(this.b);
    });
    return copy;
  }

  /**
   * Multi-level prolongation: a block of depth 2N with h/2 (same T) whose
   * layer i sits at time i·h/2 and takes its weights by linear interpolation
   * in time between old layers j = ⌊i/2⌋ and j+1 (old layer j sits at j·h;
   * past the last layer the weights are held constant).
   */
  prolong(): this {
    const Ctor = this.constructor as new (o: OdeBlockOptions) => this;
    const N = this.depth;
    const next = new Ctor({ ...this._options, depth: 2 * N, h: this.h / 2, T: undefined, init: 'zeros' });
    noGrad(() => {
      const i0: number[] = [];
      const i1: number[] = [];
      for (let i = 0; i < 2 * N; i++) {
        const j = Math.floor(i / 2);
        i0.push(j);
        i1.push(i % 2 === 0 ? j : Math.min(j + 1, N - 1));
      }
      const idx0 = tensor(i0, { dtype: 'int64' });
      const idx1 = tensor(i1, { dtype: 'int64' });
      for (const [src, dst] of [[this.K, next.K], [this.b, next.b]] as const) {
        const a = ops.indexSelect(src, 0, idx0);
        const c = ops.indexSelect(src, 0, idx1);
        const mid = ops.mul(ops.add(a, c), 0.5);
        dst.copy_(mid);
        a.dispose(); c.dispose(); mid.dispose();
      }
      idx0.dispose(); idx1.dispose();
    });
    return next;
  }
}
