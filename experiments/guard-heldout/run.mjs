#!/usr/bin/env node
// The guard's held-out fault suite: run before a release, never by `npm test`.
//   npm run guard:heldout                    (= node experiments/guard-heldout/run.mjs)
//   node experiments/guard-heldout/run.mjs [--label NAME] [--only id,id] [--out FILE]
// Each fault runs under a fresh Guard (policy 'skip') until the guard reports
// an event or the fault's steps run out; the row says what the fault's author
// expected before running it and what the guard named. Scores:
//   detected   — the guard reported an event;
//   right op   — its op matches the expected op and its phase the expected phase;
//   module     — its module path is the expected one (where one was expected);
//   cause      — its cause line contains words the author expected.
// Results: a markdown table on stdout and a JSON file (default
// docs/results/guard-heldout/<label>.json). Needs the compiled dist/ (npx tsc -p tsconfig.json).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { FAULTS } from './faults.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const keel = await import(resolve(ROOT, 'dist/index.js'));

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const label = opt('--label', 'run');
const only = opt('--only', undefined)?.split(',');
const outFile = resolve(ROOT, opt('--out', `docs/results/guard-heldout/${label}.json`));
process.removeAllListeners('warning'); // the fp16-emulation notice is expected here

const matches = (want, got) => (want instanceof RegExp ? want.test(got) : want === got);
const show = (want) => (want instanceof RegExp ? want.source : want);

function runFault(fault) {
  const { model, optimizer, loss, beforeStep } = fault.build(keel);
  const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
  const steps = fault.steps ?? 1;
  let event;
  let error;
  let stepsRun = 0;
  try {
    for (let s = 1; s <= steps && event === undefined; s++) {
      beforeStep?.(s, optimizer);
      const r = guard.stepSync(loss);
      stepsRun = s;
      event = r.event ?? guard.flush();
      if (event === undefined && s === steps) event = guard.flush();
    }
  } catch (e) {
    error = e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e);
  } finally {
    guard.dispose();
  }
  const ex = fault.expected;
  const rep = event?.report;
  const row = {
    id: fault.id,
    title: fault.title,
    expected: { op: show(ex.op), phase: show(ex.phase), module: ex.module ?? null, cause: show(ex.cause) },
    stepsRun,
    detected: rep !== undefined,
    named: rep ? { op: rep.op, phase: rep.phase, module: rep.module, causeId: rep.causeId, cause: rep.cause, step: rep.step, detectedIn: rep.detectedIn, precision: rep.precision ?? null } : null,
    error: error ?? null,
  };
  row.rightOp = rep !== undefined && matches(ex.op, rep.op) && matches(ex.phase, rep.phase);
  row.rightModule = ex.module === undefined ? null : rep !== undefined && rep.module === ex.module;
  row.causeFits = rep !== undefined && ex.cause.test(rep.cause);
  return row;
}

const rows = [];
for (const f of FAULTS) {
  if (only && !only.includes(f.id)) continue;
  rows.push(keel.scope(() => runFault(f)));
}

const yn = (b) => (b === null ? '–' : b ? 'y' : 'n');
const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const lines = [
  '| fault | expected (op · phase · module) | Keel named (op · phase · module · causeId) | detected | right op | module | cause fits |',
  '| --- | --- | --- | --- | --- | --- | --- |',
];
for (const r of rows) {
  const named = r.named ? `${r.named.op} · ${r.named.phase} · ${r.named.module || "''"} · ${r.named.causeId}` : r.error ? `error: ${r.error}` : 'nothing';
  lines.push(`| ${cell(r.id)} | ${cell(`${r.expected.op} · ${r.expected.phase} · ${r.expected.module ?? 'any'}`)} | ${cell(named)} | ${yn(r.detected)} | ${yn(r.rightOp)} | ${yn(r.rightModule)} | ${yn(r.causeFits)} |`);
}
const n = rows.length;
const count = (k) => rows.filter((r) => r[k] === true).length;
const withModule = rows.filter((r) => r.rightModule !== null).length;
const score = { faults: n, detected: count('detected'), rightOp: count('rightOp'), rightModule: count('rightModule'), moduleExpected: withModule, causeFits: count('causeFits') };
console.log(lines.join('\n'));
console.log(`\n${label}: ${n} faults — detected ${score.detected}/${n}, right op ${score.rightOp}/${n}, module ${score.rightModule}/${withModule}, cause fits ${score.causeFits}/${n}`);
for (const r of rows) if (r.named) console.log(`\n[${r.id}] ${r.named.cause}`);

mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify({
  label, date: new Date().toISOString(), machine: { cpus: os.cpus().length, load: os.loadavg().map((l) => +l.toFixed(2)), node: process.version },
  score, rows,
}, null, 2) + '\n');
console.log(`\nwrote ${outFile}`);
