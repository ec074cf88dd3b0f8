// Data-parallel training through fit: `fitAsync({ model: ddp, ..., distributed: fitHook(ddp) })`.
// fit learns this rank, the module whose state checkpoints hold, and how to
// average the step's numbers (and agree on a stop) across ranks.
import { tensor } from '../core/creation.js';
import type { FitDistributed } from '../train/fit.js';
import type { DistributedDataParallel } from './ddp.js';
import { allReduce, getRank, getWorldSize } from './process-group.js';

export function fitHook(ddp: DistributedDataParallel): FitDistributed {
  return {
    rank: getRank(),
    worldSize: getWorldSize(),
    module: ddp.module,
    mean: (values: number[]): number[] => {
      const t = tensor(values, { dtype: 'float64' });
      try {
        // the same shape on every rank after every step: the per-call check (5–12 ms) is not needed
        allReduce(t, 'avg', { check: false });
        return Array.from(t.data() as Float64Array);
      } finally {
        t.dispose();
      }
    },
  };
}
