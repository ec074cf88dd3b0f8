// Everything the guard offers, as `keel.guard.*`.
export { Guard, type GuardOptions, type GuardStepResult, type GuardEvent, type GuardWarning, type GuardAction, type RollbackOptions, type RollbackHook, type RollbackCheckpoints, type GuardState } from './guard.js';
export { GuardReport, NonFiniteError, formatStats, formatScaler, type InputStats, type Phase, type ReportFields, type ScalerTrigger } from './report.js';
export { RULES, diagnose, baseName, type Rule, type RuleContext } from './rules.js';
export { POLICIES, Snapshot, backOffLr, finalLayer, reinitSmall, type Policy, type RepairFn, type RepairContext, type ScalerSnapshot } from './policies.js';
export { checkGradients, checkParamGradients, checkParameters, fusedRead, GradNormMonitor, LossMonitor, ForwardWatch, type GradCheck } from './detect.js';
export { traceStep, tensorStats, allFinite, userCallSite, type Finding, type TraceResult } from './trace.js';
