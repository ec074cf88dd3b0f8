// The Tensor API against PyTorch: creation, metadata, values, conversion,
// indexing, random numbers from the same generator.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';
import { assertClose } from './helpers/assert.js';
import { runTorch } from './helpers/torch.js';

test('creation functions match PyTorch', () => {
  const ref = runTorch<Record<string, unknown>>(`
torch.manual_seed(7)
out = {
  'arange': L(torch.arange(2, 11, 3, dtype=torch.float32)),
  'linspace': L(torch.linspace(-1, 1, 7)),
  'eye': L(torch.eye(2, 3)),
  'full': L(torch.full((2, 2), 1.5)),
  'randn': L(torch.randn(5)),
  'rand': L(torch.rand(2, 3)),
  'randint': L(torch.randint(0, 10, (6,))),
}`);
  keel.scope(() => {
    assert.deepEqual(keel.arange(2, 11, 3).toArray(), ref.arange);
    assertClose(keel.linspace(-1, 1, 7).toArray(), ref.linspace as number[], { rtol: 1e-7 });
    assert.deepEqual(keel.eye(2, 3).toArray(), ref.eye);
    assert.deepEqual(keel.full([2, 2], 1.5).toArray(), ref.full);
    keel.manualSeed(7);
    // the same CPU generator as PyTorch: the same stream for the same seed
    assertClose(keel.randn([5]).toArray(), ref.randn as number[], { rtol: 1e-6 });
    assertClose(keel.rand([2, 3]).toArray(), ref.rand as number[], { rtol: 1e-6 });
    assert.deepEqual(keel.randint(0, 10, [6]).toArray(), ref.randint);
  });
});

test('tensor() from nested arrays and typed arrays, with dtypes', () => {
  keel.scope(() => {
    const t = keel.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.equal(t.ndim, 2);
    assert.equal(t.numel(), 6);
    assert.deepEqual(t.toArray(), [[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(Array.from(t.data() as Float32Array), [1, 2, 3, 4, 5, 6]);
    assert.equal(keel.tensor([true, false]).dtype, 'bool');
    assert.deepEqual(keel.tensor([true, false]).toArray(), [true, false]);
    assert.equal(keel.tensor(new Float64Array([1, 2])).dtype, 'float64');
    assert.equal(keel.tensor(new Int32Array([1, 2])).dtype, 'int32');
    assert.deepEqual(keel.tensor(new Float32Array(6), { shape: [2, 3] }).shape, [2, 3]);
    const big = keel.tensor([2 ** 40 + 1], { dtype: 'int64' });
    assert.equal(big.item(), 2 ** 40 + 1);
    assert.equal((big.data() as BigInt64Array)[0], 2n ** 40n + 1n);
    for (const dtype of ['float64', 'float32', 'bfloat16', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'] as const) {
      const x = keel.tensor([0, 1, 2], { dtype });
      assert.equal(x.dtype, dtype);
      assert.deepEqual(x.toArray(), dtype === 'bool' ? [false, true, true] : [0, 1, 2], dtype);
    }
    assert.deepEqual(keel.tensor([0.1], { dtype: 'bfloat16' }).toArray(), [0.10009765625]);
    assert.deepEqual(keel.tensor([0.1], { dtype: 'float16' }).toArray(), [0.0999755859375]);
    assert.equal(keel.tensor(3.5).item(), 3.5);
    assert.deepEqual(keel.tensor(3.5).shape, []);
    assert.throws(() => keel.tensor([[1, 2], [3]]), /ragged nested array/);
    assert.throws(() => keel.tensor(['a'] as never), /elements must be numbers or booleans/);
    assert.throws(() => keel.tensor(new Float32Array(5), { shape: [2, 3] }), /holds 20 bytes but shape \[2, 3\] of Float needs 24/);
  });
});

test('to(), views, indexing and broadcasting match PyTorch', () => {
  const ref = runTorch<Record<string, unknown>>(`
x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
out = {
  'permute': L(x.permute(2, 0, 1)),
  'transpose': L(x.transpose(0, 2)),
  'index': L(x[1, :, torch.tensor([3, 0])]),
  'slice': L(x[:, 1:3, ::2]),
  'select': L(x[:, -1]),
  'bcast': L(x[0] * torch.tensor([1., 10., 100., 1000.]) - torch.tensor([[1.], [2.], [3.]])),
  'mean': L(x.mean(dim=(0, 2), keepdim=True)),
  'std': L(x.std(dim=1)),
  'max': L(x.max(dim=2)),
}`);
  keel.scope(() => {
    const x = keel.arange(24).reshape(2, 3, 4);
    assert.deepEqual(x.permute(2, 0, 1).toArray(), ref.permute);
    assert.deepEqual(x.transpose(0, 2).toArray(), ref.transpose);
    assert.deepEqual(x.index([1, null, keel.tensor([3, 0], { dtype: 'int64' })]).toArray(), ref.index);
    assert.deepEqual(x.index([null, { start: 1, end: 3 }, { step: 2 }]).toArray(), ref.slice);
    assert.deepEqual(x.index([null, -1]).toArray(), ref.select);
    const b = x.select(0, 0).mul(keel.tensor([1, 10, 100, 1000])).sub(keel.tensor([[1], [2], [3]]));
    assert.deepEqual(b.toArray(), ref.bcast);
    assertClose(x.mean([0, 2], true).toArray(), ref.mean as number[], { rtol: 1e-6 });
    assertClose(x.std(1).toArray(), ref.std as number[], { rtol: 1e-6 });
    const [v, i] = x.max(2);
    assert.deepEqual([v.toArray(), i.toArray()], ref.max);
    assert.equal(x.to('float64').dtype, 'float64');
    assert.equal(x.to({ dtype: 'int32' }).dtype, 'int32');
    assert.equal(x.to('cpu').device, 'cpu');
    assert.equal(x.double().dtype, 'float64');
    assert.equal(x.half().dtype, 'float16');
    assert.equal(x.bfloat16().dtype, 'bfloat16');
    assert.throws(() => x.to('tpu' as never), /device|Expected one of/i);
  });
});

test('autograd: requiresGrad, grad, backward options, noGrad, enableGrad, detach, gradFn', () => {
  keel.scope(() => {
    const w = keel.tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    assert.equal(w.requiresGrad, true);
    assert.equal(w.isLeaf, true);
    const y = w.mul(w).sum();
    assert.equal(y.gradFn, 'SumBackward0');
    y.backward(undefined, { retainGraph: true });
    assert.deepEqual(w.grad!.toArray(), [2, 4, 6]);
    y.backward(); // accumulates
    assert.deepEqual(w.grad!.toArray(), [4, 8, 12]);
    w.grad = null;
    assert.equal(w.grad, undefined);
    const z = keel.noGrad(() => w.mul(2));
    assert.equal(z.requiresGrad, false);
    keel.noGrad(() => assert.equal(keel.enableGrad(() => w.mul(2)).requiresGrad, true));
    assert.equal(w.detach().requiresGrad, false);
    const v = w.mul(3);
    v.backward(keel.tensor([1, 0, 2], { dtype: 'float64' }));
    assert.deepEqual(w.grad!.toArray(), [3, 0, 6]);
    const [g] = keel.autograd.grad(w.pow(3).sum(), w);
    assert.deepEqual(g!.toArray(), [3, 12, 27]);
  });
});

test('gradient hooks see and replace gradients; remove() stops them', () => {
  keel.scope(() => {
    const w = keel.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    const seen: number[][] = [];
    const h = w.registerHook((g) => {
      seen.push(g.toArray() as number[]);
      return g.mul(10);
    });
    w.mul(w).sum().backward();
    assert.deepEqual(seen, [[2, 4]]);
    assert.deepEqual(w.grad!.toArray(), [20, 40]);
    h.remove();
    w.grad = null;
    w.mul(w).sum().backward();
    assert.deepEqual(w.grad!.toArray(), [2, 4]);
  });
});

test('a custom autograd Function: TS forward and backward, saved tensors freed with the graph', () => {
  class Cube extends keel.autograd.Function {
    static override forward(ctx: keel.autograd.FunctionContext, x: keel.Tensor): keel.Tensor {
      ctx.saveForBackward(x);
      return x.pow(3);
    }
    static override backward(ctx: keel.autograd.FunctionContext, g: keel.Tensor): keel.Tensor {
      const [x] = ctx.savedTensors;
      return g.mul(x.pow(2)).mul(3);
    }
  }
  const before = keel.memory().tensors;
  keel.scope(() => {
    const x = keel.tensor([1, -2, 0.5], { dtype: 'float64', requiresGrad: true });
    const y = Cube.apply<keel.Tensor>(x);
    assert.equal(y.gradFn, 'Cube');
    assert.deepEqual(y.toArray(), [1, -8, 0.125]);
    y.sum().backward();
    assert.deepEqual(x.grad!.toArray(), [3, 12, 0.75]);
  });
  assert.equal(keel.memory().tensors, before, 'saved tensors are released when the graph goes');
});

test('scope frees what it made, keeps what it returns and what was kept', () => {
  const before = keel.memory();
  let kept: keel.Tensor | undefined;
  const returned = keel.scope(() => {
    const a = keel.ones([1000]);
    const inner = keel.scope(() => ({ b: a.mul(2), c: [a.add(1)] }));
    kept = keel.keep(a.sub(1));
    a.mul(5);
    return inner.b;
  });
  assert.equal(keel.memory().tensors, before.tensors + 2);
  assert.equal(keel.scope(() => returned.sum().item()), 2000);
  returned.dispose();
  kept!.dispose();
  assert.deepEqual(keel.memory(), before);
  assert.throws(() => returned.shape, /disposed/);
});
