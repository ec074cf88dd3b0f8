// Low precision: formats, exact rounding to them, and the policy that rounds
// every op's output and gradient (DESIGN.md, "Low precision").
export { FORMATS, formatOf, type FloatFormat, type FormatName, type FormatLike } from './formats.js';
export { round, isRepresentable, RoundToFormat, type RoundOptions } from './round.js';
export { PrecisionPolicy, withPrecision, currentPrecision, type PrecisionOptions } from './policy.js';
export { DelayedScaling, Fp8Recipe, withFp8, type DelayedScalingOptions, type Fp8RecipeOptions } from './fp8.js';
export { RoundingCounter, countRounding, roundingCounter, type RoundingTally } from './rounding-count.js';
