// One rank of a distributed test (run by distributed.test.ts, two at a time,
// with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set): prints one JSON line.
//
//   node build/test/distributed-child.js <scenario>
import * as keel from 'keel';

const dist = keel.distributed;
const scenario = process.argv[2];
const rank = Number(process.env.RANK);
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const vals = (t: keel.Tensor) => Array.from(t.data() as Float64Array);

function model(seed: number): keel.nn.Module {
  keel.manualSeed(seed);
  return new keel.nn.Sequential(new keel.nn.Linear(4, 8), new keel.nn.Tanh(), new keel.nn.Linear(8, 3)).to('float64');
}

/** Batch `step` of 16 examples (float64), the same on every rank. */
function batch(step: number): [keel.Tensor, keel.Tensor] {
  const x = keel.tensor(Array.from({ length: 64 }, (_, i) => Math.sin(1.3 * i + step)), { dtype: 'float64' }).reshape([16, 4]);
  const y = keel.tensor(Array.from({ length: 48 }, (_, i) => Math.cos(0.7 * i - step)), { dtype: 'float64' }).reshape([16, 3]);
  return [x, y];
}

function flatParams(m: keel.nn.Module): number[] {
  return m.parameters().flatMap((p) => vals(p));
}

const timeoutMs = Number(process.env.KEEL_TEST_TIMEOUT_MS ?? 5000);

switch (scenario) {
  case 'collectives': {
    dist.initProcessGroup({ timeoutMs });
    const W = dist.getWorldSize();
    const r: Record<string, unknown> = { rank: dist.getRank(), world: W };
    for (const op of ['sum', 'avg', 'max', 'min', 'product'] as const) {
      const t = keel.tensor([rank + 1, -(rank + 1) * 0.5, rank === 0 ? 3 : -2], { dtype: 'float64' });
      dist.allReduce(t, op);
      r[op] = vals(t);
    }
    const ti = keel.tensor([rank + 5], { dtype: 'int64' });
    dist.allReduce(ti, 'sum');
    r.sumInt = Number((ti.data() as BigInt64Array)[0]);
    const a = keel.tensor([rank * 10 + 1], { dtype: 'float64' });
    const w = dist.allReduce(a, 'avg', { async: true });
    w.wait();
    r.asyncAvg = vals(a);
    const b = keel.tensor([rank + 100, rank + 200], { dtype: 'float64' });
    dist.broadcast(b, 1);
    r.broadcast = vals(b);
    r.allGather = dist.allGather(keel.tensor([rank, rank * 2], { dtype: 'float64' })).map(vals);
    const rs = keel.zeros([2], { dtype: 'float64' });
    dist.reduceScatter(rs, keel.tensor([1, 2, 3, 4], { dtype: 'float64' }).mul(rank + 1));
    r.reduceScatter = vals(rs);
    dist.barrier();
    const errors: string[] = [];
    for (const f of [
      () => dist.broadcast(keel.zeros([1]), 5),
      () => dist.allReduce(keel.zeros([1]), 'median' as 'sum'),
      () => dist.initProcessGroup({ timeoutMs }),
      () => dist.allReduce(keel.zeros([2], { requiresGrad: true }), 'sum'),
    ]) {
      try { f(); errors.push('no error'); } catch (e) { errors.push((e as Error).message); }
    }
    r.errors = errors;
    dist.destroyProcessGroup();
    r.afterDestroy = (() => { try { dist.getRank(); return 'no error'; } catch (e) { return (e as Error).message; } })();
    out(r);
    break;
  }
  case 'ddp': {
    // DDP on 2 ranks, each a half of every batch, against one process on the whole batch
    dist.initProcessGroup({ timeoutMs });
    const steps = 5;
    const net = model(rank === 0 ? 1 : 99); // rank 1 starts elsewhere: DDP broadcasts rank 0's
    const ddp = new dist.DistributedDataParallel(net, { bucketCapMb: 100 / (1024 * 1024) });
    const opt = new keel.optim.SGD(ddp.parameters(), { lr: 0.1, momentum: 0.9 });
    for (let s = 0; s < steps; s++) {
      keel.scope(() => {
        const [x, y] = batch(s);
        opt.zeroGrad();
        if (s === 3) {
          // gradient accumulation: quarter 1 under noSync, quarter 2 synced
          const q = (i: number) => [x.narrow(0, rank * 8 + i * 4, 4), y.narrow(0, rank * 8 + i * 4, 4)];
          ddp.noSync(() => { const [a, b] = q(0); keel.losses.mseLoss(ddp.call(a) as keel.Tensor, b).mul(0.5).backward(); });
          const [a, b] = q(1);
          keel.losses.mseLoss(ddp.call(a) as keel.Tensor, b).mul(0.5).backward();
        } else {
          const loss = keel.losses.mseLoss(ddp.call(x.narrow(0, rank * 8, 8)) as keel.Tensor, y.narrow(0, rank * 8, 8));
          loss.backward();
        }
        opt.step();
      });
    }
    const mine = flatParams(net);
    const all = dist.allGather(keel.tensor(mine, { dtype: 'float64' })).map(vals);
    const r: Record<string, unknown> = { rank, buckets: ddp.buckets.length, ranksEqual: all[0].every((v, i) => v === all[1][i]) };
    // buffers (float64 running statistics, an int64 count): rank 0's are broadcast before a synced forward, not under noSync
    const bnNet = new keel.nn.Sequential(new keel.nn.Linear(4, 3), new keel.nn.BatchNorm1d(3)).to('float64');
    const bnDdp = new dist.DistributedDataParallel(bnNet);
    bnNet.eval(); // running statistics read, not updated, by the forward
    const bufs = () => bnNet.buffers().map((b) => Array.from(b.data() as ArrayLike<number | bigint>, Number));
    const setBufs = (k: number) => keel.noGrad(() => { for (const b of bnNet.buffers()) b.fill_(k); });
    setBufs(rank === 0 ? 2 : 7);
    keel.noGrad(() => { bnDdp.noSync(() => bnDdp.call(batch(0)[0])); });
    r.buffersNoSync = bufs();
    keel.noGrad(() => { bnDdp.call(batch(0)[0]); });
    r.buffersSynced = bufs();
    bnDdp.dispose();
    if (rank === 0) {
      const ref = model(1);
      const ropt = new keel.optim.SGD(ref.parameters(), { lr: 0.1, momentum: 0.9 });
      for (let s = 0; s < steps; s++) {
        keel.scope(() => {
          const [x, y] = batch(s);
          ropt.zeroGrad();
          keel.losses.mseLoss(ref.call(x) as keel.Tensor, y).backward();
          ropt.step();
        });
      }
      const refP = flatParams(ref);
      r.maxDiff = Math.max(...refP.map((v, i) => Math.abs(v - mine[i])));
      const init = model(1);
      r.moved = Math.max(...refP.map((v, i) => Math.abs(v - flatParams(init)[i])));
      // for the PyTorch DDP comparison: the start, the data, the end
      r.init = init.parameters().map(vals);
      r.x = Array.from({ length: steps }, (_, s) => vals(batch(s)[0]));
      r.y = Array.from({ length: steps }, (_, s) => vals(batch(s)[1]));
      r.final = mine;
    }
    dist.destroyProcessGroup();
    out(r);
    break;
  }
  case 'guard': {
    // a NaN in rank 1's batch at step 2 only: every rank skips that step
    dist.initProcessGroup({ timeoutMs });
    const net = model(1);
    const ddp = new dist.DistributedDataParallel(net);
    const opt = new keel.optim.SGD(ddp.parameters(), { lr: 0.05 });
    const guard = new keel.Guard({ model: ddp, optimizer: opt, policy: 'skip', distributed: dist.guardHook(ddp), watch: false });
    const results: unknown[] = [];
    for (let s = 0; s < 4; s++) {
      const r = guard.stepSync(() => {
        const [x, y] = batch(s);
        let xr = x.narrow(0, rank * 8, 8);
        if (s === 2 && rank === 1) xr = xr.mul(keel.tensor([1, 1, Number.NaN, 1], { dtype: 'float64' }));
        return keel.losses.mseLoss(ddp.call(xr) as keel.Tensor, y.narrow(0, rank * 8, 8));
      });
      results.push({ ok: r.ok, action: r.event?.action, ranks: r.event?.report.ranks, causeId: r.event?.report.causeId, module: r.event?.report.module });
    }
    const mine = flatParams(net);
    const all = dist.allGather(keel.tensor(mine, { dtype: 'float64' })).map(vals);
    dist.destroyProcessGroup();
    out({ rank, results, ranksEqual: all[0].every((v, i) => v === all[1][i]), finite: mine.every(Number.isFinite) });
    break;
  }
  case 'scaler': {
    // a GradScaler under the guard on 2 ranks (float32, init scale 2^100): at step 2 rank 1's targets are
    // ×1e18, so its scaled gradients overflow (the loss stays finite); the inf check reads the averaged
    // gradients, so every rank skips that step and backs the scale off alike, and no guard event is raised.
    // With maxConsecutiveSkips 1 the same skip is an event: rank 1's replay names the op, rank 0 names rank 1.
    dist.initProcessGroup({ timeoutMs });
    const out_: Record<string, unknown> = { rank };
    for (const maxConsecutiveSkips of [10, 1]) {
      keel.manualSeed(1);
      const net = new keel.nn.Sequential(new keel.nn.Linear(4, 8), new keel.nn.Tanh(), new keel.nn.Linear(8, 3));
      const ddp = new dist.DistributedDataParallel(net);
      const opt = new keel.optim.SGD(ddp.parameters(), { lr: 0.05 });
      const scaler = new keel.amp.GradScaler({ initScale: 2 ** 100 });
      const guard = new keel.Guard({ model: ddp, optimizer: opt, policy: 'skip', distributed: dist.guardHook(ddp), scaler, maxConsecutiveSkips, watch: false });
      const results: unknown[] = [];
      for (let s = 0; s < 4; s++) {
        const r = guard.stepSync(() => {
          const [x, y] = batch(s).map((t) => t.to('float32'));
          let yr = y.narrow(0, rank * 8, 8);
          if (s === 2 && rank === 1) yr = yr.mul(1e18);
          return keel.losses.mseLoss(ddp.call(x.narrow(0, rank * 8, 8)) as keel.Tensor, yr);
        });
        results.push({ ok: r.ok, scalerSkipped: r.scalerSkipped ?? false, action: r.event?.action, ranks: r.event?.report.ranks, causeId: r.event?.report.causeId, op: r.event?.report.op, lossFinite: Number.isFinite(r.loss) });
      }
      const mine = net.parameters().flatMap((p) => Array.from(p.data() as Float32Array));
      const all = dist.allGather(keel.tensor(mine, { dtype: 'float32' })).map((t) => Array.from(t.data() as Float32Array));
      const scales = dist.allGather(keel.tensor([scaler.getScale()], { dtype: 'float64' })).map(vals);
      out_[`max${maxConsecutiveSkips}`] = { results, scale: scaler.getScale(), scalesEqual: scales[0][0] === scales[1][0], ranksEqual: all[0].every((v, i) => v === all[1][i]), finite: mine.every(Number.isFinite) };
    }
    dist.destroyProcessGroup();
    out(out_);
    break;
  }
  case 'kill': {
    // rank 1 dies after the first collective; rank 0's next one must fail within the timeout
    dist.initProcessGroup({ timeoutMs });
    dist.allReduce(keel.ones([4]), 'sum');
    if (rank === 1) process.exit(7);
    const t0 = Date.now();
    let error = '';
    try { dist.allReduce(keel.ones([4]), 'sum'); } catch (e) { error = (e as Error).message; }
    out({ rank, error, ms: Date.now() - t0 });
    break;
  }
  case 'hang': {
    // rank 1 stays alive but never joins the second collective
    dist.initProcessGroup({ timeoutMs });
    dist.allReduce(keel.ones([4]), 'sum');
    if (rank === 1) { setTimeout(() => process.exit(0), 4000); break; }
    const t0 = Date.now();
    let error = '';
    try { dist.allReduce(keel.ones([4]), 'sum', { async: true, check: false }).wait(1500); } catch (e) { error = (e as Error).message; }
    out({ rank, error, ms: Date.now() - t0 });
    process.exit(0);
  }
  case 'unused': {
    // rank 1's forward skips head b: an Error naming it without findUnusedParameters, averaged with it
    dist.initProcessGroup({ timeoutMs });
    class TwoHeads extends keel.nn.Module {
      a = new keel.nn.Linear(4, 3).to('float64');
      b = new keel.nn.Linear(4, 3).to('float64');
      forward(x: keel.Tensor, useB: boolean) { return useB ? this.a.call(x).add(this.b.call(x)) : this.a.call(x); }
    }
    const r: Record<string, unknown> = { rank };
    for (const find of [true, false]) {
      keel.manualSeed(3);
      const net = new TwoHeads();
      const ddp = new dist.DistributedDataParallel(net, { findUnusedParameters: find, bucketCapMb: 1e-5 });
      const opt = new keel.optim.SGD(ddp.parameters(), { lr: 0.1 });
      const [x, y] = batch(0);
      try {
        keel.losses.mseLoss(ddp.call(x.narrow(0, rank * 8, 8), rank === 0) as keel.Tensor, y.narrow(0, rank * 8, 8)).backward();
        opt.step();
        const all = dist.allGather(keel.tensor(flatParams(net), { dtype: 'float64' })).map(vals);
        r[`find${find}`] = { ranksEqual: all[0].every((v, i) => v === all[1][i]), bGrad: vals(net.b.weight.grad!) };
      } catch (e) {
        r[`find${find}`] = { error: (e as Error).message };
      }
    }
    out(r);
    process.exit(0);
  }
  case 'mismatch': {
    // rank 1 all-reduces a longer tensor: an Error on both ranks, no abort
    dist.initProcessGroup({ timeoutMs });
    let error = '';
    try { dist.allReduce(keel.ones([rank === 0 ? 4 : 64]), 'sum'); } catch (e) { error = (e as Error).message; }
    let after = '';
    try { dist.destroyProcessGroup(); } catch (e) { after = (e as Error).message; }
    out({ rank, error, after });
    break;
  }
  case 'alone': {
    // the only process of a group of 2 (rank from the env): never met
    const t0 = Date.now();
    let error = '';
    try { dist.initProcessGroup({ timeoutMs }); } catch (e) { error = (e as Error).message; }
    out({ rank, error, ms: Date.now() - t0 });
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
