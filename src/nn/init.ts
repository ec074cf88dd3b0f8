// keel.nn.init: torch.nn.init's initialisers. Each fills a tensor in place,
// without recording autograd, and draws from libtorch's default CPU generator
// exactly as torch.nn.init does (one in-place uniform_/normal_ per tensor, the
// same bounds computed in the same double-precision order), so after the same
// manualSeed the numbers equal PyTorch's.
import { noGrad } from '../core/autograd.js';
import { tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

export type Nonlinearity =
  | 'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'conv_transpose1d' | 'conv_transpose2d' | 'conv_transpose3d'
  | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/** 'fan_in' (torch's spelling) or 'fanIn'. */
export type FanMode = 'fan_in' | 'fan_out' | 'fanIn' | 'fanOut';

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv1d': case 'conv2d': case 'conv3d':
    case 'conv_transpose1d': case 'conv_transpose2d': case 'conv_transpose3d': case 'sigmoid':
      return 1;
    case 'tanh': return 5.0 / 3;
    case 'relu': return Math.sqrt(2.0);
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      if (typeof slope !== 'number' || !Number.isFinite(slope)) throw new TypeError(`calculateGain: negative slope ${String(param)} is not a valid number`);
      return Math.sqrt(2.0 / (1 + slope * slope));
    }
    case 'selu': return 3.0 / 4;
    default: throw new RangeError(`calculateGain: unsupported nonlinearity '${String(nonlinearity)}'`);
  }
}

/** [fan_in, fan_out] of a weight: dim 1 and dim 0 times the receptive field (torch's rule). */
export function calculateFanInAndFanOut(t: Tensor): [number, number] {
  const shape = t.shape;
  if (shape.length < 2) throw new RangeError(`fan in and fan out can not be computed for a tensor with fewer than 2 dimensions (shape [${shape.join(', ')}])`);
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i];
  return [shape[1] * receptive, shape[0] * receptive];
}

function correctFan(t: Tensor, mode: FanMode): number {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  if (mode === 'fan_in' || mode === 'fanIn') return fanIn;
  if (mode === 'fan_out' || mode === 'fanOut') return fanOut;
  throw new RangeError(`mode '${String(mode)}' not supported, use 'fan_in' or 'fan_out'`);
}

export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  return noGrad(() => t.uniform_(a, b));
}

export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}

export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(value));
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}

export interface GainOptions {
  gain?: number;
}

/** Glorot uniform: U(-a, a), a = gain·√(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, { gain = 1 }: GainOptions = {}): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const std = gain * Math.sqrt(2.0 / (fanIn + fanOut));
  const a = Math.sqrt(3.0) * std;
  return uniform_(t, -a, a);
}

/** Glorot normal: N(0, std²), std = gain·√(2 / (fan_in + fan_out)). */
export function xavierNormal_(t: Tensor, { gain = 1 }: GainOptions = {}): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const std = gain * Math.sqrt(2.0 / (fanIn + fanOut));
  return normal_(t, 0, std);
}

export interface KaimingOptions {
  /** Negative slope of the rectifier after this layer (used with 'leaky_relu'). */
  a?: number;
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
}

/** He uniform: U(-b, b), b = gain·√(3 / fan). torch's defaults: a = 0, fan_in, leaky_relu. */
export function kaimingUniform_(t: Tensor, { a = 0, mode = 'fan_in', nonlinearity = 'leaky_relu' }: KaimingOptions = {}): Tensor {
  if (t.shape.includes(0)) return t;
  const fan = correctFan(t, mode);
  const gain = calculateGain(nonlinearity, a);
  const std = gain / Math.sqrt(fan);
  const bound = Math.sqrt(3.0) * std;
  return uniform_(t, -bound, bound);
}

/** He normal: N(0, std²), std = gain / √fan. */
export function kaimingNormal_(t: Tensor, { a = 0, mode = 'fan_in', nonlinearity = 'leaky_relu' }: KaimingOptions = {}): Tensor {
  if (t.shape.includes(0)) return t;
  const fan = correctFan(t, mode);
  const gain = calculateGain(nonlinearity, a);
  const std = gain / Math.sqrt(fan);
  return normal_(t, 0, std);
}

/**
 * Normal truncated to [a, b], by inverse CDF as torch.nn.init.trunc_normal_
 * (the bounds' erf comes from libtorch's, so it may differ from Python's
 * math.erf in the last bit).
 */
export function truncNormal_(t: Tensor, { mean = 0, std = 1, a = -2, b = 2 }: { mean?: number; std?: number; a?: number; b?: number } = {}): Tensor {
  const cdf = (x: number): number => (1 + erf(x / Math.sqrt(2))) / 2;
  const l = cdf((a - mean) / std);
  const u = cdf((b - mean) / std);
  return noGrad(() => {
    t.uniform_(2 * l - 1, 2 * u - 1);
    ops.erfinv_(t);
    t.mul_(std * Math.sqrt(2));
    t.add_(mean);
    t.clamp_(a, b);
    return t;
  });
}

function erf(x: number): number {
  return scope(() => ops.erf(tensor([x], { dtype: 'float64' })).item() as number);
}
