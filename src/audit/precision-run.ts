// Running a computation "in" a format for the audit: fp64 computes in float64,
// fp32 in float32, the narrower formats under keel.withPrecision (float32
// compute, every op output, parameter entry and gradient rounded to the format).
import type { Tensor } from '../core/tensor.js';
import { FORMATS, type FormatName } from '../precision/formats.js';
import { withPrecision } from '../precision/policy.js';

/** The formats an audit runs by default. */
export const AUDIT_FORMATS: readonly FormatName[] = ['fp64', 'fp32', 'bf16', 'fp16', 'fp8-e4m3', 'fp8-e5m2'];
/** Every format an audit accepts (the fnuz fp8 variants too). */
export const AUDIT_FORMATS_ACCEPTED = Object.keys(FORMATS) as readonly FormatName[];

/** The dtype the tensors of a format's run hold. */
export function computeDtype(format: FormatName): 'float64' | 'float32' {
  return format === 'fp64' ? 'float64' : 'float32';
}

/** Runs fn in the format (fn must create or cast its tensors to computeDtype(format)). */
export function inFormat<T>(format: FormatName, fn: () => T): T {
  return format === 'fp64' || format === 'fp32' ? fn() : withPrecision(format, fn);
}

/** x cast to the format's compute dtype (a new tensor, or x itself). */
export function castFor(format: FormatName, x: Tensor): Tensor {
  return x.dtype === computeDtype(format) ? x : x.to(computeDtype(format));
}
