// Direct (unboxed) calls of the hottest overloads (native/fastops.cc,
// core/dispatch.ts): the same values, dtypes, gradients, errors and
// interception as the general boxed path, and the scope stack that tracks
// their results.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as keel from 'keel';

// the same module instances as 'keel' (dist/)
const dispatch = (await import(new URL('../../dist/core/dispatch.js', import.meta.url).href)) as typeof import('../dist/core/dispatch.js');
const { native } = (await import(new URL('../../dist/native/binding.js', import.meta.url).href)) as typeof import('../dist/native/binding.js');
const { B, DIRECT_BINARY, DIRECT_SCALAR, DIRECT_UNARY, directCalls } = dispatch;

const { ops } = keel;
// An empty options object makes a by-overload op take the general (boxed) path.
const GENERAL = {};

function same(a: keel.Tensor, b: keel.Tensor, what: string): void {
  assert.equal(a.dtype, b.dtype, `${what}: dtype`);
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  assert.deepEqual(a.toArray(), b.toArray(), `${what}: values`);
}

/** Both give the same tensor, or both throw the same message (an integer to a negative power, a bool subtracted). */
function sameOrSameError(direct: () => keel.Tensor, general: () => keel.Tensor, what: string): void {
  let d: keel.Tensor | Error;
  let g: keel.Tensor | Error;
  try { d = direct(); } catch (e) { d = e as Error; }
  try { g = general(); } catch (e) { g = e as Error; }
  if (d instanceof Error || g instanceof Error) {
    assert.ok(d instanceof Error && g instanceof Error, `${what}: one path threw (${String(d instanceof Error ? d.message : g)})`);
    assert.equal(d.message, g.message, what);
    return;
  }
  same(d, g, what);
}

function opOf(label: string): { name: string; overload: string } {
  const [name, overload = 'default'] = label.slice(6).split('.');
  return { name, overload };
}

function byOverload(label: string): (...args: unknown[]) => keel.Tensor {
  const { name, overload } = opOf(label);
  const camel = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return (ops as unknown as Record<string, Record<string, (...args: unknown[]) => keel.Tensor>>)[camel][overload];
}

describe('direct calls', () => {
  test('are on, and the addon lists the same overloads in the same order', () => {
    assert.equal(directCalls, true);
    const t = native.fastOps!();
    assert.deepEqual(t.unary, [...DIRECT_UNARY]);
    assert.deepEqual(t.binary, [...DIRECT_BINARY]);
    assert.deepEqual(t.scalar, [...DIRECT_SCALAR]);
  });

  test('give what the general path gives: every overload, float and integer tensors', () => {
    keel.scope(() => {
      const x = keel.tensor([[0.5, 2, 3], [4, 0.25, 6], [1, 1, 9]], { dtype: 'float32' });
      const y = keel.tensor([[1, 2, 0.5], [3, 1, 2], [0.5, 4, 1]], { dtype: 'float32' });
      const i = keel.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]], { dtype: 'int64' });
      const j = keel.tensor([[3, 1, 2], [1, 1, 1], [2, 2, 2]], { dtype: 'int64' });
      for (const label of DIRECT_UNARY) {
        const f = byOverload(label);
        same(f(x), f(x, GENERAL), label);
      }
      for (const label of DIRECT_BINARY) {
        const f = byOverload(label);
        const [a, b] = label === 'aten::bmm' ? [x.unsqueeze(0), y.unsqueeze(0)] : [x, y];
        same(f(a, b), f(a, b, GENERAL), label);
        if (!['aten::div.Tensor', 'aten::bmm', 'aten::mm', 'aten::matmul'].includes(label)) same(f(i, j), f(i, j, GENERAL), `${label} int64`);
      }
      for (const label of DIRECT_SCALAR) {
        const f = byOverload(label);
        for (const s of [2, 1.5, -3, true]) {
          sameOrSameError(() => f(x, s), () => f(x, s, GENERAL), `${label} float32 ${s}`);
          sameOrSameError(() => f(i, s), () => f(i, s, GENERAL), `${label} int64 ${s}`);
        }
      }
      // the by-type functions and the methods land on the same overloads
      same(ops.add(x, y), ops.add.Tensor(x, y, GENERAL), 'ops.add');
      same(ops.mul(i, 3), ops.mul.Scalar(i, 3, GENERAL), 'ops.mul with an int');
      same(ops.pow(x, 2), ops.pow.Tensor_Scalar(x, 2, GENERAL), 'ops.pow');
      same(x.add(y), ops.add.Tensor(x, y, GENERAL), 'x.add(y)');
      same(i.div(2), ops.div.Scalar(i, 2, GENERAL), 'i.div(2)');
      same(x.sum(), ops.sum.default(x, GENERAL), 'x.sum()');
      same(x.relu(), ops.relu.default(x, GENERAL), 'x.relu()');
      same(x.matmul(y), ops.matmul.default(x, y, GENERAL), 'x.matmul(y)');
      same(x.gt(y), ops.gt.Tensor(x, y, GENERAL), 'x.gt(y)');
      same(x.le(2), ops.le.Scalar(x, 2, GENERAL), 'x.le(2)');
      assert.equal(i.mul(2).dtype, 'int64', 'an integral number stays an int Scalar');
      assert.equal(i.mul(2.5).dtype, 'float32', 'a fractional one does not');
    });
  });

  test('record autograd as the general path does', () => {
    keel.scope(() => {
      const x = keel.tensor([0.5, -1, 2], { dtype: 'float64' }).requiresGrad_();
      const y = keel.tensor([1.5, 2, -0.5], { dtype: 'float64' }).requiresGrad_();
      const loss = x.mul(y).add(x.sigmoid()).sub(y.tanh()).div(y.abs().add(1)).pow(2).sum();
      assert.equal(loss.gradFn, 'SumBackward0');
      loss.backward();
      const gx = x.grad!.toArray();
      const gy = y.grad!.toArray();
      x.grad = undefined;
      y.grad = undefined;
      const general = ops.sum.default(ops.pow.Tensor_Scalar(ops.div.Tensor(ops.sub.Tensor(ops.add.Tensor(ops.mul.Tensor(x, y, GENERAL),
        ops.sigmoid.default(x, GENERAL), GENERAL), ops.tanh.default(y, GENERAL), GENERAL), ops.add.Scalar(ops.abs.default(y, GENERAL), 1, GENERAL), GENERAL), 2, GENERAL), GENERAL);
      general.backward();
      assert.deepEqual(x.grad!.toArray(), gx);
      assert.deepEqual(y.grad!.toArray(), gy);
      keel.noGrad(() => assert.equal(x.mul(y).requiresGrad, false, 'noGrad holds for direct calls'));
    });
  });

  test('an interceptor sees every op again; paused interception takes the direct path', () => {
    keel.scope(() => {
      const x = keel.ones([2]);
      const seen: string[] = [];
      const remove = keel.intercept({
        before: (call) => {
          seen.push(call.op);
          return undefined;
        },
      });
      try {
        x.add(x);
        x.mul(2);
        x.relu();
        ops.matmul(x, x);
        ops.sub.Tensor(x, x);
        keel.unintercepted(() => x.add(x));
      } finally {
        remove();
      }
      assert.deepEqual(seen, ['aten::add.Tensor', 'aten::mul.Scalar', 'aten::relu', 'aten::matmul', 'aten::sub.Tensor']);
      // an interceptor may replace inputs: the direct path must not have skipped it
      const swap = keel.intercept({ after: (call, r) => (call.op === 'aten::add.Tensor' ? (r as keel.Tensor).mul(0) : r) });
      try {
        assert.deepEqual(x.add(x).toArray(), [0, 0]);
      } finally {
        swap();
      }
      assert.deepEqual(x.add(x).toArray(), [2, 2]);
    });
  });

  test('an interceptor with `ops` sees those ops only, and the others keep their direct calls; beside one without, it sees every op', () => {
    keel.scope(() => {
      const x = keel.ones([2]);
      const seen: string[] = [];
      const binary = native.binary!;
      let directAdds = 0;
      native.binary = ((code: number, a: number, b: number) => {
        directAdds++;
        return binary(code, a, b);
      }) as typeof binary;
      const remove = keel.intercept({ ops: new Set(['aten::sigmoid', 'aten::softmax.int']), after: (call, r) => { seen.push(call.op); return r; } });
      try {
        x.add(x);
        x.sigmoid();
        x.relu();
        ops.softmax.int(x, 0);
        assert.deepEqual(seen, ['aten::sigmoid', 'aten::softmax.int']);
        assert.equal(directAdds, directCalls ? 1 : 0, 'add kept its direct call');
        seen.length = 0;
        const all = keel.intercept({ after: (_call, r) => r });
        try {
          x.add(x);
          x.relu();
        } finally {
          all();
        }
        assert.deepEqual(seen, ['aten::add.Tensor', 'aten::relu'], 'beside an interceptor of every op, every op');
        assert.equal(directAdds, directCalls ? 1 : 0);
      } finally {
        remove();
        native.binary = binary;
      }
    });
  });

  test('errors name the operator, as the general path does', () => {
    keel.scope(() => {
      const a = keel.ones([3]);
      const b = keel.ones([4]);
      assert.throws(() => a.add(b), (e: Error & { op?: string }) => /^aten::add\.Tensor: /.test(e.message) && e.op === 'aten::add.Tensor');
      assert.throws(() => a.matmul(keel.ones([2, 2])), { message: /^aten::matmul: / });
      const d = keel.ones([3]);
      d.dispose();
      assert.throws(() => a.add(d), /aten::add\.Tensor: argument 'other' is a disposed tensor/);
      assert.throws(() => d.relu(), /disposed/);
      assert.throws(() => native.binary!(B['add.Tensor'], a.id, 1e6), /aten::add\.Tensor: argument 'other' is not a live tensor/);
      assert.throws(() => native.binary!(999, a.id, a.id), TypeError);
      assert.throws(() => ops.add(a, 'x' as unknown as number), /no overload accepts/);
    });
  });

  test('memory: each result is tracked by the scope (or the safety net) like any other', () => {
    const before = keel.memory().tensors;
    const a = keel.ones([4]);
    for (let i = 0; i < 1000; i++) a.add(a).dispose();
    keel.scope(() => {
      for (let i = 0; i < 1000; i++) a.mul(a).relu();
    });
    assert.equal(keel.memory().tensors, before + 1);
    a.dispose();
    assert.equal(keel.memory().tensors, before);
  });
});

describe('the scope stack', () => {
  test('returned tensors move down past siblings freed in between; the outer scope still owns its own', () => {
    const before = keel.memory().tensors;
    const outer = keel.scope(() => {
      const mine = keel.ones([2]);
      const [r1, r2] = keel.scope(() => {
        const made = Array.from({ length: 50 }, (_, k) => keel.full([2], k));
        return [made[3], made[47]];
      });
      const inner2 = keel.scope(() => {
        keel.ones([9]);
        return { t: keel.scope(() => keel.full([1], 7)) };  // returned through two scopes
      });
      assert.equal(keel.memory().tensors, before + 4);
      assert.deepEqual([r1.toArray(), r2.toArray(), inner2.t.toArray()], [[3, 3], [47, 47], [7]]);
      keel.ones([3]);  // made after the inner scopes: freed by this one
      return mine.add(r1).add(r2);
    });
    assert.deepEqual(outer.toArray(), [51, 51]);
    assert.equal(keel.memory().tensors, before + 1);
    outer.dispose();
    assert.equal(keel.memory().tensors, before);
  });

  test('a throwing inner scope frees its own and leaves the outer scope whole', () => {
    const before = keel.memory().tensors;
    keel.scope(() => {
      const x = keel.ones([2]);
      assert.throws(() => keel.scope(() => {
        for (let i = 0; i < 20; i++) x.add(x);
        throw new Error('boom');
      }), /boom/);
      assert.equal(keel.memory().tensors, before + 1);
      assert.equal(x.isDisposed, false);
      x.add(x);
    });
    assert.equal(keel.memory().tensors, before);
  });

  test('kept tensors survive; a tensor disposed early is skipped', () => {
    const before = keel.memory().tensors;
    const kept = keel.scope(() => {
      const k = keel.ones([2]).keep();
      const gone = keel.ones([2]);
      gone.dispose();
      keel.ones([2]);
      return k.add(1) && k;
    });
    assert.equal(kept.isDisposed, false);
    assert.equal(keel.memory().tensors, before + 1);
    kept.dispose();
    assert.equal(keel.memory().tensors, before);
  });
});
