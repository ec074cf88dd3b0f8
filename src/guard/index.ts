// The NaN guard (DESIGN.md, guard/): detect cheaply, locate by replay, diagnose
// by one rules table, act by policy. `keel.Guard`, `keel.NonFiniteError`, `keel.guard.*`.
export { Guard, NonFiniteError, type GuardOptions, type GuardStepResult } from './api.js';
export * as guard from './api.js';
