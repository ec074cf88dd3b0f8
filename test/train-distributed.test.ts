// `keel train --nproc N` (issue 16 §4, and the restart test of §5), through
// the real CLI on loopback: 2 workers of a tiny float64 MLP on synthetic
// images. Data-parallel at --batch-size 16 on 2 ranks ends where one process
// at --batch-size 32 does; a worker killed mid-run stops the others with an
// Error; with --max-restarts 1 the run resumes from rank 0's latest
// checkpoint on every rank and ends bitwise equal to the uninterrupted run;
// Ctrl-C stops every worker at one step with a checkpoint; bad flags exit 2.
// Two agents with --nnodes 2 on loopback stand in for two machines.
// Every child has a hard timeout; nothing is left running.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as keel from 'keel';
import { freePort } from './helpers/net.js';

const KEEL = join(process.cwd(), 'bin', 'keel.js');
const ROOT = mkdtempSync(join(tmpdir(), 'keel-train-dist-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));

// float64 (64-true), so that "equal to one process" can be held to 1e-12; the guard on, so that its state rides in the checkpoints
const ARGS = ['train', '--data', 'synthetic', '--model', 'mlp', '--train-subset', '256', '--test-subset', '64', '--precision', '64-true',
  '--steps', '10', '--checkpoint-every', '2', '--keep-checkpoints', '10', '--guard', 'skip', '--threads', '1', '--no-progress'];

interface Run { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }

function keelRun(args: string[], env: Record<string, string> = {}, onSpawn?: (pid: number) => void): Promise<Run> {
  return new Promise((ok) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [KEEL, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code, signal) => ok({ code, signal, stdout, stderr, ms: Date.now() - t0 }));
    if (onSpawn && p.pid !== undefined) onSpawn(p.pid);
  });
}

/** Every parameter of a model.safetensors, flattened in name order. */
function weights(file: string): Map<string, number[]> {
  const t = keel.safetensors.loadFile(file);
  const out = new Map<string, number[]>();
  for (const k of Object.keys(t).sort()) {
    assert.equal(t[k].dtype, 'float64', k);
    out.set(k, Array.from(t[k].data() as Float64Array));
    t[k].dispose();
  }
  return out;
}

function maxDiff(a: Map<string, number[]>, b: Map<string, number[]>): number {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  let m = 0;
  for (const [k, va] of a) va.forEach((v, i) => { m = Math.max(m, Math.abs(v - b.get(k)![i])); });
  return m;
}

const steps = (dir: string) => keel.train.readMetrics(join(dir, 'metrics.jsonl')).filter((r) => r.event === undefined);

/** No process of this test's run folder is alive (the agent waits for its workers; this checks it did). */
function noneLeft(dir: string): void {
  const r = spawnSync('pgrep', ['-f', dir], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), '', `processes left running for ${dir}: ${r.stdout}`);
}

const DDP = join(ROOT, 'ddp');

test('--nproc 2 at --batch-size 16 ends equal to one process at --batch-size 32 (float64, <= 1e-12); output prefixed by rank, rank 0 alone writes', async () => {
  const [ddp, single] = [await keelRun([...ARGS, '--batch-size', '16', '--nproc', '2', '--out', DDP]), await keelRun([...ARGS, '--batch-size', '32', '--out', join(ROOT, 'single')])];
  assert.equal(ddp.code, 0, ddp.stderr);
  assert.equal(single.code, 0, single.stderr);
  // the summary line comes from rank 0 only, prefixed; the other rank is quiet
  const lines = ddp.stdout.trim().split('\n');
  assert.equal(lines.length, 1, ddp.stdout);
  assert.match(lines[0], /^\[rank 0\] \{"testAccuracy":[0-9.]+,"testLoss":[0-9.]+,"steps":10,/);
  for (const l of ddp.stderr.trim().split('\n').filter(Boolean)) assert.match(l, /^\[rank [01]\] /, 'every worker line is prefixed');
  const d = maxDiff(weights(join(DDP, 'model.safetensors')), weights(join(ROOT, 'single', 'model.safetensors')));
  assert.ok(d <= 1e-12, `max |DDP - one process at the 2x batch| = ${d}`);
  // the logged loss is the mean over ranks: the loss of the whole 2x batch (to float32's precision: the guard reads
  // the loss in its fused float32 check, so each rank's half-batch loss is rounded before the mean)
  const a = steps(DDP);
  const b = steps(join(ROOT, 'single'));
  assert.deepEqual(a.map((r) => r.step), Array.from({ length: 10 }, (_, i) => i + 1));
  a.forEach((r, i) => assert.ok(Math.abs((r.loss as number) - (b[i].loss as number)) <= 1e-6 * (b[i].loss as number), `step ${r.step}: loss ${r.loss} vs ${b[i].loss}`));
  a.forEach((r, i) => assert.ok(Math.abs((r.gradNorm as number) - (b[i].gradNorm as number)) <= 1e-6 * (b[i].gradNorm as number), `step ${r.step}: gradNorm ${r.gradNorm} vs ${b[i].gradNorm}`));
  const config = JSON.parse(readFileSync(join(DDP, 'config.json'), 'utf8'));
  assert.equal(config.worldSize, 2);
  assert.equal(config.batchSize, 16);
  assert.deepEqual(keel.train.listCheckpoints(join(DDP, 'checkpoints')), [2, 4, 6, 8, 10]);
  assert.ok(!existsSync(join(DDP, 'keel.lock')), 'the agent released the lock');
  noneLeft(DDP);
});

test('two nodes on loopback (--nnodes 2 --node-rank 0|1 --nproc 1, one agent each) end equal to one process at the 2x batch; only node 0 writes', async () => {
  const port = String(await freePort());
  const node = (rank: number) => keelRun([...ARGS, '--batch-size', '16', '--nproc', '1', '--nnodes', '2', '--node-rank', String(rank),
    '--master-addr', '127.0.0.1', '--master-port', port, '--out', join(ROOT, `node${rank}`)]);
  const [n0, n1] = await Promise.all([node(0), node(1)]);
  assert.equal(n0.code, 0, n0.stderr);
  assert.equal(n1.code, 0, n1.stderr);
  assert.match(n0.stdout, /^\[rank 0\] \{"testAccuracy":[0-9.]+,"testLoss":[0-9.]+,"steps":10,/);
  assert.equal(n1.stdout, '', 'node 1 (global rank 1) prints no summary');
  const d = maxDiff(weights(join(ROOT, 'node0', 'model.safetensors')), weights(join(ROOT, 'single', 'model.safetensors')));
  assert.ok(d <= 1e-12, `max |2 nodes - one process at the 2x batch| = ${d}`);
  assert.equal(JSON.parse(readFileSync(join(ROOT, 'node0', 'config.json'), 'utf8')).worldSize, 2);
  assert.deepEqual(existsSync(join(ROOT, 'node1')) ? readdirSync(join(ROOT, 'node1')) : [], [], 'node 1 wrote nothing');
  noneLeft(join(ROOT, 'node0'));
  noneLeft(join(ROOT, 'node1'));
});

test('a worker killed mid-run (SIGKILL at step 5): the others stop with an Error, the agent exits 1 naming the rank, within the timeout', async () => {
  const dir = join(ROOT, 'killed');
  const r = await keelRun([...ARGS, '--batch-size', '16', '--nproc', '2', '--out', dir], { KEEL_TEST_KILL_AT_STEP: '1:5' });
  assert.equal(r.code, 1, r.stderr);
  // rank 0 stops with an Error from its next collective (Gloo sees the closed connection); on a loaded machine the
  // agent's SIGTERM/SIGKILL (5 s grace) can stop it first, silently: whatever rank 0 says must be that Error
  for (const l of r.stderr.split('\n').filter((x) => x.startsWith('[rank 0] keel train:'))) assert.match(l, /failed on rank 0|SIGTERM: stopping/, l);
  assert.match(r.stderr, /^keel train: rank 1 was killed by SIGKILL; the other workers were stopped \(--max-restarts K restarts them from the latest checkpoint\)$/m);
  // a dead peer fails the next collective at once (Gloo sees the closed connection), not at the 60 s timeout
  assert.ok(r.ms < 60_000, `${r.ms} ms`);
  assert.ok(!existsSync(join(dir, 'summary.json')));
  assert.equal(keel.train.latestCheckpoint(join(dir, 'checkpoints')), 4, 'the checkpoints rank 0 wrote before the kill');
  assert.ok(!existsSync(join(dir, 'keel.lock')));
  noneLeft(dir);
});

test('--max-restarts 1: after the kill every rank resumes from the latest checkpoint; the run ends bitwise equal to the uninterrupted one', async () => {
  const dir = join(ROOT, 'restarted');
  const r = await keelRun([...ARGS, '--batch-size', '16', '--nproc', '2', '--max-restarts', '1', '--out', dir], { KEEL_TEST_KILL_AT_STEP: '1:5' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^keel train: rank 1 was killed by SIGKILL; the other workers were stopped; restarting all 2 workers from the checkpoint of step 4 \(restart 1 of 1\)$/m);
  assert.match(r.stdout, /^\[rank 0\] \{.*"steps":10,"guardEvents":\{\},"resumedFrom":4\}$/m);
  // rank 1 starts from rank 0's weights anyway (DDP broadcasts them), but not from its optimizer state or data position:
  // equality holds only if every rank restored the checkpoint
  assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(readFileSync(join(DDP, 'model.safetensors'))), 'final weights differ from the uninterrupted run');
  assert.deepEqual(steps(dir).map((s) => [s.step, s.loss, s.lr, s.gradNorm]), steps(DDP).map((s) => [s.step, s.loss, s.lr, s.gradNorm]));
  const ckpt = JSON.parse(readFileSync(join(dir, 'checkpoints', 'step-000000010.json'), 'utf8'));
  assert.equal(ckpt.state.guard.stepCount, 10, 'the guard\'s step count went on from the checkpoint');
  assert.deepEqual(ckpt.state.guard.events, {});
  const events = keel.train.readMetrics(join(dir, 'metrics.jsonl')).filter((e) => e.event === 'resume');
  assert.deepEqual(events.map((e) => e.step), [4]);
  noneLeft(dir);
});

test('--nproc 2 --precision fp16-mixed: the GradScaler runs data-parallel (its state in the checkpoints); a restart after a kill ends bitwise equal to the uninterrupted run', async () => {
  const fp16 = ARGS.map((a, i) => (ARGS[i - 1] === '--precision' ? 'fp16-mixed' : a));
  const whole = join(ROOT, 'fp16-whole');
  const restarted = join(ROOT, 'fp16-restarted');
  const a = await keelRun([...fp16, '--batch-size', '16', '--nproc', '2', '--out', whole]);
  assert.equal(a.code, 0, a.stderr);
  const b = await keelRun([...fp16, '--batch-size', '16', '--nproc', '2', '--max-restarts', '1', '--out', restarted], { KEEL_TEST_KILL_AT_STEP: '1:5' });
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /restarting all 2 workers from the checkpoint of step 4/);
  const s = steps(whole);
  assert.deepEqual(s.map((r) => r.step), Array.from({ length: 10 }, (_, i) => i + 1));
  assert.ok(s.every((r) => typeof r.lossScale === 'number' && (r.lossScale as number) > 0), 'the loss scale is logged each step');
  assert.ok(readFileSync(join(restarted, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'final weights differ from the uninterrupted run');
  assert.deepEqual(steps(restarted).map((r) => [r.step, r.loss, r.lossScale]), s.map((r) => [r.step, r.loss, r.lossScale]));
  noneLeft(whole);
  noneLeft(restarted);
});

test('Ctrl-C on the agent: forwarded once, every worker stops after the same step, rank 0 saves it, exit 130; --resume --nproc 2 goes on', async () => {
  const dir = join(ROOT, 'interrupted');
  let agent = 0;
  const long = ARGS.map((a, i) => (ARGS[i - 1] === '--steps' ? '100000' : ARGS[i - 1] === '--checkpoint-every' ? '100000' : a));
  const running = keelRun([...long, '--batch-size', '16', '--nproc', '2', '--out', dir], {}, (pid) => { agent = pid; });
  // interrupt once the workers are training (their metrics are being written)
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && !(existsSync(join(dir, 'metrics.jsonl')) && readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').length > 3)) await new Promise((ok) => setTimeout(ok, 20));
  process.kill(agent, 'SIGINT');
  const r = await running;
  assert.equal(r.code, 130, r.stderr);
  const stopped = /\[rank 0\] keel train: stopped at step (\d+) of 100000, checkpoint saved/.exec(r.stderr);
  assert.ok(stopped, r.stderr);
  const at = Number(stopped[1]);
  assert.equal(keel.train.latestCheckpoint(join(dir, 'checkpoints')), at);
  assert.equal(steps(dir).at(-1)!.step, at);
  assert.doesNotMatch(r.stderr, /failed on rank|again: exiting now/, 'no rank died on a collective or took the signal twice');
  assert.match(r.stderr, /^keel train: SIGINT: the workers stopped; continue with: keel train --resume .* --nproc 2$/m);
  noneLeft(dir);
  const more = await keelRun(['train', '--resume', dir, '--nproc', '2', '--steps', String(at + 2), '--no-progress']);
  assert.equal(more.code, 0, more.stderr);
  assert.match(more.stdout, new RegExp(`"steps":${at + 2},"guardEvents":\\{\\},"resumedFrom":${at}\\}`));
  const single = await keelRun(['train', '--resume', dir, '--no-progress']);
  assert.equal(single.code, 2);
  assert.match(single.stderr, /trained by 2 process\(es\); resume it with --nnodes × --nproc = 2 \(now 1\)/);
});

test('keel train launcher flags: bad values and combinations exit 2 with a message naming the flag', () => {
  const out = join(ROOT, 'never');
  const cases: [string[], RegExp, Record<string, string>?][] = [
    [['--nproc', '0'], /--nproc must be a positive integer/],
    [['--nproc', '1.5'], /--nproc must be a positive integer/],
    [['--nproc', '2', '--node-rank', '1'], /--node-rank 1 must be below --nnodes 1/],
    [['--nproc', '2', '--nnodes', '2', '--node-rank', '2', '--master-addr', '10.0.0.1'], /--node-rank 2 must be below --nnodes 2/],
    [['--nproc', '2', '--nnodes', '2'], /--nnodes 2 needs --master-addr \(or \$MASTER_ADDR\)/],
    [['--max-restarts', '-1'], /--max-restarts must be a non-negative integer/],
    [['--nproc', '2', '--master-port', '70000'], /--master-port needs an integer in \[1, 65535\]/],
    [['--nproc', '2', '--nnodes', '2', '--master-addr', '10.0.0.1'], /\$NODE_RANK must be an integer/, { NODE_RANK: 'x' }],
    [['--nproc', '2'], /--nproc: this process is already a launched worker \(\$RANK=0, \$WORLD_SIZE=2\)/, { RANK: '0', WORLD_SIZE: '2' }],
  ];
  for (const [flags, pattern, env] of cases) {
    const r = spawnSync(process.execPath, [KEEL, 'train', '--data', 'synthetic', '--out', out, ...flags], { encoding: 'utf8', env: { ...process.env, MASTER_ADDR: '', ...env } });
    assert.equal(r.status, 2, `${flags.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^keel train: (option '[^']+' argument '[^']*' is invalid\\. )?${pattern.source}`), flags.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.ok(!existsSync(out), 'nothing was written');
  const help = spawnSync(process.execPath, [KEEL, 'train', '--help'], { encoding: 'utf8' });
  assert.match(help.stdout.replace(/\s+/g, ' '), /--batch-size <n> batch size per process \(with --nproc the global batch is batch-size × nproc × nnodes/);
});

test('the guard\'s state rides in checkpoints: a resume after a rollback (a skipped batch, the LR backed off) ends as the uninterrupted run', () => {
  const dir = mkdtempSync(join(ROOT, 'guard-'));
  // 64 examples, one of them NaN (index 13: batch 1 of each epoch, unshuffled); 8 batches an epoch, so 8 steps meet it once
  const setup = () => {
    keel.manualSeed(7);
    const x = keel.randn([64, 6], { dtype: 'float64' });
    x.narrow(0, 13, 1).fill_(Number.NaN);
    const y = keel.randn([64, 2], { dtype: 'float64' });
    const model = new keel.nn.Sequential(new keel.nn.Linear(6, 8), new keel.nn.Tanh(), new keel.nn.Linear(8, 2)).to('float64') as keel.nn.Module<[keel.Tensor], keel.Tensor>;
    const optimizer = new keel.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const guard = new keel.Guard({ model, optimizer, policy: 'rollback', rollback: { every: 1, skipBatches: 1 }, watch: false });
    const trainLoader = new keel.data.DataLoader(new keel.data.TensorDataset(x, y), { batchSize: 8 });
    return { model, optimizer, guard, trainLoader, loss: (o: keel.Tensor, t: keel.Tensor) => keel.losses.mseLoss(o, t), accuracy: false };
  };
  const whole = setup();
  const full = keel.train.fit({ ...whole, steps: 8, outDir: join(dir, 'whole'), checkpointEvery: 2, keepCheckpoints: 10, progress: false, health: false, tensorboard: false });
  assert.deepEqual(full.guardEvents, { 'rolled-back': 1 });
  assert.deepEqual(whole.guard.skippedBatches, [1]);
  assert.equal(whole.optimizer.paramGroups[0].lr, 0.025);
  // resume from step 4 (after the rollback) in fresh objects: everything must come from the checkpoint
  spawnSync('cp', ['-r', join(dir, 'whole'), join(dir, 'resumed')]);
  for (const s of [6, 8]) for (const ext of ['json', 'safetensors']) rmSync(join(dir, 'resumed', 'checkpoints', `step-00000000${s}.${ext}`));
  const again = setup();
  const resumed = keel.train.fit({ ...again, steps: 8, outDir: join(dir, 'resumed'), checkpointEvery: 2, keepCheckpoints: 10, progress: false, health: false, tensorboard: false, resume: true });
  assert.equal(resumed.resumedFrom, 4);
  assert.deepEqual(resumed.guardEvents, { 'rolled-back': 1 }, 'the event before the resume is counted');
  assert.deepEqual(again.guard.skippedBatches, [1]);
  assert.equal(again.guard.stepCount, whole.guard.stepCount);
  assert.deepEqual(again.guard.gradNorms.stateDict(), whole.guard.gradNorms.stateDict());
  assert.equal(again.optimizer.paramGroups[0].lr, 0.025, 'the backed-off LR');
  const flat = (m: keel.nn.Module) => m.parameters().flatMap((p) => Array.from(p.data() as Float64Array));
  assert.deepEqual(flat(again.model), flat(whole.model));
  assert.throws(() => again.guard.loadStateDict({ ...again.guard.stateDict(), pendingSkip: -1 }), /Guard\.loadStateDict: pendingSkip must be a non-negative integer, got -1/);
});
