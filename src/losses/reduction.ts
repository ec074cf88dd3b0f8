// Reductions as PyTorch names them, and ATen's codes for them.
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

/** 'mean' (the default), 'sum', or 'none' (one loss per element, the input's shape). */
export type Reduction = 'mean' | 'sum' | 'none';

const CODES: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

/** at::Reduction::Reduction for a reduction name. */
export function reductionCode(reduction: Reduction | undefined, fn: string): number {
  const r = reduction ?? 'mean';
  const code = CODES[r];
  if (code === undefined) throw new TypeError(`${fn}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(reduction)}`);
  return code;
}

const warned = new Set<string>();

/**
 * Elementwise losses broadcast input against target as PyTorch does, with its
 * warning once per function: a shape mismatch there is usually a bug (a
 * [N] prediction against a [N, 1] target makes an N×N loss).
 */
export function broadcastPair(input: Tensor, target: Tensor, fn: string): [Tensor, Tensor] {
  const a = input.shape;
  const b = target.shape;
  if (a.length === b.length && a.every((d, i) => d === b[i])) return [input, target];
  if (!warned.has(fn)) {
    warned.add(fn);
    process.emitWarning(
      `${fn}: target shape [${b.join(', ')}] differs from input shape [${a.join(', ')}]; they are broadcast, which is likely not what you want`,
      'KeelLossWarning',
    );
  }
  const [x, y] = ops.broadcastTensors([input, target]);
  return [x, y];
}

export function sameShape(input: Tensor, target: Tensor, fn: string): void {
  const a = input.shape;
  const b = target.shape;
  if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
    throw new Error(`${fn}: target shape [${b.join(', ')}] must equal input shape [${a.join(', ')}]`);
  }
}
