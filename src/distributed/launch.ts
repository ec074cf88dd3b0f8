// The launcher, as `torchrun --standalone --nproc-per-node N`: starts N local
// workers with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT on a free loopback port), prefixes
// each output line with its rank, and when one worker fails stops the others
// (SIGTERM, then SIGKILL after a grace period), as torchrun does.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export interface LaunchOptions {
  /** Number of worker processes (torchrun's --nproc-per-node). */
  nproc: number;
  /** The program each worker runs (default: this Node). */
  command?: string;
  /** Its arguments (e.g. a script and its flags). */
  args: string[];
  /** Default 127.0.0.1. */
  masterAddr?: string;
  /** Default: a free port. */
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
}

export interface LaunchResult {
  /** Exit code of each worker by rank (null if killed by a signal). */
  codes: (number | null)[];
  signals: (string | null)[];
  /** The first worker that failed, if any. */
  failedRank?: number;
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
  const masterAddr = options.masterAddr ?? '127.0.0.1';
  const masterPort = options.masterPort ?? (await freePort(masterAddr));
  const prefix = options.prefix ?? true;
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const graceMs = options.graceMs ?? 5000;
  const codes: (number | null)[] = new Array(n).fill(null);
  const signals: (string | null)[] = new Array(n).fill(null);
  let failedRank: number | undefined;
  const children: ChildProcess[] = [];
  let killTimer: NodeJS.Timeout | undefined;
  const stopOthers = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    killTimer = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, graceMs);
  };
  const exits = [];
  for (let rank = 0; rank < n; rank++) {
    const child = spawn(options.command ?? process.execPath, options.args, {
      env: {
        ...process.env,
        ...options.env,
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        GROUP_RANK: '0',
        WORLD_SIZE: String(n),
        LOCAL_WORLD_SIZE: String(n),
        MASTER_ADDR: masterAddr,
        MASTER_PORT: String(masterPort),
      },
      stdio: ['ignore', prefix ? 'pipe' : 'inherit', prefix ? 'pipe' : 'inherit'],
    });
    children.push(child);
    if (prefix) {
      prefixLines(child.stdout!, out, `[rank ${rank}] `);
      prefixLines(child.stderr!, err, `[rank ${rank}] `);
    }
    exits.push(new Promise<void>((ok) => {
      child.on('error', (e) => {
        err.write(`[rank ${rank}] could not start: ${e.message}\n`);
        codes[rank] = 127;
        if (failedRank === undefined) { failedRank = rank; stopOthers(); }
        ok();
      });
      child.on('close', (code, signal) => {
        codes[rank] = code;
        signals[rank] = signal;
        if ((code !== 0 || signal !== null) && failedRank === undefined) {
          failedRank = rank;
          stopOthers();
        }
        ok();
      });
    }));
  }
  await Promise.all(exits);
  if (killTimer) clearTimeout(killTimer);
  const exitCode = failedRank === undefined ? 0 : (codes[failedRank] ?? 1) || 1;
  return { codes, signals, ...(failedRank !== undefined ? { failedRank } : {}), exitCode };
}
