#!/usr/bin/env node
// The cost of per-layer health telemetry (issue 15 asks ≤ 2 % of a LeNet-5
// step at the default interval of 50). Both contenders run the same LeNet-5
// AdamW step (forward, cross-entropy, zero_grad, backward, step, loss read)
// in one process, on one fixed batch, in blocks of `every` steps, taking
// turns block by block so that load from elsewhere hits both alike:
//   plain    the step alone;
//   health   what fit does: on the block's due step HealthMonitor.begin()
//            before the forward, record() after the update, the line written
//            to metrics.jsonl and, through the log's listener, TensorBoard
//            scalars, plus the weight and gradient histograms.
// The overhead is the median over rounds of the per-round ratio of block
// times, minus 1. Threads are pinned equal (--threads).
//   node bench/health.mjs [--quick] [--threads 1] [--every 50] [--batches 32,128]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as keel from '../dist/index.js';
import { fmt, median, now, parseArgs, pinKeelThreads, table, writeResults } from './lib/harness.mjs';

const args = parseArgs();
const quick = Boolean(args.quick);
const ROUNDS = quick ? 3 : 15;
const BLOCKS_PER_ROUND = quick ? 1 : 2;
const option = (name, fallback) => {
  const i = args.rest.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.rest.length ? args.rest[i + 1] : fallback;
};
const EVERY = Number(option('every', '50'));
const THREADS = args.threads ? args.threads[0] : 1;
const BATCHES = option('batches', '32,128').split(',').map(Number);
if (!Number.isInteger(EVERY) || EVERY < 1) throw new Error(`bench/health: --every must be a positive integer, got ${option('every')}`);
if (BATCHES.some((b) => !Number.isInteger(b) || b < 1)) throw new Error(`bench/health: --batches takes positive integers, comma-separated`);
pinKeelThreads(keel, THREADS);

function setup(batch) {
  keel.manualSeed(0);
  const model = new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 });
  const opt = new keel.optim.AdamW(model.parameters(), { lr: 1e-3 });
  const x = keel.randn([batch, 1, 28, 28]).keep();
  const y = keel.randint(0, 10, [batch], { dtype: 'int64' }).keep();
  const dir = mkdtempSync(join(tmpdir(), 'keel-bench-health-'));
  const log = new keel.log.MetricsLog(join(dir, 'metrics.jsonl'));
  const tb = new keel.log.TfEventsWriter(join(dir, 'tb'));
  log.listeners.push((r) => tb.addMetricsLine(r));
  const health = new keel.log.HealthMonitor(model, { every: EVERY });
  return { model, opt, x, y, dir, log, tb, health, step: 0 };
}

function trainStep(s) {
  return keel.scope(() => {
    const loss = keel.losses.crossEntropy(s.model.call(s.x), s.y);
    s.opt.zeroGrad();
    loss.backward();
    s.opt.step();
    return loss.item();
  });
}

function block(s, withHealth) {
  const t0 = now();
  for (let i = 0; i < EVERY; i++) {
    s.step++;
    const due = withHealth && s.health.due(s.step);
    if (due) s.health.begin();
    trainStep(s);
    if (due) {
      s.log.write(s.health.record(s.step));
      keel.scope(() => {
        s.tb.addHistograms('weights', s.model.namedParameters(), s.step);
        s.tb.addHistograms('grads', s.model.namedParameters().map(([n, p]) => [n, p.grad]), s.step);
      });
    }
  }
  return (now() - t0) / 1e6;
}

const rows = [];
const results = { quick, every: EVERY, threads: THREADS, rounds: ROUNDS, cases: [] };
for (const batch of BATCHES) {
  const s = setup(batch);
  // warm up: allocator, kernels, the hooks' first registration
  block(s, false);
  block(s, true);
  const ratios = [];
  const plainMs = [];
  const healthMs = [];
  for (let r = 0; r < ROUNDS; r++) {
    let p = 0, h = 0;
    for (let b = 0; b < BLOCKS_PER_ROUND; b++) {
      // alternate which contender goes first
      if ((r + b) % 2 === 0) { p += block(s, false); h += block(s, true); } else { h += block(s, true); p += block(s, false); }
    }
    plainMs.push(p / (EVERY * BLOCKS_PER_ROUND));
    healthMs.push(h / (EVERY * BLOCKS_PER_ROUND));
    ratios.push(h / p);
    if (process.stdout.isTTY) process.stdout.write(`  LeNet-5 batch ${batch}: round ${r + 1}/${ROUNDS}\r`);
  }
  s.health.end();
  s.log.close();
  s.tb.close();
  rmSync(s.dir, { recursive: true, force: true });
  const overhead = median(ratios) - 1;
  results.cases.push({ model: 'LeNet-5', batch, plainMs: median(plainMs), healthMs: median(healthMs), ratios, overhead });
  rows.push([`LeNet-5, batch ${batch}, AdamW`, fmt(median(plainMs)), fmt(median(healthMs)), `${(overhead * 100).toFixed(2)} %`, overhead <= 0.02 ? 'yes' : 'NO']);
}
if (process.stdout.isTTY) process.stdout.write(' '.repeat(60) + '\r');
console.log(`# health telemetry every ${EVERY} steps vs none; ms per step, medians over ${ROUNDS} rounds of ${BLOCKS_PER_ROUND} × ${EVERY} steps each${quick ? ' (--quick)' : ''}`);
console.log(`# one process, both contenders at ${THREADS} intra-op thread(s) (keel.setNumThreads(${THREADS}); run with OMP_NUM_THREADS=${THREADS} for OpenMP/BLAS too)`);
console.log(table(['model', 'plain ms/step', 'with health ms/step', 'overhead', '≤ 2 %'], rows));
writeResults('health', results);
