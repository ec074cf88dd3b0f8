// Precision: formats, exact rounding (bit-exact against libtorch's own
// conversions, and against brute force over every value of a format decoded
// here independently), and the policy that rounds every op output and gradient.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import * as keel from 'keel';
import type { Tensor } from 'keel';
import { assertClose } from './helpers/assert.js';
import { runTorch, torchAvailable } from './helpers/torch.js';
import { xorshift32 } from './helpers/random.js';

// ---- an independent decoder: every code of a format → its value -------------

type Kind = 'ieee' | 'ocp-e4m3';

/** The value of one code: sign, exponent field, fraction field (OCP E4M3: only S.1111.111 is NaN, no inf). */
function decode(code: number, e: number, m: number, kind: Kind): number {
  const sign = (code >> (e + m)) & 1 ? -1 : 1;
  const E = (code >> m) & ((1 << e) - 1);
  const M = code & ((1 << m) - 1);
  const bias = 2 ** (e - 1) - 1;
  if (E === (1 << e) - 1) {
    if (kind === 'ieee') return M === 0 ? sign * Infinity : NaN;
    if (M === (1 << m) - 1) return NaN;
  }
  if (E === 0) return sign * M * 2 ** (1 - bias - m);
  return sign * (1 + M / 2 ** m) * 2 ** (E - bias);
}

interface Table {
  /** values[c] for the non-negative finite codes c = 0 … maxCode, increasing */
  values: number[];
  /** the value code maxCode + 1 would have with an unbounded exponent: where overflow starts */
  virtualTop: number;
  max: number;
  kind: Kind;
}

function table(e: number, m: number, kind: Kind): Table {
  const values: number[] = [];
  for (let c = 0; c < 1 << (e + m); c++) {
    const v = decode(c, e, m, kind);
    if (!Number.isFinite(v)) break;
    values.push(v);
  }
  const max = values[values.length - 1];
  const top = values.length;  // code maxCode + 1: its value with the exponent field unbounded
  const Etop = top >> m;
  const bias = 2 ** (e - 1) - 1;
  const virtualTop = (1 + (top & ((1 << m) - 1)) / 2 ** m) * 2 ** (Etop - bias);
  return { values, virtualTop, max, kind };
}

const TABLES = {
  'fp16': table(5, 10, 'ieee'),
  'bf16': table(8, 7, 'ieee'),
  'fp8-e4m3': table(4, 3, 'ocp-e4m3'),
  'fp8-e5m2': table(5, 2, 'ieee'),
} as const;

/** Brute force: the nearest table value to x, ties to the even code, with the format's overflow rule. */
function nearest(x: number, t: Table, saturate = false): number {
  if (Number.isNaN(x)) return NaN;
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  const n = t.values.length;
  const overflow = (): number => (saturate ? (neg ? -t.max : t.max) : t.kind === 'ieee' ? (neg ? -Infinity : Infinity) : NaN);
  if (a >= t.virtualTop) return overflow();
  // largest i with values[i] <= a (values[n] is the virtual top)
  let lo = 0;
  let hi = n;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (t.values[mid] <= a) lo = mid;
    else hi = mid;
  }
  const below = t.values[lo];
  const above = lo + 1 < n ? t.values[lo + 1] : t.virtualTop;
  let pick: number;
  if (a === below) pick = lo;
  else {
    const twice = 2 * a;
    const sum = below + above;  // exact: two neighbours of a few bits
    pick = twice < sum ? lo : twice > sum ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  }
  if (pick === n) return overflow();
  return neg ? -t.values[pick] : t.values[pick];
}

/** Same value, NaN equal to NaN, and -0 distinct from +0. */
function sameValue(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

function checkAgainst(actual: ArrayLike<number>, inputs: ArrayLike<number>, expected: (x: number) => number, what: string): void {
  let bad = 0;
  const shown: string[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const want = expected(inputs[i]);
    if (!sameValue(actual[i], want)) {
      bad++;
      if (shown.length < 5) shown.push(`${inputs[i]} → ${actual[i]}, expected ${want}`);
    }
  }
  assert.equal(bad, 0, `${what}: ${bad} of ${inputs.length} wrong, e.g. ${shown.join('; ')}`);
}

// ---- float32 bit patterns -------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** xorshift32: the same patterns every run */

/** Each float32 pattern at and around every table value and every midpoint between neighbours, both signs. */
function boundaryPatterns(t: Table, spread = 1): number[] {
  const out: number[] = [];
  const push = (v: number) => {
    const b = bitsOf(v);
    for (let d = -spread; d <= spread; d++) {
      const p = (b + d) >>> 0;
      if ((p & 0x7fffffff) <= 0x7f800000) out.push(p, (p | 0x80000000) >>> 0);
    }
  };
  const all = [...t.values, t.virtualTop];
  for (let i = 0; i < all.length; i++) {
    push(all[i]);
    if (i + 1 < all.length) push((all[i] + all[i + 1]) / 2);
  }
  return out;
}

const SPECIAL_PATTERNS = [
  0x00000000, 0x80000000, 0x7f800000, 0xff800000,  // ±0, ±inf
  0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7fffffff, 0xffffffff, 0x7fc12345,  // NaNs, quiet and signalling
  0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x00800000, 0x80800000,  // float32 subnormal and normal limits
  0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff,  // float32 max and the bf16 overflow threshold
];

function float32Tensor(patterns: Uint32Array): Tensor {
  return keel.tensor(new Float32Array(patterns.buffer, patterns.byteOffset, patterns.length));
}

function bitsOfTensor(t: Tensor): Uint32Array {
  const d = t.data() as Float32Array;
  return new Uint32Array(d.buffer, d.byteOffset, d.length);
}

// ---- formats ---------------------------------------------------------------

test('formats are described by their parameters, and agree with every code decoded independently', () => {
  const f = keel.PRECISION_FORMATS;
  assert.deepEqual(
    Object.keys(f), ['fp64', 'fp32', 'bf16', 'fp16', 'fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3fnuz', 'fp8-e5m2fnuz'],
  );
  for (const name of ['fp64', 'fp32', 'bf16', 'fp16', 'fp8-e4m3', 'fp8-e5m2'] as const) {
    assert.equal(f[name].maxExponent, name === 'fp8-e4m3' ? f[name].bias + 1 : f[name].bias, `${name} top binade`);
  }
  assert.equal(f['fp8-e4m3'].bias, 7);
  assert.equal(f['fp8-e4m3'].maxFinite, 448);
  assert.equal(f['fp8-e4m3'].hasInfinity, false);
  assert.equal(f['fp8-e5m2'].bias, 15);
  assert.equal(f['fp8-e5m2'].maxFinite, 57344);
  assert.equal(f['fp8-e5m2'].hasInfinity, true);
  assert.equal(f.fp16.maxFinite, 65504);
  assert.equal(f.fp32.maxFinite, 3.4028234663852886e38);
  assert.equal(f.fp64.maxFinite, Number.MAX_VALUE);
  for (const name of ['fp16', 'bf16', 'fp8-e4m3', 'fp8-e5m2'] as const) {
    const t = TABLES[name];
    const fmt = f[name];
    assert.equal(fmt.maxFinite, t.max, `${name} max`);
    assert.equal(fmt.minSubnormal, t.values[1], `${name} smallest subnormal`);
    assert.equal(fmt.minNormal, t.values[1 << fmt.mantissaBits], `${name} smallest normal`);
    assert.equal(fmt.minNormal, 2 ** fmt.minNormalExponent, `${name} min normal exponent`);
    assert.equal(fmt.epsilon, t.values[(1 << fmt.mantissaBits) * (1 - fmt.minNormalExponent) + 1] - 1, `${name} epsilon`);
  }
  // the OCP tables: E4M3 has 126 finite positive-or-zero... codes 0x00-0x7E, NaN at 0x7F and 0xFF, no inf
  const e4m3 = Array.from({ length: 256 }, (_, c) => decode(c, 4, 3, 'ocp-e4m3'));
  assert.equal(e4m3.filter(Number.isNaN).length, 2);
  assert.equal(e4m3.filter((v) => !Number.isFinite(v) && !Number.isNaN(v)).length, 0);
  assert.equal(e4m3[0x7e], 448);
  assert.equal(e4m3[0x01], 2 ** -9);
  const e5m2 = Array.from({ length: 256 }, (_, c) => decode(c, 5, 2, 'ieee'));
  assert.equal(e5m2.filter(Number.isNaN).length, 6);
  assert.equal(e5m2[0x7c], Infinity);
  assert.equal(e5m2[0x7b], 57344);
  assert.equal(e5m2[0x01], 2 ** -16);
  assert.equal(TABLES['fp8-e4m3'].virtualTop, 480);
  assert.equal(TABLES['fp8-e5m2'].virtualTop, 65536);
  assert.equal(TABLES.fp16.virtualTop, 65536);
});

test('an unknown format name or a non-float tensor is an Error that names it', () => {
  const x = keel.tensor([1, 2]);
  assert.throws(() => keel.round(x, 'fp12' as keel.FormatName), (e: Error) => e instanceof Error && /unknown precision format "fp12"/.test(e.message) && /fp8-e4m3/.test(e.message));
  assert.throws(() => keel.withPrecision('e4m3' as keel.FormatName, () => x.add(1)), (e: Error) => e instanceof Error && /"e4m3"/.test(e.message));
  assert.throws(() => new keel.PrecisionPolicy('fp9' as keel.FormatName), /"fp9"/);
  const i = keel.tensor([1, 2], { dtype: 'int64' });
  assert.throws(() => keel.round(i, 'fp16'), (e: Error) => e instanceof Error && /float32 or float64/.test(e.message) && /int64/.test(e.message));
  const h = keel.tensor([1, 2], { dtype: 'float16' });
  assert.throws(() => keel.round(h, 'fp8-e4m3'), /float16/);
  // dtype names that store a format exactly are accepted
  assert.deepEqual(keel.round(keel.tensor([1 + 2 ** -12]), 'float16').toArray(), [1]);
});

// ---- bit-exact against libtorch --------------------------------------------

for (const [name, dtype] of [['fp16', 'float16'], ['bf16', 'bfloat16']] as const) {
  test(`${name}: the emulated rounding is bit-exact against libtorch's float32 → ${dtype} conversion`, () => {
    const next = xorshift32(name === 'fp16' ? 12345 : 67890);
    const boundary = boundaryPatterns(TABLES[name], 2);
    const RANDOM = 1_000_000;
    const IN_RANGE = 300_000;
    const patterns = new Uint32Array(SPECIAL_PATTERNS.length + boundary.length + RANDOM + IN_RANGE);
    let k = 0;
    for (const p of SPECIAL_PATTERNS) patterns[k++] = p;
    for (const p of boundary) patterns[k++] = p;
    for (let i = 0; i < RANDOM; i++) patterns[k++] = next();
    // random patterns whose exponent lies where the format lives (its subnormals to past its max)
    const [lo, hi] = name === 'fp16' ? [127 - 27, 127 + 17] : [0, 255];
    for (let i = 0; i < IN_RANGE; i++) {
      const r = next();
      patterns[k++] = ((r & 0x807fffff) | ((lo + (next() % (hi - lo + 1))) << 23)) >>> 0;
    }
    keel.scope(() => {
      const x = float32Tensor(patterns);
      const libtorch = bitsOfTensor(x.to(dtype).to('float32'));
      const emulated = bitsOfTensor(keel.round(x, name, { emulate: true }));
      const fast = bitsOfTensor(keel.round(x, name));
      let bad = 0;
      let nans = 0;
      const shown: string[] = [];
      for (let i = 0; i < patterns.length; i++) {
        const aNaN = (libtorch[i] & 0x7fffffff) > 0x7f800000;
        const bNaN = (emulated[i] & 0x7fffffff) > 0x7f800000;
        if (aNaN && bNaN) {
          nans++;
          continue;
        }
        if (libtorch[i] !== emulated[i] || fast[i] !== libtorch[i]) {
          bad++;
          if (shown.length < 5) shown.push(`0x${patterns[i].toString(16)}: libtorch 0x${libtorch[i].toString(16)}, emulated 0x${emulated[i].toString(16)}`);
        }
      }
      assert.equal(bad, 0, `${bad} of ${patterns.length} patterns differ: ${shown.join('; ')}`);
      assert.ok(nans > 1000 && patterns.length >= 1_300_000, `${patterns.length} patterns, ${nans} NaN`);
    });
  });
}

test('float64 inputs round once (libtorch rounds float64 → float16 twice, via float32)', () => {
  // 1 + 2^-11 + 2^-40 is just above the midpoint of 1 and 1 + 2^-10
  const x = keel.tensor([1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -8 + 2 ** -40], { dtype: 'float64' });
  assert.deepEqual(keel.round(x, 'fp16').toArray()[0], 1 + 2 ** -10);
  assert.deepEqual(keel.round(x, 'bf16').toArray()[1], 1 + 2 ** -7);
  assert.deepEqual(x.to('float16').to('float64').toArray()[0], 1, 'libtorch double rounding (if this fails, libtorch fixed it)');
  // brute force over every fp16 / bf16 value, for float64 inputs near their midpoints and at random
  const next = xorshift32(4242);
  for (const name of ['fp16', 'bf16'] as const) {
    const t = TABLES[name];
    const inputs: number[] = [];
    const all = [...t.values, t.virtualTop];
    for (let i = 0; i + 1 < all.length; i += 3) {
      const mid = (all[i] + all[i + 1]) / 2;
      const eps = mid * 2 ** -45 || 2 ** -1074;
      inputs.push(mid, mid + eps, mid - eps, -mid, -(mid + eps), all[i], -all[i]);
    }
    for (let i = 0; i < 50_000; i++) inputs.push((next() / 2 ** 32 - 0.5) * 2 ** ((next() % 60) - 30 + (name === 'bf16' ? (next() % 200) - 100 : 0)));
    inputs.push(Infinity, -Infinity, NaN, 0, -0, 1e300, -1e300, 1e-300, -1e-300, 5e-324);
    const out = keel.scope(() => keel.round(keel.tensor(Float64Array.from(inputs)), name).data() as Float64Array);
    checkAgainst(out, inputs, (v) => nearest(v, t), `${name} from float64`);
  }
});

test('fp32 from float64: the emulation agrees bit for bit with libtorch\'s double → float conversion', () => {
  const next = xorshift32(99);
  const n = 200_000;
  const bits = new BigUint64Array(n);
  for (let i = 0; i < n; i++) {
    // exponents near float32's range, from below its subnormals to past its max
    const e = BigInt(1023 - 160 + (next() % 300));
    bits[i] = (BigInt(next() >>> 31) << 63n) | (e << 52n) | ((BigInt(next()) << 20n) ^ BigInt(next() & 0xfffff));
  }
  const inputs = new Float64Array(bits.buffer);
  // float32 midpoints, exactly and one float64 ulp either side
  const mids: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const a = Math.fround((next() / 2 ** 32) * 2 ** ((next() % 280) - 150));
    const b = bitsOf(a) + 1;
    u32[0] = b;
    const m = (a + f32[0]) / 2;
    mids.push(m, m * (1 + 2 ** -52), m * (1 - 2 ** -53));
  }
  const all = Float64Array.from([...inputs, ...mids, 3.4028235677973366e38, 3.4028235677973362e38, 1.401298464324817e-45 / 2, 1.401298464324817e-45 * 0.75]);
  keel.scope(() => {
    const x = keel.tensor(all);
    const emulated = keel.round(x, 'fp32', { emulate: true }).data() as Float64Array;
    const libtorch = x.to('float32').to('float64').data() as Float64Array;
    let bad = 0;
    for (let i = 0; i < all.length; i++) if (!sameValue(emulated[i], libtorch[i])) bad++;
    assert.equal(bad, 0, `${bad} of ${all.length} differ`);
  });
});

// ---- fp8: exhaustive tables ------------------------------------------------

for (const name of ['fp8-e4m3', 'fp8-e5m2'] as const) {
  test(`${name}: every one of the 256 codes rounds to itself; other inputs round to the nearest code, ties to even`, () => {
    const t = TABLES[name];
    const [e, m] = name === 'fp8-e4m3' ? [4, 3] : [5, 2];
    const codes = Array.from({ length: 256 }, (_, c) => decode(c, e, m, t.kind));
    for (const dtype of ['float32', 'float64'] as const) {
      keel.scope(() => {
        const x = keel.tensor(codes, { dtype });
        const r = keel.round(x, name).toArray() as number[];
        for (let c = 0; c < 256; c++) {
          const want = t.kind === 'ieee' ? codes[c] : Number.isNaN(codes[c]) ? NaN : codes[c];
          assert.ok(sameValue(r[c], want), `${name} code 0x${c.toString(16)} (${codes[c]}) → ${r[c]} in ${dtype}`);
        }
        assert.ok(keel.isRepresentable(x, name));
      });
    }
    // midpoints between neighbours, a float32 ulp either side, beyond the max, below the smallest subnormal
    const inputs: number[] = [];
    const all = [...t.values, t.virtualTop, t.virtualTop * 1.5];
    for (let i = 0; i + 1 < all.length; i++) {
      const mid = (all[i] + all[i + 1]) / 2;
      const b = bitsOf(mid);
      for (const p of [b - 1, b, b + 1]) {
        u32[0] = p;
        inputs.push(f32[0], -f32[0]);
      }
    }
    inputs.push(Infinity, -Infinity, NaN, 0, -0, 1e30, -1e30, 1e-30, -1e-30, t.max, -t.max);
    const next = xorshift32(777);
    for (let i = 0; i < 100_000; i++) {
      u32[0] = (next() & 0x807fffff) | ((127 - 20 + (next() % 40)) << 23);
      inputs.push(f32[0]);
    }
    for (let i = 0; i < 100_000; i++) {
      u32[0] = next();
      inputs.push(f32[0]);
    }
    keel.scope(() => {
      for (const saturate of [false, true]) {
        const x32 = keel.tensor(Float32Array.from(inputs));
        const fromF32 = keel.round(x32, name, { saturate }).data() as Float32Array;
        const fromF64 = keel.round(keel.tensor(Float64Array.from(inputs)), name, { saturate }).data() as Float64Array;
        checkAgainst(fromF32, inputs, (v) => nearest(Math.fround(v), t, saturate), `${name} saturate=${saturate} from float32`);
        checkAgainst(fromF64, inputs, (v) => nearest(v, t, saturate), `${name} saturate=${saturate} from float64`);
      }
    });
  });
}

test('overflow: fp16 and e5m2 to ±inf, OCP e4m3 to NaN, saturating to ±max', () => {
  const r = (v: number[], f: keel.FormatName, o?: keel.RoundOptions) => keel.round(keel.tensor(v), f, o).toArray();
  assert.deepEqual(r([1e5, -1e5, 65504, 65519, 65520], 'fp16'), [Infinity, -Infinity, 65504, 65504, Infinity]);
  assert.deepEqual(r([1e5, -Infinity], 'fp16', { saturate: true }), [65504, -65504]);
  assert.deepEqual(r([500, -500, 448, 464, 465, Infinity], 'fp8-e4m3'), [NaN, NaN, 448, 448, NaN, NaN]);
  assert.deepEqual(r([500, -500, Infinity, -Infinity, NaN], 'fp8-e4m3', { saturate: true }), [448, -448, 448, -448, NaN]);
  assert.deepEqual(r([61439, 61440, -1e6], 'fp8-e5m2'), [57344, Infinity, -Infinity]);
  assert.deepEqual(r([1e39], 'bf16'), [Infinity]);
  // the policy: exp(12) = 162754.8 overflows fp16
  const x = keel.tensor([12, 1]);
  assert.deepEqual(keel.withPrecision('fp16', () => x.exp()).toArray(), [Infinity, 2.71875]);
  assert.deepEqual(keel.withPrecision('fp8-e4m3', () => keel.tensor([250]).mul(2)).toArray(), [NaN]);
  assert.deepEqual(keel.withPrecision('fp8-e4m3', () => keel.tensor([250]).mul(2), { saturate: true }).toArray(), [448]);
});

// ---- the policy ------------------------------------------------------------

function mlp(p: Record<string, Tensor>, x: Tensor, y: Tensor, seen?: Tensor[]) {
  const h = keel.ops.linear(x, p.w1, p.b1);
  const a = h.tanh();
  const o = keel.ops.linear(a, p.w2, p.b2);
  const d = o.sub(y);
  const loss = d.mul(d).mean();
  seen?.push(h, a, o, d, loss);
  return loss;
}

function mlpParams(): Record<string, Tensor> {
  keel.manualSeed(7);
  return {
    w1: keel.randn([32, 16]).mul(0.3).requiresGrad_(),
    b1: keel.randn([32]).mul(0.1).requiresGrad_(),
    w2: keel.randn([4, 32]).mul(0.3).requiresGrad_(),
    b2: keel.randn([4]).mul(0.1).requiresGrad_(),
  };
}

test('an MLP under fp16: every intermediate and every parameter gradient is an fp16 value; close to fp32, not equal', () => {
  keel.scope(() => {
    const p = mlpParams();
    keel.manualSeed(8);
    const x = keel.randn([64, 16]);
    const y = keel.randn([64, 4]);
    const before = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.toArray()]));

    const loss32 = mlp(p, x, y);
    loss32.backward();
    const g32 = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.grad!.toArray()]));
    for (const v of Object.values(p)) v.grad = undefined;

    const seen: Tensor[] = [];
    const loss16 = keel.withPrecision('fp16', () => {
      const loss = mlp(p, x, y, seen);
      loss.backward();
      return loss;
    });
    for (const [i, t] of seen.entries()) {
      assert.equal(t.dtype, 'float32');
      assert.ok(keel.isRepresentable(t, 'fp16'), `intermediate ${i} is not in fp16`);
      assert.ok(!keel.isRepresentable(t, 'fp8-e4m3') || t.numel() === 1, `intermediate ${i} is suspiciously coarse`);
    }
    for (const [k, v] of Object.entries(p)) {
      assert.ok(keel.isRepresentable(v.grad!, 'fp16'), `grad of ${k} is not in fp16`);
      assert.ok(!keel.isRepresentable(v.grad!, 'bf16'), `grad of ${k} is in bf16 too (was it rounded at all?)`);
      // the parameters themselves are untouched: rounding happens as they enter ops
      assert.deepEqual(v.toArray(), before[k], `${k} changed`);
      assertClose(v.grad!.toArray(), g32[k], { rtol: 2e-2, atol: 2e-3, what: `grad of ${k}` });
      assert.notDeepEqual(v.grad!.toArray(), g32[k], `grad of ${k} equals fp32's`);
    }
    assertClose(loss16.item(), loss32.item(), { rtol: 1e-3 });
    assert.notEqual(loss16.item(), loss32.item());
    assert.ok(!keel.isRepresentable(loss32, 'fp16'));
  });
});

test('backward rounds each gradient: a gradient below fp16\'s smallest subnormal underflows to zero', () => {
  const x = keel.tensor([1, 2], { requiresGrad: true });
  keel.withPrecision('fp16', () => x.mul(1e-4).mul(1e-4).sum().backward());
  // 1e-4 · 1e-4 = 1e-8 < 2^-25: zero in fp16 (the reason for loss scaling)
  assert.deepEqual(x.grad!.toArray(), [0, 0]);
  x.grad = undefined;
  x.mul(1e-4).mul(1e-4).sum().backward();
  assertClose(x.grad!.toArray(), [1e-8, 1e-8], { rtol: 1e-6 });
  // round() alone: the gradient passes straight through, rounded
  x.grad = undefined;
  keel.round(x, 'fp16').mul(1 / 3).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [0.333251953125, 0.333251953125]);
  // backward after the run ends still rounds: the graph holds the rounding nodes
  const y = keel.tensor([3], { requiresGrad: true });
  const out = keel.withPrecision('fp16', () => y.mul(1 / 3));
  out.backward();
  assert.deepEqual(y.grad!.toArray(), [0.333251953125]);
});

test('inputs enter ops as if stored in the format: data, parameters and tensors made outside', () => {
  const x = keel.tensor([1 + 2 ** -11, 1 + 3 * 2 ** -11]);
  const one = keel.tensor([1, 1]);
  // rounded after the subtraction these would be 2^-11 and 3·2^-11; stored in fp16 first, 0 and 2^-9
  assert.deepEqual(keel.withPrecision('fp16', () => x.sub(one)).toArray(), [0, 2 ** -9]);
  assert.deepEqual(keel.withPrecision('fp16', () => keel.cat([x, one]).sub(1)).toArray(), [0, 2 ** -9, 0, 0]);
  const w = keel.tensor([1 + 2 ** -11], { requiresGrad: true });
  const out = keel.withPrecision('fp16', () => w.sub(1));
  assert.deepEqual(out.toArray(), [0]);
  assert.deepEqual(w.toArray(), [1 + 2 ** -11], 'the parameter itself is not changed');
});

test('fp32 is the identity on float32 and rounds float64; the innermost policy wins; views stay views', () => {
  keel.scope(() => {
    keel.manualSeed(3);
    const a = keel.randn([50]);
    const plain = a.exp().mul(a).sum().toArray();
    assert.deepEqual(keel.withPrecision('fp32', () => a.exp().mul(a).sum()).toArray(), plain);
    const d = keel.randn([50], { dtype: 'float64' });
    const r = keel.withPrecision('fp32', () => d.exp());
    assert.equal(r.dtype, 'float64');
    assert.ok(keel.isRepresentable(r, 'fp32') && !keel.isRepresentable(d.exp(), 'fp32'));
    assert.deepEqual(keel.withPrecision('fp64', () => d.exp()).toArray(), d.exp().toArray());

    const nested = keel.withPrecision('fp16', () => {
      const outer = a.mul(3);
      const inner = keel.withPrecision('fp8-e5m2', () => a.mul(3));
      assert.equal(keel.currentPrecision()?.name, 'fp16');
      return { outer, inner };
    });
    assert.ok(keel.isRepresentable(nested.outer, 'fp16') && !keel.isRepresentable(nested.outer, 'fp8-e5m2'));
    assert.ok(keel.isRepresentable(nested.inner, 'fp8-e5m2'));
    assert.deepEqual(nested.inner.toArray(), keel.round(keel.round(a, 'fp8-e5m2').mul(3), 'fp8-e5m2').toArray());
    assert.equal(keel.currentPrecision(), undefined);

    keel.withPrecision('bf16', () => {
      const b = a.mul(2);
      const v = b.view([5, 10]);
      v.add_(1);  // an in-place op: rounded in place
      assert.deepEqual(b.view([5, 10]).toArray(), v.toArray(), 'the view must alias its base');
      assert.ok(keel.isRepresentable(b, 'bf16'));
    });
  });
});

test('an optimizer step under the policy stores parameters in the format', () => {
  const p = keel.tensor([0.1, 0.2, 0.3], { requiresGrad: true });
  keel.withPrecision('fp8-e4m3', () => {
    p.mul(p).sum().backward();
    assert.ok(keel.isRepresentable(p.grad!, 'fp8-e4m3'));
    keel.noGrad(() => p.sub_(p.grad!.mul(0.01)));
  });
  assert.ok(keel.isRepresentable(p.detach(), 'fp8-e4m3'), `${p.toArray()}`);
});

/** The loss, its gradients and the outputs' autograd nodes of a small conv net under a policy, with or without another interceptor seeing the ops. */
function convNetUnder(format: keel.FormatName, withOtherInterceptor: boolean) {
  return keel.scope(() => {
    keel.manualSeed(21);
    const w1 = keel.randn([4, 1, 3, 3]).mul(0.4).requiresGrad_();
    const b1 = keel.randn([4]).mul(0.1).requiresGrad_();
    const w2 = keel.randn([3, 64]).mul(0.3).requiresGrad_();
    const x = keel.randn([5, 1, 10, 10]);
    const y = keel.tensor([0, 2, 1, 1, 0], { dtype: 'int64' });
    const params = [w1, b1, w2];
    const nodes: Record<string, string | null> = {};
    const uninstall = withOtherInterceptor ? keel.intercept({}) : undefined;
    let loss: Tensor;
    let gs: (Tensor | null)[];
    let second: (Tensor | null)[];
    try {
      [loss, gs, second] = keel.withPrecision(format, () => {
        const c = keel.ops.conv2d(x, w1, b1);          // nothing else holds it
        const r = c.relu();                            // relu's backward saved its output
        const p = keel.ops.maxPool2d(r, [2, 2]);
        const t = p.tanh();                            // tanh's too, and rounding changes it
        const f = t.flatten(1);
        const z = keel.ops.linear(f, w2).add(f.narrow(1, 0, 3));  // f read twice
        const l = keel.losses.crossEntropy(z.exp().log1p(), y);
        Object.assign(nodes, { conv: c.gradFn, relu: r.gradFn, tanh: t.gradFn, loss: l.gradFn });
        // gradients, and a gradient of a gradient through the rounding in backward
        const g = keel.autograd.grad(l, params, { createGraph: true });
        const g2 = keel.autograd.grad(g[2]!.square().sum(), [w2]);
        return [l, g, g2];
      });
    } finally {
      uninstall?.();
    }
    const bits = (t: Tensor | null) => Array.from(t!.detach().flatten().data() as Float32Array);
    return { loss: bits(loss), grads: gs.map(bits), second: second.map(bits), nodes };
  });
}

test('an output rounded where it lies or as a rounded copy: the same bits, forward, backward and double backward', () => {
  for (const format of ['bf16', 'fp16', 'fp8-e4m3'] as keel.FormatName[]) {
    const inPlace = convNetUnder(format, false);
    // another interceptor (the guard's replay) makes the policy take the copy behind a rounding node everywhere
    const copied = convNetUnder(format, true);
    assert.deepEqual(inPlace.loss, copied.loss, format);
    assert.deepEqual(inPlace.grads, copied.grads, format);
    assert.deepEqual(inPlace.second, copied.second, format);
    assert.ok(inPlace.grads.every((g) => keel.isRepresentable(keel.tensor(g), format)), `${format}: gradients in the format`);
    // alone, the policy kept the op's own node where nothing else held the output or rounding left it unchanged
    assert.deepEqual(inPlace.nodes, { conv: 'ConvolutionBackward0', relu: 'ReluBackward0', tanh: 'RoundBackward', loss: 'NllLossBackward0' }, format);
    assert.deepEqual(copied.nodes, { conv: 'RoundBackward', relu: 'RoundBackward', tanh: 'RoundBackward', loss: 'RoundBackward' }, format);
  }
});

test('optimizers under the policy: the _foreach updates round what they write, bitwise as the single-tensor path', () => {
  const variants: [string, (ps: Tensor[], foreach: boolean) => keel.optim.Optimizer][] = [
    ['Adam amsgrad', (ps, foreach) => new keel.optim.Adam(ps, { lr: 1e-2, amsgrad: true, foreach })],
    ['AdamW', (ps, foreach) => new keel.optim.AdamW(ps, { lr: 1e-2, weightDecay: 0.05, foreach })],
    ['SGD momentum', (ps, foreach) => new keel.optim.SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 1e-3, foreach })],
  ];
  for (const [name, make] of variants) {
    const run = (foreach: boolean): number[][] => keel.scope(() => {
      keel.manualSeed(13);
      const model = new keel.nn.Sequential(new keel.nn.Linear(5, 7), new keel.nn.Tanh(), new keel.nn.Linear(7, 3));
      const opt = make(model.parameters(), foreach);
      const x = keel.randn([9, 5]);
      for (let i = 0; i < 4; i++) {
        keel.withPrecision('bf16', () => {
          opt.zeroGrad();
          keel.scope(() => model.call(x).square().mean().backward());
          opt.step();
        });
      }
      for (const p of model.parameters()) assert.ok(keel.isRepresentable(p.detach(), 'bf16'), `${name} (foreach ${foreach}): a parameter is not stored in bf16`);
      return model.parameters().map((p) => Array.from(p.flatten().data() as Float32Array));
    });
    assert.deepEqual(run(true), run(false), name);
  }
});

test('the rounding agrees with PyTorch\'s float16 and bfloat16 conversions of float32', { skip: !torchAvailable() }, () => {
  const values = [0.1, 1 / 3, 65519, 1e-7, 3e-8, 2.9802322387695312e-8, -2.5e-5, 3.14159, 1e-40, -7e4 / 3];
  const out = runTorch<number[][]>(
    'x = torch.tensor(inp, dtype=torch.float32)\nout = [L(x.half().float()), L(x.bfloat16().float())]', values);
  const ours = [keel.round(keel.tensor(values), 'fp16').toArray(), keel.round(keel.tensor(values), 'bf16').toArray()];
  assert.deepEqual(ours, out);
});

// The native rounding runs AVX2 where the CPU has it and SSE2 (the x86-64
// baseline) elsewhere; KEEL_NO_AVX2=1 forces SSE2. Both must give the same
// bits, on float32 and float64, for every format and the saturating option,
// including the tail of a length that is not a multiple of the vector width.
test('the native rounding gives the same bits on its AVX2 and SSE2 paths (float32 and float64, odd lengths)', () => {
  const code = `
    import * as keel from 'keel';
    import { createHash } from 'node:crypto';
    let s = 0x9e3779b9;
    const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
    const n = 100_003;
    const bits32 = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits32[i] = i < 8 ? [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 1, 0x477fefff, 0x33800000][i] : next();
    const x32 = keel.tensor(Array.from(new Float32Array(bits32.buffer)), { dtype: 'float32' });
    const x64 = x32.to('float64').mul(keel.tensor(1 + 2 ** -40, { dtype: 'float64' }));
    const h = createHash('sha256');
    for (const f of ['fp16', 'bf16', 'fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3fnuz', 'fp8-e5m2fnuz', 'fp32']) {
      for (const saturate of [false, true]) {
        for (const x of [x32, x64]) {
          if (f === 'fp32' && x === x32) continue;
          const r = keel.round(x, f, { saturate });
          h.update(Buffer.from(r.data().buffer));
        }
      }
    }
    console.log('HASH ' + h.digest('hex'));`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return /HASH (\w+)/.exec(r.stdout)![1];
  };
  const avx2 = run({});
  const sse2 = run({ KEEL_NO_AVX2: '1' });
  assert.equal(sse2, avx2);
});

test('the policy\'s per-op work done natively or by its JS interceptor: the same bits over training steps (bf16, fp16, fp8-e4m3)', () => {
  // an MLP whose step has what the native path must treat as the interceptor
  // does: parameters and data rounded on entry, an input read twice, views
  // (which stay views of known values), a list in and out, relu's and tanh's
  // saved outputs, an in-place op under grad, cross-entropy's int64 target,
  // AdamW's _foreach updates and an update by hand (sub_, zero_)
  const code = `
    import * as keel from 'keel';
    import { createHash } from 'node:crypto';
    const h = createHash('sha256');
    for (const format of ['bf16', 'fp16', 'fp8-e4m3']) {
      keel.manualSeed(5);
      const w1 = keel.randn([12, 6]).mul(0.5).requiresGrad_().keep();
      const b1 = keel.randn([12]).mul(0.1).requiresGrad_().keep();
      const w2 = keel.randn([3, 12]).mul(0.4).requiresGrad_().keep();
      const s = keel.tensor([1.1]).requiresGrad_().keep();
      const x = keel.randn([10, 6]).keep();
      const y = keel.randint(0, 3, [10], { dtype: 'int64' }).keep();
      const opt = new keel.optim.AdamW([w1, b1, w2], { lr: 1e-2, weightDecay: 0.01 });
      for (let step = 0; step < 3; step++) {
        keel.withPrecision(format, () => keel.scope(() => {
          const a = keel.ops.linear(x, w1, b1);
          const [p, q] = a.split(6, 1);
          const r = keel.ops.cat([p.relu(), q.tanh()], 1).mul(s);
          const t = r.t().t().reshape([10, 12]).add(r.mul(0.5));
          t.mul_(1.5);
          const z = keel.ops.linear(t, w2);
          const loss = keel.losses.crossEntropy(z, y).add(z.square().mean().mul(0.01));
          opt.zeroGrad();
          loss.backward();
          for (const g of [w1.grad, b1.grad, w2.grad, s.grad]) h.update(Buffer.from(g.data().buffer));
          h.update(Buffer.from(loss.detach().data().buffer));
          opt.step();
          keel.noGrad(() => { s.sub_(s.grad.mul(0.1)); s.grad.zero_(); });
        }));
      }
      for (const p of [w1, b1, w2, s]) h.update(Buffer.from(p.detach().data().buffer));
    }
    console.log('HASH ' + h.digest('hex'));`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return /HASH (\w+)/.exec(r.stdout)![1];
  };
  assert.equal(run({ KEEL_ROUND_NATIVE: '0' }), run({}));
});
