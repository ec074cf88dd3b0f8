// One verdict line of the audit (issue 17 §3): every verdict names the
// statistic it rests on, the threshold it was judged against and the sample
// size. A verdict that rests on structural zeros or ties (a difference that
// fp64 shows too, so not a floating-point effect) or on fewer samples than the
// protocol asks for is 'insufficient', never HOLDS or a bare percentage.

export type VerdictOutcome = 'HOLDS' | 'FAILS' | 'insufficient';

export interface Verdict {
  outcome: VerdictOutcome;
  /** what is claimed, e.g. "share of θ in S ordered fp64 ≤ fp32 ≤ fp16" */
  claim: string;
  /** the statistic and its values, e.g. "share of θ whose epoch has a minibatch with differing gradients: fp64 0/20, fp32 3/20" */
  statistic: string;
  /** the rule it is judged by, e.g. "Wilson 95 % intervals not overlapping in the wrong order" */
  threshold: string;
  /** the sample size it rests on and the size the protocol asks for */
  n: number;
  required: number;
  /** why 'insufficient' (or a note on HOLDS / FAILS) */
  reason?: string;
}

/**
 * Judges a claim: 'insufficient' when n < required, when `structural` names
 * a structural cause or `cut` says the protocol was cut short; otherwise HOLDS or FAILS as `holds` says.
 */
export function judge(v: Omit<Verdict, 'outcome'> & { holds: boolean; structural?: string; cut?: string }): Verdict {
  const { holds, structural, cut, ...rest } = v;
  if (structural !== undefined) return { ...rest, outcome: 'insufficient', reason: structural };
  if (cut !== undefined) return { ...rest, outcome: 'insufficient', reason: cut };
  if (v.n < v.required) return { ...rest, outcome: 'insufficient', reason: `${v.n} samples, the protocol asks for ${v.required}${v.reason ? `; ${v.reason}` : ''}` };
  return { ...rest, outcome: holds ? 'HOLDS' : 'FAILS' };
}

/** "insufficient  <claim> — statistic: …; threshold: …; n = 20 (protocol: 1000); why: …" */
export function verdictLine(v: Verdict): string {
  return `${v.outcome.padEnd(12)} ${v.claim}\n` +
    `             statistic: ${v.statistic}\n` +
    `             threshold: ${v.threshold}\n` +
    `             n = ${v.n} (protocol: ${v.required})${v.reason ? `\n             ${v.outcome === 'insufficient' ? 'why insufficient' : 'note'}: ${v.reason}` : ''}`;
}
