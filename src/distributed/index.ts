// Data-parallel training across processes on libtorch's c10d (Gloo).
export {
  initProcessGroup, destroyProcessGroup, isInitialized, getRank, getWorldSize, getLocalRank,
  allReduce, broadcast, allGather, reduceScatter, barrier, Work,
  type Backend, type ReduceOp, type InitOptions, type CollectiveOptions,
} from './process-group.js';
export { DistributedDataParallel, guardHook, type DDPOptions } from './ddp.js';
export { fitHook } from './fit-hook.js';
export { DistributedSampler, type DistributedSamplerOptions } from './sampler.js';
export { launch, freePort, type LaunchOptions, type LaunchResult } from './launch.js';
