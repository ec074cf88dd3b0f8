// The pool worker of `keel audit nonsmooth --protocol paper` (runPool in
// ../pool.ts): one work item of paper.ts per call; each child loads a data set
// once and keeps it.
import { paperData, runMaxpoolItem, runReluItem, type MaxpoolResult, type PaperData, type PaperItem, type ReluResult } from './paper.js';

const cache = new Map<string, PaperData>();

export function dataFor(it: PaperItem): PaperData {
  const kind = it.study === 'relu' ? 'mlp' : 'vgg';
  const key = `${kind}|${it.data}|${it.nTrain ?? 'all'}`;
  let d = cache.get(key);
  if (!d) {
    d = paperData(kind, it.data, it.nTrain);
    cache.set(key, d);
  }
  return d;
}

export function runItem(it: PaperItem): ReluResult | MaxpoolResult {
  const d = dataFor(it);
  return it.study === 'relu' ? runReluItem(it, d) : runMaxpoolItem(it, d);
}
