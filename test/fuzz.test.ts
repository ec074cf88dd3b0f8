// No input may crash the process (DESIGN.md): a child process makes more than
// 10,000 seeded random calls of every kind of operator in keel.ops with bad
// and borderline arguments (fuzz-child.ts); each must return or throw a JS
// Error, and free what it made. A signal, an abort or a non-zero exit is a
// crash; the seed and the last call are printed to reproduce it:
//
//   KEEL_FUZZ_SEED=<seed> node --test build/test/fuzz.test.js
//   node build/test/fuzz-child.js --seed <seed> --only <call index>
//
// After a crash the run resumes after the crashing call without that
// operator, so one failure lists every crash it can find in its time.
//
// The long version, over many fresh seeds, is scripts/fuzz.mjs (it runs
// fuzz-child.js the same way and writes a report); the crashers it found are
// guarded in src/core/preconditions.ts, each with a test in errors.test.ts.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SEED = Number(process.env.KEEL_FUZZ_SEED ?? 20261123);
const CALLS = Number(process.env.KEEL_FUZZ_CALLS ?? 12_000);
// the whole run, crashes and restarts included
const TIME_LIMIT_MS = 120_000;
// a call that takes longer than this is a hang (calls are on tensors of at
// most 64 elements, allocations capped at DATA_LIMIT_KB)
const STALL_MS = 15_000;
// after a crash the run goes on without that operator, to list every crash
// at once, up to this many
const MAX_CRASHES = 60;
// a cap on the child's data segment: a huge but valid size fails to allocate
// (an Error) instead of filling this machine's memory
const DATA_LIMIT_KB = 2_000_000;

interface Summary {
  seed: number;
  operators: number;
  start: number;
  calls: number;
  skipped: number;
  returns: number;
  throws: number;
  typeErrors: number;
  nonErrorThrows: number;
  leaks: number;
  firstProblems: string[];
  ms: number;
}

interface Crash {
  index: number;
  op: string;
  call: string;
  how: string;
}

const child = fileURLToPath(new URL('./fuzz-child.js', import.meta.url));

interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stalled: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Runs one segment of the fuzz from call `start`. A call that makes no
 * progress for STALL_MS (the log gains no line) is a hang: the child is killed.
 */
function runChild(start: number, skip: string[], log: string, cwd: string, timeLeftMs: number): Promise<ChildResult> {
  rmSync(log, { force: true });
  const proc = spawn('/bin/sh', ['-c', `ulimit -d ${DATA_LIMIT_KB} && exec "$0" "$@"`, process.execPath, child,
    '--seed', String(SEED), '--calls', String(CALLS), '--start', String(start), '--skip', skip.join(','), '--log', log], {
    cwd,  // a scratch folder: whatever an operator might write lands there
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-20_000); });
  let stalled = false;
  let lastSize = -1;
  let lastProgress = Date.now();
  const ends = Date.now() + timeLeftMs;
  const watch = setInterval(() => {
    const size = existsSync(log) ? statSync(log).size : 0;
    if (size !== lastSize) {
      lastSize = size;
      lastProgress = Date.now();
    }
    if (Date.now() - lastProgress > STALL_MS || Date.now() > ends) {
      stalled = true;
      proc.kill('SIGKILL');
    }
  }, 250);
  return new Promise((resolve) => {
    proc.on('close', (status, signal) => {
      clearInterval(watch);
      resolve({ status, signal, stalled, stdout, stderr });
    });
  });
}

/** Does call `index` crash on its own, in a fresh process? */
function crashesAlone(index: number, cwd: string): boolean {
  const r = spawnSync('/bin/sh', ['-c', `ulimit -d ${DATA_LIMIT_KB} && exec "$0" "$@"`, process.execPath, child,
    '--seed', String(SEED), '--only', String(index)], { cwd, stdio: 'ignore', timeout: STALL_MS, killSignal: 'SIGKILL' });
  return r.status !== 0;
}

test(`fuzz: ${CALLS} random calls with bad arguments, seed ${SEED}, no crash`, { timeout: TIME_LIMIT_MS + 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-fuzz-'));
  const log = join(dir, 'calls.log');
  const deadline = Date.now() + TIME_LIMIT_MS;
  const crashes: Crash[] = [];
  const skip: string[] = [];
  let calls = 0;
  let summary: Summary | undefined;
  let outOfTime = false;
  try {
    for (let start = 0; start < CALLS && crashes.length < MAX_CRASHES;) {
      const r = await runChild(start, skip, log, dir, deadline - Date.now());
      const lines = existsSync(log) ? readFileSync(log, 'utf8').trimEnd().split('\n').filter((l) => l !== '') : [];
      calls += lines.length;
      if (r.status === 0 && r.signal === null && !r.stalled) {
        summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as Summary;
        break;
      }
      const [index, op, call] = lines.length > 0 ? lines[lines.length - 1].split('\t') : ['-1', '?', '(before its first call)'];
      let how = r.stalled
        ? Date.now() >= deadline ? 'out of time' : `hung: no progress for ${STALL_MS / 1000} s`
        : r.signal !== null && r.signal !== 'SIGKILL' ? `signal ${r.signal}` : `exit code ${r.status}, signal ${r.signal}, stderr: ${r.stderr.slice(-600)}`;
      if (!r.stalled && lines.length > 0 && !crashesAlone(Number(index), dir)) {
        how += `; alone it does not crash: an earlier call from ${start} on corrupted memory`;
      }
      crashes.push({ index: Number(index), op, call, how });
      if (Date.now() >= deadline || lines.length === 0) {
        outOfTime = Date.now() >= deadline;
        break;
      }
      skip.push(op);
      start = Number(index) + 1;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (crashes.length > 0) {
    const list = crashes.map((c) => `  call ${c.index} (${c.how}): ${c.call}`).join('\n');
    assert.fail(`${crashes.length} call(s) crashed the process in ${calls} calls with seed ${SEED}` +
      `${outOfTime ? ' (the run stopped at its time limit)' : crashes.length >= MAX_CRASHES ? ' (stopped listing)' : ''}:\n${list}\n` +
      `reproduce one: node ${child} --seed ${SEED} --only <call index>\n` +
      `operators that crashed: ${[...new Set(crashes.map((c) => c.op))].join(', ')}`);
  }
  assert.ok(summary !== undefined);
  t.diagnostic(`seed ${summary.seed}: ${summary.calls} calls over ${summary.operators} operators in ${summary.ms} ms; ` +
    `${summary.returns} returned, ${summary.throws} threw (${summary.typeErrors} TypeError, ` +
    `${summary.throws - summary.typeErrors} other Error), ${summary.nonErrorThrows} non-Error throws, ${summary.leaks} leaked tensors`);
  console.log(`fuzz summary: ${JSON.stringify(summary)}`);

  assert.ok(summary.calls >= 10_000, `only ${summary.calls} calls`);
  assert.equal(summary.returns + summary.throws + summary.nonErrorThrows, summary.calls);
  assert.equal(summary.nonErrorThrows, 0, `calls threw something other than an Error:\n${summary.firstProblems.join('\n')}`);
  assert.equal(summary.leaks, 0, `calls left tensors alive after their scope:\n${summary.firstProblems.join('\n')}`);
  // the fuzz reaches libtorch, not only the JS argument checks
  assert.ok(summary.throws - summary.typeErrors >= 1000, `only ${summary.throws - summary.typeErrors} calls failed inside libtorch`);
  assert.ok(summary.returns >= 500, `only ${summary.returns} calls succeeded`);
  assert.ok(summary.operators >= 1000, `only ${summary.operators} operators fuzzed`);
});
