// How long the dashboard takes to open a metrics file of 1,000,000 step lines
// (read, parsed, decimated, sent as JSON), against JSON.parse of every line of
// the same file taken in the same run. Issue 15 asks for < 2 s.
//   node bench/dashboard-open.mjs [lines]
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard } from '../dist/dashboard/index.js';

const N = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'keel-bench-dash-'));
const lines = [];
for (let i = 1; i <= N; i++) lines.push(JSON.stringify({ step: i, epoch: Math.floor(i / 1000), loss: Math.exp(-i / 1e5) + Math.random() * 0.01, accuracy: Math.random(), lr: 0.001, gradNorm: Math.random() * 3, stepTimeMs: 12.3456 }));
writeFileSync(join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
lines.length = 0;
try {
  let t0 = performance.now();
  const d = await startDashboard([dir]);
  const r = await fetch(`http://127.0.0.1:${d.port}/api/run/r0?token=${d.token}`);
  const v = await r.json();
  const open = performance.now() - t0;
  await d.close();
  t0 = performance.now();
  let n = 0;
  for (const l of readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n')) if (l) n += JSON.parse(l).step > 0 ? 1 : 0;
  const parse = performance.now() - t0;
  console.log(`dashboard open, ${v.metrics.points} lines → ${v.metrics.shown} points: ${open.toFixed(0)} ms (${open < 2000 ? 'under' : 'OVER'} 2 s); JSON.parse of every line alone: ${parse.toFixed(0)} ms; ratio ${(open / parse).toFixed(2)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
