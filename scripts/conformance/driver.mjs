// OpInfo conformance: generates the cases with PyTorch (opinfo.py under
// /usr/bin/python3) and replays them against Keel in child processes
// (replay.mjs), a batch per child. A case that kills its child (a segfault in
// the addon, an abort) is recorded as a crash of the phase it was running and
// the batch goes on in a fresh child: the caller never dies with it.
// Used by scripts/conformance.mjs (the full set, docs/conformance.md) and
// test/conformance.test.ts (a fixed, seeded subset).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const PYTHON = '/usr/bin/python3';
export const PHASES = ['fwd', 'grad', 'out', 'inplace'];

/**
 * Runs opinfo.py; returns its JSON ({ meta, ops: [{ opinfo, cases, adapter }] }).
 * options: subset (N OpInfos, seeded), maxSamples (per OpInfo and dtype), ops (names).
 */
export function generate(options = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'keel-opinfo-'));
  const file = join(dir, 'cases.json');
  const args = [join(HERE, 'opinfo.py'), '--out', file];
  if (options.subset) args.push('--subset', String(options.subset));
  if (options.maxSamples) args.push('--max-samples', String(options.maxSamples));
  if (options.ops) args.push('--ops', options.ops.join(','));
  const env = { ...process.env, PYTHONPATH: [join(HERE, 'stub'), process.env.PYTHONPATH].filter(Boolean).join(':'), OMP_NUM_THREADS: '1', TORCH_CPP_LOG_LEVEL: 'ERROR', PYTHONDONTWRITEBYTECODE: '1' };
  const r = spawnSync(PYTHON, args, { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 3_600_000 });
  try {
    if (r.status !== 0) throw new Error(`opinfo.py failed (${r.status ?? r.signal}): ${(r.stderr || '').slice(-2000)}`);
    return JSON.parse(readFileSync(file, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one child on `items` ([{index, case}]); resolves to { lines, code, signal }. */
function runChild(items, timeoutMs, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(HERE, 'replay.mjs')], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OMP_NUM_THREADS: '1', KEEL_NUM_THREADS: '1', ...env },
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ lines: out.split('\n').filter(Boolean), code, signal, stderr: err });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(items));
  });
}

/**
 * Replays every case; returns verdicts: Map index → { fwd, grad, out, inplace } with
 * 'pass' or a reason. options: batch (cases per child), timeoutMs (per child), onBatch, env (for the children).
 */
export async function replay(cases, options = {}) {
  const batch = options.batch ?? 400;
  const verdicts = new Map();
  let pending = cases.map((c, index) => ({ index, case: c }));
  let crashes = 0;
  while (pending.length > 0) {
    const items = pending.slice(0, batch);
    const { lines, code, signal, stderr } = await runChild(items, options.timeoutMs ?? 600_000, options.env);
    let current;
    for (const line of lines) {
      const m = /^([BR]) (\d+) (\w+)(?: (.*))?$/.exec(line);
      if (!m) continue;
      const index = Number(m[2]);
      if (m[1] === 'B') current = { index, phase: m[3] };
      else {
        const v = verdicts.get(index) ?? {};
        v[m[3]] = JSON.parse(m[4]);
        verdicts.set(index, v);
      }
    }
    const done = new Set(items.filter((it) => isComplete(it.case, verdicts.get(it.index))).map((it) => it.index));
    if (code === 0 && done.size === items.length) {
      pending = pending.slice(items.length);
    } else {
      // the child died: blame the phase it was in, finish that case, go on with the rest
      crashes++;
      const why = signal ? `crash: the process died (${signal})` : `crash: the process exited with ${code}`;
      const tail = stderr.split('\n').filter((l) => /error|abort|terminate|fault/i.test(l) && !/^W\d/.test(l)).slice(-1)[0] ?? '';
      const victim = current?.index ?? items.find((it) => !done.has(it.index))?.index;
      const v = verdicts.get(victim) ?? {};
      const c = cases[victim];
      for (const p of phasesOf(c)) {
        if (v[p] !== undefined) continue;
        v[p] = p === current?.phase || current === undefined ? `${why}${tail ? ': ' + tail.slice(0, 160) : ''}` : 'not run: an earlier phase crashed';
      }
      verdicts.set(victim, v);
      done.add(victim);
      pending = pending.filter((it) => !done.has(it.index));
    }
    options.onBatch?.(cases.length - pending.length, cases.length, crashes);
  }
  return verdicts;
}

/** The phases a case has: fwd always; grad, out= and in-place where PyTorch produced them. */
export function phasesOf(c) {
  const ps = ['fwd'];
  if (c.grad) ps.push('grad');
  if (c.outv) ps.push('out');
  if (c.inplace) ps.push('inplace');
  return ps;
}

function isComplete(c, v) {
  return v !== undefined && phasesOf(c).every((p) => v[p] !== undefined);
}

/** Flattens generate()'s ops into cases with their OpInfo; verdicts per case. */
export function flatten(data) {
  const cases = [];
  for (const op of data.ops) for (const c of op.cases) cases.push({ ...c, opinfo: op.opinfo });
  return cases;
}

/** Per OpInfo and overload: [pass, total] for each phase, and the first failures. */
export function summarize(data, cases, verdicts) {
  const rows = new Map();
  cases.forEach((c, i) => {
    const key = `${c.opinfo}\u0000${c.overload}`;
    let row = rows.get(key);
    if (!row) {
      row = { opinfo: c.opinfo, overload: c.overload, outOverload: new Set(), inplaceOverload: new Set(), counts: {}, failures: [], nondet: c.nondet };
      for (const p of PHASES) row.counts[p] = [0, 0];
      rows.set(key, row);
    }
    if (c.adapted) (row.adapted ??= new Set()).add(c.adapted);
    if (c.outv) row.outOverload.add(c.outv.overload);
    if (c.inplace) row.inplaceOverload.add(c.inplace.overload);
    const v = verdicts.get(i) ?? {};
    for (const p of phasesOf(c)) {
      row.counts[p][1]++;
      if (v[p] === 'pass') row.counts[p][0]++;
      else if (typeof v[p] === 'string' && v[p].startsWith('excused: ')) {
        row.counts[p][0]++;
        row.excused = (row.excused ?? 0) + 1;
        (row.excusedWhy ??= new Set()).add(c.grad.nondet);
      }
      else row.failures.push({ id: c.id, phase: p, reason: v[p] ?? 'no verdict' });
    }
  });
  const totals = {};
  for (const p of PHASES) totals[p] = [0, 0];
  for (const r of rows.values()) for (const p of PHASES) {
    totals[p][0] += r.counts[p][0];
    totals[p][1] += r.counts[p][1];
  }
  const adapters = data.ops.filter((o) => o.adapter.length > 0).map((o) => ({ opinfo: o.opinfo, cases: o.cases.length, reasons: o.adapter }));
  return { rows: [...rows.values()], totals, adapters };
}
