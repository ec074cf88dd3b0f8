// Data-parallel training across processes (keel.distributed on c10d/Gloo):
// every test runs two child processes on loopback with a fresh port and a
// hard timeout, so nothing can hang the suite.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';
import { freePort } from './helpers/net.js';
import { runTorch, torchAvailable } from './helpers/torch.js';

const CHILD = join(process.cwd(), 'build', 'test', 'distributed-child.js');


interface Run { code: number | null; signal: string | null; out: Record<string, any> | undefined; stderr: string }

function rank(scenario: string, r: number, port: number, world = 2, timeoutMs = 5000): Promise<Run> {
  return new Promise((ok) => {
    const p = spawn(process.execPath, [CHILD, scenario], {
      env: { ...process.env, RANK: String(r), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), KEEL_TEST_TIMEOUT_MS: String(timeoutMs) },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code, signal) => {
      const line = stdout.trim().split('\n').filter(Boolean).pop();
      ok({ code, signal, out: line ? JSON.parse(line) : undefined, stderr });
    });
  });
}

async function pair(scenario: string, timeoutMs = 5000): Promise<Run[]> {
  const port = await freePort();
  return Promise.all([rank(scenario, 0, port, 2, timeoutMs), rank(scenario, 1, port, 2, timeoutMs)]);
}

test('collectives: exact values for sum, avg, max, min, product; broadcast, allGather, reduceScatter, async work, barrier; bad arguments are Errors', async () => {
  const runs = await pair('collectives');
  for (const [r, run] of runs.entries()) {
    assert.equal(run.code, 0, run.stderr);
    const o = run.out!;
    assert.equal(o.rank, r);
    assert.equal(o.world, 2);
    assert.deepEqual(o.sum, [3, -1.5, 1]);
    assert.deepEqual(o.avg, [1.5, -0.75, 0.5]);
    assert.deepEqual(o.max, [2, -0.5, 3]);
    assert.deepEqual(o.min, [1, -1, -2]);
    assert.deepEqual(o.product, [2, 0.5, -6]);
    assert.equal(o.sumInt, 11);
    assert.deepEqual(o.asyncAvg, [6]);
    assert.deepEqual(o.broadcast, [101, 201]);
    assert.deepEqual(o.allGather, [[0, 0], [1, 2]]);
    assert.deepEqual(o.reduceScatter, r === 0 ? [3, 6] : [9, 12]);
    assert.match(o.errors[0], /src.*must be a rank in \[0, 1\], got 5/);
    assert.match(o.errors[1], /op.*must be one of/);
    assert.match(o.errors[2], /already exists/);
    assert.match(o.errors[3], /leaf that requires grad/);
    assert.match(o.afterDestroy, /no process group/);
  }
});

test('DDP on 2 ranks (buckets, noSync accumulation, rank 1 starting from other weights) ends equal to one process on the 2x batch (float64, <= 1e-12)', async () => {
  const [r0, r1] = await pair('ddp');
  assert.equal(r0.code, 0, r0.stderr);
  assert.equal(r1.code, 0, r1.stderr);
  assert.ok(r0.out!.buckets > 1, 'several buckets');
  assert.equal(r0.out!.ranksEqual, true);
  assert.ok(r0.out!.moved > 1e-3, 'training moved the parameters');
  assert.ok(r0.out!.maxDiff <= 1e-12, `max |DDP - single process| = ${r0.out!.maxDiff}`);
  assert.deepEqual(r1.out!.buffersNoSync, [[7, 7, 7], [7, 7, 7], [7]], 'no broadcast under noSync');
  assert.deepEqual(r1.out!.buffersSynced, [[2, 2, 2], [2, 2, 2], [2]], "rank 0's buffers before a synced forward");
  assert.deepEqual(r0.out!.buffersSynced, [[2, 2, 2], [2, 2, 2], [2]]);
  if (!torchAvailable()) return;
  // the same model, data and steps under PyTorch's DDP on Gloo (2 forked processes)
  const torchFinal = runTorch<number[]>(TORCH_DDP, { init: r0.out!.init, x: r0.out!.x, y: r0.out!.y });
  const d = Math.max(...torchFinal.map((v, i) => Math.abs(v - r0.out!.final[i])));
  assert.ok(d <= 1e-12, `max |Keel DDP - PyTorch DDP| = ${d}`);
});

const TORCH_DDP = `
import socket, torch.distributed as dist, torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP
F = torch.nn.functional
def worker(rank, port, q):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    if rank == 0:
        with torch.no_grad():
            for p, v in zip(net.parameters(), inp['init']): p.copy_(T(v).reshape(p.shape))
    ddp = DDP(net, bucket_cap_mb=100 / (1024 * 1024))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    for s in range(len(inp['x'])):
        x, y = T(inp['x'][s]).reshape(16, 4), T(inp['y'][s]).reshape(16, 3)
        opt.zero_grad(set_to_none=True)
        if s == 3:
            part = lambda i: (x[rank * 8 + i * 4: rank * 8 + i * 4 + 4], y[rank * 8 + i * 4: rank * 8 + i * 4 + 4])
            with ddp.no_sync():
                a, b = part(0); (F.mse_loss(ddp(a), b) * 0.5).backward()
            a, b = part(1); (F.mse_loss(ddp(a), b) * 0.5).backward()
        else:
            F.mse_loss(ddp(x[rank * 8: rank * 8 + 8]), y[rank * 8: rank * 8 + 8]).backward()
        opt.step()
    if rank == 0: q.put([v for p in net.parameters() for v in p.detach().reshape(-1).tolist()])
    dist.barrier()
    dist.destroy_process_group()
s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
ctx = mp.get_context('fork'); q = ctx.Queue()
procs = [ctx.Process(target=worker, args=(r, port, q)) for r in range(2)]
for p in procs: p.start()
out = q.get(timeout=120)
for p in procs: p.join(30)
`;

test('guard across ranks: a NaN in rank 1 only makes every rank skip that step; the report names rank 1', async () => {
  const runs = await pair('guard');
  for (const run of runs) {
    assert.equal(run.code, 0, run.stderr);
    const o = run.out!;
    assert.deepEqual(o.results.map((x: any) => x.ok), [true, true, false, true]);
    assert.equal(o.results[2].action, 'skipped');
    assert.deepEqual(o.results[2].ranks, [1]);
    assert.equal(o.ranksEqual, true);
    assert.equal(o.finite, true);
  }
  assert.equal(runs[0].out!.results[2].causeId, 'other-rank');
  assert.notEqual(runs[1].out!.results[2].causeId, 'other-rank');
});

test('GradScaler under the guard on 2 ranks: an overflow in rank 1\'s scaled gradients is a scaler skip on every rank (the same scale after it), not an event; past maxConsecutiveSkips it is one, rank 1 naming the op', async () => {
  const runs = await pair('scaler', 20000);
  for (const run of runs) {
    assert.equal(run.code, 0, run.stderr);
    const plain = run.out!.max10;
    assert.deepEqual(plain.results.map((x: any) => [x.ok, x.scalerSkipped, x.action ?? null]), [[true, false, null], [true, false, null], [false, true, null], [true, false, null]]);
    assert.ok(plain.results[2].lossFinite, 'the loss stayed finite: only the scaled gradients overflowed');
    assert.equal(plain.scale, 2 ** 99, 'backed off once');
    assert.equal(plain.scalesEqual, true);
    assert.equal(plain.ranksEqual, true);
    assert.equal(plain.finite, true);
    const strict = run.out!.max1;
    assert.deepEqual(strict.results.map((x: any) => x.ok), [true, true, false, true]);
    assert.equal(strict.results[2].scalerSkipped, true);
    assert.equal(strict.results[2].action, 'skipped');
    assert.deepEqual(strict.results[2].ranks, [1]);
    assert.equal(strict.scalesEqual, true);
    assert.equal(strict.ranksEqual, true);
  }
  assert.equal(runs[0].out!.max1.results[2].causeId, 'other-rank');
  assert.notEqual(runs[1].out!.max1.results[2].causeId, 'other-rank');
  assert.notEqual(runs[1].out!.max1.results[2].op, 'unknown', 'rank 1\'s replay names an op');
});

test('a killed peer is an Error on the other rank within the timeout, not a hang or a crash', async () => {
  const [r0, r1] = await pair('kill', 3000);
  assert.equal(r1.code, 7);
  assert.equal(r0.code, 0, r0.stderr);
  assert.match(r0.out!.error, /failed on rank 0/);
  assert.ok(r0.out!.ms < 3500, `${r0.out!.ms} ms`);
});

test('a peer that stays alive but never joins: waiting on the collective times out with an Error', async () => {
  const [r0] = await pair('hang', 10000);
  assert.equal(r0.code, 0, r0.stderr);
  assert.match(r0.out!.error, /allReduce failed on rank 0.*timeout 1500 ms/);
  assert.ok(r0.out!.ms >= 1000 && r0.out!.ms < 5000, `${r0.out!.ms} ms`);
});

test('DDP findUnusedParameters: a head unused on rank 1 is averaged in; without it an Error naming the parameter (and an Error, not a hang, on the rank that waited)', async () => {
  const [r0, r1] = await pair('unused', 3000);
  assert.equal(r0.code, 0, r0.stderr);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r0.out!.findtrue.ranksEqual, true);
  assert.deepEqual(r1.out!.findtrue.bGrad, r0.out!.findtrue.bGrad, 'rank 1 got the average of rank 0 and its zero');
  assert.match(r1.out!.findfalse.error, /got no gradient.*\(b\.bias, b\.weight\).*findUnusedParameters: true/);
  assert.match(r0.out!.findfalse.error, /failed on rank 0/);
});

test('mismatched shapes across ranks: an Error on every rank naming both collectives, not an abort inside Gloo', async () => {
  const runs = await pair('mismatch');
  for (const run of runs) {
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.out!.error, /failed on rank [01].*(mismatch|TensorShape)/s);
  }
});

test('a rank that never meets the others: rank 0 without workers, rank 1 without a master, both Errors within the timeout', async () => {
  const [a, b] = await Promise.all([
    freePort().then((p) => rank('alone', 0, p, 2, 2000)),
    freePort().then((p) => rank('alone', 1, p, 2, 2000)),
  ]);
  for (const run of [a, b]) {
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.out!.error, /could not meet the other 1 rank\(s\)/);
    assert.ok(run.out!.ms < 4000, `${run.out!.ms} ms`);
  }
});

test('launch (torchrun --standalone): N workers with torchrun\'s environment, output prefixed by rank; a failed worker stops the others', async () => {
  const { launch } = keel.distributed;
  const collect = () => {
    const s = new PassThrough();
    let text = '';
    s.on('data', (d) => (text += d));
    return { s, text: () => text };
  };
  const o = collect();
  const e = collect();
  const ok = await launch({ nproc: 2, args: [CHILD, 'collectives'], stdout: o.s, stderr: e.s });
  assert.equal(ok.exitCode, 0, e.text());
  assert.deepEqual(ok.codes, [0, 0]);
  const lines = o.text().trim().split('\n').sort();
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^\[rank 0\] \{"rank":0,"world":2/);
  assert.match(lines[1], /^\[rank 1\] \{"rank":1,"world":2/);
  const bad = await launch({ nproc: 2, args: [CHILD, 'kill'], stdout: collect().s, stderr: collect().s, env: { KEEL_TEST_TIMEOUT_MS: '3000' }, graceMs: 2000 });
  assert.equal(bad.failedRank, 1);
  assert.equal(bad.exitCode, 7);
});

test('DistributedSampler: rank strides over one shared order, padded to equal length, a new order per setEpoch, through a DataLoader', async () => {
  const data = { length: 10, get: (i: number) => keel.tensor([i]) };
  const samplers = [0, 1, 2].map((rank) => new keel.distributed.DistributedSampler(data, { numReplicas: 3, rank, shuffle: false }));
  assert.deepEqual(samplers.map((s) => Array.from(s.indices())), [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]);
  assert.deepEqual(samplers.map((s) => s.length), [4, 4, 4]);
  const dropped = new keel.distributed.DistributedSampler(data, { numReplicas: 3, rank: 2, shuffle: false, dropLast: true });
  assert.deepEqual(Array.from(dropped.indices()), [2, 5, 8]);
  const shuffled = [0, 1].map((rank) => new keel.distributed.DistributedSampler(data, { numReplicas: 2, rank, seed: 4 }));
  const e0 = shuffled.map((s) => Array.from(s.indices()));
  assert.deepEqual([...e0[0], ...e0[1]].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the ranks partition the data set');
  for (const s of shuffled) s.setEpoch(1);
  const e1 = shuffled.map((s) => Array.from(s.indices()));
  assert.notDeepEqual(e1, e0, 'a new order each epoch');
  assert.deepEqual(Array.from(new keel.distributed.DistributedSampler(data, { numReplicas: 2, rank: 0, seed: 4 }).indices()), e0[0], 'the same on every process');
  const loader = new keel.data.DataLoader(samplers[1], { batchSize: 2 });
  const seen: number[] = [];
  for (const b of loader) seen.push(...Array.from((b as keel.Tensor).data() as Float32Array));
  assert.deepEqual(seen, [1, 4, 7, 0]);
  assert.throws(() => new keel.distributed.DistributedSampler(data, { numReplicas: 2, rank: 2 }), /rank must be in \[0, 1\]/);
});
