// 2-d pooling: MaxPool2d, AvgPool2d and AdaptiveAvgPool2d, with torch.nn's
// options (a stride left out equals the kernel size).
import type { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from './module.js';
import { pair, type Size2 } from './pair.js';

export interface MaxPool2dOptions {
  stride?: Size2;
  padding?: Size2;
  dilation?: Size2;
  /** Round the output size up instead of down. */
  ceilMode?: boolean;
}

export class MaxPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly ceilMode: boolean;

  constructor(kernelSize: Size2, { stride, padding = 0, dilation = 1, ceilMode = false }: MaxPool2dOptions = {}) {
    super();
    this.kernelSize = pair(kernelSize, 'MaxPool2d: kernelSize', { min: 1 });
    this.stride = pair(stride ?? kernelSize, 'MaxPool2d: stride', { min: 1 });
    this.padding = pair(padding, 'MaxPool2d: padding');
    this.dilation = pair(dilation, 'MaxPool2d: dilation', { min: 1 });
    this.ceilMode = ceilMode;
  }

  forward(x: Tensor): Tensor {
    return ops.maxPool2d(x, this.kernelSize, this.stride, this.padding, this.dilation, this.ceilMode);
  }

  override extraRepr(): string {
    return `kernel_size=(${this.kernelSize.join(', ')}), stride=(${this.stride.join(', ')}), padding=(${this.padding.join(', ')}), dilation=(${this.dilation.join(', ')}), ceil_mode=${this.ceilMode ? 'True' : 'False'}`;
  }
}

export interface AvgPool2dOptions {
  stride?: Size2;
  padding?: Size2;
  ceilMode?: boolean;
  /** Count the zero padding in the average's divisor (torch's default). */
  countIncludePad?: boolean;
  /** Divide by this instead of the window size. */
  divisorOverride?: number | null;
}

export class AvgPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly ceilMode: boolean;
  readonly countIncludePad: boolean;
  readonly divisorOverride: number | null;

  constructor(kernelSize: Size2, { stride, padding = 0, ceilMode = false, countIncludePad = true, divisorOverride = null }: AvgPool2dOptions = {}) {
    super();
    this.kernelSize = pair(kernelSize, 'AvgPool2d: kernelSize', { min: 1 });
    this.stride = pair(stride ?? kernelSize, 'AvgPool2d: stride', { min: 1 });
    this.padding = pair(padding, 'AvgPool2d: padding');
    this.ceilMode = ceilMode;
    this.countIncludePad = countIncludePad;
    this.divisorOverride = divisorOverride;
  }

  forward(x: Tensor): Tensor {
    return ops.avgPool2d(x, this.kernelSize, this.stride, this.padding, this.ceilMode, this.countIncludePad, this.divisorOverride);
  }

  override extraRepr(): string {
    return `kernel_size=(${this.kernelSize.join(', ')}), stride=(${this.stride.join(', ')}), padding=(${this.padding.join(', ')})`;
  }
}

/** Average pooling to a fixed output size; null in a dim keeps the input's size there. */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number | null, number | null];

  constructor(outputSize: number | [number | null, number | null]) {
    super();
    const s = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize;
    if (!Array.isArray(s) || s.length !== 2 || s.some((d) => d !== null && (!Number.isInteger(d) || d < 1))) {
      throw new RangeError(`AdaptiveAvgPool2d: outputSize must be a positive integer or a pair of them (or null), got ${JSON.stringify(outputSize)}`);
    }
    this.outputSize = [s[0], s[1]];
  }

  forward(x: Tensor): Tensor {
    const shape = x.shape;
    const size = this.outputSize.map((d, i) => d ?? shape[shape.length - 2 + i]);
    return ops.adaptiveAvgPool2d(x, size);
  }

  override extraRepr(): string {
    return `output_size=(${this.outputSize.map((d) => d ?? 'None').join(', ')})`;
  }
}
