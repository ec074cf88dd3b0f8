// `keel train --nproc N`: this process is the agent, as torchrun's elastic
// agent is. It trains nothing itself: it owns the run folder (its lock, the
// fresh-run checks, the removal of what a killed write left), starts N
// workers running the same `keel train` with torchrun's environment (output
// prefixed by rank; rank 0's stderr is the terminal's when there is one, so
// its progress bar draws), and when one dies stops the others and, while
// --max-restarts allows, starts all of them again: each resumes from the
// latest checkpoint (TORCHELASTIC_RESTART_COUNT > 0 means --resume to a
// worker). Ctrl-C is forwarded once to every worker; they agree on the step to
// stop after, rank 0 saves a checkpoint, nobody is left behind.
//
// Node built-ins and commander only: the agent does not load libtorch.
import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { launch, freePort } from '../distributed/launch.js';
import { AGENT_PID, isWorker, MAX_RESTARTS, RESTART_COUNT } from '../distributed/worker-env.js';
import { latestCheckpoint } from '../train/checkpoint-files.js';
import { acquireLock, prepareFreshRun, removeLeftovers, type RunLock } from '../train/run-folder.js';
import { UsageError } from './errors.js';
import { resumeFolder } from './resume-folder.js';
import { TRAIN_MODELS } from './program.js';

/** The launcher's flags (removed from the workers' command line), by commander attribute. */
export const LAUNCH_OPTIONS: Record<string, string> = {
  nproc: '--nproc', nnodes: '--nnodes', nodeRank: '--node-rank', masterAddr: '--master-addr', masterPort: '--master-port', maxRestarts: '--max-restarts',
};

/** Whether `keel train` was given any launcher flag (then this process is the agent). */
export function wantsAgent(o: Record<string, unknown>): boolean {
  return Object.keys(LAUNCH_OPTIONS).some((k) => o[k] !== undefined);
}

export interface LaunchPlan {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** undefined: a free port per start (one machine) */
  masterPort?: number;
  maxRestarts: number;
}

function envInt(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`$${name} must be an integer in [${min}, ${max}], got '${raw}'`);
  return n;
}

/** The launcher flags, with $NNODES, $NODE_RANK, $MASTER_ADDR, $MASTER_PORT where a flag is not given; checked together. */
export function launchPlan(o: Record<string, unknown>): LaunchPlan {
  if (isWorker()) {
    throw new UsageError(`${Object.entries(LAUNCH_OPTIONS).filter(([k]) => o[k] !== undefined).map(([, f]) => f).join(', ')}: this process is already a launched worker ($RANK=${process.env.RANK}, $WORLD_SIZE=${process.env.WORLD_SIZE}); give the launcher flags to the outer launcher only`);
  }
  const nproc = (o.nproc as number | undefined) ?? 1;
  const nnodes = (o.nnodes as number | undefined) ?? envInt('NNODES', 1) ?? 1;
  const nodeRank = (o.nodeRank as number | undefined) ?? envInt('NODE_RANK', 0) ?? 0;
  if (nodeRank >= nnodes) throw new UsageError(`--node-rank ${nodeRank} must be below --nnodes ${nnodes}${nnodes === 1 ? ' (give --nnodes for several machines)' : ''}`);
  const addrFlag = o.masterAddr as string | undefined;
  if (addrFlag !== undefined && addrFlag.trim() === '') throw new UsageError('--master-addr needs a host name or address');
  const masterAddr = addrFlag ?? (process.env.MASTER_ADDR || undefined);
  if (nnodes > 1 && masterAddr === undefined) throw new UsageError(`--nnodes ${nnodes} needs --master-addr (or $MASTER_ADDR): the address of the machine of --node-rank 0, which every machine can reach`);
  const masterPort = (o.masterPort as number | undefined) ?? envInt('MASTER_PORT', 1, 65535) ?? (nnodes > 1 ? 29500 : undefined);
  return { nproc, nnodes, nodeRank, masterAddr: masterAddr ?? '127.0.0.1', ...(masterPort !== undefined ? { masterPort } : {}), maxRestarts: (o.maxRestarts as number | undefined) ?? 0 };
}

/** The command line without the launcher's flags (`--nproc 2` and `--nproc=2` alike). */
export function workerArgs(argv: readonly string[]): string[] {
  const flags = new Set(Object.values(LAUNCH_OPTIONS));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (flags.has(a)) { i++; continue; }
    if (flags.has(a.split('=')[0]) && a.includes('=')) continue;
    out.push(a);
  }
  return out;
}

/** What the workers must not be asked, checked before any starts (they would refuse it N times over, or diverge). */
function checkTrainFlags(o: Record<string, unknown>, world: number): string {
  if (o.resume !== undefined) {
    const { dir, configPath } = resumeFolder(o);
    let saved: { worldSize?: unknown; precision?: unknown };
    try {
      saved = JSON.parse(readFileSync(configPath, 'utf8')) as typeof saved;
    } catch (e) {
      throw new Error(`cannot read ${configPath}: ${(e as Error).message}`);
    }
    const was = typeof saved.worldSize === 'number' ? saved.worldSize : 1;
    if (was !== world) throw new UsageError(`--resume ${dir}: the run was trained by ${was} process${was > 1 ? 'es' : ''}; resume it with --nnodes × --nproc = ${was} (now ${world}): its data position and batch size are per process`);
    return dir;
  }
  if (o.out === undefined) throw new UsageError('--out DIR is required (or --resume DIR)');
  if (!TRAIN_MODELS.includes(o.model as string)) throw new UsageError(`--model must be one of ${TRAIN_MODELS.join(', ')}, got '${o.model as string}'`);
  return resolve(o.out as string);
}

function describeExit(code: number | null, signal: string | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
}

/** `keel train` with launcher flags; returns the exit code. */
export async function agentFromOptions(o: Record<string, unknown>, cmd?: Command): Promise<number> {
  const plan = launchPlan(o);
  const world = plan.nproc * plan.nnodes;
  const dir = checkTrainFlags(o, world);
  const argv = ((cmd?.parent ?? cmd) as { rawArgs?: string[] } | undefined)?.rawArgs ?? process.argv.slice(2);
  const args = [...process.execArgv, process.argv[1], ...workerArgs(argv)];
  const ownsFolder = plan.nodeRank === 0;
  let lock: RunLock | undefined;
  const log = (line: string) => process.stderr.write(`keel train: ${line}\n`);
  try {
    if (ownsFolder) {
      mkdirSync(dir, { recursive: true });
      lock = acquireLock(dir);
      if (lock.staleNote) log(`${dir}: ${lock.staleNote}`);
      if (o.resume === undefined) prepareFreshRun(dir, o.overwrite === true);
    }
    // as torchrun: one intra-op thread share per worker unless told (N workers × all cores would thrash)
    const threads: Record<string, string> = o.threads === undefined && !process.env.KEEL_NUM_THREADS ? { KEEL_NUM_THREADS: String(Math.max(1, Math.floor(availableParallelism() / plan.nproc))) } : {};
    for (let restart = 0; ; restart++) {
      if (ownsFolder) {
        const removed = removeLeftovers(dir);
        if (removed.length > 0) log(`removed what a killed run left: ${removed.join(', ')}`);
      }
      const r = await launch({
        nproc: plan.nproc, nnodes: plan.nnodes, nodeRank: plan.nodeRank, args,
        masterAddr: plan.masterAddr, masterPort: plan.masterPort ?? (await freePort(plan.masterAddr)),
        env: { ...threads, [AGENT_PID]: String(process.pid), [RESTART_COUNT]: String(restart), [MAX_RESTARTS]: String(plan.maxRestarts) },
        forwardSignals: true,
        ...(ownsFolder ? { ttyRank: 0 } : {}),
      });
      if (r.exitCode === 0) return 0;
      if (r.interrupted !== undefined) {
        log(`${r.interrupted}: the workers stopped; continue with: keel train --resume ${dir} --nproc ${plan.nproc}${plan.nnodes > 1 ? ` --nnodes ${plan.nnodes}` : ''}`);
        return r.exitCode;
      }
      const failed = r.failedRank!;
      const local = failed - plan.nodeRank * plan.nproc;
      const what = `rank ${failed} ${describeExit(r.codes[local], r.signals[local])}`;
      // a usage error (exit 2) is the same on every start: restarting cannot heal it
      if (r.codes[local] === 2) {
        log(`${what} (a usage error, printed above); not restarting`);
        return 2;
      }
      if (restart < plan.maxRestarts) {
        const step = ownsFolder ? latestCheckpoint(join(dir, 'checkpoints')) : undefined;
        log(`${what}; the other workers were stopped; restarting all ${plan.nproc} workers ${step !== undefined ? `from the checkpoint of step ${step}` : ownsFolder ? 'from the start (no checkpoint yet)' : 'from the latest checkpoint'} (restart ${restart + 1} of ${plan.maxRestarts})`);
        continue;
      }
      throw new Error(`${what}; the other workers were stopped${plan.maxRestarts > 0 ? ` (after ${plan.maxRestarts} restart${plan.maxRestarts > 1 ? 's' : ''}: --max-restarts ${plan.maxRestarts})` : ' (--max-restarts K restarts them from the latest checkpoint)'}`);
    }
  } finally {
    lock?.release();
  }
}
