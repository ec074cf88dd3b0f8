// The environment a launcher gives each worker, as torchrun does (RANK,
// LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
// TORCHELASTIC_RESTART_COUNT), plus what `keel train --nproc`'s agent adds:
// KEEL_AGENT_PID (the agent owns the run folder and its lock) and the test
// hook KEEL_TEST_KILL_AT_STEP. Node built-ins only: the agent reads this
// without loading libtorch.

export const AGENT_PID = 'KEEL_AGENT_PID';
export const RESTART_COUNT = 'TORCHELASTIC_RESTART_COUNT';
export const MAX_RESTARTS = 'TORCHELASTIC_MAX_RESTARTS';
/** `rank:step`: that worker SIGKILLs itself after that step, on its first start only (the restart tests). */
export const KILL_AT_STEP = 'KEEL_TEST_KILL_AT_STEP';

export interface WorkerEnv {
  rank: number;
  localRank: number;
  worldSize: number;
  /** 0 on the first start, k on the k-th restart. */
  restartCount: number;
  /** Set when `keel train --nproc` started this worker: the agent (this process's parent) holds the run folder's lock. */
  agentPid?: number;
  /** KEEL_TEST_KILL_AT_STEP, when it names this rank and this is the first start. */
  killAtStep?: number;
}

function int(name: string, min: number, fallback?: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`$${name} is not set`);
  }
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`$${name} must be an integer ≥ ${min}, got '${raw}'`);
  return n;
}

/** Whether this process was started as a worker (RANK and WORLD_SIZE are set, as torchrun sets them). */
export function isWorker(): boolean {
  return process.env.RANK !== undefined && process.env.WORLD_SIZE !== undefined;
}

/** This worker's environment, or undefined when this process is not a launched worker; malformed values are Errors naming the variable. */
export function readWorkerEnv(): WorkerEnv | undefined {
  if (!isWorker()) return undefined;
  const worldSize = int('WORLD_SIZE', 1);
  const rank = int('RANK', 0);
  if (rank >= worldSize) throw new Error(`$RANK ${rank} is not below $WORLD_SIZE ${worldSize}`);
  const restartCount = int(RESTART_COUNT, 0, 0);
  const env: WorkerEnv = { rank, localRank: int('LOCAL_RANK', 0, rank), worldSize, restartCount };
  // only the parent that started us owns the folder: a stale variable in a shell does not bypass the lock
  const agent = process.env[AGENT_PID];
  if (agent !== undefined && agent !== '' && Number(agent) === process.ppid) env.agentPid = process.ppid;
  const kill = process.env[KILL_AT_STEP];
  if (kill !== undefined && kill !== '') {
    const m = /^(\d+):(\d+)$/.exec(kill);
    if (m === null || Number(m[2]) < 1) throw new Error(`$${KILL_AT_STEP} must be RANK:STEP (e.g. 1:5), got '${kill}'`);
    if (Number(m[1]) === rank && restartCount === 0) env.killAtStep = Number(m[2]);
  }
  return env;
}
