// fp8 as it is trained: the fnuz formats (every code, decoded independently),
// delayed per-tensor scaling (amax history, margin, a zero amax never makes a
// zero scale) and scaled fp8 matrix products in a training step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';

const { ops, nn } = keel;

/** The value of an 8-bit fnuz code: bias one above OCP's, no inf, 0x80 the only NaN (no −0). */
function decodeFnuz(c: number, e: number, m: number, bias: number): number {
  if (c === 0x80) return Number.NaN;
  const sign = c & 0x80 ? -1 : 1;
  const exp = (c >> m) & ((1 << e) - 1);
  const mant = c & ((1 << m) - 1);
  return sign * (exp === 0 ? mant * 2 ** (1 - bias - m) : (1 + mant / 2 ** m) * 2 ** (exp - bias));
}

for (const [name, e, m, bias, max] of [['fp8-e4m3fnuz', 4, 3, 8, 240], ['fp8-e5m2fnuz', 5, 2, 16, 57344]] as const) {
  test(`${name}: every code rounds to itself, midpoints to even, overflow to NaN (or ±max saturating), −0 to +0`, () => {
    const f = keel.formatOf(name);
    assert.equal(f.maxFinite, max);
    assert.equal(f.bias, bias);
    assert.equal(f.negativeZero, false);
    assert.equal(f.hasInfinity, false);
    const codes = Array.from({ length: 256 }, (_, c) => decodeFnuz(c, e, m, bias));
    const finite = [...new Set(codes.filter((v) => Number.isFinite(v)))].sort((a, b) => a - b);
    assert.equal(finite[finite.length - 1], max);
    assert.equal(finite.filter((v) => v > 0)[0], 2 ** (1 - bias - m), 'smallest subnormal');
    for (const emulate of [false, true]) {
      keel.scope(() => {
        for (const dtype of ['float32', 'float64'] as const) {
          const r = keel.round(keel.tensor(finite, { dtype }), name, { emulate }).toArray() as number[];
          assert.deepEqual(r, finite, `${name} codes round to themselves (${dtype}, emulate=${emulate})`);
        }
        // midpoints between neighbours go to the neighbour with the even code
        const pos = finite.filter((v) => v >= 0);
        const mids = pos.slice(0, -1).map((v, i) => (v + pos[i + 1]) / 2);
        const got = keel.round(keel.tensor(mids, { dtype: 'float64' }), name, { emulate }).toArray() as number[];
        mids.forEach((mid, i) => {
          const lo = pos[i], hi = pos[i + 1];
          const loCode = codes.indexOf(lo);
          assert.equal(got[i], loCode % 2 === 0 ? lo : hi, `midpoint ${mid} of ${lo} and ${hi}`);
        });
        const edge = keel.round(keel.tensor([max * 1.2, -max * 1.2, Infinity, -0, -1e-30], { dtype: 'float64' }), name, { emulate }).toArray() as number[];
        assert.ok(Number.isNaN(edge[0]) && Number.isNaN(edge[1]) && Number.isNaN(edge[2]), 'no inf: overflow is NaN');
        assert.ok(Object.is(edge[3], 0) && Object.is(edge[4], 0), 'no −0 in fnuz');
        const sat = keel.round(keel.tensor([max * 1.2, -Infinity], { dtype: 'float64' }), name, { emulate, saturate: true }).toArray();
        assert.deepEqual(sat, [max, -max]);
      });
    }
  });
}

test('delayed scaling: scale = fmax / max(amax history) / 2^margin, delayed by a step; a zero amax keeps the scale', () => {
  const s = new keel.DelayedScaling({ format: 'fp8-e4m3', historyLength: 3, margin: 1 });
  const scale = (): number => s.scale.item() as number;
  assert.equal(scale(), 1);
  const step = (x: number[]): number[] => {
    const q = s.quantize(keel.tensor(x)).toArray() as number[];
    s.update();
    return q;
  };
  // step 1 uses scale 1: 3.3 rounds on E4M3's grid (ulp 0.25 in [2, 4))
  assert.deepEqual(step([3.3, -0.5]), [3.25, -0.5]);
  assert.equal(scale(), Math.fround(Math.fround(448 / 2) / Math.fround(3.3)));
  step([100, 1]);
  assert.equal(scale(), Math.fround(224 / 100), 'the history max is the larger amax');
  step([0, 0]); // a zero amax at this step: the history still holds 100
  assert.equal(scale(), Math.fround(224 / 100));
  step([0]);
  step([0]);
  step([0]);
  assert.equal(scale(), Math.fround(224 / 100), 'a history of only zeros keeps the last scale: never 0, never 0/0');
  assert.ok(Number.isFinite(scale()) && scale() > 0);
  // with the scale, a tiny tensor keeps its precision: x · scale lands in the format's normal range
  const t = new keel.DelayedScaling({ historyLength: 1 });
  t.quantize(keel.tensor([1e-4, 3e-5]));
  t.update();
  const q = t.quantize(keel.tensor([1e-4, 3e-5])).toArray() as number[];
  assert.ok(Math.abs(q[0] - 1e-4) / 1e-4 < 0.07 && Math.abs(q[1] - 3e-5) / 3e-5 < 0.07, `scaled: ${q}`);
  const unscaled = keel.round(keel.tensor([1e-4, 3e-5]), 'fp8-e4m3').toArray() as number[];
  assert.deepEqual(unscaled, [0, 0], 'without a scale both underflow E4M3');
  assert.throws(() => new keel.DelayedScaling({ historyLength: 0 }), /historyLength must be a positive integer/);
  assert.throws(() => new keel.DelayedScaling({ format: 'fp7' as never }), /unknown precision format/);
  s.dispose();
  t.dispose();
});

test('withFp8: a training step with E4M3 linear inputs and E5M2 output gradients, scales kept across steps', () => {
  keel.manualSeed(0);
  const model = new nn.Sequential(new nn.Linear(16, 32), new nn.ReLU(), new nn.Linear(32, 4));
  const ref = new nn.Sequential(new nn.Linear(16, 32), new nn.ReLU(), new nn.Linear(32, 4));
  ref.loadStateDict(model.stateDict());
  const opt = new keel.optim.SGD(model.parameters(), { lr: 0.3 });
  const optRef = new keel.optim.SGD(ref.parameters(), { lr: 0.3 });
  const x = keel.randn([64, 16]);
  const y = keel.randint(0, 4, [64]);
  const recipe = new keel.Fp8Recipe({ historyLength: 4 });
  const losses: number[] = [];
  const refLosses: number[] = [];
  for (let i = 0; i < 30; i++) {
    opt.zeroGrad();
    optRef.zeroGrad();
    keel.scope(() => {
      const loss = keel.withFp8(recipe, () => ops.crossEntropyLoss(model.call(x), y));
      loss.backward();
      losses.push(loss.item() as number);
      const l2 = ops.crossEntropyLoss(ref.call(x), y);
      l2.backward();
      refLosses.push(l2.item() as number);
    });
    opt.step();
    optRef.step();
  }
  const { forward, backward } = recipe.scales();
  assert.equal(forward.length, 4, 'two linears, two quantised inputs each (activation and weight)');
  assert.equal(backward.length, 2, 'one output gradient per linear');
  assert.ok(forward.every((s) => s > 1 && Number.isFinite(s)), `forward scales ${forward}`);
  assert.ok(backward.every((s) => s > 1 && Number.isFinite(s)), `backward scales ${backward}`);
  const drop = losses[0] - losses[29], refDrop = refLosses[0] - refLosses[29];
  assert.ok(refDrop > 0.3 && drop > 0.8 * refDrop, `fp8 trains as fp32 does: loss ${losses[0]} → ${losses[29]} (fp32 ${refLosses[0]} → ${refLosses[29]})`);
  assert.notEqual(losses[29], refLosses[29], 'fp8 is not fp32');
  assert.ok(Math.abs(losses[29] - refLosses[29]) < 0.1 * refLosses[29], `fp8 ${losses[29]} vs fp32 ${refLosses[29]}`);
  recipe.dispose();
});
