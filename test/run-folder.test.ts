// A run folder is never silently damaged (issue 13 §3), tried through the
// real CLI as a hostile user would: reusing --out, resuming with changed
// flags, Ctrl-C / SIGTERM mid-run, damaged checkpoints, two writers, a stale
// lock, leftovers of a killed write, a resume before the first checkpoint.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const KEEL = join(process.cwd(), 'bin', 'keel.js');
const ARGS = ['train', '--data', 'synthetic', '--model', 'mlp', '--batch-size', '32', '--train-subset', '512', '--test-subset', '64',
  '--checkpoint-every', '5', '--keep-checkpoints', '10', '--threads', '1', '--no-progress'];

function keelRun(args: string[]) {
  return spawnSync(process.execPath, [KEEL, ...args], { encoding: 'utf8' });
}

const stepsOf = (dir: string) => keel.train.readMetrics(join(dir, 'metrics.jsonl')).filter((r) => r.event === undefined).map((r) => r.step);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const ckpt = (dir: string, step: number, ext: string) => join(dir, 'checkpoints', `step-${String(step).padStart(9, '0')}.${ext}`);

test('keel train: hostile cases through the CLI', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'keel-runs-'));
  try {
    // the reference: 20 steps uninterrupted
    const whole = join(root, 'whole');
    const w = keelRun([...ARGS, '--steps', '20', '--out', whole]);
    assert.equal(w.status, 0, w.stderr);
    const finalWeights = readFileSync(join(whole, 'model.safetensors'));

    await t.test('--out into a folder that holds a run is refused; --overwrite starts afresh', () => {
      const r = keelRun([...ARGS, '--steps', '20', '--out', whole]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^keel train: --out .*whole already holds a run \(.*\); continue it with --resume .*whole, or start afresh with --overwrite\n$/);
      assert.deepEqual(stepsOf(whole), range(20), 'the first run\'s log is untouched');
      const again = join(root, 'again');
      cpSync(whole, again, { recursive: true });
      const o = keelRun([...ARGS, '--steps', '20', '--out', again, '--overwrite']);
      assert.equal(o.status, 0, o.stderr);
      assert.deepEqual(stepsOf(again), range(20), 'a fresh log, not appended');
      assert.deepEqual(keel.train.listCheckpoints(join(again, 'checkpoints')), [5, 10, 15, 20]);
      assert.ok(readFileSync(join(again, 'model.safetensors')).equals(finalWeights));
    });

    await t.test('--resume with changed flags: --steps applies and is logged, --lr is refused by name', () => {
      const dir = join(root, 'extend');
      cpSync(whole, dir, { recursive: true });
      const bad = keelRun(['train', '--resume', dir, '--lr', '0.5', '--no-progress']);
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, /^keel train: --resume cannot change --lr 0\.5 \(the run has 0\.001\); only --steps, --epochs, --checkpoint-every, --threads, --guard(, --health-every)? may change on resume/);
      const r = keelRun(['train', '--resume', dir, '--steps', '25', '--no-progress']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).steps, 25);
      assert.deepEqual(stepsOf(dir), range(25));
      const resumeEvent = keel.train.readMetrics(join(dir, 'metrics.jsonl')).find((e) => e.event === 'resume');
      assert.deepEqual(resumeEvent?.changed, { steps: [20, 25] });
      assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).steps, 25, 'the new length is the run\'s config now');
    });

    await t.test('SIGINT mid-run: one line, exit 130, a checkpoint at the step reached; the resumed run equals the uninterrupted one', async () => {
      const dir = join(root, 'sigint');
      const child = spawn(process.execPath, [KEEL, ...ARGS, '--steps', '20', '--checkpoint-every', '50', '--out', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += String(d); });
      const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !(existsSync(join(dir, 'metrics.jsonl')) && stepsOf(dir).length >= 3)) await new Promise((r) => setTimeout(r, 5));
      child.kill('SIGINT');
      assert.equal(await exited, 130, stderr);
      const m = /stopped at step (\d+) of 20, checkpoint saved; continue with: keel train --resume (\S+)\n$/.exec(stderr);
      assert.ok(m, stderr);
      const at = Number(m[1]);
      assert.ok(at >= 3 && at < 20, `stopped at ${at}`);
      assert.deepEqual(keel.train.listCheckpoints(join(dir, 'checkpoints')), [at], 'a checkpoint at the step reached, none lost');
      assert.ok(!existsSync(join(dir, 'keel.lock')), 'the lock is released');
      const r = keelRun(['train', '--resume', dir, '--no-progress']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(stepsOf(dir), range(20));
      assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(finalWeights), 'final weights differ from the uninterrupted run');
    });

    await t.test('a damaged newest checkpoint is skipped, named, and the run resumes from the one before', () => {
      const damages: [string, (d: string) => void, RegExp][] = [
        ['truncated', (d) => { const p = ckpt(d, 20, 'safetensors'); writeFileSync(p, readFileSync(p).subarray(0, 1000)); }, /has 1000 bytes, the manifest says \d+/],
        ['one bit flipped', (d) => { const p = ckpt(d, 20, 'safetensors'); const b = readFileSync(p); b[b.length - 7] ^= 0x10; writeFileSync(p, b); }, /fails its SHA-256 check/],
        ['step "8"', (d) => { const p = ckpt(d, 20, 'json'); const j = JSON.parse(readFileSync(p, 'utf8')); j.step = '8'; writeFileSync(p, JSON.stringify(j)); }, /step must be a non-negative integer below 1e9, got "8"/],
      ];
      for (const [name, damage, why] of damages) {
        const dir = join(root, `damaged-${name.replace(/\W+/g, '-')}`);
        cpSync(whole, dir, { recursive: true });
        rmSync(join(dir, 'model.safetensors'));
        damage(dir);
        const r = keelRun(['train', '--resume', dir, '--no-progress']);
        assert.equal(r.status, 0, `${name}: ${r.stderr}`);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, `${name}: one line: ${r.stderr}`);
        assert.match(lines[0], /^keel train: skipped checkpoint step 20: /, name);
        assert.match(lines[0], why, name);
        assert.equal(JSON.parse(r.stdout).resumedFrom, 15, name);
        assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(finalWeights), `${name}: final weights differ`);
        assert.deepEqual(stepsOf(dir), range(20), name);
      }
    });

    await t.test('one writer: a live lock refuses at once, a stale one is replaced; leftovers are removed', () => {
      const dir = join(root, 'locked');
      cpSync(whole, dir, { recursive: true });
      writeFileSync(join(dir, 'keel.lock'), JSON.stringify({ pid: process.pid, host: hostname(), since: 'now' }));
      const live = keelRun(['train', '--resume', dir, '--no-progress']);
      assert.equal(live.status, 1, live.stderr);
      assert.match(live.stderr, new RegExp(`^keel train: .*locked is in use by another keel train \\(pid ${process.pid}, since now\\)`));
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      writeFileSync(join(dir, 'keel.lock'), JSON.stringify({ pid: Number(dead.stdout), host: hostname(), since: 'then' }));
      writeFileSync(join(dir, 'checkpoints', '.step-000000025.safetensors.4242.abcdef.tmp'), 'torn');
      writeFileSync(join(dir, 'checkpoints', 'step-000000025.safetensors'), 'orphan');
      const r = keelRun(['train', '--resume', dir, '--no-progress']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /removed a stale lock \(pid \d+ is not running\)/);
      assert.match(r.stderr, /removed what a killed run left: checkpoints\/\.step-000000025\.safetensors\.4242\.abcdef\.tmp, checkpoints\/step-000000025\.safetensors/);
      assert.deepEqual(readdirSync(join(dir, 'checkpoints')).filter((f) => f.includes('25')), []);
      assert.ok(!existsSync(join(dir, 'keel.lock')));
    });

    await t.test('a resume before the first checkpoint starts the metrics log afresh', () => {
      const dir = join(root, 'early');
      cpSync(whole, dir, { recursive: true });
      rmSync(join(dir, 'checkpoints'), { recursive: true });
      rmSync(join(dir, 'model.safetensors'));
      const r = keelRun(['train', '--resume', dir, '--no-progress']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(stepsOf(dir), range(20), 'steps 1..k are not duplicated');
      assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(finalWeights));
    });

    await t.test('summary.json and the summary line count guard events by action', () => {
      const dir = join(root, 'guard');
      const r = keelRun([...ARGS, '--optim', 'sgd', '--lr', '1e25', '--guard', 'skip', '--steps', '4', '--out', dir]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).guardEvents, { skipped: 4 });
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')).guardEvents, { skipped: 4 });
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checkpoints: each hostile edit is detected with its reason; restoreLatestIntact falls back past it', () => {
  const root = mkdtempSync(join(tmpdir(), 'keel-ckpt-'));
  try {
    const make = (dir: string) => {
      for (const step of [4, 8]) {
        keel.scope(() => keel.train.saveCheckpoint(dir, step, {
          tensors: { 'model.w': keel.arange(0, 4096).float().mul(step) },
          state: { step, epoch: 0, optimizer: { state: {}, paramGroups: [{ lr: 0.1 }] }, scheduler: null, data: { epoch: 0, batchIndex: step } },
        }, 10));
      }
    };
    const file = (dir: string, ext: string) => join(dir, `step-000000008.${ext}`);
    const editManifest = (f: (m: Record<string, unknown>) => void) => (dir: string) => {
      const m = JSON.parse(readFileSync(file(dir, 'json'), 'utf8'));
      f(m);
      writeFileSync(file(dir, 'json'), JSON.stringify(m));
    };
    const editBytes = (f: (b: Buffer) => void) => (dir: string) => {
      const b = readFileSync(file(dir, 'safetensors'));
      f(b);
      writeFileSync(file(dir, 'safetensors'), b);
    };
    const cases: [string, (dir: string) => void, RegExp][] = [
      ['4 KiB zeroed', editBytes((b) => b.fill(0, b.length - 8192, b.length - 4096)), /fails its SHA-256 check/],
      ['one bit flipped', editBytes((b) => { b[b.length - 100] ^= 1; }), /fails its SHA-256 check/],
      ['a dtype changed in the header', editBytes((b) => { const i = b.indexOf('F32'); b.write('I32', i); }), /fails its SHA-256 check/],
      ['truncated', (dir) => writeFileSync(file(dir, 'safetensors'), readFileSync(file(dir, 'safetensors')).subarray(0, 100)), /has 100 bytes, the manifest says/],
      ['step "8"', editManifest((m) => { m.step = '8'; }), /step must be a non-negative integer below 1e9, got "8"/],
      ['step -1', editManifest((m) => { m.step = -1; }), /step must be a non-negative integer below 1e9, got -1/],
      ['step 1e12', editManifest((m) => { m.step = 1e12; }), /got 1000000000000/],
      ['step of another file', editManifest((m) => { m.step = 4; }), /step 4 does not match the file name's step 8/],
      ['tensorsFile outside', editManifest((m) => { m.tensorsFile = '../../step-000000008.safetensors'; }), /tensorsFile must be a plain step-NNNNNNNNN\.safetensors name inside the checkpoint folder/],
      ['optimizer state of the wrong type', editManifest((m) => { (m.state as Record<string, unknown>).optimizer = { state: [], paramGroups: 'x' }; }), /state\.optimizer\.state must be an object/],
      ['scheduler of the wrong type', editManifest((m) => { (m.state as Record<string, unknown>).scheduler = 3; }), /state\.scheduler must be an object or null/],
      ['no checksum', editManifest((m) => { delete m.tensorsSha256; }), /tensorsSha256 must be 64 hex digits/],
      ['not JSON', (dir) => writeFileSync(file(dir, 'json'), '{"step": 8,'), /the manifest cannot be read/],
    ];
    for (const [name, damage, why] of cases) {
      const dir = join(root, name.replace(/\W+/g, '-'));
      make(dir);
      assert.equal(keel.train.loadCheckpoint(dir).step, 8);
      damage(dir);
      assert.throws(() => keel.train.loadCheckpoint(dir, 8), (e: Error) => e instanceof keel.train.CheckpointError && why.test(e.message), name);
      const r = keel.train.restoreLatestIntact(dir, (c) => c.tensors['model.w'].sum().item());
      assert.equal(r.step, 4, name);
      assert.equal((r as { result: number }).result, 4 * (4095 * 4096) / 2, name);
      assert.equal(r.skipped.length, 1, name);
      assert.match(r.skipped[0].reason, why, name);
    }
    // none intact: an error naming each, never a silent fresh start
    const dir = join(root, 'none');
    make(dir);
    writeFileSync(join(dir, 'step-000000004.safetensors'), 'x');
    writeFileSync(file(dir, 'safetensors'), 'y');
    assert.throws(() => keel.train.restoreLatestIntact(dir, () => 0), /no intact checkpoint in .*: step 8: .*; step 4: /);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('mergeResumeFlags: resumable flags apply, others are refused by name', () => {
  const saved = { steps: 20, lr: 0.001, guard: undefined, threads: 1, batchSize: 32 };
  assert.deepEqual(keel.train.mergeResumeFlags(saved, { steps: 30, guard: 'skip', lr: 0.001 }), { config: { ...saved, steps: 30, guard: 'skip' }, changed: { steps: [20, 30], guard: [null, 'skip'] } });
  const byEpochs = { epochs: 2, lr: 0.001 };
  assert.deepEqual(keel.train.mergeResumeFlags(byEpochs, { steps: 450 }), { config: { lr: 0.001, steps: 450 }, changed: { steps: [null, 450], epochs: [2, null] } });
  assert.throws(() => keel.train.mergeResumeFlags(saved, { batchSize: 64, lr: 0.1 }), /--resume cannot change --batch-size 64 \(the run has 32\), --lr 0\.1 \(the run has 0\.001\)/);
});
