// keel.train: the fit loop, metrics log, progress and checkpoints.
export { fit, evaluate, type FitOptions, type FitResult, type FitState, type Callback, type StepInfo, type EvalInfo, type SchedulerLike } from './fit.js';
export { MetricsLog, readMetrics, type MetricsRecord } from './metrics.js';
export { saveCheckpoint, loadCheckpoint, listCheckpoints, latestCheckpoint, type CheckpointContent } from './checkpoint.js';
export { createProgress, type Progress, type ProgressOptions } from './progress.js';
export { HealthMonitor, type HealthRecord, type LayerHealth, type HealthOptions } from './health.js';
export { TrainingPrecision, PRECISIONS, isPrecisionName, checkPrecisionName, type PrecisionName } from './precision.js';
