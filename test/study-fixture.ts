// A toy Study for test/study.test.ts: a grid of x = 0 … n−1, a run squares x
// (x = 3 throws), one claim judged on the runs so far, a one-line report.
import type { GridState, RunRecord, Study } from '../dist/experiments/study.js';

export interface ToyProtocol { n: number; failAt: number | null }
export interface ToySpec { id: string; x: number }
export type ToyRecord = RunRecord<ToySpec, { y: number; pid: number }>;
export interface ToyClaim { claim: string; outcome: 'holds' | 'does not hold'; evidence: string }
export interface ToyResults { experiment: 'toy'; protocol: ToyProtocol; complete: boolean; runs: ToyRecord[]; startedAt: string; wallTimeMs: number; verdict: { claims: ToyClaim[] } }

let opened = 0;

export const study: Study<ToyProtocol, ToySpec, { y: number; pid: number }, ToyRecord, ToyResults, { opened: number }, ToyClaim> = {
  name: 'toy',
  grid: (p) => Array.from({ length: p.n }, (_, x) => ({ id: `x=${x}`, x })),
  key: (p) => String(p.n),
  open: () => ({ opened: ++opened }),
  run(spec, _shared, p) {
    if (spec.x === p.failAt) throw new RangeError(`no square for ${spec.x}`);
    return { y: spec.x * spec.x, pid: process.pid };
  },
  module: new URL(import.meta.url),
  label: (spec) => `toy ${spec.id}`,
  describe: (rec) => `y=${rec.result!.y}`,
  claims(_p, runs) {
    const ok = runs.filter((r) => r.result !== null);
    const holds = ok.every((r) => r.result!.y >= r.x);
    return [{ claim: 'x² ≥ x on the integers', outcome: holds ? 'holds' : 'does not hold', evidence: `${ok.length} runs` }];
  },
  assemble: (protocol, s: GridState<ToyRecord, ToyClaim>) => ({ experiment: 'toy', protocol, complete: s.complete, runs: s.runs, startedAt: s.startedAt, wallTimeMs: s.wallTimeMs, verdict: { claims: s.claims } }),
  report: (r) => `toy: ${r.runs.length} runs, ${r.verdict.claims[0].outcome}`,
};
