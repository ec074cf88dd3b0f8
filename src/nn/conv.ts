// Conv2d and ConvTranspose2d with torch.nn's parameters (weight
// [out, in/groups, kh, kw] and [in, out/groups, kh, kw]), options and
// initialisation (_ConvNd.reset_parameters).
import { noGrad } from '../core/autograd.js';
import { empty } from '../core/creation.js';
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { calculateFanInAndFanOut, kaimingUniform_, uniform_ } from './init.js';
import { Module, Parameter } from './module.js';
import { factory, pair, type FactoryOptions, type Size2 } from './pair.js';

export interface Conv2dOptions extends FactoryOptions {
  stride?: Size2;
  /** Zero padding on each side, or 'same' (output size = input size; stride 1 only) or 'valid' (none). */
  padding?: Size2 | 'same' | 'valid';
  dilation?: Size2;
  groups?: number;
  bias?: boolean;
  /** Only 'zeros' (torch's default). */
  paddingMode?: 'zeros';
}

function checkChannels(layer: string, inChannels: number, outChannels: number, groups: number): void {
  for (const [n, v] of [['inChannels', inChannels], ['outChannels', outChannels], ['groups', groups]] as const) {
    if (!Number.isInteger(v) || v < (n === 'groups' ? 1 : 0)) throw new RangeError(`${layer}: ${n} must be a ${n === 'groups' ? 'positive' : 'non-negative'} integer, got ${v}`);
  }
  if (inChannels % groups !== 0) throw new RangeError(`${layer}: inChannels (${inChannels}) must be divisible by groups (${groups})`);
  if (outChannels % groups !== 0) throw new RangeError(`${layer}: outChannels (${outChannels}) must be divisible by groups (${groups})`);
}

/** _ConvNd.reset_parameters: kaiming_uniform_(a=√5) on the weight, then bias U(±1/√fan_in). */
function resetConv(weight: Tensor, bias: Tensor | null): void {
  noGrad(() => {
    kaimingUniform_(weight, { a: Math.sqrt(5) });
    if (bias) {
      const [fanIn] = calculateFanInAndFanOut(weight);
      if (fanIn !== 0) {
        const bound = 1 / Math.sqrt(fanIn);
        uniform_(bias, -bound, bound);
      }
    }
  });
}

export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | 'same' | 'valid';
  readonly dilation: [number, number];
  readonly groups: number;
  /** [outChannels, inChannels / groups, kh, kw] */
  weight: Tensor;
  /** [outChannels], or null with bias: false */
  bias: Tensor | null;

  constructor(inChannels: number, outChannels: number, kernelSize: Size2, options: Conv2dOptions = {}) {
    super();
    const { stride = 1, padding = 0, dilation = 1, groups = 1, bias = true, paddingMode = 'zeros', ...rest } = options;
    checkChannels('Conv2d', inChannels, outChannels, groups);
    if (paddingMode !== 'zeros') throw new RangeError(`Conv2d: paddingMode '${String(paddingMode)}' is not supported (only 'zeros')`);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize, 'Conv2d: kernelSize', { min: 1 });
    this.stride = pair(stride, 'Conv2d: stride', { min: 1 });
    this.dilation = pair(dilation, 'Conv2d: dilation', { min: 1 });
    if (padding === 'same' || padding === 'valid') {
      if (padding === 'same' && this.stride.some((s) => s !== 1)) {
        throw new RangeError("Conv2d: padding 'same' is not supported for strided convolutions (as in PyTorch)");
      }
      this.padding = padding;
    } else {
      this.padding = pair(padding, 'Conv2d: padding');
    }
    this.groups = groups;
    this.weight = Parameter(empty([outChannels, inChannels / groups, ...this.kernelSize], factory(rest)));
    this.bias = bias ? Parameter(empty([outChannels], factory(rest))) : null;
    this.resetParameters();
  }

  resetParameters(): void {
    resetConv(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    if (typeof this.padding === 'string') {
      return ops.conv2d.padding(x, this.weight, this.bias, this.stride, this.padding, this.dilation, this.groups);
    }
    return ops.conv2d(x, this.weight, this.bias, this.stride, this.padding, this.dilation, this.groups);
  }

  override extraRepr(): string {
    const p = typeof this.padding === 'string' ? `'${this.padding}'` : `(${this.padding.join(', ')})`;
    return `${this.inChannels}, ${this.outChannels}, kernel_size=(${this.kernelSize.join(', ')}), stride=(${this.stride.join(', ')}), padding=${p}` +
      (this.dilation.some((d) => d !== 1) ? `, dilation=(${this.dilation.join(', ')})` : '') +
      (this.groups !== 1 ? `, groups=${this.groups}` : '') + (this.bias ? '' : ', bias=False');
  }
}

export interface ConvTranspose2dOptions extends FactoryOptions {
  stride?: Size2;
  padding?: Size2;
  /** Extra size added to one side of the output (to pick among the input sizes a strided conv maps alike). */
  outputPadding?: Size2;
  groups?: number;
  bias?: boolean;
  dilation?: Size2;
}

export class ConvTranspose2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly outputPadding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  /** [inChannels, outChannels / groups, kh, kw] */
  weight: Tensor;
  bias: Tensor | null;

  constructor(inChannels: number, outChannels: number, kernelSize: Size2, options: ConvTranspose2dOptions = {}) {
    super();
    const { stride = 1, padding = 0, outputPadding = 0, groups = 1, bias = true, dilation = 1, ...rest } = options;
    checkChannels('ConvTranspose2d', inChannels, outChannels, groups);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize, 'ConvTranspose2d: kernelSize', { min: 1 });
    this.stride = pair(stride, 'ConvTranspose2d: stride', { min: 1 });
    this.padding = pair(padding, 'ConvTranspose2d: padding');
    this.outputPadding = pair(outputPadding, 'ConvTranspose2d: outputPadding');
    this.dilation = pair(dilation, 'ConvTranspose2d: dilation', { min: 1 });
    this.groups = groups;
    this.weight = Parameter(empty([inChannels, outChannels / groups, ...this.kernelSize], factory(rest)));
    this.bias = bias ? Parameter(empty([outChannels], factory(rest))) : null;
    this.resetParameters();
  }

  resetParameters(): void {
    resetConv(this.weight, this.bias);
  }

  /** outputSize ([h, w] or [n, c, h, w]) picks the output padding, as torch's forward(input, output_size). */
  forward(x: Tensor, outputSize?: number[]): Tensor {
    const op = outputSize === undefined ? this.outputPadding : this.outputPaddingFor(x, outputSize);
    return ops.convTranspose2d(x, this.weight, this.bias, this.stride, this.padding, op, this.groups, this.dilation);
  }

  private outputPaddingFor(x: Tensor, outputSize: number[]): [number, number] {
    const size = outputSize.length === 4 ? outputSize.slice(2) : outputSize;
    if (size.length !== 2) throw new RangeError(`ConvTranspose2d: outputSize must have 2 or 4 entries, got [${outputSize.join(', ')}]`);
    const inShape = x.shape;
    const res: number[] = [];
    for (let d = 0; d < 2; d++) {
      const inSize = inShape[inShape.length - 2 + d];
      const min = (inSize - 1) * this.stride[d] - 2 * this.padding[d] + this.dilation[d] * (this.kernelSize[d] - 1) + 1;
      const max = min + this.stride[d] - 1;
      if (size[d] < min || size[d] > max) {
        throw new RangeError(`ConvTranspose2d: requested output size [${size.join(', ')}] is not reachable: dim ${d} must be in [${min}, ${max}]`);
      }
      res.push(size[d] - min);
    }
    return [res[0], res[1]];
  }

  override extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernel_size=(${this.kernelSize.join(', ')}), stride=(${this.stride.join(', ')}), padding=(${this.padding.join(', ')})` +
      (this.outputPadding.some((d) => d !== 0) ? `, output_padding=(${this.outputPadding.join(', ')})` : '') +
      (this.groups !== 1 ? `, groups=${this.groups}` : '') + (this.bias ? '' : ', bias=False');
  }
}
