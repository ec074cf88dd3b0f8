// The launcher, as `torchrun --standalone --nproc-per-node N`: starts N local
// workers with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT on a free loopback port), prefixes
// each output line with its rank, and when one worker fails stops the others
// (SIGTERM, then SIGKILL after a grace period), as torchrun does. With
// `nnodes` and `nodeRank` it starts this machine's share of a multi-machine
// job (global ranks nodeRank·nproc …); with `forwardSignals` the workers run
// in their own process group and get each SIGINT / SIGTERM of this process
// exactly once, from here (a terminal's Ctrl-C would otherwise reach them
// directly as well, and a second signal means "exit at once" to a worker).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export interface LaunchOptions {
  /** Number of worker processes on this machine (torchrun's --nproc-per-node). */
  nproc: number;
  /** Machines taking part, each running nproc workers (torchrun's --nnodes; default 1). */
  nnodes?: number;
  /** This machine's index in [0, nnodes) (torchrun's --node-rank; default 0). */
  nodeRank?: number;
  /** The program each worker runs (default: this Node). */
  command?: string;
  /** Its arguments (e.g. a script and its flags). */
  args: string[];
  /** Default 127.0.0.1. */
  masterAddr?: string;
  /** Default: a free port (required when nnodes > 1). */
  masterPort?: number;
  /** Extra environment for every worker. */
  env?: Record<string, string>;
  /** Prefix each output line with `[rank N] ` (default true). */
  prefix?: boolean;
  /** After the first failure, how long the others get before SIGKILL (default 5000 ms). */
  graceMs?: number;
  /** Where the prefixed lines go (default process.stdout / process.stderr). */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  /** Forward this process's SIGINT and SIGTERM to every live worker while they run (default false). */
  forwardSignals?: boolean;
  /** This local rank's stderr is this process's own, unprefixed, when that is a terminal (its progress bar then draws there). */
  ttyRank?: number;
}

export interface LaunchResult {
  /** Exit code of each local worker by local rank (null if killed by a signal). */
  codes: (number | null)[];
  signals: (string | null)[];
  /** The global rank of the first worker that failed, if any. */
  failedRank?: number;
  /** The signal this process received and forwarded (forwardSignals), if any. */
  interrupted?: NodeJS.Signals;
  /** 0 when every worker exited 0, else the first failure's code (1 for a signal). */
  exitCode: number;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

function prefixLines(source: NodeJS.ReadableStream, sink: NodeJS.WritableStream, tag: string): void {
  let rest = '';
  source.setEncoding('utf8');
  source.on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop()!;
    if (lines.length > 0) sink.write(lines.map((l) => tag + l + '\n').join(''));
  });
  source.on('end', () => {
    if (rest) sink.write(tag + rest + '\n');
  });
}

/** Starts the workers and resolves when all have exited. */
export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  const n = options.nproc;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`launch: nproc must be a positive integer, got ${n}`);
  const nnodes = options.nnodes ?? 1;
  const nodeRank = options.nodeRank ?? 0;
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new RangeError(`launch: nnodes must be a positive integer, got ${nnodes}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) throw new RangeError(`launch: nodeRank must be an integer in [0, ${nnodes - 1}], got ${nodeRank}`);
  if (nnodes > 1 && options.masterPort === undefined) throw new RangeError('launch: several machines need an agreed masterPort');
  const masterAddr = options.masterAddr ?? '127.0.0.1';
  const masterPort = options.masterPort ?? (await freePort(masterAddr));
  const prefix = options.prefix ?? true;
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const graceMs = options.graceMs ?? 5000;
  const codes: (number | null)[] = new Array(n).fill(null);
  const signals: (string | null)[] = new Array(n).fill(null);
  let failedLocal: number | undefined;
  const children: ChildProcess[] = [];
  let killTimer: NodeJS.Timeout | undefined;
  const live = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
  const killLater = () => {
    killTimer ??= setTimeout(() => {
      for (const c of live()) c.kill('SIGKILL');
    }, graceMs);
  };
  const stopOthers = () => {
    for (const c of live()) c.kill('SIGTERM');
    killLater();
  };
  // forwarded signals: the first asks the workers to stop cleanly, a second one to exit at once
  let interrupted: NodeJS.Signals | undefined;
  let forwarded = 0;
  const forward = (sig: NodeJS.Signals) => {
    interrupted ??= sig;
    for (const c of live()) c.kill(sig);
    if (++forwarded > 1) killLater();
  };
  // no worker outlives this process (an exception, process.exit): SIGKILL on the way out
  const onExit = () => {
    for (const c of live()) c.kill('SIGKILL');
  };
  process.on('exit', onExit);
  if (options.forwardSignals) {
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
  }
  const ttyStderr = options.ttyRank !== undefined && options.stderr === undefined && process.stderr.isTTY === true;
  const exits = [];
  for (let local = 0; local < n; local++) {
    const rank = nodeRank * n + local;
    const inheritStderr = !prefix || (ttyStderr && local === options.ttyRank);
    const child = spawn(options.command ?? process.execPath, options.args, {
      env: {
        ...process.env,
        ...options.env,
        RANK: String(rank),
        LOCAL_RANK: String(local),
        GROUP_RANK: String(nodeRank),
        WORLD_SIZE: String(n * nnodes),
        LOCAL_WORLD_SIZE: String(n),
        MASTER_ADDR: masterAddr,
        MASTER_PORT: String(masterPort),
      },
      stdio: ['ignore', prefix ? 'pipe' : 'inherit', inheritStderr ? 'inherit' : 'pipe'],
      // its own process group: a terminal's Ctrl-C reaches it only through forward()
      detached: options.forwardSignals === true,
    });
    children.push(child);
    if (prefix) prefixLines(child.stdout!, out, `[rank ${rank}] `);
    if (!inheritStderr) prefixLines(child.stderr!, err, `[rank ${rank}] `);
    exits.push(new Promise<void>((ok) => {
      child.on('error', (e) => {
        err.write(`[rank ${rank}] could not start: ${e.message}\n`);
        codes[local] = 127;
        if (failedLocal === undefined) { failedLocal = local; stopOthers(); }
        ok();
      });
      child.on('close', (code, signal) => {
        codes[local] = code;
        signals[local] = signal;
        if ((code !== 0 || signal !== null) && failedLocal === undefined) {
          failedLocal = local;
          // after a forwarded signal the others are stopping already (rank 0 may be writing its checkpoint): a SIGTERM now would be their second signal
          if (interrupted === undefined) stopOthers();
        }
        ok();
      });
    }));
  }
  try {
    await Promise.all(exits);
  } finally {
    if (killTimer) clearTimeout(killTimer);
    process.off('exit', onExit);
    if (options.forwardSignals) {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
    }
  }
  const exitCode = failedLocal === undefined ? 0 : (codes[failedLocal] ?? 1) || 1;
  return {
    codes, signals, exitCode,
    ...(failedLocal !== undefined ? { failedRank: nodeRank * n + failedLocal } : {}),
    ...(interrupted !== undefined ? { interrupted } : {}),
  };
}
