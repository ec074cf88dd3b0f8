// `keel repro mde --causes`: the sweep that shows each NaN cause of
// arXiv:2311.03938 in training against its fix (src/experiments/mde/causes.ts,
// causes-study.ts). The --quick sweep's tables and verdicts agree with its
// per-run results; the decoder feature scale does what model.ts says; the
// flags that do not apply to the sweep are refused.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as keel from 'keel';

const MDE = new URL('../../dist/experiments/mde/', import.meta.url);
const { run: reproMde } = (await import(new URL('cli.js', MDE).href)) as { run: (args: string[]) => Promise<number> };
interface DepthUNetLike extends keel.nn.Module {
  unet: { encoder: keel.nn.Module; decoder: keel.nn.Module; head: keel.nn.Module };
}
const { DepthUNet } = (await import(new URL('model.js', MDE).href)) as {
  DepthUNet: new (o: { head?: string; width?: number; depth?: number; maxDepth?: number; featureScale?: number }) => DepthUNetLike;
};

const { causeOf, logInputSaturated } = (await import(new URL('run.js', MDE).href)) as {
  causeOf: (n: number, correction: 0 | 1, underflow: boolean, nanIn: 'loss' | 'gradient', loss: number, saturated?: boolean) => string;
  logInputSaturated: (out: { kind: 'depth' | 'logDepth'; value: keel.Tensor }, mask: keel.Tensor, maxDepth: number, precision: 'fp32' | 'bf16' | 'fp16') => boolean;
};

interface Arm { runs: number; nan: number; byMechanism: number; causes: Record<string, number>; firstNaNSteps: number[] }
interface Results {
  experiment: string;
  quick: boolean;
  complete: boolean;
  protocol: { seeds: number; causes: { id: string; mechanisms: string[]; knobs: Record<string, unknown[]>; cause: { label: string }; fix: { label: string } }[] };
  runs: { id: string; causeId: string; settingIndex: number; setting: string; arm: 'cause' | 'fix'; precision: string; featureScale: number; maxDepth: number; error?: string; result: { status: string; cause: string | null; firstNaNStep: number | null } | null }[];
  rows: { cause: string; setting: string; withCause: Arm; withFix: Arm; p: number }[];
  verdict: { claims: { id: string; outcome: string; rule: string; evidence: string }[] };
}

/** Runs `keel repro mde ARGS` with its stdout captured and its stderr silenced. */
async function capture(args: string[]): Promise<{ code: number; printed: string; errors: string }> {
  const log = console.log;
  const write = process.stderr.write.bind(process.stderr);
  let printed = '';
  let errors = '';
  console.log = (s: unknown) => { printed += `${String(s)}\n`; };
  process.stderr.write = ((s: string | Uint8Array) => { errors += String(s); return true; }) as typeof process.stderr.write;
  try {
    return { code: await reproMde(args), printed, errors };
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
}

const product = (knobs: Record<string, unknown[]>): number => Object.values(knobs).reduce((n, v) => n * v.length, 1);

describe('keel repro mde --causes --quick', () => {
  test('a table per cause whose counts are the per-run results; verdicts inconclusive by construction', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keel-mde-causes-'));
    try {
      const { code, printed } = await capture(['--causes', '--quick', '--out', dir]);
      assert.equal(code, 0);
      const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
      assert.equal(r.experiment, 'mde-causes');
      assert.equal(r.quick, true);
      assert.equal(r.complete, true);
      assert.equal(r.protocol.seeds, 1);
      assert.deepEqual(r.protocol.causes.map((c) => c.id), ['sqrt', 'log-sigmoid', 'init']);
      const settings = r.protocol.causes.reduce((n, c) => n + product(c.knobs), 0);
      assert.equal(settings, 9 + 18 + 12);
      assert.equal(r.runs.length, 2 * settings, 'every setting with the cause and with its fix, 1 seed');
      assert.equal(r.rows.length, settings);
      for (const run of r.runs) assert.ok(run.result !== null && run.error === undefined, `${run.id}: ${run.error}`);

      // every row's counts, recounted from the runs
      for (const row of r.rows) {
        const c = r.protocol.causes.find((x) => x.id === row.cause)!;
        for (const [armName, arm] of [['cause', row.withCause], ['fix', row.withFix]] as const) {
          const rs = r.runs.filter((x) => x.causeId === row.cause && x.setting === row.setting && x.arm === armName);
          assert.equal(arm.runs, rs.length);
          assert.equal(arm.runs, 1);
          const nan = rs.filter((x) => x.result!.status === 'nan');
          assert.equal(arm.nan, nan.length, `${row.cause} ${row.setting} ${armName}`);
          const mine = nan.filter((x) => c.mechanisms.includes(x.result!.cause!));
          assert.equal(arm.byMechanism, mine.length);
          assert.deepEqual(arm.firstNaNSteps, mine.map((x) => x.result!.firstNaNStep).sort((a, b) => a! - b!));
          assert.equal(Object.values(arm.causes).reduce((s, v) => s + v, 0), arm.nan);
        }
        assert.equal(row.p, keel.stats.fisherGreater(row.withCause.byMechanism, row.withCause.runs - row.withCause.byMechanism, row.withFix.byMechanism, row.withFix.runs - row.withFix.byMechanism));
      }

      // at feature scale 100 the default-init logits put σ(z) below fp16's smallest number at the first step; the floor and the small init keep every run finite
      const sat = r.rows.find((x) => x.cause === 'log-sigmoid' && x.setting === 'fp16, scale 100, max 20 m')!;
      assert.deepEqual([sat.withCause.byMechanism, sat.withCause.firstNaNSteps], [1, [1]]);
      assert.equal(sat.withFix.nan, 0);
      const init = r.rows.find((x) => x.cause === 'init' && x.setting === 'fp16, scale 100, lr 0.0005')!;
      assert.deepEqual([init.withCause.byMechanism, init.withCause.firstNaNSteps, init.withFix.nan], [1, [1], 0]);
      // at scale 1 no sigmoid saturates within the smoke run
      for (const row of r.rows.filter((x) => x.cause !== 'sqrt' && /scale 1(,|$)/.test(x.setting))) assert.equal(row.withCause.byMechanism + row.withFix.byMechanism, 0, row.setting);

      // the verdicts: one per cause, pooled counts equal to the rows' sums
      assert.deepEqual(r.verdict.claims.map((v) => [v.id, v.outcome]), [['sqrt', 'inconclusive'], ['log-sigmoid', 'inconclusive'], ['init', 'inconclusive']]);
      for (const v of r.verdict.claims) {
        const rows = r.rows.filter((x) => x.cause === v.id);
        const c = r.protocol.causes.find((x) => x.id === v.id)!;
        const a = rows.reduce((s, x) => s + x.withCause.byMechanism, 0);
        const b = rows.reduce((s, x) => s + x.withFix.byMechanism, 0);
        assert.ok(v.evidence.startsWith(`${c.cause.label}: ${a}/${rows.length} `), v.evidence);
        assert.ok(v.evidence.includes(`${c.fix.label}: ${b}/${rows.length} `), v.evidence);
        assert.ok(v.evidence.includes('sweep: λ ∈ {'), 'the verdict lists the sweep');
        assert.match(v.rule, /one-sided Fisher exact p < 0\.05/);
        assert.match(v.rule, /≥ 10 seeds/);
      }

      // the printed report: a Markdown table per cause, a row per setting, a verdict line under each
      assert.match(printed, /QUICK/);
      for (const c of r.protocol.causes) {
        const at = printed.indexOf(`(${c.id}): `);
        assert.ok(at >= 0, `section of ${c.id}`);
        const section = printed.slice(at).split('\n## ')[0];
        const lines = section.split('\n').filter((l) => l.startsWith('| '));
        assert.equal(lines.length, 2 + product(c.knobs), `${c.id}: header, rule, a row per setting`);
        assert.match(lines[0], /\| setting +\| NaN with cause .*\| Fisher p /);
        for (const row of r.rows.filter((x) => x.cause === c.id)) {
          assert.ok(lines.some((l) => l.startsWith(`| ${row.setting} `) && l.includes(` ${row.withCause.byMechanism}/1 `)), `${c.id} row ${row.setting}`);
        }
        assert.match(section, /\nverdict: inconclusive — /);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('flags of the ablation grid that do not apply to the sweep are refused with exit code 2', async () => {
    const lowSeeds = await capture(['--causes', '--quick', '--low-seeds', '2']);
    assert.equal(lowSeeds.code, 2);
    assert.match(lowSeeds.errors, /--low-seeds does not apply to --causes/);
    const noGuard = await capture(['--causes', '--quick', '--no-guard']);
    assert.equal(noGuard.code, 2);
    assert.match(noGuard.errors, /--no-guard does not apply to --causes/);
  });
});

describe('DepthUNet featureScale', () => {
  test('the logits are head(s · decoder features); s = 1 is the plain U-Net; a bad scale is refused', () => {
    keel.manualSeed(5);
    const plain = new DepthUNet({ head: 'sigmoid', width: 4, depth: 2, maxDepth: 20 });
    keel.manualSeed(5);
    const scaled = new DepthUNet({ head: 'sigmoid', width: 4, depth: 2, maxDepth: 20, featureScale: 10 });
    plain.eval();
    scaled.eval();
    keel.noGrad(() => keel.scope(() => {
      const x = keel.rand([2, 3, 16, 16]);
      const out = (m: DepthUNetLike) => (m.call(x) as { value: keel.Tensor }).value;
      const features = scaled.unet.decoder.call(scaled.unet.encoder.call(x)) as keel.Tensor;
      const z = scaled.unet.head.call(features.mul(10)) as keel.Tensor;
      const expected = Array.from(z.sigmoid().mul(20).data() as Float32Array);
      assert.deepEqual(Array.from(out(scaled).data() as Float32Array), expected);
      const z1 = plain.unet.head.call(plain.unet.decoder.call(plain.unet.encoder.call(x)) as keel.Tensor) as keel.Tensor;
      assert.deepEqual(Array.from(out(plain).data() as Float32Array), Array.from(z1.sigmoid().mul(20).data() as Float32Array));
      // the same weights (same seed): scale 10 spreads the logits 10× wider around the bias
      const spread = (t: keel.Tensor) => (t.max().item() as number) - (t.min().item() as number);
      const zPlain = plain.unet.head.call(plain.unet.decoder.call(plain.unet.encoder.call(x)) as keel.Tensor) as keel.Tensor;
      assert.ok(Math.abs(spread(z) / spread(zPlain) - 10) < 1e-3, `spread ratio ${spread(z) / spread(zPlain)}`);
    }));
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new DepthUNet({ featureScale: bad }), /DepthUNet: featureScale must be a positive finite number/);
    }
    plain.dispose();
    scaled.dispose();
  });
});

describe('the saturated-sigmoid mechanism', () => {
  test('1/σ at a valid pixel past the format\'s largest finite number: fp16 yes, fp32 no; invalid pixels and the floor do not count', () => {
    keel.scope(() => {
      // σ = depth / maxDepth: 1e-5 at pixel 0 (1/σ = 1e5 > 65504), 0.5 elsewhere
      const depth = keel.tensor([[[[20 * 1e-5, 10, 10, 10]]]]);
      const valid = keel.tensor([[[[1, 1, 0, 1]]]]);
      const invalidFirst = keel.tensor([[[[0, 1, 1, 1]]]]);
      assert.equal(logInputSaturated({ kind: 'depth', value: depth }, valid, 20, 'fp16'), true);
      assert.equal(logInputSaturated({ kind: 'depth', value: depth }, valid, 20, 'fp32'), false);
      assert.equal(logInputSaturated({ kind: 'depth', value: depth }, invalidFirst, 20, 'fp16'), false);
      assert.equal(logInputSaturated({ kind: 'depth', value: depth }, keel.zeros([1, 1, 1, 4]), 20, 'fp16'), false, 'no valid pixel');
      // log heads: value = log σ + log maxDepth; the floor keeps σ ≥ 1e-3 / 20 = 5e-5 (1/σ = 2e4)
      const logSigmoid = keel.tensor([[[[Math.log(1e-5) + Math.log(20), 0, 0, 0]]]]);
      const floored = keel.tensor([[[[Math.log(5e-5) + Math.log(20), 0, 0, 0]]]]);
      assert.equal(logInputSaturated({ kind: 'logDepth', value: logSigmoid }, valid, 20, 'fp16'), true);
      assert.equal(logInputSaturated({ kind: 'logDepth', value: floored }, valid, 20, 'fp16'), false);
    });
    // the order of causeOf: the data first, then underflow, sqrt at 0, saturation
    assert.equal(causeOf(9, 0, false, 'gradient', 4.8, true), 'saturated sigmoid, log gradient overflow');
    assert.equal(causeOf(9, 0, false, 'loss', Number.NaN, true), 'other', 'a non-finite loss is not the gradient overflow');
    assert.equal(causeOf(9, 0, true, 'gradient', 4.8, true), 'sigmoid underflow, log 0');
    assert.equal(causeOf(1, 0, false, 'gradient', 0, true), 'sqrt at 0');
    assert.equal(causeOf(0, 0, false, 'loss', Number.NaN, true), 'empty mask (N = 0)');
    assert.equal(causeOf(9, 0, false, 'gradient', 4.8), 'other');
  });
});
