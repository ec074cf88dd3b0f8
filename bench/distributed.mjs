#!/usr/bin/env node
// All-reduce (sum) bandwidth, float32, 1 KB to 64 MB: Keel's c10d/Gloo
// process group against torch.distributed's Gloo (Debian's python3-torch,
// the same libtorch), same world size, both launched here one after the
// other on loopback. Reported: the median time of one blocking all-reduce
// and the algorithm bandwidth (bytes / time).
//   node bench/distributed.mjs [--nproc 2] [--quick]
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = join(dirname(SCRIPT), '..');
const argv = process.argv.slice(2);
const opt = (name, d) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : d; };
const QUICK = argv.includes('--quick');
const NPROC = Number(opt('nproc', '2'));
const SIZES = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20].filter((b) => !QUICK || b <= (4 << 20));
const MIN_S = QUICK ? 0.2 : 0.5;

if (argv[0] === '--worker') {
  const keel = await import(join(ROOT, 'dist', 'index.js'));
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
    times.sort((a, b) => a - b);
    if (keel.distributed.getRank() === 0) console.log(JSON.stringify({ bytes, ms: times[times.length >> 1], n: times.length }));
    t.dispose();
  }
  keel.distributed.destroyProcessGroup();
  process.exit(0);
}

const TORCH = `
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

const { launch } = (await import(join(ROOT, 'dist', 'index.js'))).distributed;
async function run(command, args) {
  let text = '';
  const { PassThrough } = await import('node:stream');
  const out = new PassThrough();
  out.on('data', (d) => (text += d));
  const r = await launch({ nproc: NPROC, command, args, stdout: out, prefix: true, env: { OMP_NUM_THREADS: '1' } });
  if (r.exitCode !== 0) throw new Error(`${command} workers failed: ${JSON.stringify(r)}\n${text}`);
  return new Map(text.split('\n').filter((l) => l.startsWith('[rank 0] {')).map((l) => JSON.parse(l.slice(9))).map((o) => [o.bytes, o]));
}

const keelRes = await run(process.execPath, [SCRIPT, '--worker', ...argv]);
const keelRaw = await run(process.execPath, [SCRIPT, '--worker', '--unchecked', ...argv]);
const torchRes = await run('/usr/bin/python3', ['-c', TORCH, JSON.stringify(SIZES), String(MIN_S)]);
const human = (b) => (b >= 1 << 20 ? `${b >> 20} MB` : `${b >> 10} KB`);
const rows = SIZES.map((b) => {
  const k = keelRes.get(b).ms;
  const t = torchRes.get(b).ms;
  const u = keelRaw.get(b).ms;
  return { bytes: b, keelMs: k, keelUncheckedMs: u, torchMs: t, keelMBs: b / u / 1e3, torchMBs: b / t / 1e3, ratio: u / t };
});
console.log(`all-reduce sum, float32, world size ${NPROC}, loopback, Gloo (median ms; MB/s = bytes / time)`);
console.log('Keel checked: the default (shapes compared across ranks first); unchecked: { check: false }, as DDP buckets run');
console.log('| size | Keel checked ms | Keel unchecked ms | torch ms | Keel unchecked MB/s | torch MB/s | unchecked / torch |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${human(r.bytes)} | ${r.keelMs.toFixed(3)} | ${r.keelUncheckedMs.toFixed(3)} | ${r.torchMs.toFixed(3)} | ${r.keelMBs.toFixed(0)} | ${r.torchMBs.toFixed(0)} | ${r.ratio.toFixed(2)} |`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'distributed.json'), JSON.stringify({ date: new Date().toISOString(), nproc: NPROC, rows }, null, 2) + '\n');
