// The pool worker of `keel repro maxpool` (runPool in ../pool.ts): one training
// run per item. Each child keeps the data sets it has loaded, so a child that
// trains many runs on one (model geometry, data set) loads it once.
import { loadData, inputGeometry, type DataId, type DataSplit, type ModelId } from './models.js';
import { trainOne, type RunResult, type RunSpec } from './train.js';

export interface TrainItem {
  spec: RunSpec;
  nTrain: number;
  nTest: number;
}

const cache = new Map<string, { train: DataSplit; test: DataSplit }>();

/** The data of a run, loaded once per child and kept (the same examples for every model of a geometry). */
export function dataFor(model: ModelId, data: DataId, nTrain: number, nTest: number): { train: DataSplit; test: DataSplit } {
  const g = inputGeometry(model, data);
  const key = `${data}|${g.channels}x${g.size}|${nTrain}|${nTest}`;
  let d = cache.get(key);
  if (!d) {
    d = loadData(model, data, nTrain, nTest);
    cache.set(key, d);
  }
  return d;
}

export function runItem(item: TrainItem): RunResult {
  const d = dataFor(item.spec.model.id, item.spec.data, item.nTrain, item.nTest);
  return trainOne(item.spec, d.train, d.test);
}
