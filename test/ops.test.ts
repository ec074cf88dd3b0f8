// The generated operator layer: it is current, overloads resolve from argument
// types, options objects, every argument and return kind crosses the boundary.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import * as keel from 'keel';
import { assertClose } from './helpers/assert.js';

test('src/ops/generated matches the installed libtorch (gen-ops --check)', () => {
  const out = execFileSync(process.execPath, ['scripts/gen-ops.mjs', '--check'], { encoding: 'utf8' });
  assert.match(out, /is current \((\d+) overloads, (\d+) operators\)/);
  const [, overloads] = /\((\d+) overloads/.exec(out)!;
  assert.ok(Number(overloads) > 2500, `only ${overloads} overloads generated`);
});

test('overloads resolve from argument types', () => {
  keel.scope(() => {
    const a = keel.tensor([1, 2, 3]);
    assert.deepEqual(keel.ops.add(a, a).toArray(), [2, 4, 6]); // add.Tensor
    assert.deepEqual(keel.ops.add(a, 1).toArray(), [2, 3, 4]); // add.Scalar
    assert.throws(() => (keel.ops.add as any)(a, a, 2), /no overload accepts .*keyword-only: pass them in the options object/); // alpha is keyword-only in add.Tensor
    assert.deepEqual(keel.ops.add(a, a, { alpha: 3 }).toArray(), [4, 8, 12]); // alpha by name
    assert.equal(keel.ops.sum(a).item(), 6); // sum()
    const m = keel.tensor([[1, 5, 2], [7, 0, 3]]);
    assert.deepEqual(keel.ops.sum(m, 1).toArray(), [8, 10]); // sum.dim_IntList (int for int[1])
    assert.deepEqual(keel.ops.sum(m, [0, 1], true).toArray(), [[18]]);
    const [values, indices] = keel.ops.max(m, 1); // max.dim: two returns
    assert.deepEqual(values.toArray(), [5, 7]);
    assert.deepEqual(indices.toArray(), [1, 0]);
    assert.equal(indices.dtype, 'int64');
    assert.equal(keel.ops.max(m).item(), 7); // max()
    assert.deepEqual(keel.ops.max(m, keel.tensor([[6, 0, 0], [0, 9, 0]])).toArray(), [[6, 5, 2], [7, 9, 3]]); // max.other
    assert.deepEqual(keel.ops.arange(3).toArray(), [0, 1, 2]); // arange(end), int64 from int Scalars
    assert.deepEqual(keel.ops.arange(1, 7, 2).toArray(), [1, 3, 5]); // arange.start_step
    assert.deepEqual(keel.ops.pow(2, keel.tensor([1, 3])).toArray(), [2, 8]); // pow.Scalar
  });
});

test('overloads are reachable by name, .default included', () => {
  keel.scope(() => {
    const a = keel.tensor([1, 2]);
    assert.deepEqual(keel.ops.add.Tensor(a, a).toArray(), [2, 4]);
    assert.deepEqual(keel.ops.add.Scalar(a, 1).toArray(), [2, 3]);
    assert.equal(keel.ops.sum.default(a).item(), 3);
    const out = keel.zeros([2]);
    const r = keel.ops.add.out(a, a, { out });
    assert.equal(r, out, 'an out= overload returns the out tensor object itself');
    assert.deepEqual(out.toArray(), [2, 4]);
  });
});

test('in-place ops return the same Tensor object', () => {
  keel.scope(() => {
    const a = keel.tensor([1, 2]);
    const r = keel.ops.add_(a, 1);
    assert.equal(r, a);
    assert.deepEqual(a.toArray(), [2, 3]);
    assert.equal(a.mul_(2), a);
    assert.deepEqual(a.toArray(), [4, 6]);
  });
});

test('argument kinds: optional tensors, tensor lists, (Tensor|null)[], int[N], float, bool, str, ScalarType, MemoryFormat, Device', () => {
  keel.scope(() => {
    const x = keel.ones([1, 1, 4, 4]);
    const w = keel.ones([2, 1, 3, 3]);
    const b = keel.tensor([10, 20]);
    assert.deepEqual(keel.ops.conv2d(x, w).shape, [1, 2, 2, 2]);
    assert.deepEqual(keel.ops.conv2d(x, w, null, 1, 1).shape, [1, 2, 4, 4]); // int for int[2]
    assert.deepEqual(keel.ops.conv2d(x, w, b, { padding: [1, 1], stride: 2 }).flatten().toArray().slice(0, 2), [14, 16]);
    assert.deepEqual(keel.ops.conv2d(x, w, null, 1, 'same').shape, [1, 2, 4, 4]); // conv2d.padding: str
    assert.deepEqual(keel.ops.cat([keel.ones([1]), keel.zeros([2])]).toArray(), [1, 0, 0]); // Tensor[]
    const m = keel.tensor([[1, 2], [3, 4]]);
    assert.deepEqual(keel.ops.index(m, [null, keel.tensor([1, 0], { dtype: 'int64' })]).toArray(), [[2, 1], [4, 3]]); // Tensor?[]
    assert.equal(keel.ops.sum(m, { dtype: 'float64' }).dtype, 'float64'); // ScalarType
    assert.deepEqual(keel.ops.leakyRelu(keel.tensor([-2, 2]), 0.25).toArray(), [-0.5, 2]); // float Scalar
    assert.deepEqual(keel.ops.softmax.int(keel.tensor([0, 0]), 0).toArray(), [0.5, 0.5]);
    assert.deepEqual(keel.ops.cumsum(keel.tensor([1, 2, 3]), 0).toArray(), [1, 3, 6]);
    assert.deepEqual(keel.ops.gelu(keel.tensor([0]), { approximate: 'tanh' }).toArray(), [0]); // str with default
    const cl = keel.ops.contiguous(keel.ones([1, 2, 3, 3]), { memoryFormat: 'channelsLast' }); // MemoryFormat
    assert.deepEqual(cl.stride(), [18, 1, 6, 2]);
    assert.equal(keel.ops.zeros([2], { dtype: 'int32', device: 'cpu' }).dtype, 'int32'); // Device
    assert.equal(keel.ops.isNonzero(keel.tensor([1])), true); // bool return
    assert.equal(keel.ops.size.int(m, 1), 2); // int return
    assert.equal(keel.ops.resultType.Tensor(m, keel.tensor([1], { dtype: 'float64' })), 'float64'); // ScalarType return
    const list = [keel.ones([2]), keel.ones([1])];
    keel.ops._foreachAdd_(list, [1, 2.5]); // Scalar[]
    assert.deepEqual(list.map((t) => t.toArray()), [[2, 2], [3.5]]);
    const parts = keel.ops.split(keel.arange(5), 2); // Tensor[] return
    assert.deepEqual(parts.map((p) => p.toArray()), [[0, 1], [2, 3], [4]]);
    const [variance, mean] = keel.ops.varMean(keel.tensor([[1, 2], [3, 5]]), 1); // (Tensor, Tensor)
    assertClose(variance.toArray(), [0.5, 2]);
    assertClose(mean.toArray(), [1.5, 4]);
  });
});

test('a type mismatch names the operator, the overloads and what was passed', () => {
  keel.scope(() => {
    const a = keel.ones([2]);
    assert.throws(() => keel.ops.add(a, 'x' as never), (e: Error) => e instanceof TypeError && /aten::add: no overload accepts \(Tensor\(float32\[2\]\), "x"\)/.test(e.message) && /add\.Tensor/.test(e.message));
    assert.throws(() => keel.ops.add.Tensor(a, a, { beta: 1 } as never), /aten::add\.Tensor has no argument named 'beta'/);
    assert.throws(() => keel.ops.relu.default(a, a as never), /aten::relu takes at most 1 arguments, got 2/);
    assert.throws(() => keel.ops.sum(a, { dtype: 'float17' as never }), /no overload accepts/);
    assert.throws(() => keel.ops.sum.default(a, { dtype: 'float17' as never }), (e: Error) => e instanceof TypeError && /unknown dtype 'float17'/.test(e.message));
    assert.throws(() => keel.ops.narrow(a, 0, 1.5, 1), /aten::narrow: no overload accepts \(Tensor\(float32\[2\]\), 0, 1\.5, 1\)/);
    assert.throws(() => keel.ops.narrow.default(a, 0, 1.5, 1), (e: Error) => e instanceof TypeError && /aten::narrow: argument 'start' must be an integer, got 1\.5/.test(e.message));
    // a CUDA-only kernel on CPU: libtorch's message, without its list of registered backends
    assert.throws(() => keel.ops.batchNormStats(keel.ones([2, 2]), 1e-5), (e: Error) => /Could not run 'aten::batch_norm_stats' with arguments from the 'CPU' backend/.test(e.message) && e.message.length < 1500);
  });
});
