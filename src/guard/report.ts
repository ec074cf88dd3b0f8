// What the guard says about a non-finite event: the first op that produced a
// non-finite value from finite inputs, where, why, and what to do. Prints
// readably on a terminal (format / toString) and is JSON in the metrics log.

/** Statistics of one op input (a tensor), or the value of a non-tensor argument. */
export interface InputStats {
  /** The schema argument's name ('self', 'other', 'exponent', 'tensors[1]'). */
  name: string;
  dtype?: string;
  shape?: number[];
  /** Over the finite values. */
  min?: number;
  max?: number;
  /** Smallest |x| over the finite values. */
  minAbs?: number;
  zeros?: number;
  negatives?: number;
  nans?: number;
  infs?: number;
  numel?: number;
  /** A non-tensor argument's value (a scalar, a list). */
  value?: unknown;
  /** The op that made this input in the traced step ('aten::sigmoid'), if traced. */
  producer?: string;
}

export type Phase = 'forward' | 'backward' | 'update';

/** Why a step the GradScaler skipped became a guard event, and at which scale it was replayed. */
export interface ScalerTrigger {
  /** 'max-consecutive-skips': that many skips in a row; 'scale-floor': the back-off left the scale below the floor. */
  trigger: 'max-consecutive-skips' | 'scale-floor';
  /** Skips in a row, this step included. */
  consecutiveSkips: number;
  /** The scale the step ran (and was replayed) at. */
  scale: number;
  /** The scale after this step's back-off. */
  newScale: number;
  scaleFloor: number;
  maxConsecutiveSkips: number;
}

export interface ReportFields {
  /** The ATen operator ('aten::sqrt'), or 'optimizer.step' for an update that went non-finite. */
  op: string;
  phase: Phase;
  /** Dotted module path ('decoder.head.conv'), '' at top level. */
  module: string;
  inputs: InputStats[];
  /** One line: what went wrong, in the field's words. */
  cause: string;
  /** The rule that matched (a key for guard.onRepair). */
  causeId: string;
  remedies: string[];
  step: number;
  /** First frame of user code (outside Keel) that led to the op, 'file:line:col'. */
  callSite: string;
  /** Statistics of the op's output (forward) or of the gradient that arrived at it (backward). */
  output?: InputStats;
  /** The precision format the step ran under, when a precision policy was active. */
  precision?: string;
  /** Where the check tripped: 'loss', 'gradients', 'parameters'. */
  detectedIn: string;
  /** Data-parallel training: the ranks whose own step was not finite (every rank acted alike). */
  ranks?: number[];
  /** Under a GradScaler: the skips that made this an event (a single skipped step is none). */
  scaler?: ScalerTrigger;
}

export class GuardReport implements ReportFields {
  op!: string;
  phase!: Phase;
  module!: string;
  inputs!: InputStats[];
  cause!: string;
  causeId!: string;
  remedies!: string[];
  step!: number;
  callSite!: string;
  output?: InputStats;
  precision?: string;
  detectedIn!: string;
  ranks?: number[];
  scaler?: ScalerTrigger;

  constructor(fields: ReportFields) {
    Object.assign(this, fields);
  }

  toJSON(): ReportFields {
    return { ...this };
  }

  /** A few lines for a terminal. */
  format(): string {
    const lines = [
      `non-finite value at step ${this.step} (detected in ${this.detectedIn})`,
      `  op:       ${this.op} (${this.phase})`,
      `  module:   ${this.module || '(unknown: the op ran in no module entered by .call(); a model run by .forward() directly records no module path)'}`,
      `  call:     ${this.callSite || '(unknown)'}`,
    ];
    if (this.ranks) lines.push(`  ranks:    ${this.ranks.join(', ')} (of the data-parallel group; every rank acted alike)`);
    if (this.precision) lines.push(`  precision: ${this.precision}`);
    if (this.scaler) lines.push(`  scaler:   ${formatScaler(this.scaler)}`);
    for (const s of this.inputs) lines.push(`  input ${s.name}: ${formatStats(s)}`);
    if (this.output) lines.push(`  ${this.phase === 'backward' ? 'grad out' : 'output'}: ${formatStats(this.output)}`);
    lines.push(`  cause:    ${this.cause}`);
    lines.push('  remedies:');
    for (const r of this.remedies) lines.push(`    - ${r}`);
    return lines.join('\n');
  }

  toString(): string {
    return this.format();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.format();
  }
}

function num(x: number | undefined): string {
  if (x === undefined) return '?';
  if (Number.isNaN(x)) return 'nan';
  if (x === 0 || (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5)) return String(Number(x.toPrecision(4)));
  return x.toExponential(3);
}

export function formatScaler(s: ScalerTrigger): string {
  // scales are powers of two (or the user's numbers): written exactly
  const why = s.trigger === 'scale-floor'
    ? `the loss scale fell to ${s.newScale}, below the floor ${s.scaleFloor} (scaleFloor)`
    : `${s.consecutiveSkips} steps in a row skipped (maxConsecutiveSkips ${s.maxConsecutiveSkips}); loss scale now ${s.newScale}`;
  return `${why}; replayed at the step's scale ${s.scale}`;
}

export function formatStats(s: InputStats): string {
  if (s.shape === undefined) return `= ${typeof s.value === 'number' && !Number.isFinite(s.value) ? String(s.value).replace('Infinity', 'inf') : JSON.stringify(s.value)}`;
  const parts = [`${s.dtype}[${s.shape.join(', ')}]`, `min ${num(s.min)}`, `max ${num(s.max)}`, `min|x| ${num(s.minAbs)}`, `zeros ${s.zeros}`, `negatives ${s.negatives}`];
  if (s.nans) parts.push(`NaN ${s.nans}`);
  if (s.infs) parts.push(`inf ${s.infs}`);
  if (s.producer) parts.push(`from ${s.producer}`);
  return parts.join(', ');
}

/** Thrown by the `raise` policy; `report` holds the fields. */
export class NonFiniteError extends Error {
  constructor(readonly report: GuardReport) {
    super(`Keel guard: ${report.cause}\n${report.format()}`);
    this.name = 'NonFiniteError';
  }
}
