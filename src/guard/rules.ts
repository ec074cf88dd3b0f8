// The one table of diagnosis rules: (op, inputs, phase) → cause + remedies.
// The first rule that matches wins, so specific rules come before general ones.
// A rule's id is the key a repair is registered under (guard.onRepair).
import type { FloatFormat } from '../precision/formats.js';
import type { InputStats, Phase } from './report.js';

export interface RuleContext {
  /** 'aten::sqrt' */
  op: string;
  /** 'sqrt' (no namespace, no overload, no trailing _) */
  base: string;
  phase: Phase;
  module: string;
  inputs: InputStats[];
  output?: InputStats;
  /** Active precision format, if a policy ran the step. */
  precision?: FloatFormat;
  /** The module is the model's last parameterised layer. */
  finalLayer: boolean;
  /** Statistics of the logits that fed a sigmoid producing this op's input, when traced. */
  logits?: InputStats;
  /** For 'update': the learning rate(s) and gradient norm. */
  lr?: number;
  gradNorm?: number;
  gradNormMean?: number;
  /** For 'update': the optimizer's eps (Adam-style denominators). */
  eps?: number;
  /** The op's input already held NaN/inf and no op of the step made it. */
  nonFiniteInput?: { name: string; kind: 'parameter' | 'buffer' | 'data' };
  /** The op turned deliberately written ±inf (a mask fill) into NaN. */
  fromIntendedInf?: boolean;
  /**
   * A parameter of the model holds a finite value beyond √(fp32 max) ≈ 1.8e19
   * (no trained weight is that large; its square overflows float32): the
   * largest one, when the guard located an event.
   */
  extremeParameter?: { name: string; maxAbs: number };
  /** For a gradient-norm overflow: the parameter whose gradient is largest, and that largest |gradient| entry. */
  largestGradient?: { name: string; maxAbs: number };
}

export interface Rule {
  id: string;
  match(c: RuleContext): boolean;
  cause(c: RuleContext): string;
  remedies(c: RuleContext): string[];
}

const NEAR_ZERO = 1e-6;

function tensorInputs(c: RuleContext): InputStats[] {
  return c.inputs.filter((s) => s.shape !== undefined);
}
function first(c: RuleContext): InputStats | undefined {
  return tensorInputs(c)[0];
}
function arg(c: RuleContext, name: string): unknown {
  return c.inputs.find((s) => s.name === name)?.value;
}
function hasNearZero(s: InputStats | undefined, tol = NEAR_ZERO): boolean {
  return s !== undefined && ((s.zeros ?? 0) > 0 || (s.minAbs !== undefined && s.minAbs < tol));
}
function hasInf(s: InputStats | undefined): boolean {
  return s !== undefined && (s.infs ?? 0) > 0;
}
function hasExactly(s: InputStats | undefined, v: number): boolean {
  return s !== undefined && ((v > 0 && (s.max ?? -Infinity) >= v) || (v < 0 && (s.min ?? Infinity) <= v));
}
/** Inverse trigonometric and hyperbolic functions whose real domain is bounded. */
const BOUNDED_DOMAIN: Record<string, { lo: number; hi: number; open: boolean; formula: string }> = {
  acos: { lo: -1, hi: 1, open: false, formula: '−1/√(1 − x²)' },
  arccos: { lo: -1, hi: 1, open: false, formula: '−1/√(1 − x²)' },
  asin: { lo: -1, hi: 1, open: false, formula: '1/√(1 − x²)' },
  arcsin: { lo: -1, hi: 1, open: false, formula: '1/√(1 − x²)' },
  atanh: { lo: -1, hi: 1, open: true, formula: '1/(1 − x²)' },
  arctanh: { lo: -1, hi: 1, open: true, formula: '1/(1 − x²)' },
  acosh: { lo: 1, hi: Infinity, open: false, formula: '1/√(x² − 1)' },
  arccosh: { lo: 1, hi: Infinity, open: false, formula: '1/√(x² − 1)' },
};
function isFractionalPow(c: RuleContext): boolean {
  if (c.base !== 'pow') return false;
  const e = arg(c, 'exponent');
  return typeof e === 'number' && e > 0 && e < 1;
}
const fmt = (x: number | undefined): string => (x === undefined ? '?' : Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5 ? x.toExponential(2) : String(Number(x.toPrecision(3))));
const precisionName = (c: RuleContext): string => c.precision?.name ?? 'fp32';
const maxFinite = (c: RuleContext): number => c.precision?.maxFinite ?? 3.4028234663852886e38;

const HIGHER_PRECISION = (c: RuleContext): string =>
  c.precision && c.precision.name !== 'fp32' && c.precision.name !== 'fp64'
    ? `run this op (or the step) in higher precision: bf16 has fp32's range, or keep ${c.op} in fp32`
    : 'run the step in float64 to confirm it is a range problem';

export const RULES: Rule[] = [
  {
    // not an op's fault: the values came in non-finite
    id: 'non-finite-input',
    match: (c) => c.nonFiniteInput !== undefined,
    cause: (c) => {
      const n = c.nonFiniteInput ?? { name: '?', kind: 'data' };
      const s = c.inputs.find((i) => i.nans || i.infs);
      const what = s ? `${s.nans ?? 0} NaN and ${s.infs ?? 0} ±inf of ${s.numel ?? '?'} values` : 'non-finite values';
      return n.kind === 'data'
        ? `the input '${n.name}' of ${c.op}${c.module ? ` in ${c.module}` : ''} already holds ${what}: no op of the step made them — the data (batch or target) are bad`
        : `the ${n.kind} '${n.name}' already holds ${what} before the step (loaded or set non-finite, or a previous update)`;
    },
    remedies: (c) => c.nonFiniteInput?.kind !== 'parameter' && c.nonFiniteInput?.kind !== 'buffer'
      ? ['check the data pipeline: find the samples with NaN/inf (isfinite per sample) and fix or drop them', 'validate batches as they are loaded (a transform that refuses non-finite values)']
      : ['reload the weights from a checkpoint written before the values went non-finite', 'check the file or the code that set them'],
  },
  {
    id: 'fully-masked-row',
    match: (c) => /^(_?softmax|_?log_softmax|special_softmax|special_log_softmax)$/.test(c.base) && c.phase === 'forward' &&
      (c.fromIntendedInf === true || (hasInf(first(c)) && (c.output?.nans ?? 0) > 0)),
    cause: (c) => `${c.base} over a fully masked row: every entry of a row is −inf (a mask fill), so exp(−inf − max) = 0/0 = NaN (${c.output?.nans ?? '?'} NaN in the output)`,
    remedies: () => [
      'keep at least one unmasked position per row (e.g. let padding positions attend to themselves)',
      'fill with a large finite negative value (−1e9, or the dtype\'s lowest) instead of −inf',
      'zero the fully masked rows afterwards: where(row all masked, 0, softmax)',
    ],
  },
  {
    id: 'custom-function-backward',
    match: (c) => c.op.startsWith('Function ') && c.phase === 'backward',
    cause: (c) => `the backward of the custom ${c.op} returned a non-finite gradient while the gradient at its outputs was finite`,
    remedies: () => ['check the backward formula\'s domain (a division, a log or a root of the saved values) and guard it with an epsilon or a clamp', 'compare it with keel.autograd.gradcheck in float64'],
  },
  {
    id: 'optimizer-zero-denominator',
    match: (c) => c.phase === 'update' && c.eps !== undefined && c.eps <= 0,
    cause: (c) => `the optimizer divides by √v̂ + eps with eps = ${c.eps}: an entry whose gradients have been exactly 0 has v̂ = 0, and the update is 0/0 = NaN`,
    remedies: () => ['set eps > 0 (1e-8 is the default)', 'keep eps > 0 even when the gradients are large'],
  },
  {
    // the MDE case: a variance over the valid pixels of a random crop of sparse ground truth
    id: 'unbiased-variance-few-samples',
    match: (c) => (c.base === 'var' || c.base === 'std' || c.base === 'var_mean' || c.base === 'std_mean') &&
      (first(c)?.shape?.reduce((a, b) => a * b, 1) ?? 2) <= (typeof arg(c, 'correction') === 'number' ? (arg(c, 'correction') as number) : 1),
    cause: (c) => `${c.base} with the unbiased (N − 1) estimator over ${first(c)?.shape?.reduce((a, b) => a * b, 1) ?? '?'} element(s) divides by N − 1 ≤ 0: NaN (e.g. too few valid pixels in a random crop of sparse ground truth)`,
    remedies: () => [
      'use the biased variance (correction: 0, unbiased=False)',
      'skip batches with fewer than 2 valid elements, or use the safe SILog',
    ],
  },
  {
    id: 'sqrt-at-zero',
    match: (c) => (c.base === 'sqrt' || c.base === 'rsqrt' || isFractionalPow(c)) && c.phase === 'backward' && hasNearZero(first(c)),
    cause: (c) => c.base === 'pow'
      ? `pow(x, ${String(arg(c, 'exponent'))}) at x = ${fmt(first(c)?.minAbs)}: a fractional power's gradient p·x^(p − 1) grows without bound as x → 0 and is infinite at 0`
      : `${c.base}(x) at x = ${fmt(first(c)?.minAbs)}: its gradient grows without bound as x → 0 and is infinite at 0 (a distance or a std at exactly 0; the SILog case: √(mean d² − λ·mean(d)²) near the optimum)`,
    remedies: (c) => [
      c.base === 'pow' ? 'add an epsilon to the base: (x + 1e-6)^p, or clamp it: x.clamp(min=1e-6)^p' : 'add an epsilon inside the root: sqrt(x + 1e-8), or clamp: sqrt(x.clamp(min=1e-8))',
      ...(c.base === 'pow' ? [] : ['for a distance, leave out the pairs at distance 0 (the diagonal of a distance matrix) or use the squared distance', 'use the safe SILog (keel.losses safe variant: eps inside the root, or no root: mean d² − λ·mean(d)²)']),
      'clip gradients (clipGradNorm) so one infinite step cannot poison the weights',
    ],
  },
  {
    id: 'sqrt-of-negative',
    match: (c) => (c.base === 'sqrt' || c.base === 'rsqrt' || isFractionalPow(c)) && (first(c)?.negatives ?? 0) > 0,
    cause: (c) => `${c.base} of a negative number (min ${fmt(first(c)?.min)}) is NaN — e.g. an unbiased variance minus a mean term that rounding made negative`,
    remedies: () => [
      'clamp the argument: sqrt(x.clamp(min=1e-8))',
      'compute the variance with the biased (N) estimator, and only over enough valid pixels',
    ],
  },
  {
    id: 'bounded-domain',
    match: (c) => {
      const d = BOUNDED_DOMAIN[c.base];
      const x = first(c);
      if (d === undefined || x === undefined) return false;
      const outside = (x.min ?? 0) < d.lo || (x.max ?? 0) > d.hi;
      const atEdge = hasExactly(x, d.lo) || hasExactly(x, d.hi);
      return outside || ((c.phase === 'backward' || d.open) && atEdge);
    },
    cause: (c) => {
      const d = BOUNDED_DOMAIN[c.base];
      const x = first(c)!;
      const dom = d.hi === Infinity ? `[${d.lo}, ∞)` : `${d.open ? '(' : '['}${d.lo}, ${d.hi}${d.open ? ')' : ']'}`;
      if ((x.min ?? 0) < d.lo || (x.max ?? 0) > d.hi) {
        const past = (x.max ?? 0) > d.hi ? `max x = ${d.hi} + ${fmt((x.max ?? 0) - d.hi)}` : `min x = ${d.lo} − ${fmt(d.lo - (x.min ?? 0))}`;
        return `${c.base} of x outside its domain ${dom} (${past}) is NaN — e.g. a cosine or a correlation that rounding put past ±1 (identical or opposite vectors)`;
      }
      return `${c.base} at the edge of its domain ${dom} (x in [${fmt(x.min)}, ${fmt(x.max)}]): its ${c.phase === 'backward' ? 'gradient ' + d.formula : 'value'} is infinite there (a cosine of exactly ±1: identical or opposite vectors)`;
    },
    remedies: (c) => {
      const d = BOUNDED_DOMAIN[c.base] ?? BOUNDED_DOMAIN.acos;
      return [
        `clamp the argument inside the domain: x.clamp(${d.lo} + 1e-6${d.hi === Infinity ? '' : `, ${d.hi} − 1e-6`})`,
        'use a loss without the inverse function (1 − cos θ instead of θ = acos(cos θ)), or atan2(‖a × b‖, a · b) for an angle',
      ];
    },
  },
  {
    id: 'atan2-at-origin',
    match: (c) => c.base === 'atan2' && c.phase === 'backward' && tensorInputs(c).length >= 2 && tensorInputs(c).slice(0, 2).every((s) => hasNearZero(s, 1e-30)),
    cause: () => 'atan2(y, x) at (0, 0): the angle of a zero vector is undefined and its gradient (x, −y)/(x² + y²) is 0/0 (a predicted direction that is exactly zero: a bias-free head on an all-zero input)',
    remedies: () => [
      'leave out (mask) the rows whose vector is zero, or add an epsilon: atan2(y, x + 1e-8) does not help at y = 0 — mask instead',
      'compare directions without the angle: 1 − cos(θ − θ*) = 1 − (x cos θ* + y sin θ*)/‖(x, y)‖ with ‖·‖ + eps',
    ],
  },
  {
    id: 'norm-zero-variance',
    match: (c) => /^(native_)?(layer_norm|group_norm|batch_norm|instance_norm)$/.test(c.base) && typeof arg(c, 'eps') === 'number' && (arg(c, 'eps') as number) <= 0,
    cause: (c) => `${c.base} with eps = ${String(arg(c, 'eps'))}: a group with zero variance (a constant or all-zero position, e.g. padding) normalises as (x − μ)/√(0 + eps) = 0/0 = NaN`,
    remedies: () => ['set eps > 0 (1e-5, PyTorch\'s default)', 'mask padding positions out before the norm'],
  },
  {
    id: 'extreme-parameter',
    match: (c) => c.extremeParameter !== undefined && c.phase !== 'update' && ((c.output?.infs ?? 0) > 0 || (c.output?.nans ?? 0) > 0 || c.output === undefined),
    cause: (c) => `the parameter '${c.extremeParameter!.name}' holds a value of magnitude ${fmt(c.extremeParameter!.maxAbs)} (finite, but beyond √(fp32 max) ≈ 1.8e19: no trained weight is that large), and ${c.op} overflowed downstream of it — a corrupted weight (a bit flip in a checkpoint) or a diverged run`,
    remedies: () => [
      'reload the weights from an earlier checkpoint and check the file (its checksum)',
      'if the run diverged: lower the learning rate, clip gradients, add warmup',
    ],
  },
  {
    id: 'gradient-norm-overflow',
    match: (c) => c.base === 'grad_norm',
    cause: (c) => `every gradient is finite but their global norm overflows float32 (> 1.8e19)${c.largestGradient ? `; the largest is in '${c.largestGradient.name}' (|g| up to ${fmt(c.largestGradient.maxAbs)})` : ''}${c.lr !== undefined ? ` at lr ${fmt(c.lr)}` : ''}${c.gradNormMean ? ` against a running mean norm of ${fmt(c.gradNormMean)}` : ''}: the run is diverging (learning-rate blow-up)`,
    remedies: (c) => [`lower the learning rate (try ${fmt((c.lr ?? 1e-3) / 10)}) and check the schedule (a warmup that overshoots)`, 'clip gradients: clipGradNorm(params, 1.0)', 'go back to an earlier state (policy: rollback)'],
  },
  {
    id: 'log-sigmoid-underflow',
    match: (c) => /^log(2|10)?$/.test(c.base) && first(c)?.producer === 'aten::sigmoid' && hasNearZero(first(c), 1e-30),
    cause: (c) => `log(sigmoid(z)) with sigmoid underflowed to ${fmt(first(c)?.minAbs)}${c.logits ? ` (logits in [${fmt(c.logits.min)}, ${fmt(c.logits.max)}])` : ''}: log(0) = −inf in ${precisionName(c)}`,
    remedies: (c) => [
      'compute log-sigmoid on the logits: keel.ops.logSigmoid(z) (exact, never −inf for finite z)',
      'or floor it: log(sigmoid(z).clamp(min=1e-7))',
      ...(c.logits && Math.max(Math.abs(c.logits.min ?? 0), Math.abs(c.logits.max ?? 0)) > 15
        ? ['initialise the final layer small (weights N(0, 0.001²), bias 0) so the sigmoid starts unsaturated'] : []),
    ],
  },
  {
    id: 'log-of-zero',
    match: (c) => /^(log|log2|log10|xlogy|special_xlog1py)$/.test(c.base) && (hasNearZero(first(c), 1e-30) || (first(c)?.negatives ?? 0) > 0),
    cause: (c) => {
      const s = first(c);
      return (s?.negatives ?? 0) > 0 && !hasNearZero(s, 1e-30)
        ? `log of a negative number (min ${fmt(s?.min)}) is NaN`
        : `log at x = ${fmt(s?.minAbs)}: log(0) = −inf${c.phase === 'backward' ? ' and its gradient 1/x is infinite' : ''}`;
    },
    remedies: () => ['add an epsilon: log(x + 1e-8), or clamp: log(x.clamp(min=1e-8))', 'check that the argument is positive where it is meant to be (a depth, a probability)'],
  },
  {
    id: 'log1p-below-minus-one',
    match: (c) => c.base === 'log1p' && (first(c)?.min ?? 0) <= -1,
    cause: (c) => `log1p(x) at x = ${fmt(first(c)?.min)} ≤ −1`,
    remedies: () => ['clamp the argument above −1: log1p(x.clamp(min=-1 + 1e-6))'],
  },
  {
    id: 'exp-overflow',
    match: (c) => /^(exp|exp2|expm1|cosh|sinh)$/.test(c.base) && (first(c)?.max ?? 0) > Math.log(maxFinite(c)) * 0.9,
    cause: (c) => `${c.base}(x) overflowed: x reaches ${fmt(first(c)?.max)}, above log(max ${precisionName(c)}) = ${fmt(Math.log(maxFinite(c)))}`,
    remedies: (c) => [
      `clamp the argument: exp(x.clamp(max=${fmt(Math.floor(Math.log(maxFinite(c)) * 0.9))}))`,
      'use the log-domain form (logsumexp, logSoftmax, softplus) instead of exp then log/divide',
      HIGHER_PRECISION(c),
    ],
  },
  {
    id: 'division-by-zero',
    match: (c) => (/^(div|reciprocal|true_divide|floor_divide)$/.test(c.base)) && hasNearZero(c.base === 'reciprocal' ? first(c) : tensorInputs(c)[1] ?? first(c), 1e-30),
    cause: (c) => `division by ~0 (smallest |divisor| ${fmt((c.base === 'reciprocal' ? first(c) : tensorInputs(c)[1])?.minAbs)})${c.phase === 'backward' ? ': the gradient −a/b² is infinite' : ''}`,
    remedies: () => ['add an epsilon to the denominator: a / (b + 1e-8), or b.clamp(min=1e-8) for a positive b', 'mask out the entries whose denominator is zero (no valid pixels, an empty batch)'],
  },
  {
    id: 'zero-times-inf',
    match: (c) => /^(mul|matmul|mm|bmm|addmm|linear|conv\d?d?|convolution|_convolution|where|einsum)$/.test(c.base)
      && tensorInputs(c).some(hasInf) && tensorInputs(c).some((s) => (s.zeros ?? 0) > 0),
    cause: () => '0 · ∞ = NaN: an infinite value met a zero (an infinite activation or gradient times a masked-out entry)',
    remedies: () => ['find where the infinite value came from (it is the non-finite input above) and bound it there', 'mask with where(mask, x, 0) instead of multiplying by a 0/1 mask'],
  },
  {
    id: 'saturated-final-layer',
    match: (c) => (c.base === 'sigmoid' || c.base === 'log_sigmoid' || c.base === 'log_sigmoid_forward' || c.base === 'tanh') && c.finalLayer,
    cause: (c) => `the final layer's ${c.base} saturates (inputs in [${fmt(first(c)?.min)}, ${fmt(first(c)?.max)}]): its init scale is too large for the activation`,
    remedies: () => ['initialise the final layer small: weights N(0, 0.001²), bias 0', 'compute the loss on logits (logSigmoid, BCE with logits)', 'clip gradients'],
  },
  {
    id: 'lr-blowup',
    match: (c) => c.phase === 'update',
    cause: (c) => `the optimizer step made parameters non-finite from finite gradients (lr ${fmt(c.lr)}, gradient norm ${fmt(c.gradNorm)}${c.gradNormMean ? `, running mean ${fmt(c.gradNormMean)}` : ''}): learning-rate blow-up`,
    remedies: (c) => [`lower the learning rate (try ${fmt((c.lr ?? 1e-3) / 10)})`, 'clip gradients: clipGradNorm(params, 1.0)', 'add a learning-rate warmup'],
  },
  {
    id: 'precision-overflow',
    match: (c) => c.precision !== undefined && c.precision.name !== 'fp32' && c.precision.name !== 'fp64' && (hasInf(c.output) || c.output === undefined),
    cause: (c) => `${c.op} ${c.phase === 'backward' ? 'gradient' : 'output'} exceeds ${c.precision!.name}'s range (max ${fmt(c.precision!.maxFinite)}) from finite inputs`,
    remedies: (c) => [HIGHER_PRECISION(c), 'scale the values down (normalise inputs, scale the loss down, use loss scaling with a lower scale)', `clamp at this op to ±${fmt(c.precision!.maxFinite)}`],
  },
  {
    id: 'overflow',
    match: (c) => hasInf(c.output) && (c.output?.nans ?? 0) === 0,
    cause: (c) => `${c.op} overflowed to ±inf in ${precisionName(c)} from finite inputs (largest |input| ${fmt(Math.max(...tensorInputs(c).map((s) => Math.max(Math.abs(s.min ?? 0), Math.abs(s.max ?? 0)))))})`,
    remedies: (c) => ['clip gradients and lower the learning rate if weights have grown', 'normalise the activations (a norm layer) or clamp at this op', HIGHER_PRECISION(c)],
  },
  {
    id: 'non-finite-op',
    match: () => true,
    cause: (c) => `${c.op} produced a non-finite ${c.phase === 'backward' ? 'gradient' : 'value'} from finite inputs`,
    remedies: (c) => ['guard this op\'s domain (clamp its inputs, add an epsilon)', 'clip gradients', 'lower the learning rate', HIGHER_PRECISION(c)],
  },
];

/** The first matching rule's diagnosis. */
export function diagnose(c: RuleContext): { causeId: string; cause: string; remedies: string[] } {
  for (const r of RULES) {
    if (r.match(c)) return { causeId: r.id, cause: r.cause(c), remedies: r.remedies(c) };
  }
  throw new Error('unreachable: the last rule matches everything');
}

/** 'aten::log_sigmoid_forward.default' → 'log_sigmoid_forward' */
export function baseName(op: string): string {
  const m = /^(?:aten::)?([^.]+)/.exec(op);
  return (m ? m[1] : op).replace(/_$/, '');
}

/** Ops whose backward is the source of an infinite gradient at some inputs (preferred when several consumers could be blamed). */
export function backwardRuleMatches(c: RuleContext): boolean {
  const d = diagnose(c);
  return d.causeId !== 'non-finite-op' && d.causeId !== 'overflow' && d.causeId !== 'precision-overflow';
}
