// Regressions for what PyTorch's OpInfo inputs found in the engine: reads of
// every tensor kind libtorch returns, out= overloads with several outputs,
// keyword-only arguments, and dtypes without a JS array.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import * as keel from 'keel';

const { ops } = keel;

test('an efficient zero tensor reads as zeros: the gradient of sgn, _efficientzerotensor', () => {
  keel.scope(() => {
    const x = keel.randn([3], { dtype: 'float64', requiresGrad: true });
    ops.sgn(x).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [0, 0, 0]);
    assert.deepEqual(Array.from(x.grad!.data() as Float64Array), [0, 0, 0]);
    const z = ops._efficientzerotensor([2, 2], { dtype: 'float64' });
    assert.deepEqual(z.toArray(), [[0, 0], [0, 0]]);
    assert.equal(ops._efficientzerotensor([], { dtype: 'float32' }).item(), 0);
    assert.deepEqual(ops._efficientzerotensor([2], { dtype: 'bfloat16' }).toArray(), [0, 0]);
    // safetensors writes through the same read
    const bytes = keel.safetensors.save({ z });
    assert.deepEqual(keel.safetensors.load(bytes).z.toArray(), [[0, 0], [0, 0]]);
  });
});

test('negative, conjugate, strided and zero-stride views read their own values', () => {
  keel.scope(() => {
    const x = keel.tensor([1, -2, 3], { dtype: 'float64' });
    const negView = ops._negView(x);
    assert.equal(ops.isNeg(negView), true);
    assert.deepEqual(negView.toArray(), [-1, 2, -3]);
    assert.equal(ops.select.int(negView, 0, 1).item(), 2);
    const c = ops.complex(keel.tensor([1, 2]), keel.tensor([3, 4]));
    const cj = ops.conj(c);
    assert.equal(ops.isConj(cj), true);
    assert.deepEqual(ops.viewAsReal(ops.resolveConj(cj)).toArray(), [[1, -3], [2, -4]]);
    assert.throws(() => cj.toArray(), /complex64 tensor has no JS typed array; read ops\.viewAsReal/);
    const m = keel.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(m.t().toArray(), [[1, 4], [2, 5], [3, 6]]);
    assert.deepEqual(ops.expand(keel.tensor([7]), [3]).toArray(), [7, 7, 7]);
    assert.deepEqual(keel.zeros([0, 3]).toArray(), []);
    assert.deepEqual(Array.from(keel.zeros([2, 0]).data() as Float32Array), []);
  });
});

test('meta, sparse and quantized tensors are clear Errors, never a crash', () => {
  keel.scope(() => {
    const meta = ops.empty([2, 2], { device: 'meta' });
    assert.deepEqual(meta.shape, [2, 2]);
    assert.throws(() => meta.toArray(), /meta tensor has a shape but no values/);
    assert.throws(() => meta.item(), /elements cannot be converted|meta tensor/);
    assert.throws(() => ops.empty([], { device: 'meta' }).item(), /meta tensor/);
    const sparse = ops.toSparse(keel.tensor([[0, 1], [2, 0]]));
    assert.throws(() => sparse.toArray(), /sparse tensor cannot be read directly; call toDense/);
    assert.deepEqual(ops.toDense(sparse).toArray(), [[0, 1], [2, 0]]);
    const q = ops.quantizePerTensor(keel.tensor([0.5, 1]), 0.1, 0, 'quint8');
    assert.equal(q.dtype, 'quint8');
    assert.throws(() => q.toArray(), /quint8 tensor has no JS typed array; dequantize/);
    assert.deepEqual(ops.dequantize.self(q).toArray(), [0.5, 1]);
  });
});

test('every ScalarType of libtorch 1.13 has a name: complex32, quantized, bits', () => {
  keel.scope(() => {
    const h = ops.chalf(keel.tensor([1, 2]));
    assert.equal(h.dtype, 'complex32');
    assert.throws(() => h.toArray(), /complex32 tensor has no JS typed array/);
    assert.equal(keel.zeros([1], { dtype: 'complex32' }).dtype, 'complex32');
    for (const d of ['qint8', 'quint8', 'qint32'] as const) {
      assert.equal(ops.quantizePerTensor(keel.tensor([1]), 1, 0, d).dtype, d);
    }
    assert.ok(keel.DTYPES.includes('quint4x2') && keel.DTYPES.includes('quint2x4'));
  });
});

test('multi-output out= overloads return each out tensor in its own slot', () => {
  keel.scope(() => {
    const x = keel.tensor([[3, 1, 2], [0, 5, 4]]);
    const v = keel.empty([0]);
    const i = keel.empty([0], { dtype: 'int64' });
    const [sv, si] = ops.sort.values(x, 1, false, { values: v, indices: i });
    assert.equal(sv, v);
    assert.equal(si, i);
    assert.deepEqual(v.toArray(), [[1, 2, 3], [0, 4, 5]]);
    assert.deepEqual(i.toArray(), [[1, 2, 0], [0, 2, 1]]);
    const mv = keel.empty([0]);
    const mi = keel.empty([0], { dtype: 'int64' });
    const [a, b] = ops.max.dim_max(x, 1, false, { max: mv, max_values: mi });
    assert.equal(a, mv);
    assert.equal(b, mi);
    assert.deepEqual(mi.toArray(), [0, 1]);
    // var_mean's second slot is the mean, not the variance
    const vo = keel.empty([0], { dtype: 'float64' });
    const mo = keel.empty([0], { dtype: 'float64' });
    const [vr, mr] = ops.varMean.correction_out(keel.tensor([1, 2, 3, 6], { dtype: 'float64' }), { out0: vo, out1: mo });
    assert.equal(vr, vo);
    assert.equal(mr, mo);
    assert.equal(mo.item(), 3);
    assert.equal(vo.item(), 14 / 3);
    const tv = keel.empty([0]);
    const ti = keel.empty([0], { dtype: 'int64' });
    const [t0, t1] = ops.topk.values(keel.tensor([1, 9, 4]), 2, { values: tv, indices: ti });
    assert.deepEqual([t0 === tv, t1 === ti], [true, true]);
    assert.deepEqual(ti.toArray(), [1, 2]);
    // in-place ops still return their own input object
    const y = keel.tensor([1, 2]);
    assert.equal(ops.add_(y, 1), y);
  });
});

test('keyword-only arguments go only by name: no positional value lands in one', () => {
  keel.scope(() => {
    // repeat_interleave(Tensor repeats, *, int? output_size) must not take 2 as output_size
    const r = ops.repeatInterleave(keel.tensor([1, 1], { dtype: 'int64' }), 2);
    assert.deepEqual(r.toArray(), [1, 1, 1, 1]);
    assert.deepEqual(ops.repeatInterleave(keel.tensor([1.5, 2], { dtype: 'float64' }), 2).toArray(), [1.5, 1.5, 2, 2]);
    assert.deepEqual(ops.repeatInterleave(keel.tensor([2, 1], { dtype: 'int64' }), { output_size: 3 }).toArray(), [0, 0, 1]);
    // linalg_pinv(A, rcond tensor) is the relative rcond overload, not an absolute atol
    const A = keel.tensor([[1, 0], [0, 0.01]], { dtype: 'float64' });
    assert.deepEqual(ops.linalgPinv(A, keel.tensor(0.02, { dtype: 'float64' })).toArray(), [[1, 0], [0, 0]]);
    const pinvAtol = ops.linalgPinv(A, { atol: keel.tensor(0.001, { dtype: 'float64' }) }).toArray() as number[][];
    assert.ok(Math.abs(pinvAtol[1][1] - 100) < 1e-9);
    assert.throws(() => (ops.add.Tensor as any)(A, A, 2), /takes at most 2 positional arguments, got 3; 'alpha' and after are keyword-only/);
    assert.throws(() => (ops.sort.values as any)(A, 1, false, keel.empty([0]), keel.empty([0])), /keyword-only/);
  });
});

test('every generated overload refuses a positional value in its first keyword-only slot', () => {
  // Walks the dispatcher's own schemas: each overload with keyword-only
  // arguments, called with one positional argument too many, must say so
  // before anything runs (the spec's flags match the schema's `*`).
  const native = createRequire(import.meta.url)('../../build/keel.node') as {
    schemas(): { name: string; overload: string; arguments: { kwargOnly: boolean }[] }[];
  };
  const table = ops as unknown as Record<string, Record<string, (...a: unknown[]) => unknown> | undefined>;
  const camel = (n: string) => n.replace(/(?<=[a-zA-Z0-9])_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  let checked = 0;
  const wrong: string[] = [];
  for (const s of native.schemas()) {
    const first = s.arguments.findIndex((a) => a.kwargOnly);
    const fn = table[camel(s.name)]?.[s.overload === '' ? 'default' : s.overload];
    if (first < 0 || fn === undefined) continue;
    checked++;
    try {
      fn(...new Array(first + 1).fill(null));
      wrong.push(`${s.name}.${s.overload}: ran`);
    } catch (e) {
      if (!/keyword-only/.test(String(e))) wrong.push(`${s.name}.${s.overload}: ${String(e).slice(0, 80)}`);
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(checked > 1000, `only ${checked} overloads with keyword-only arguments checked`);
});
