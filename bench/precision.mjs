#!/usr/bin/env node
// Cost of the precision policy: one training step plain (no policy: ops take
// the direct calls), under the 'fp32' policy (every op intercepted, nothing
// rounded: the interception's own cost) and under withPrecision(format),
// for three models: an MLP 64×16→32→4 and 256×256→512→10 (SGD by hand,
// MSE) and LeNet-5 (batch 32, AdamW, cross-entropy). Every mode of a model
// takes its turn in each round; a ratio is the median over rounds of the
// per-round ratio (paired: drift cancels). Issue 14's goal: fp16/bf16 ≤ 1.5×,
// fp8 ≤ 2× the fp32 step.
//   node bench/precision.mjs [--quick] [--threads 1,2] [--rounds n] [--baseline <dist folder>]
// --baseline times another build of Keel (its dist/, with its build/keel.node
// beside it) in the same rounds, in its own process: a before/after comparison
// on one machine state.
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { loadavg } from 'node:os';
import {
  THREAD_NOTE, fmt, machine, median, nodeWorker, now, pairedRatio, parseArgs, pauseFor, pinKeelThreads, ratio, roundRobin, serve, table,
  threadCounts, writeResults,
} from './lib/harness.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const args = parseArgs();
const ri = args.rest.indexOf('--rounds');
const ROUNDS = ri >= 0 ? Number(args.rest[ri + 1]) : args.quick ? 5 : 21;
const bi = args.rest.indexOf('--baseline');
const BASELINE = bi >= 0 ? resolve(args.rest[bi + 1]) : null;
const MODELS = [
  { name: 'MLP 64×16→32→4', kind: 'mlp', batch: 64, sizes: [16, 32, 4], steps: args.quick ? 30 : 80 },
  { name: 'MLP 256×256→512→10', kind: 'mlp', batch: 256, sizes: [256, 512, 10], steps: args.quick ? 3 : 8 },
  { name: 'LeNet-5, batch 32, AdamW', kind: 'lenet', batch: 32, steps: args.quick ? 3 : 6 },
];
const MODES = ['plain', 'fp32', 'bf16', 'fp16', 'fp8-e4m3'];

/** The worker: {model, mode, steps} → seconds for that many steps. */
async function keelWorker(threads) {
  const dist = process.env.KEEL_DIST ? pathToFileURL(process.env.KEEL_DIST).href + '/' : new URL('../dist/', import.meta.url).href;
  const keel = await import(dist + 'index.js');
  pinKeelThreads(keel, threads);

  function setupLenet({ batch }) {
    keel.manualSeed(0);
    const model = new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 });
    const opt = new keel.optim.AdamW(model.parameters(), { lr: 1e-3 });
    const x = keel.randn([batch, 1, 28, 28]).keep();
    const y = keel.randint(0, 10, [batch], { dtype: 'int64' }).keep();
    return () => keel.scope(() => {
      const loss = keel.losses.crossEntropy(model.call(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      loss.item();
    });
  }

  function setupMlp({ batch, sizes }) {
    keel.manualSeed(0);
    const p = {
      w1: keel.randn([sizes[1], sizes[0]]).mul(0.1).requiresGrad_().keep(),
      b1: keel.zeros([sizes[1]]).requiresGrad_().keep(),
      w2: keel.randn([sizes[2], sizes[1]]).mul(0.1).requiresGrad_().keep(),
      b2: keel.zeros([sizes[2]]).requiresGrad_().keep(),
    };
    const x = keel.randn([batch, sizes[0]]).keep();
    const y = keel.randn([batch, sizes[2]]).keep();
    return () => keel.scope(() => {
      const h = keel.ops.linear(x, p.w1, p.b1).tanh();
      const d = keel.ops.linear(h, p.w2, p.b2).sub(y);
      d.mul(d).mean().backward();
      keel.noGrad(() => {
        for (const t of Object.values(p)) {
          const g = t.grad;
          t.sub_(g.mul(0.01));
          g.zero_();
        }
      });
    });
  }

  // one state per model, trained by every mode in turn: a state per mode would
  // drift apart, and some kernels' cost depends on the values (max-pooling's
  // compare-and-branch took 4 % of a LeNet-5 step in one mode's state, 15 % in another's)
  const steps = new Map();
  return serve(({ model, mode, steps: n }) => {
    let step = steps.get(model);
    if (step === undefined) {
      const m = MODELS.find((x) => x.name === model);
      steps.set(model, (step = m.kind === 'lenet' ? setupLenet(m) : setupMlp(m)));
    }
    const one = mode === 'plain' ? step : () => keel.withPrecision(mode, step);
    const t0 = now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) one();
    const c = process.cpuUsage(c0);
    return { seconds: (now() - t0) / 1e9, cpuSeconds: (c.user + c.system) / 1e6 };
  });
}

async function main() {
  if (args.worker === 'keel') return keelWorker(args.threads[0]);
  const info = await machine();
  const runs = [];
  const load = [loadavg()[0]];
  for (const threads of threadCounts(args)) {
    const keelW = nodeWorker(SCRIPT, 'keel', threads);
    let baseW = null;
    if (BASELINE) {
      process.env.KEEL_DIST = BASELINE;
      baseW = nodeWorker(SCRIPT, 'keel', threads, 'Keel baseline');
      delete process.env.KEEL_DIST;
    }
    const builds = { keel: keelW, ...(baseW ? { baseline: baseW } : {}) };
    try {
      for (const model of MODELS) {
        const contenders = {};
        for (const [build, w] of Object.entries(builds)) for (const mode of MODES) contenders[`${build}\u0000${mode}`] = w;
        const request = (name) => ({ model: model.name, mode: name.split('\u0000')[1], steps: model.steps });
        for (const name of Object.keys(contenders)) await contenders[name].request(request(name));  // warm up
        const replies = await roundRobin(contenders, ROUNDS, request, { pauseMs: pauseFor(threads), collect: (res) => res });
        const pick = (field) => Object.fromEntries(Object.entries(replies).map(([k, v]) => [k, v.map((r) => r[field])]));
        const seconds = pick('seconds');
        const cpu = pick('cpuSeconds');
        load.push(loadavg()[0]);
        for (const build of Object.keys(builds)) {
          const s = (mode) => seconds[`${build}\u0000${mode}`];
          const c = (mode) => cpu[`${build}\u0000${mode}`];
          runs.push({
            threads, model: model.name, build,
            modes: Object.fromEntries(MODES.map((mode) => [mode, {
              msPerStep: median(s(mode)) / model.steps * 1e3,
              overPlain: pairedRatio(s(mode), s('plain')),
              overFp32Policy: pairedRatio(s(mode), s('fp32')),
              // the process's CPU time: less disturbed than wall time by other work on a busy machine
              cpuOverPlain: pairedRatio(c(mode), c('plain')),
              cpuOverFp32Policy: pairedRatio(c(mode), c('fp32')),
              ...(build !== 'baseline' && baseW ? {
                overBaseline: pairedRatio(s(mode), seconds[`baseline\u0000${mode}`]),
                cpuOverBaseline: pairedRatio(c(mode), cpu[`baseline\u0000${mode}`]),
              } : {}),
              seconds: s(mode),
              cpuSeconds: c(mode),
            }])),
          });
        }
      }
    } finally {
      await Promise.all(Object.values(builds).map((w) => w.close()));
    }
  }

  const out = [];
  out.push(`machine: ${info.cpu}, ${info.cores} cores; Node ${info.node}; libtorch ${info.libtorch}; BLAS ${info.blasKind}`);
  out.push(THREAD_NOTE);
  out.push(`load average (1 min) while it ran: ${load.map((l) => l.toFixed(1)).join(' → ')}`);
  if (BASELINE) out.push(`baseline: ${BASELINE}`);
  out.push(`${ROUNDS} rounds; ratio: median over rounds of the per-round ratio of wall time (of the process's CPU time, user + system, in parentheses), every mode of a model taking its turn each round`);
  out.push('');
  const rows = [];
  for (const run of runs) {
    for (const mode of MODES) {
      const m = run.modes[mode];
      const both = (wall, cpuTime) => `${ratio(wall)} (${ratio(cpuTime)})`;
      const row = [String(run.threads), run.model, run.build, mode, fmt(m.msPerStep), both(m.overPlain, m.cpuOverPlain), both(m.overFp32Policy, m.cpuOverFp32Policy)];
      if (BASELINE) row.push(m.overBaseline === undefined ? '' : both(m.overBaseline, m.cpuOverBaseline));
      rows.push(row);
    }
  }
  const header = ['threads', 'model', 'build', 'mode', 'ms / step', '× plain', "× 'fp32' policy"];
  if (BASELINE) header.push('× baseline (same mode)');
  out.push(table(header, rows));
  out.push('');
  out.push('goal (issue 14 §4): fp16 and bf16 ≤ 1.5×, fp8 ≤ 2× the fp32 step');
  console.log(out.join('\n'));
  const file = writeResults('precision', { bench: 'precision', quick: args.quick, rounds: ROUNDS, machine: info, threadNote: THREAD_NOTE, load, baseline: BASELINE, runs });
  console.log(`\nwrote ${file}`);
}

await main();
