// The floating-point formats a precision policy rounds to, each described by
// the parameters that rounding needs. fp8 follows the OCP 8-bit floating point
// spec (OFP8, 2023): E4M3 has no infinities and one NaN pattern (S.1111.111),
// so its top binade reaches 448; E5M2 is IEEE-like.
import type { DType } from '../core/dtype.js';

export type FormatName = 'fp64' | 'fp32' | 'bf16' | 'fp16' | 'fp8-e4m3' | 'fp8-e5m2' | 'fp8-e4m3fnuz' | 'fp8-e5m2fnuz';

export interface FloatFormat {
  readonly name: FormatName;
  readonly bits: number;
  readonly exponentBits: number;
  /** Stored fraction bits (the leading 1 of a normal number is implicit). */
  readonly mantissaBits: number;
  readonly bias: number;
  /** Exponent of the smallest normal number, 2^minNormalExponent. */
  readonly minNormalExponent: number;
  /** Exponent of the top binade that holds finite values. */
  readonly maxExponent: number;
  readonly maxFinite: number;
  readonly minNormal: number;
  /** The smallest positive subnormal, 2^(minNormalExponent - mantissaBits). */
  readonly minSubnormal: number;
  /** Distance from 1 to the next larger value, 2^-mantissaBits. */
  readonly epsilon: number;
  /**
   * IEEE-like formats overflow to ±inf; a format without infinities (E4M3)
   * turns overflow and ±inf into NaN unless rounding saturates.
   */
  readonly hasInfinity: boolean;
  /** false for the fnuz formats (PyTorch 2.x's float8_e4m3fnuz, float8_e5m2fnuz): no −0 (its code is the NaN), so −0 rounds to +0. */
  readonly negativeZero: boolean;
  /** The libtorch dtype that stores this format exactly, if there is one. */
  readonly dtype?: DType;
}

function format(
  name: FormatName, exponentBits: number, mantissaBits: number, maxFinite: number, hasInfinity: boolean, dtype?: DType,
  { bias = 2 ** (exponentBits - 1) - 1, negativeZero = true } = {},
): FloatFormat {
  const minNormalExponent = 1 - bias;
  return Object.freeze({
    name,
    bits: 1 + exponentBits + mantissaBits,
    exponentBits,
    mantissaBits,
    bias,
    minNormalExponent,
    // IEEE reserves the all-ones exponent field for inf/NaN; E4M3 and the fnuz formats keep it for finite values
    maxExponent: 2 ** exponentBits - (hasInfinity ? 2 : 1) - bias,
    maxFinite,
    minNormal: 2 ** minNormalExponent,
    minSubnormal: 2 ** (minNormalExponent - mantissaBits),
    epsilon: 2 ** -mantissaBits,
    hasInfinity,
    negativeZero,
    ...(dtype ? { dtype } : {}),
  });
}

/** The formats by name. maxFinite is (2 - 2^-m) · 2^emax except for E4M3, whose top code is NaN. */
export const FORMATS: Readonly<Record<FormatName, FloatFormat>> = Object.freeze({
  'fp64': format('fp64', 11, 52, Number.MAX_VALUE, true, 'float64'),
  'fp32': format('fp32', 8, 23, (2 - 2 ** -23) * 2 ** 127, true, 'float32'),
  'bf16': format('bf16', 8, 7, (2 - 2 ** -7) * 2 ** 127, true, 'bfloat16'),
  'fp16': format('fp16', 5, 10, 65504, true, 'float16'),
  // OCP E4M3: bias 7, exponent field 1111 holds finite values except S.1111.111 (NaN): max 1.75 · 2^8
  'fp8-e4m3': format('fp8-e4m3', 4, 3, 448, false),
  // OCP E5M2: bias 15, IEEE inf and NaN in exponent field 11111: max 1.75 · 2^15
  'fp8-e5m2': format('fp8-e5m2', 5, 2, 57344, true),
  // the fnuz variants (PyTorch 2.x, AMD): bias one higher, no inf, no −0 (0x80 is the one NaN)
  // e4m3fnuz: max 1.875 · 2^7 = 240, smallest subnormal 2^-10
  'fp8-e4m3fnuz': format('fp8-e4m3fnuz', 4, 3, 240, false, undefined, { bias: 8, negativeZero: false }),
  // e5m2fnuz: max 1.75 · 2^15 = 57344, smallest subnormal 2^-17
  'fp8-e5m2fnuz': format('fp8-e5m2fnuz', 5, 2, 57344, false, undefined, { bias: 16, negativeZero: false }),
});

/** A format's name, a dtype name that stores one exactly, or a format object. */
export type FormatLike = FormatName | 'float64' | 'float32' | 'bfloat16' | 'float16' | FloatFormat;

const ALIASES: Record<string, FormatName> = {
  float64: 'fp64', float32: 'fp32', bfloat16: 'bf16', float16: 'fp16',
};

/** The format a name (or format object) denotes; throws naming an unknown one. */
export function formatOf(f: FormatLike | string): FloatFormat {
  if (typeof f === 'object' && f !== null) return f;
  if (typeof f === 'string') {
    if (Object.prototype.hasOwnProperty.call(FORMATS, f)) return FORMATS[f as FormatName];
    const alias = ALIASES[f];
    if (alias) return FORMATS[alias];
  }
  throw new RangeError(`unknown precision format ${JSON.stringify(f)} (known: ${Object.keys(FORMATS).join(', ')})`);
}
