#!/usr/bin/env node
// Data parallelism on loopback, Keel (libtorch's c10d/Gloo through the addon)
// against torch.distributed (Debian's python3-torch: the same libtorch), each
// launched here as N worker processes with torchrun's environment:
//   1. all-reduce (sum) bandwidth, float32, 1 KB to 64 MB: the median time of
//      one blocking all-reduce and the algorithm bandwidth (bytes / time);
//      Keel checked (its default: shapes compared across ranks first) and
//      unchecked ({ check: false }, as DDP's buckets run);
//   2. the DDP training step (forward, cross-entropy, zero_grad, backward with
//      the buckets' all-reduces, AdamW step, loss read) of LeNet-5 (global
//      batch 128) and ResNet-18 (global batch 32) at N ranks × 1 thread,
//      against PyTorch's DDP at N × 1 and against one process at N threads on
//      the whole batch (Keel and PyTorch).
// Launches take turns, round after round (--rounds, default 3; --quick 1), so
// that load from elsewhere hits every contender alike; the tables give the
// median over rounds and the median of the per-round ratios.
// KEEL_BEFORE=<dist folder> adds that build's DDP as one more contender taking
// turns (before/after in the same load).
//   node bench/distributed.mjs [--nproc 2] [--rounds R] [--quick] [--only allreduce|ddp]
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { fmt, median, pairedRatio, pinKeelThreads, ratio, table, threadEnv, writeResults } from './lib/harness.mjs';
import { TORCH_LENET5, TORCH_RESNET18 } from './lib/reference-models.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);
const opt = (name, d) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : d; };
const QUICK = argv.includes('--quick');
const NPROC = Number(opt('nproc', '2'));
const ROUNDS = Number(opt('rounds', QUICK ? '1' : '3'));
const ONLY = opt('only', null);
const BEFORE = process.env.KEEL_BEFORE ?? null;
if (!Number.isInteger(NPROC) || NPROC < 2) throw new Error(`--nproc ${opt('nproc')}: an integer ≥ 2`);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds ${opt('rounds')}: a positive integer`);
if (ONLY !== null && ONLY !== 'allreduce' && ONLY !== 'ddp') throw new Error(`--only ${ONLY}: allreduce or ddp`);
const SIZES = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20].filter((b) => !QUICK || b <= (4 << 20));
const MIN_S = QUICK ? 0.2 : 0.5;
// global batch; each of N ranks takes batch / N
const MODELS = {
  lenet5: { label: 'LeNet-5', batch: 128, input: [1, 28, 28], steps: QUICK ? 10 : 30 },
  resnet18: { label: 'ResNet-18', batch: 32, input: [3, 32, 32], steps: QUICK ? 3 : 8 },
};

// ---------------------------------------------------------------- Keel workers

if (argv[0] === '--worker') {
  const keel = await import('../dist/index.js');
  keel.distributed.initProcessGroup({ timeoutMs: 120000 });
  for (const bytes of SIZES) {
    const t = keel.zeros([bytes / 4]);
    const check = { check: !argv.includes('--unchecked') };
    for (let i = 0; i < 2; i++) keel.distributed.allReduce(t, 'sum', check);
    const times = [];
    const start = performance.now();
    // every rank runs the same count: rank 0 decides how many
    const n = keel.tensor([0]);
    for (;;) {
      const t0 = performance.now();
      keel.distributed.allReduce(t, 'sum', check);
      times.push(performance.now() - t0);
      n.fill_(keel.distributed.getRank() === 0 && times.length >= 3 && performance.now() - start >= MIN_S * 1000 ? 1 : 0);
      keel.distributed.allReduce(n, 'max', { check: false });
      if (n.item() === 1) break;
    }
    if (keel.distributed.getRank() === 0) console.log(JSON.stringify({ bytes, ms: median(times), n: times.length }));
    t.dispose();
  }
  keel.distributed.destroyProcessGroup();
  process.exit(0);
}

if (argv[0] === '--ddp-worker') {
  // --ddp-worker MODEL BATCH STEPS THREADS: under torchrun's environment a DDP rank, else one process
  const [, model, batchArg, stepsArg, threadsArg] = argv;
  const keel = await import(process.env.KEEL_DDP_DIST ? `${process.env.KEEL_DDP_DIST}/index.js` : '../dist/index.js');
  pinKeelThreads(keel, Number(threadsArg));
  const ddp = process.env.WORLD_SIZE !== undefined;
  if (ddp) keel.distributed.initProcessGroup({ timeoutMs: 300000 });
  const rank = ddp ? keel.distributed.getRank() : 0;
  keel.manualSeed(0);
  const m = model === 'lenet5' ? new keel.nn.zoo.LeNet5({ inChannels: 1, numClasses: 10 }) : new keel.nn.zoo.ResNet18({ inChannels: 3, numClasses: 10 });
  m.train();
  const net = ddp ? new keel.distributed.DistributedDataParallel(m) : m;
  const optimizer = new keel.optim.AdamW(m.parameters(), { lr: 1e-3, weightDecay: 1e-2 });
  keel.manualSeed(1 + rank);
  const x = keel.randn([Number(batchArg), ...MODELS[model].input]).keep();
  const y = keel.randint(0, 10, [Number(batchArg)]).keep();
  const step = () => keel.scope(() => {
    const loss = keel.losses.crossEntropy(net.call(x), y);
    optimizer.zeroGrad(true);
    loss.backward();
    optimizer.step();
    return loss.item();
  });
  for (let i = 0; i < 2; i++) step();
  const times = [];
  for (let i = 0; i < Number(stepsArg); i++) {
    const t0 = performance.now();
    if (!Number.isFinite(step())) throw new Error('non-finite loss');
    times.push(performance.now() - t0);
  }
  if (rank === 0) console.log(JSON.stringify({ ms: median(times), steps: times.length }));
  if (ddp) keel.distributed.destroyProcessGroup();
  process.exit(0);
}

// ---------------------------------------------------------------- PyTorch workers

const TORCH_ALLREDUCE = `
import json, os, sys, time, torch, torch.distributed as dist
torch.set_num_threads(1)
dist.init_process_group('gloo')
sizes, min_s = json.loads(sys.argv[1]), float(sys.argv[2])
for b in sizes:
    t = torch.zeros(b // 4)
    for _ in range(2): dist.all_reduce(t)
    times, start, n = [], time.perf_counter(), torch.zeros(1)
    while True:
        t0 = time.perf_counter(); dist.all_reduce(t); times.append((time.perf_counter() - t0) * 1000)
        n.fill_(1 if dist.get_rank() == 0 and len(times) >= 3 and time.perf_counter() - start >= min_s else 0)
        dist.all_reduce(n, op=dist.ReduceOp.MAX)
        if n.item() == 1: break
    times.sort()
    if dist.get_rank() == 0: print(json.dumps({'bytes': b, 'ms': times[len(times) // 2], 'n': len(times)}), flush=True)
dist.destroy_process_group()
`;

const TORCH_DDP = `
import json, os, statistics, sys, time, torch
import torch.nn as nn
import torch.nn.functional as F
import torch.distributed as dist
${TORCH_LENET5}
${TORCH_RESNET18}
model, batch, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
ddp = 'WORLD_SIZE' in os.environ
if ddp: dist.init_process_group('gloo')
rank = dist.get_rank() if ddp else 0
torch.manual_seed(0)
m = LeNet5() if model == 'lenet5' else ResNet18()
m.train()
net = nn.parallel.DistributedDataParallel(m) if ddp else m
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-2)
torch.manual_seed(1 + rank)
x = torch.randn(batch, *${JSON.stringify(Object.fromEntries(Object.entries(MODELS).map(([k, v]) => [k, v.input])))}[model])
y = torch.randint(0, 10, (batch,))
def step():
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()
for _ in range(2): step()
times = []
for _ in range(steps):
    t0 = time.perf_counter(); step(); times.append((time.perf_counter() - t0) * 1000)
if rank == 0: print(json.dumps({'ms': statistics.median(times), 'steps': len(times)}), flush=True)
if ddp: dist.destroy_process_group()
`;

// ---------------------------------------------------------------- driver

const { launch } = (await import('../dist/index.js')).distributed;

/** N workers with torchrun's environment, one libtorch thread each; rank 0's JSON lines. */
async function workers(command, args, env = {}) {
  let text = '';
  const out = new PassThrough();
  out.on('data', (d) => (text += d));
  const r = await launch({ nproc: NPROC, command, args, stdout: out, prefix: true, env: { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', KEEL_NUM_THREADS: '1', ...env } });
  if (r.exitCode !== 0) throw new Error(`${command} workers failed: ${JSON.stringify(r)}\n${text}`);
  return text.split('\n').filter((l) => l.startsWith('[rank 0] {')).map((l) => JSON.parse(l.slice(9)));
}

/** One process pinned to `threads`; its JSON lines. */
function single(command, args, threads) {
  return new Promise((ok, fail) => {
    const p = spawn(command, args, { env: threadEnv(threads), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? ok(out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))) : fail(new Error(`${command} exited ${code}:\n${err}`))));
  });
}

const human = (b) => (b >= 1 << 20 ? `${b >> 20} MB` : `${b >> 10} KB`);
const results = { nproc: NPROC, rounds: ROUNDS, quick: QUICK, before: BEFORE };

if (ONLY !== 'ddp') {
  const samples = { checked: [], unchecked: [], torch: [] };
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`[all-reduce] round ${r + 1}/${ROUNDS}\n`);
    const byBytes = (rows) => new Map(rows.map((o) => [o.bytes, o.ms]));
    samples.unchecked.push(byBytes(await workers(process.execPath, [SCRIPT, '--worker', '--unchecked', ...argv])));
    samples.torch.push(byBytes(await workers('/usr/bin/python3', ['-c', TORCH_ALLREDUCE, JSON.stringify(SIZES), String(MIN_S)])));
    samples.checked.push(byBytes(await workers(process.execPath, [SCRIPT, '--worker', ...argv])));
  }
  const rows = SIZES.map((b) => {
    const of = (k) => samples[k].map((m) => m.get(b));
    const u = median(of('unchecked'));
    const t = median(of('torch'));
    return { bytes: b, keelMs: median(of('checked')), keelUncheckedMs: u, torchMs: t, keelMBs: b / u / 1e3, torchMBs: b / t / 1e3, ratio: pairedRatio(of('unchecked'), of('torch')), samples: { checked: of('checked'), unchecked: of('unchecked'), torch: of('torch') } };
  });
  results.allReduce = rows;
  console.log(`# all-reduce sum, float32, world size ${NPROC}, loopback, Gloo; median over ${ROUNDS} round(s) of each rank 0's median ms (MB/s = bytes / time)`);
  console.log('Keel checked: the default (shapes compared across ranks first); unchecked: { check: false }, as DDP buckets run. Time ratio: lower is faster; bandwidth ratio = 1 / it');
  console.log(table(['size', 'Keel checked ms', 'Keel unchecked ms', 'torch ms', 'Keel unchecked MB/s', 'torch MB/s', 'Keel unchecked ÷ torch (time)'],
    rows.map((r) => [human(r.bytes), fmt(r.keelMs), fmt(r.keelUncheckedMs), fmt(r.torchMs), r.keelMBs.toFixed(0), r.torchMBs.toFixed(0), ratio(r.ratio)])));
  console.log('');
}

if (ONLY !== 'allreduce') {
  const rows = [];
  for (const [model, spec] of Object.entries(MODELS)) {
    const perRank = spec.batch / NPROC;
    if (!Number.isInteger(perRank)) throw new Error(`${model}: global batch ${spec.batch} does not split over ${NPROC} ranks`);
    const contenders = {
      keelDdp: () => workers(process.execPath, [SCRIPT, '--ddp-worker', model, String(perRank), String(spec.steps), '1']),
      torchDdp: () => workers('/usr/bin/python3', ['-c', TORCH_DDP, model, String(perRank), String(spec.steps), '1']),
      keelOne: () => single(process.execPath, [SCRIPT, '--ddp-worker', model, String(spec.batch), String(spec.steps), String(NPROC)], NPROC),
      torchOne: () => single('/usr/bin/python3', ['-c', TORCH_DDP, model, String(spec.batch), String(spec.steps), String(NPROC)], NPROC),
    };
    if (BEFORE) contenders.keelBeforeDdp = () => workers(process.execPath, [SCRIPT, '--ddp-worker', model, String(perRank), String(spec.steps), '1'], { KEEL_DDP_DIST: BEFORE });
    const ms = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`[ddp] ${spec.label} round ${r + 1}/${ROUNDS}\n`);
      for (const [k, run] of Object.entries(contenders)) ms[k].push((await run())[0].ms);
    }
    const row = {
      model, label: spec.label, globalBatch: spec.batch, perRank,
      msPerStep: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)])),
      keelDdpOverTorchDdp: pairedRatio(ms.keelDdp, ms.torchDdp),
      keelDdpOverKeelOne: pairedRatio(ms.keelDdp, ms.keelOne),
      ...(BEFORE ? { keelBeforeDdpOverTorchDdp: pairedRatio(ms.keelBeforeDdp, ms.torchDdp), keelDdpOverKeelBeforeDdp: pairedRatio(ms.keelDdp, ms.keelBeforeDdp) } : {}),
      samplesMs: ms,
    };
    rows.push(row);
  }
  results.ddp = rows;
  console.log(`# DDP training step (AdamW), ${NPROC} ranks × 1 thread vs one process × ${NPROC} threads on the whole batch; ms per step, median over ${ROUNDS} round(s) of each run's median`);
  console.log(table(['model', 'global batch', `Keel DDP ${NPROC}×1`, `PyTorch DDP ${NPROC}×1`, 'Keel DDP ÷ PyTorch DDP', `Keel 1×${NPROC}`, `PyTorch 1×${NPROC}`, `Keel DDP ÷ Keel 1×${NPROC}`],
    rows.map((r) => [r.label, `${r.globalBatch} (${r.perRank}/rank)`, fmt(r.msPerStep.keelDdp), fmt(r.msPerStep.torchDdp), ratio(r.keelDdpOverTorchDdp), fmt(r.msPerStep.keelOne), fmt(r.msPerStep.torchOne), ratio(r.keelDdpOverKeelOne)])));
  if (BEFORE) {
    console.log(`\nbefore: ${BEFORE} (its DDP launched in turn with the others, round by round)`);
    console.log(table(['model', 'Keel DDP before', 'before ÷ PyTorch DDP', 'after ÷ PyTorch DDP', 'after ÷ before'],
      rows.map((r) => [r.label, fmt(r.msPerStep.keelBeforeDdp), ratio(r.keelBeforeDdpOverTorchDdp), ratio(r.keelDdpOverTorchDdp), ratio(r.keelDdpOverKeelBeforeDdp)])));
  }
  console.log(`Goals (issue 16): all-reduce bandwidth ≥ 0.95× PyTorch's (time ratio ≤ 1.05×), DDP step ≤ 1.05× PyTorch DDP's. ${NPROC} ranks on this machine share its cores with each other and with everything else: the DDP ÷ 1-process column says what data parallelism costs here, not how it scales across machines.`);
}

const file = writeResults('distributed', { bench: 'distributed', date: new Date().toISOString(), ...results });
console.log(`\nwrote ${file}`);
