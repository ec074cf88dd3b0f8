// The naive configuration under each guard policy (raise, skip, rollback,
// repair), fp32, through `new keel.Guard({ model, optimizer, policy })` and
// `await guard.step(computeLoss)`. Keel's guard (src/guard/) is looked up at
// run time: while it is not in this build, this part is reported as pending.
import * as keel from '../../index.js';
import { NAIVE } from './protocol.js';
import { batchAt, buildModel, evaluate, lossOf, type Budget, type SharedData } from './run.js';

export const POLICIES = ['raise', 'skip', 'rollback', 'repair'] as const;
export type Policy = (typeof POLICIES)[number];

interface GuardLike {
  step(computeLoss: () => keel.Tensor): Promise<unknown>;
  onRepair?(causeId: string, fn: (report: unknown, ctx: unknown) => string | boolean | void): () => void;
}

/** Causes whose remedy in this study is the safe SILog with the biased variance (clamped log, eps in the sqrt, no 0/0). */
const LOSS_CAUSES = ['unbiased-variance-few-samples', 'sqrt-at-zero', 'sqrt-of-negative', 'division-by-zero', 'zero-times-inf', 'log-of-zero', 'log-sigmoid-underflow', 'non-finite-op'];
type GuardCtor = new (options: { model: keel.nn.Module; optimizer: keel.optim.AdamW; policy: Policy }) => GuardLike;

export function guardAvailable(): GuardCtor | null {
  const g = (keel as unknown as { Guard?: unknown }).Guard;
  return typeof g === 'function' ? (g as GuardCtor) : null;
}

export interface GuardedRun {
  policy: Policy;
  seed: number;
  /** finished all steps / stopped by a raised error / failed otherwise */
  status: 'finished' | 'raised' | 'error';
  stepsDone: number;
  /** what guard.step returned, counted by its action ('ok' for a healthy step) */
  stepOutcomes: Record<string, number>;
  /** the guard's events: step, action, the op and cause it named, what the policy did */
  events: { step?: number; action?: string; op?: string; phase?: string; module?: string; causeId?: string; detail?: string[] }[];
  /** the loss the run ended with ('repair' may switch to the safe SILog) */
  finalLoss: string;
  /** the report of a raised NonFiniteError: op, phase, module, cause */
  report: { op?: string; phase?: string; module?: string; cause?: string; step?: number } | null;
  error?: string;
  paramsFinite: boolean;
  metrics: keel.losses.DepthMetrics | null;
  wallTimeMs: number;
}

function label(ret: unknown): string {
  if (ret === undefined || ret === null) return String(ret);
  if (typeof ret === 'object') {
    const o = ret as Record<string, unknown>;
    const ev = o.event as Record<string, unknown> | undefined;
    if (ev && typeof ev.action === 'string') return ev.action;
    for (const k of ['action', 'status', 'outcome']) if (typeof o[k] === 'string') return o[k] as string;
    if (typeof o.ok === 'boolean') return o.ok ? 'ok' : 'not ok';
    return 'object';
  }
  return typeof ret === 'number' && Number.isFinite(ret) ? 'ok' : String(ret);
}

function paramsFinite(model: keel.nn.Module): boolean {
  return keel.noGrad(() => keel.scope(() => model.parameters().every((p) => Boolean(p.isfinite().all().item()))));
}

export async function runGuarded(Guard: GuardCtor, policy: Policy, seed: number, dataStream: number, b: Budget, data: SharedData): Promise<GuardedRun> {
  const t0 = performance.now();
  const c: { loss: 'sqrt' | 'safe'; correction: 0 | 1; head: typeof NAIVE.head; finalInit: typeof NAIVE.finalInit; precision: 'fp32'; seed: number } = { ...NAIVE, precision: 'fp32', seed };
  const events: GuardedRun['events'] = [];
  const model = buildModel(c, b);
  const optimizer = new keel.optim.AdamW(model.parameters(), { lr: b.lr, weightDecay: b.weightDecay });
  const guard = new Guard({ model, optimizer, policy });
  for (const id of LOSS_CAUSES) {
    guard.onRepair?.(id, () => {
      if (c.loss === 'safe' && c.correction === 0) return false;
      c.loss = 'safe';
      c.correction = 0;
      return 'switched to the safe SILog with the biased variance';
    });
  }
  const stepOutcomes: Record<string, number> = {};
  let stepsDone = 0;
  let status: GuardedRun['status'] = 'finished';
  let report: GuardedRun['report'] = null;
  let error: string | undefined;
  try {
    for (let step = 0; step < b.steps; step++) {
      const batch = batchAt(data, b, dataStream, step);
      try {
        const ret = await guard.step(() => lossOf(model.call(batch.x) as { kind: 'depth' | 'logDepth'; value: keel.Tensor }, batch.gt, batch.mask, c));
        const k = label(ret);
        const ev = (ret as { event?: { step?: number; action?: string; detail?: string[]; report?: Record<string, unknown> } } | undefined)?.event;
        if (ev) events.push({ step: ev.step, action: ev.action, op: ev.report?.op as string, phase: ev.report?.phase as string, module: ev.report?.module as string, causeId: ev.report?.causeId as string, detail: ev.detail });
        stepOutcomes[k] = (stepOutcomes[k] ?? 0) + 1;
        stepsDone++;
      } finally {
        batch.x.dispose(); batch.gt.dispose(); batch.mask.dispose();
      }
    }
  } catch (e) {
    const r = (e as { report?: Record<string, unknown> }).report;
    if (r !== undefined) {
      status = 'raised';
      report = { op: r.op as string, phase: r.phase as string, module: r.module as string, cause: r.cause as string, step: r.step as number };
      events.push({ step: r.step as number, action: 'raised', op: r.op as string, phase: r.phase as string, module: r.module as string, causeId: r.causeId as string });
    } else {
      status = 'error';
    }
    error = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  const finite = paramsFinite(model);
  const metrics = status === 'finished' && finite ? evaluate(model, data) : null;
  (guard as { dispose?: () => void }).dispose?.();
  optimizer.dispose();
  model.dispose();
  return { policy, seed, status, stepsDone, stepOutcomes, events, finalLoss: `${c.loss}/${c.correction === 1 ? 'unbiased' : 'biased'}`, report, ...(error !== undefined ? { error } : {}), paramsFinite: finite, metrics, wallTimeMs: performance.now() - t0 };
}
