#!/usr/bin/env node
// glibc's dynamic mmap threshold against Keel's fixed one (mallopt at load),
// on the step that showed it: LeNet-5, AdamW, batch 128, one libtorch thread,
// a fixed batch, keel.scope per step. Each mode runs in several separate
// processes, taking turns, because the slow case is a property of a process
// (the order in which it frees its large tensors), not of a step: medians
// within a process would hide it. Minor page faults per step are counted
// too — they do not depend on how busy the machine is.
//   node bench/malloc.mjs [--quick] [--processes 6]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const pi = argv.indexOf('--processes');
const PROCESSES = pi >= 0 ? Number(argv[pi + 1]) : quick ? 3 : 6;
const STEPS = quick ? 60 : 200;
const WARMUP = 20;

if (argv.includes('--child')) {
  const keel = await import('../dist/index.js');
  keel.setNumThreads(1);
  keel.manualSeed(0);
  const model = new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 });
  const opt = new keel.optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 1e-2 });
  const x = keel.randn([128, 1, 28, 28]).keep();
  const y = keel.randint(0, 10, [128]).keep();
  const step = () => keel.scope(() => {
    opt.zeroGrad();
    const loss = keel.ops.crossEntropyLoss(model.call(x), y);
    loss.backward();
    opt.step();
    return loss.item();
  });
  for (let i = 0; i < WARMUP; i++) step();
  const times = [];
  const f0 = process.resourceUsage().minorPageFault;
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  const faults = (process.resourceUsage().minorPageFault - f0) / STEPS;
  times.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ median: times[times.length >> 1], faults, rssMB: process.memoryUsage().rss / 2 ** 20 }) + '\n');
  process.exit(0);
}

const modes = { 'glibc default (KEEL_MALLOPT=0)': { KEEL_MALLOPT: '0' }, 'Keel (mallopt at load)': {} };
const results = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
for (let p = 0; p < PROCESSES; p++) {
  for (const [name, env] of Object.entries(modes)) {
    const r = spawnSync(process.execPath, [SCRIPT, '--child'], { env: { ...process.env, ...env, OMP_NUM_THREADS: '1' }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    results[name].push(JSON.parse(r.stdout.trim().split('\n').pop()));
  }
}
const fmt = (xs) => xs.map((x) => x.toFixed(1)).join(', ');
console.log(`LeNet-5 AdamW step, batch 128, 1 libtorch thread; ${PROCESSES} processes per mode, taking turns; ${STEPS} steps each`);
console.log('| mode | median step (ms) per process | minor faults per step per process | RSS (MB) |');
console.log('| --- | --- | --- | --- |');
for (const [name, rs] of Object.entries(results)) {
  console.log(`| ${name} | ${fmt(rs.map((r) => r.median))} | ${rs.map((r) => Math.round(r.faults)).join(', ')} | ${fmt(rs.map((r) => r.rssMB))} |`);
}
const spread = (rs) => Math.max(...rs.map((r) => r.median)) / Math.min(...rs.map((r) => r.median));
for (const [name, rs] of Object.entries(results)) console.log(`${name}: slowest ÷ fastest process ${spread(rs).toFixed(2)}×`);
