// Shared by the benches: arguments, one child process per contender and thread
// count (so that OpenBLAS's own pool, sized at load time, gets the same thread
// count as libtorch's), the reference PyTorch, medians, tables and JSON.
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The reference PyTorch: always Debian's python3-torch (the python3 on PATH may have no torch). */
export const PYTHON = '/usr/bin/python3';

/** --quick, --worker NAME, --threads 1,2 (default: 1 and every core). */
export function parseArgs(argv = process.argv.slice(2)) {
  const args = { quick: false, worker: null, threads: null, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--worker') args.worker = argv[++i];
    else if (a.startsWith('--threads')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      args.threads = v.split(',').map(Number);
      if (args.threads.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--threads ${v}: positive integers, comma-separated`);
    } else args.rest.push(a);
  }
  return args;
}

/** The thread counts to compare at: 1, then every core. */
export function threadCounts(args) {
  if (args.threads) return args.threads;
  const all = availableParallelism();
  return all > 1 ? [1, all] : [1];
}

/** The environment that pins every thread pool (OpenMP, OpenBLAS, MKL, Keel) to n. */
export function threadEnv(n) {
  return {
    ...process.env,
    OMP_NUM_THREADS: String(n),
    OPENBLAS_NUM_THREADS: String(n),
    MKL_NUM_THREADS: String(n),
    KEEL_NUM_THREADS: String(n),
    // Keel defaults OpenMP to passive waiting; every contender gets the same
    OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE',
  };
}

export const THREAD_NOTE =
  'threads: each contender runs in its own process with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = KEEL_NUM_THREADS = n, OMP_WAIT_POLICY = PASSIVE, ' +
  'and sets libtorch\'s intra-op threads to n (keel.setNumThreads(n), torch.set_num_threads(n), at::set_num_threads(n))';

/**
 * A contender in its own process, pinned to `threads`, answering one JSON
 * request per stdin line with one JSON line on stdout. The driver asks each
 * contender in turn, round after round, so that whatever else runs on the
 * machine slows them alike.
 */
export class Worker {
  constructor(label, cmd, argv, threads) {
    this.label = `${label} (${threads} thread${threads > 1 ? 's' : ''})`;
    this.stderr = '';
    this.waiting = [];
    this.buffer = '';
    this.child = spawn(cmd, argv, { cwd: ROOT, env: threadEnv(threads), stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.setEncoding('utf8').on('data', (d) => { this.stderr += d; });
    this.child.stdout.setEncoding('utf8').on('data', (d) => {
      this.buffer += d;
      let i;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, i).trim();
        this.buffer = this.buffer.slice(i + 1);
        if (!line.startsWith('{')) continue;
        const w = this.waiting.shift();
        if (w) w.ok(JSON.parse(line));
      }
    });
    this.exited = new Promise((ok) => this.child.on('close', (code) => {
      this.code = code;
      for (const w of this.waiting.splice(0)) w.fail(new Error(`${this.label} exited ${code}:\n${this.stderr}`));
      ok(code);
    }));
    this.child.on('error', (e) => { for (const w of this.waiting.splice(0)) w.fail(e); });
  }

  /** Sends one request; resolves with the reply (which must not carry `error`). */
  request(req) {
    return new Promise((ok, fail) => {
      if (this.code !== undefined) return fail(new Error(`${this.label} has exited:\n${this.stderr}`));
      this.waiting.push({
        ok: (r) => (r.error ? fail(new Error(`${this.label}: ${r.error}`)) : ok(r)),
        fail,
      });
      this.child.stdin.write(JSON.stringify(req) + '\n');
    });
  }

  async close() {
    this.child.stdin.end();
    await this.exited;
  }
}

/**
 * One contender run in several processes of its own, used in turn: round r
 * goes to process r mod n (roundRobin passes `round`); a request without a
 * round (warm-up, setup) goes to every process. A slow process — glibc's mmap
 * threshold left where it unmaps every step's buffers, say — is a property of
 * a process, not of a step: a median over one process's steps hides it,
 * perProcess() shows it.
 */
export class Processes {
  constructor(workers) {
    if (workers.length === 0) throw new Error('Processes: at least one worker');
    this.workers = workers;
    this.label = workers.length > 1 ? `${workers[0].label} ×${workers.length} processes` : workers[0].label;
  }

  get count() {
    return this.workers.length;
  }

  async request(req) {
    if (req.round === undefined) {
      const all = [];
      for (const w of this.workers) all.push(await w.request(req));
      return all[0];
    }
    return this.workers[req.round % this.workers.length].request(req);
  }

  async close() {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

/** `--processes N` (default 1): how many processes each contender runs in. */
export function processCount(args) {
  const i = args.rest.indexOf('--processes');
  if (i < 0) return 1;
  const n = Number(args.rest[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--processes ${args.rest[i + 1]}: a positive integer`);
  args.rest.splice(i, 2);
  return n;
}

/** Per process (round r was served by process r mod n): the median of its samples. */
export function perProcess(samples, n) {
  return Array.from({ length: n }, (_, p) => median(samples.filter((_, r) => r % n === p)));
}

/** "a–b" over per-process medians, or the one value. */
export function spread(values, digits = 3) {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return values.length === 1 || lo === hi ? fmt(lo, digits) : `${fmt(lo, digits)}–${fmt(hi, digits)}`;
}

/** Milliseconds to wait between turns at this thread count (see roundRobin). */
export const pauseFor = (threads) => (threads > 1 ? 250 : 0);

/** A Node worker: `node script --worker name --threads n`. */
export function nodeWorker(script, name, threads, label = `Keel ${name}`) {
  return new Worker(label, process.execPath, [script, '--worker', name, '--threads', String(threads)], threads);
}

/**
 * A Python worker under the reference PyTorch: `code` defines handle(req) -> dict;
 * torch's intra-op threads are set to `threads` first.
 */
export function pythonWorker(code, threads) {
  const program = `import json, time, sys
import torch
torch.set_num_threads(${threads})
${code}
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        res = handle(json.loads(line))
    except Exception as e:
        res = {'error': repr(e)}
    sys.stdout.write(json.dumps(res) + '\\n')
    sys.stdout.flush()
`;
  return new Worker('PyTorch', PYTHON, ['-c', program], threads);
}

/** The worker side, in Node: answers each stdin line with handler(request). */
export async function serve(handler) {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let res;
    try {
      res = await handler(JSON.parse(line));
    } catch (e) {
      res = { error: e instanceof Error ? e.stack ?? e.message : String(e) };
    }
    process.stdout.write(JSON.stringify(res) + '\n');
  }
}

/**
 * Runs `rounds` rounds; in each, every contender runs makeRequest(name) once.
 * Returns seconds per round for each contender (or what `collect` takes from
 * each reply). With more than one thread, pass pauseMs: OpenBLAS's idle
 * threads spin (sched_yield) for ~0.1 s after a call and would otherwise slow
 * the next contender.
 */
export async function roundRobin(contenders, rounds, makeRequest, { pauseMs = 0, collect = (res) => res.seconds } = {}) {
  const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, worker] of Object.entries(contenders)) {
      if (pauseMs > 0) await new Promise((ok) => setTimeout(ok, pauseMs));
      const res = await worker.request({ ...makeRequest(name), round: r });
      samples[name].push(collect(res));
    }
  }
  return samples;
}

/** Median over rounds of the per-round ratio a/b (paired: drift cancels). */
export function pairedRatio(a, b) {
  return median(a.map((x, i) => x / b[i]));
}

/** Whether the reference PyTorch imports. */
export function pytorchVersion() {
  try {
    return execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000 }).trim();
  } catch {
    return null;
  }
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nanoseconds since an arbitrary origin, as a Number. */
export const now = () => Number(process.hrtime.bigint());

/** Sets every thread knob Keel has to n and checks that libtorch took it. */
export function pinKeelThreads(keel, n) {
  keel.setNumThreads(n);
  const got = keel.getNumThreads();
  if (got !== n) throw new Error(`keel.setNumThreads(${n}) left libtorch at ${got} threads`);
  return got;
}

/** The machine and libraries, for the JSON and the README. */
export async function machine() {
  const keel = await import('../../dist/index.js');
  const info = keel.libtorchInfo();
  let blas = info.sgemm;
  try { blas = realpathSync(info.sgemm); } catch { /* keep the name */ }
  let lscpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }));
    if (m) lscpuModel = m[1].trim();
  } catch { /* no lscpu */ }
  return {
    cpu: lscpuModel,
    cores: availableParallelism(),
    node: process.version,
    libtorch: info.version,
    blas,
    blasKind: keel.classifyBlas(blas),
    // the kernels OpenBLAS runs (both contenders load the same library with the same environment)
    blasCore: info.blasCore || null,
    openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null,
    pytorch: pytorchVersion(),
    date: new Date().toISOString(),
  };
}

/** A Markdown table: rows are arrays of cells, already formatted. */
export function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(all[0]), '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |', ...all.slice(1).map(line)].join('\n');
}

export const fmt = (x, digits = 3) => (x == null || !Number.isFinite(x) ? 'n/a' : x >= 100 ? x.toFixed(0) : x.toPrecision(digits));
export const ratio = (x) => (x == null || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(2)}×`);

/** Writes bench/results/<name>.json (a --quick smoke run: <name>.quick.json, leaving the full results alone). */
export function writeResults(name, data) {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}${data.quick ? '.quick' : ''}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

/** build/libtorch.json, written by scripts/build-native.mjs. */
export function libtorchConfig() {
  return JSON.parse(readFileSync(join(ROOT, 'build', 'libtorch.json'), 'utf8'));
}
