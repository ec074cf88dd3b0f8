// Shared argument handling for 2-d layers: an int or an [h, w] pair, as
// torch's _pair, checked so that a wrong argument fails at construction.
import type { DType, DeviceLike } from '../core/dtype.js';

export type Size2 = number | [number, number];

export function pair(v: Size2, what: string, { min = 0 } = {}): [number, number] {
  const p: number[] = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || p.some((x) => !Number.isInteger(x) || x < min)) {
    throw new RangeError(`${what} must be an integer ≥ ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return [p[0], p[1]];
}

/** Where a layer's parameters are made (torch's factory_kwargs). */
export interface FactoryOptions {
  dtype?: DType;
  device?: DeviceLike;
}

export function factory({ dtype, device }: FactoryOptions): { dtype?: DType; device?: DeviceLike } {
  return { ...(dtype ? { dtype } : {}), ...(device ? { device } : {}) };
}
