// The `keel` command line (src/cli/program.ts, src/cli/main.ts): one grammar
// for every command. Spawns `node bin/keel.js ...` on the built dist/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';

const KEEL = join(process.cwd(), 'bin', 'keel.js');
const VERSION = (JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')) as { version: string }).version;

function keel(args: string[], env: Record<string, string> = {}, timeout = 60_000) {
  const r = spawnSync(process.execPath, [KEEL, ...args], { encoding: 'utf8', timeout, env: { ...process.env, ...env, KEEL_DEBUG: env.KEEL_DEBUG ?? '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, lines: r.stderr.split('\n').filter((l) => l.length > 0) };
}

/** Every command and subcommand, as typed. */
const COMMANDS = [['train'], ['repro'], ['repro', 'sing'], ['repro', 'stable'], ['repro', 'mde'], ['repro', 'maxpool'], ['audit'], ['audit', 'nonsmooth'], ['doctor']];

test('every command refuses an unknown option: exit 2, one line `keel <command>: ...` naming it, no work started', () => {
  const out = mkdtempSync(join(tmpdir(), 'keel-cli-bogus-'));
  try {
    for (const cmd of COMMANDS) {
      // options that would start work if the unknown one were ignored
      const work = cmd[0] === 'train' ? ['--data', 'synthetic', '--steps', '1', '--out', join(out, 'train')] : cmd.length === 2 && cmd[0] !== 'doctor' ? ['--quick', '--out', join(out, cmd.join('-'))] : [];
      const r = keel([...cmd, '--bogus', ...work]);
      const name = `keel ${cmd.join(' ')}`;
      assert.equal(r.status, 2, `${name} --bogus: exit ${r.status}\n${r.stderr}`);
      assert.equal(r.lines.length, 1, `${name} --bogus: one line, got\n${r.stderr}`);
      assert.ok(r.lines[0].startsWith(`${name}: `), r.lines[0]);
      assert.match(r.lines[0], /unknown option '--bogus'/);
      assert.equal(r.stdout, '');
      assert.ok(!existsSync(join(out, cmd.join('-'))) && !existsSync(join(out, 'train')), `${name} --bogus started work`);
    }
    // the cases of the issue
    const plan = keel(['repro', 'maxpool', '--bogus', '--plan']);
    assert.equal(plan.status, 2);
    assert.equal(plan.stdout, '');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('stray arguments are refused with exit 2 and one line naming them', () => {
  for (const cmd of [['train'], ['repro', 'sing'], ['repro', 'stable'], ['repro', 'mde'], ['repro', 'maxpool'], ['audit', 'nonsmooth'], ['doctor']]) {
    const r = keel([...cmd, 'stray']);
    assert.equal(r.status, 2, `${cmd.join(' ')} stray: ${r.stderr}`);
    assert.equal(r.lines.length, 1, r.stderr);
    assert.match(r.lines[0], new RegExp(`^keel ${cmd.join(' ')}: unexpected argument 'stray'`));
  }
  const unknown = keel(['repro', 'nope']);
  assert.equal(unknown.status, 2);
  assert.equal(unknown.lines.length, 1);
  assert.match(unknown.lines[0], /^keel repro: unknown reproduction 'nope' \(available: sing, stable, mde, maxpool\)/);
  const audit = keel(['audit', 'nope']);
  assert.equal(audit.status, 2);
  assert.match(audit.lines[0], /^keel audit: unknown audit 'nope' \(available: nonsmooth\)/);
  const command = keel(['nope']);
  assert.equal(command.status, 2);
  assert.match(command.lines[0], /^keel: unknown command 'nope'/);
});

test('--help on every command exits 0 with one layout; keel help <command>; keel --version', () => {
  for (const cmd of [[], ...COMMANDS]) {
    const r = keel([...cmd, '--help']);
    assert.equal(r.status, 0, `${cmd.join(' ')} --help: ${r.stderr}`);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, new RegExp(`^usage: keel${cmd.length ? ` ${cmd.join(' ')}` : ''} `), r.stdout);
    assert.match(r.stdout, /-h, --help/);
  }
  assert.match(keel(['audit', '--help']).stdout, /nonsmooth/);
  const help = keel(['help', 'train']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: keel train/);
  assert.match(help.stdout, /--guard <policy>/);
  const unknownHelp = keel(['help', 'nope']);
  assert.equal(unknownHelp.status, 2);
  assert.equal(unknownHelp.lines.length, 1);
  assert.match(unknownHelp.lines[0], /^keel: unknown command 'nope'/);
  const reproHelp = keel(['repro', 'help', 'maxpool']);
  assert.equal(reproHelp.status, 0);
  assert.match(reproHelp.stdout, /^usage: keel repro maxpool/);
  for (const flag of ['--version', '-V']) {
    const v = keel([flag]);
    assert.equal(v.status, 0);
    assert.equal(v.stdout.trim(), VERSION);
  }
  // no command: the help on stderr, exit 2
  const none = keel([]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^usage: keel <command>/);
});

test('bad values: one line, exit 2, no stack trace', () => {
  const cases: [string[], RegExp][] = [
    [['audit', 'nonsmooth', '--precision', 'fp12'], /^keel audit nonsmooth: .*--precision.*'fp12'/],
    [['repro', 'maxpool', '--precision', 'fp32,fp12', '--plan'], /^keel repro maxpool: .*--precision.*'fp12'/],
    [['audit', 'nonsmooth', '--model', 'alexnet'], /^keel audit nonsmooth: .*--model.*alexnet/],
    [['repro', 'maxpool', '--seeds', 'many', '--plan'], /^keel repro maxpool: .*--seeds/],
    [['repro', 'maxpool', '--seeds', '0', '--plan'], /^keel repro maxpool: --seeds: expected a positive integer/],
    [['repro', 'mde', '--steps', '0'], /^keel repro mde: .*--steps/],
    [['repro', 'stable', '--max-depth', '2'], /^keel repro stable: .*--max-depth needs an integer ≥ 4/],
    [['train', '--model', 'alexnet', '--out', '/tmp/x'], /^keel train: --model must be one of lenet5/],
    [['train', '--guard', 'panic', '--out', '/tmp/x'], /^keel train: .*--guard.*panic/],
    [['train', '--lr', 'fast', '--out', '/tmp/x'], /^keel train: .*--lr must be a positive number/],
  ];
  for (const [args, pattern] of cases) {
    const r = keel(args);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.equal(r.lines.length, 1, `${args.join(' ')}: one line, got\n${r.stderr}`);
    assert.match(r.lines[0], pattern);
  }
});

test('a missing data set: one line naming the apt package and the CLI option, exit 1', () => {
  const out = mkdtempSync(join(tmpdir(), 'keel-cli-nodata-'));
  try {
    const r = keel(['train', '--model', 'mlp', '--steps', '1', '--no-progress', '--out', join(out, 'run')], { KEEL_FASHION_MNIST_ROOT: join(out, 'nowhere') });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.lines.length, 1, r.stderr);
    assert.match(r.lines[0], /^keel train: Fashion-MNIST is not installed/);
    assert.match(r.lines[0], /apt install dataset-fashion-mnist/);
    assert.match(r.lines[0], /--data synthetic/);
    assert.doesNotMatch(r.stderr, /\{ root \}/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('--guard raise on a diverging run: the guard\'s report, exit 1, no stack trace (unless KEEL_DEBUG=1)', () => {
  const out = mkdtempSync(join(tmpdir(), 'keel-cli-guard-'));
  try {
    const args = ['train', '--model', 'mlp', '--data', 'synthetic', '--optim', 'sgd', '--lr', '1e30', '--steps', '20', '--batch-size', '16',
      '--train-subset', '256', '--test-subset', '32', '--threads', '1', '--guard', 'raise', '--no-progress'];
    const r = keel([...args, '--out', join(out, 'a')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.lines[0], /^keel train: the NaN guard stopped the run \(--guard raise\): /);
    assert.match(r.stderr, /non-finite value at step \d+/);
    assert.match(r.stderr, /remedies:/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    assert.doesNotMatch(r.stderr, /GuardReport|NonFiniteError \{/);
    const debug = keel([...args, '--out', join(out, 'b')], { KEEL_DEBUG: '1' });
    assert.equal(debug.status, 1);
    assert.match(debug.stderr, /^\s+at /m, 'KEEL_DEBUG=1 prints the stack');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('progress: after a resume the rate and ETA count only this process\'s steps; the bar fits 60 columns', async () => {
  const { createProgress } = (await import('keel')).train;
  const sleep = (ms: number) => { const t = Date.now(); while (Date.now() - t < ms); };
  const capture = (tty: boolean) => {
    const pass = new PassThrough();
    const s = pass as unknown as NodeJS.WriteStream & { text: string };
    s.text = '';
    pass.on('data', (c: Buffer) => { s.text += c.toString('utf8'); });
    Object.assign(s, { isTTY: tty, columns: 60 });
    return s;
  };
  // plain lines: resumed at step 1000 of 2000, then 10 steps of ~5 ms
  const plain = capture(false);
  const p = createProgress({ total: 2000, label: 'train', stream: plain, every: 5 });
  p.update(1000);
  for (let i = 1; i <= 10; i++) { sleep(5); p.update(1000 + i, { loss: 0.5 }); }
  p.stop();
  await new Promise((r) => setImmediate(r));
  const lines = plain.text.trim().split('\n');
  assert.ok(lines.length >= 2, plain.text);
  for (const l of lines) {
    const m = /^train (\d+)\/2000 \(\d+%\) ([\d.]+)\/s ETA (\S+)/.exec(l);
    assert.ok(m, l);
    assert.ok(Number(m[2]) < 1000, `rate counts only the steps since the resume: ${l}`);
    assert.notEqual(m[3], '0s', `ETA: ${l}`);
  }
  // the bar on a 60-column terminal
  const tty = capture(true);
  const b = createProgress({ total: 12345, label: 'repro maxpool', stream: tty, start: 0 });
  for (let i = 1; i <= 20; i++) { sleep(2); b.update(i * 600 > 12345 ? 12345 : i * 600, { epoch: 3, loss: 0.123456, info: 'a long field that would not fit' }); if (i % 5 === 0) b.log(`run ${i} done`); }
  b.stop();
  await new Promise((r) => setImmediate(r));
  // eslint-disable-next-line no-control-regex
  const segments = tty.text.split(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]|\r|\n/).filter((x) => x.length > 0);
  assert.ok(segments.some((x) => /^repro maxpool \[[=-]+\] \d+\/12345 [\d.]+\/s ETA /.test(x)), tty.text);
  for (const x of segments) assert.ok(x.length <= 60, `${x.length} columns: ${x}`);
  assert.ok(segments.includes('run 5 done'));
});
