#!/usr/bin/env node
// The long fuzz: test/fuzz.test.ts's generator (test/fuzz-child.ts, compiled
// to build/test/fuzz-child.js) run for as many calls and seeds as asked, in
// child processes that may crash. Before each call the child writes the call
// (index, operator, arguments) to a log, so after a crash (a signal, an abort,
// a non-zero exit) or a hang (no call logged for --stall-ms) this script knows
// the culprit, records it and starts a fresh child after the crashing call.
// An operator that crashes --max-per-op times in one seed is skipped for the
// rest of that seed (the report says so).
//
//   npm run build:ts && npm run build:test
//   node scripts/fuzz.mjs --calls 100000 --seed 1000 [--seeds 10] [--jobs 2] [--out runs/fuzz-x] [--time-limit-s 3600]
//
// Seeds --seed, --seed+1, ... run --jobs at a time. The report (report.json
// and report.md in --out, default runs/fuzz-<date>) is rewritten after every
// segment, so a run stopped early still leaves one. Reproduce a crash with
//   node build/test/fuzz-child.js --seed <seed> --only <call index>
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const child = join(root, 'build', 'test', 'fuzz-child.js');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const CALLS = Number(option('calls', '100000'));
const SEED = Number(option('seed', String(Date.now() % 1_000_000_000)));
const SEEDS = Number(option('seeds', '1'));
const JOBS = Math.max(1, Number(option('jobs', '1')));
const OUT = resolve(option('out', join(root, 'runs', `fuzz-${new Date().toISOString().replace(/[:.]/g, '-')}`)));
const TIME_LIMIT_MS = Number(option('time-limit-s', '0')) * 1000 || Infinity;
const STALL_MS = Number(option('stall-ms', '20000'));
// loading Keel takes seconds, more on a busy machine: the first call may come late
const STARTUP_MS = Number(option('startup-ms', '180000'));
const MAX_PER_OP = Number(option('max-per-op', '3'));
// as in fuzz.test.ts: a huge but valid size fails to allocate instead of filling memory
const DATA_LIMIT_KB = Number(option('data-limit-kb', '2000000'));
for (const [k, v] of Object.entries({ CALLS, SEED, SEEDS })) {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`fuzz: --${k.toLowerCase()} must be a non-negative integer`);
}
if (!existsSync(child)) throw new Error(`fuzz: ${child} is missing: run npm run build:ts && npm run build:test first`);
mkdirSync(OUT, { recursive: true });

const started = Date.now();
const deadline = started + TIME_LIMIT_MS;
const report = {
  started: new Date(started).toISOString(), finished: null, ms: 0,
  callsPerSeed: CALLS, firstSeed: SEED, seedsAsked: SEEDS, jobs: JOBS,
  calls: 0, counted: 0, returns: 0, throws: 0, typeErrors: 0, nonErrorThrows: 0, leaks: 0, restarts: 0,
  seeds: [], crashes: [], problems: [], stoppedAtTimeLimit: false,
};

function runSegment(seed, start, skip, log, cwd) {
  rmSync(log, { force: true });
  const proc = spawn('/bin/sh', ['-c', `ulimit -d ${DATA_LIMIT_KB} && exec "$0" "$@"`, process.execPath, child,
    '--seed', String(seed), '--calls', String(CALLS), '--start', String(start), '--skip', skip.join(','), '--log', log],
  { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout = (stdout + d).slice(-100_000); });
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  let stalled = false;
  let outOfTime = false;
  let lastSize = -1;
  let lastProgress = Date.now();
  const watch = setInterval(() => {
    const size = existsSync(log) ? statSync(log).size : 0;
    if (size !== lastSize) { lastSize = size; lastProgress = Date.now(); }
    if (Date.now() > deadline) { outOfTime = true; proc.kill('SIGKILL'); }
    else if (Date.now() - lastProgress > (lastSize > 0 ? STALL_MS : STARTUP_MS)) { stalled = true; proc.kill('SIGKILL'); }
  }, 500);
  return new Promise((done) => proc.on('close', (status, signal) => {
    clearInterval(watch);
    done({ status, signal, stalled, outOfTime, stdout, stderr });
  }));
}

function crashesAlone(seed, index, cwd) {
  const r = spawnSync('/bin/sh', ['-c', `ulimit -d ${DATA_LIMIT_KB} && exec "$0" "$@"`, process.execPath, child,
    '--seed', String(seed), '--only', String(index)], { cwd, stdio: 'ignore', timeout: STARTUP_MS + STALL_MS, killSignal: 'SIGKILL' });
  return r.status !== 0 ? (r.signal ?? `exit ${r.status}`) : null;
}

function writeReport() {
  report.ms = Date.now() - started;
  writeFileSync(join(OUT, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  const ops = new Map();
  for (const c of report.crashes) ops.set(c.op, [...(ops.get(c.op) ?? []), c]);
  const lines = [
    '# Keel fuzz report', '',
    `${report.calls} calls over ${report.seeds.length} seed(s) (${report.callsPerSeed} calls a seed from seed ${report.firstSeed}, ` +
      `${report.jobs} at a time) in ${(report.ms / 1000).toFixed(0)} s${report.stoppedAtTimeLimit ? ', stopped at the time limit' : ''}` +
      `${report.finished ? '' : ' (still running)'}.`, '',
    `- of the ${report.counted} calls in child runs that ended normally (a crashed child reports no counts): returned ${report.returns}, threw an Error ${report.throws} (${report.typeErrors} TypeError), threw a non-Error ${report.nonErrorThrows}, leaked tensors ${report.leaks}`,
    `- crashes and hangs: ${report.crashes.length} in ${ops.size} operator(s); child restarts: ${report.restarts}`, '',
  ];
  if (ops.size > 0) {
    lines.push('| operator | crashes | how | first call (seed, index) |', '|---|---|---|---|');
    for (const [op, cs] of ops) {
      const hows = [...new Set(cs.map((c) => c.how))].join('; ');
      lines.push(`| ${op} | ${cs.length} | ${hows} | seed ${cs[0].seed} call ${cs[0].index}: \`${cs[0].call.replace(/\|/g, '\\|').slice(0, 300)}\` |`);
    }
    lines.push('', 'Reproduce: `node build/test/fuzz-child.js --seed <seed> --only <index>`', '');
  }
  if (report.problems.length > 0) lines.push('## Other problems', '', ...report.problems.map((p) => `- ${p}`), '');
  lines.push('## Seeds', '', '| seed | calls | crashes | skipped operators |', '|---|---|---|---|',
    ...report.seeds.map((s) => `| ${s.seed} | ${s.calls} | ${s.crashes} | ${s.skippedOps.join(', ')} |`), '');
  writeFileSync(join(OUT, 'report.md'), lines.join('\n'));
}

async function runSeed(seed) {
  const dir = mkdtempSync(join(tmpdir(), 'keel-fuzz-'));
  const log = join(dir, 'calls.log');
  const entry = { seed, calls: 0, crashes: 0, skippedOps: [], done: false };
  report.seeds.push(entry);
  const perOp = new Map();
  let emptyStarts = 0;
  try {
    for (let start = 0; start < CALLS;) {
      const r = await runSegment(seed, start, entry.skippedOps, log, dir);
      const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : [];
      entry.calls += lines.length;
      report.calls += lines.length;
      const summaryLine = r.stdout.trim().split('\n').pop() ?? '';
      if (r.status === 0 && r.signal === null && !r.stalled && !r.outOfTime) {
        const s = JSON.parse(summaryLine);
        report.counted += s.calls;
        for (const k of ['returns', 'throws', 'typeErrors', 'nonErrorThrows', 'leaks']) report[k] += s[k];
        for (const p of s.firstProblems) report.problems.push(`seed ${seed}: ${p}`);
        entry.done = true;
        break;
      }
      if (r.outOfTime) { report.stoppedAtTimeLimit = true; break; }
      report.restarts++;
      if (lines.length === 0 && ++emptyStarts <= 3) {
        // dist/ being rebuilt under it, say: try again after a pause
        await new Promise((ok) => setTimeout(ok, 5000));
        continue;
      }
      if (lines.length === 0) {
        report.problems.push(`seed ${seed}: the child died before its first call from ${start} (${r.signal ?? r.status}): ${r.stderr.slice(-500)}`);
        break;
      }
      const [index, op, ...rest] = lines[lines.length - 1].split('\t');
      let how = r.stalled ? `hang (no progress for ${STALL_MS / 1000} s)`
        : r.signal !== null ? `signal ${r.signal}` : `exit code ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300)}`;
      if (!r.stalled && crashesAlone(seed, Number(index), dir) === null) how += ' (not alone: an earlier call corrupted memory)';
      report.crashes.push({ seed, index: Number(index), op, how, call: rest.join('\t') });
      entry.crashes++;
      process.stderr.write(`fuzz: seed ${seed} call ${index}: ${op} ${how}\n`);
      perOp.set(op, (perOp.get(op) ?? 0) + 1);
      if (perOp.get(op) >= MAX_PER_OP) entry.skippedOps.push(op);
      start = Number(index) + 1;
      writeReport();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  writeReport();
  process.stderr.write(`fuzz: seed ${seed} done: ${entry.calls} calls, ${entry.crashes} crashes; total ${report.calls} calls in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

let next = 0;
async function worker() {
  while (next < SEEDS && Date.now() < deadline) await runSeed(SEED + next++);
}
await Promise.all(Array.from({ length: JOBS }, worker));
report.finished = new Date().toISOString();
writeReport();
process.stdout.write(`fuzz: ${report.calls} calls, ${report.crashes.length} crashes/hangs; report in ${OUT}/report.md\n`);
process.exitCode = report.crashes.length > 0 || report.nonErrorThrows > 0 ? 1 : 0;
