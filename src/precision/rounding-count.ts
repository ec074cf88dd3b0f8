// What rounding to a format loses, counted per op: values that were finite
// and became ±inf (overflow; NaN for a format without infinities), and
// non-zero values that became 0 (underflow). The precision policy reports
// every output it rounds to the running counter, when there is one; health
// telemetry runs one on the steps it records, so other steps pay nothing.
// Counts stay on the device until read.
import { noGrad } from '../core/autograd.js';
import { unintercepted } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import { Tensor } from '../core/tensor.js';
import * as ops from '../ops/index.js';

export interface RoundingTally {
  /** the op ('aten::mm', ...) */
  op: string;
  /** where it ran (the module path, '' at top level), as the counter's `where` says */
  where: string;
  overflow: Tensor;
  underflow: Tensor;
}

export class RoundingCounter {
  /** by op and place */
  readonly tallies = new Map<string, RoundingTally>();

  /** @param where names the place of the op being rounded (e.g. the running module's path) */
  constructor(private readonly where: () => string = () => '') {}

  /** One output: `exact` as the op computed it, `rounded` as the format holds it. */
  add(op: string, exact: Tensor, rounded: Tensor): void {
    const where = this.where();
    const key = `${where}\u0000${op}`;
    unintercepted(() => noGrad(() => scope(() => {
      const x = exact.detach();
      const r = rounded.detach();
      const over = ops.logicalAnd(ops.isfinite(x), ops.logicalNot(ops.isfinite(r))).sum();
      const under = ops.logicalAnd(x.ne(0), r.eq(0)).sum();
      const t = this.tallies.get(key);
      if (t === undefined) {
        this.tallies.set(key, { op, where, overflow: over.keep(), underflow: under.keep() });
      } else {
        t.overflow.add_(over);
        t.underflow.add_(under);
      }
    })));
  }

  dispose(): void {
    for (const t of this.tallies.values()) {
      t.overflow.dispose();
      t.underflow.dispose();
    }
    this.tallies.clear();
  }
}

let running: RoundingCounter | undefined;

/** The counter outputs are reported to, if any. */
export function roundingCounter(): RoundingCounter | undefined {
  return running;
}

/** Starts counting (replacing any running counter); stop with the function returned. */
export function countRounding(counter: RoundingCounter): () => void {
  running = counter;
  return () => {
    if (running === counter) running = undefined;
  };
}
