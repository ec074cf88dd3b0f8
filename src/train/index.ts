// keel.train: the fit loop, metrics log, progress and checkpoints.
export { fit, fitAsync, evaluate, type FitAsyncOptions, type FitOptions, type FitResult, type FitState, type Callback, type StepInfo, type EvalInfo, type SchedulerLike } from './fit.js';
export { MetricsLog, readMetrics, type MetricsRecord } from '../log/metrics.js';
export { saveCheckpoint, loadCheckpoint, listCheckpoints, removeCheckpointsAfter, latestCheckpoint, restoreLatestIntact, manifestProblem, CheckpointError, type CheckpointContent, type SkippedCheckpoint } from './checkpoint.js';
export { createProgress, type Progress, type ProgressOptions } from './progress.js';
export { HealthMonitor, type HealthRecord, type LayerHealth, type HealthOptions } from '../log/health.js';
export { TrainingPrecision, PRECISIONS, isPrecisionName, checkPrecisionName, type PrecisionName } from './precision.js';
export { handleInterrupts, restoreTerminal, type Interrupt } from './interrupt.js';
export { acquireLock, describeRun, prepareFreshRun, removeLeftovers, mergeResumeFlags, RunFolderError, type RunLock } from './run-folder.js';
