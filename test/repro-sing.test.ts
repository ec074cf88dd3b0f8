// `keel repro sing --quick --out DIR`: runs the whole (tiny) grid in a child
// process, then checks results.json: every model × optimizer × lr × seed run
// is there with an accuracy in [0, 1], the summary table agrees with the
// runs, and the verdict names every claim with its rule and evidence.
// Also the dispatcher's errors: an unknown reproduction or option exits 2.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const KEEL = join(process.cwd(), 'bin', 'keel.js');

interface Run {
  id: string;
  model: string;
  optimizer: 'adamw' | 'sing';
  lr: number;
  weightDecay: number;
  seed: number;
  config: Record<string, unknown>;
  result: {
    testAccuracy: number;
    testLoss: number | null;
    stepsDone: number;
    diverged: boolean;
    divergence: string | null;
    medianStepMs: number;
    lossCurve: [number, number | null][];
  } | null;
  error?: string;
}

interface Row {
  optimizer: 'adamw' | 'sing';
  lr: number;
  n: number;
  accuracies: number[];
  seeds: number[];
  accuracyMean: number;
  accuracyStd: number;
  diverged: number;
}

interface Results {
  experiment: string;
  complete: boolean;
  quick: boolean;
  protocol: {
    mode: string;
    models: { id: string; steps: number; batchSize: number; trainExamples: number; testExamples: number }[];
    lrs: Record<'adamw' | 'sing', number[]>;
    weightDecay: Record<'adamw' | 'sing', number>;
    seeds: number[];
    chanceAccuracyThreshold: number;
  };
  budget: { note: string; lines: string[]; totalRuns: number };
  runs: Run[];
  summary: { model: string; rows: Row[]; optimizers: Record<'adamw' | 'sing', { bestLr: number; bestMean: number; diverged: number; runs: number }> }[];
  verdict: { note: string; claims: { id: string; statement: string; source: string; rule: string; outcome: string; ruleOutcome: string; evidence: string }[] };
}

const OUTCOMES = ['confirmed', 'partly confirmed', 'not confirmed', 'contradicted', 'inconclusive', 'not tested'];

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));

test('keel repro sing --quick --out DIR: every run, a consistent summary, a verdict per claim', { timeout: 300_000 }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-repro-sing-'));
  try {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [KEEL, 'repro', 'sing', '--quick', '--out', dir], { encoding: 'utf8', timeout: 290_000 });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr}\n${r.stdout}`);
    t.diagnostic(`--quick took ${seconds.toFixed(1)} s (a budget, not an assertion: timings belong to bench/)`);
    assert.match(r.stdout, /\| optimizer \| lr/);
    assert.match(r.stdout, /## Verdict/);
    assert.ok(existsSync(join(dir, 'run-report.html')) && existsSync(join(dir, 'run-report.md')), 'keel repro ... --out DIR ends with its report');
    assert.match(r.stderr, /keel repro sing: report .*run-report\.html/);
    assert.match(r.stderr, /\[1\/\d+\] lenet5 adamw/, 'a progress line per run');
    assert.ok(existsSync(join(dir, 'report.md')));

    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
    assert.equal(res.experiment, 'sing');
    assert.equal(res.complete, true);
    assert.equal(res.quick, true);
    assert.equal(res.protocol.mode, 'quick');
    assert.ok(res.budget.note.length > 0 && res.budget.lines.length > 0, 'the budget is recorded');
    assert.deepEqual(res.protocol.models.map((m) => m.id).sort(), ['lenet5', 'plain-mlp', 'resnet18']);
    assert.ok(res.protocol.seeds.length >= 1);
    for (const o of ['adamw', 'sing'] as const) assert.ok(res.protocol.lrs[o].length >= 2);

    // every model × optimizer × lr × seed, once, finished, accuracy in [0, 1]
    const expected: string[] = [];
    for (const m of res.protocol.models) for (const o of ['adamw', 'sing'] as const) for (const lr of res.protocol.lrs[o]) for (const s of res.protocol.seeds) expected.push(`${m.id}/${o}/${lr}/${s}`);
    assert.equal(res.budget.totalRuns, expected.length);
    assert.deepEqual(res.runs.map((x) => `${x.model}/${x.optimizer}/${x.lr}/${x.seed}`).sort(), [...expected].sort());
    for (const run of res.runs) {
      assert.equal(run.error, undefined, `${run.id}: ${run.error}`);
      assert.ok(run.result !== null, run.id);
      const a = run.result!.testAccuracy;
      assert.ok(a >= 0 && a <= 1, `${run.id}: accuracy ${a}`);
      assert.equal(run.weightDecay, res.protocol.weightDecay[run.optimizer]);
      const plan = res.protocol.models.find((m) => m.id === run.model)!;
      assert.equal(run.config.steps, plan.steps);
      assert.equal(run.config.lr, run.lr);
      assert.equal(run.config.seed, run.seed);
      if (run.result!.divergence !== 'non-finite loss') assert.equal(run.result!.stepsDone, plan.steps, run.id);
      assert.equal(run.result!.diverged, run.result!.divergence !== null);
      if (run.result!.divergence === null) assert.ok(a > res.protocol.chanceAccuracyThreshold, `${run.id}: at chance but not counted as diverged`);
      assert.ok(run.result!.lossCurve.length > 0);
    }

    // the summary table agrees with the runs
    assert.deepEqual(res.summary.map((s) => s.model).sort(), ['lenet5', 'plain-mlp', 'resnet18']);
    for (const s of res.summary) {
      for (const o of ['adamw', 'sing'] as const) {
        const rows = s.rows.filter((row) => row.optimizer === o);
        assert.deepEqual(rows.map((row) => row.lr), res.protocol.lrs[o]);
        for (const row of rows) {
          const runs = res.runs.filter((x) => x.model === s.model && x.optimizer === o && x.lr === row.lr).sort((a, b) => a.seed - b.seed);
          const accs = runs.map((x) => x.result!.testAccuracy);
          assert.equal(row.n, res.protocol.seeds.length);
          assert.deepEqual(row.accuracies, accs);
          assert.ok(Math.abs(row.accuracyMean - mean(accs)) < 1e-12, `${s.model} ${o} ${row.lr}: mean`);
          assert.ok(Math.abs(row.accuracyStd - std(accs)) < 1e-12, `${s.model} ${o} ${row.lr}: std`);
          assert.equal(row.diverged, runs.filter((x) => x.result!.diverged).length);
        }
        const best = Math.max(...rows.map((row) => row.accuracyMean));
        assert.equal(s.optimizers[o].bestMean, best);
        assert.equal(s.optimizers[o].bestLr, rows.find((row) => row.accuracyMean === best)!.lr);
        assert.equal(s.optimizers[o].diverged, rows.reduce((a, row) => a + row.diverged, 0));
        assert.equal(s.optimizers[o].runs, rows.length * res.protocol.seeds.length);
      }
    }

    // the verdict: every claim, with its rule and evidence; --quick is never evidence
    const ids = res.verdict.claims.map((c) => c.id);
    assert.deepEqual(ids, ['accuracy-not-worse', 'accuracy-improves', 'lr-robustness', 'depth', 'overhead']);
    for (const c of res.verdict.claims) {
      for (const k of ['statement', 'source', 'rule', 'evidence'] as const) assert.ok(typeof c[k] === 'string' && c[k].length > 0, `${c.id}.${k}`);
      assert.ok(OUTCOMES.includes(c.ruleOutcome), `${c.id}: ${c.ruleOutcome}`);
      assert.equal(c.outcome, 'inconclusive', `${c.id}: a --quick outcome must be inconclusive`);
    }
    assert.match(res.verdict.note, /quick/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keel repro: an unknown reproduction or option exits 2 with a message', () => {
  const unknown = spawnSync(process.execPath, [KEEL, 'repro', 'no-such-paper'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown reproduction 'no-such-paper'.*sing/);
  const none = spawnSync(process.execPath, [KEEL, 'repro'], { encoding: 'utf8' });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /usage: keel repro/);
  const badOption = spawnSync(process.execPath, [KEEL, 'repro', 'sing', '--no-such-option'], { encoding: 'utf8' });
  assert.equal(badOption.status, 2);
  const badModel = spawnSync(process.execPath, [KEEL, 'repro', 'sing', '--models', 'vgg99'], { encoding: 'utf8' });
  assert.equal(badModel.status, 2);
  assert.match(badModel.stderr, /unknown model 'vgg99'/);
  const help = spawnSync(process.execPath, [KEEL, 'repro', 'sing', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--quick/);
  // the library is importable alongside (the CLI runs on the same build)
  assert.equal(typeof keel.optim.SING, 'function');
});
