// Deterministic memory: memory() counts back to exactly where it started after
// a scope, whatever made the tensors (ops, backward, .grad, autograd.grad,
// hooks, custom functions, nested scopes, library helpers); kept tensors stay
// until disposed; the GC safety net frees what escapes every scope; and a long
// training loop in a child process keeps RSS flat.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as keel from 'keel';

function live(): { tensors: number; bytes: number } {
  return keel.memory();
}

/** Runs fn in a scope and checks that memory() is exactly back where it was. */
function balanced(what: string, fn: () => unknown): void {
  const before = live();
  keel.scope(() => {
    fn();  // what fn returns is not returned from the scope: all of it must go
  });
  assert.deepEqual(live(), before, `${what}: memory() after the scope`);
}

describe('memory() counts back to its start after a scope', () => {
  test('many tensors from ops, views, in-place ops, multi-output ops and lists', () => {
    const before = live();
    let inside = 0;
    keel.scope(() => {
      for (let i = 0; i < 200; i++) {
        const a = keel.randn([8, 8]);
        const b = a.matmul(a).relu().add(1).t().contiguous();
        b.mul_(2).add_(a);  // in place: no new handle kept
        const [values, indices] = b.max(1, true);
        const parts = b.split(3, 0);
        keel.cat([...parts, values.expand(8, 3).t()], 0).sum().item();
        indices.to('float32').mean();
      }
      inside = live().tensors;
    });
    assert.ok(inside >= before.tensors + 200 * 10, `the scope made tensors (${inside - before.tensors} live inside)`);
    assert.deepEqual(live(), before);
  });

  test('library helpers that make temporaries (where with numbers, index, data of float16, creation with casts)', () => {
    balanced('helpers', () => {
      const a = keel.randn([4, 5]);
      keel.where(a.gt(0), 1, 0);
      a.index([1, { start: 1, end: 4 }]);
      a.index([keel.tensor([0, 2, 3], { dtype: 'int64' }), null]);
      a.half().data();
      a.bfloat16().toArray();
      keel.tensor([[1, 2], [3, 4]], { dtype: 'bfloat16', requiresGrad: true });
      keel.arange(10).reshape(2, 5).toString();
    });
  });

  test('backward: gradients, .grad handles (one per gradient, owned by its tensor), retained non-leaf grads', () => {
    const w = keel.randn([5, 3], { requiresGrad: true }).keep();
    const start = live();
    keel.scope(() => {
      for (let i = 0; i < 50; i++) {
        const x = keel.randn([4, 5]);
        const h = x.matmul(w).tanh().retainGrad();
        h.square().sum().backward();
        const g1 = w.grad!;
        const g2 = w.grad!;  // the same handle: w owns it
        assert.equal(g1, g2);
        h.grad!.abs().sum();
        w.grad = null;
      }
    });
    assert.deepEqual(live(), start);
    // the gradient the last backward left lives in w, not in a handle
    w.dispose();
  });

  test('autograd.grad results, double backward (createGraph), allowUnused nulls', () => {
    const x = keel.randn([6], { requiresGrad: true }).keep();
    const unused = keel.randn([6], { requiresGrad: true }).keep();
    balanced('autograd.grad', () => {
      for (let i = 0; i < 30; i++) {
        const y = x.pow(3).sum();
        const [g] = keel.autograd.grad(y, x, { createGraph: true });
        const [gg, none] = keel.autograd.grad(g!.sum(), [x, unused], { allowUnused: true });
        assert.equal(none, null);
        assert.deepEqual(gg!.shape, [6]);
      }
    });
    x.dispose();
    unused.dispose();
  });

  test('hooks: the gradient handed to a hook, and a replacement it returns', () => {
    const x = keel.randn([4], { requiresGrad: true }).keep();
    const handle = x.registerHook((g) => g.mul(2));
    balanced('hooks', () => {
      for (let i = 0; i < 30; i++) {
        x.mul(3).sum().backward();
        x.grad = null;
      }
    });
    handle.remove();
    x.dispose();
  });

  test('custom autograd Functions: saved tensors are freed with their graph, with or without backward', () => {
    class Square extends keel.autograd.Function {
      static override forward(ctx: keel.autograd.FunctionContext, t: keel.Tensor): keel.Tensor {
        ctx.saveForBackward(t);
        return t.mul(t);
      }
      static override backward(ctx: keel.autograd.FunctionContext, g: keel.Tensor): keel.Tensor[] {
        const [t] = ctx.savedTensors;
        return [g.mul(t).mul(2)];
      }
    }
    const x = keel.randn([5], { requiresGrad: true }).keep();
    balanced('custom with backward', () => {
      for (let i = 0; i < 30; i++) Square.apply(x).sum().backward();
    });
    balanced('custom without backward', () => {
      for (let i = 0; i < 30; i++) Square.apply(x).sum();
    });
    balanced('custom under noGrad', () => keel.noGrad(() => Square.apply(x)));
    x.dispose();
  });

  test('nested scopes: returned tensors move to the outer scope and are freed there', () => {
    const before = live();
    let afterInner = 0;
    keel.scope(() => {
      const fromInner = keel.scope(() => {
        keel.randn([100]);  // freed by the inner scope
        return { a: keel.randn([3]), list: [keel.randn([2]), keel.randn([2])], map: new Map([['m', keel.randn([1])]]) };
      });
      afterInner = live().tensors;
      assert.equal(afterInner, before.tensors + 4, 'the four returned tensors, no more');
      assert.equal(fromInner.a.isDisposed, false);
      fromInner.a.add(fromInner.list[0].sum());
    });
    assert.deepEqual(live(), before);
  });

  test('a scope that throws frees what it made', () => {
    const before = live();
    assert.throws(() => keel.scope(() => {
      keel.randn([10]);
      keel.randn([3]).matmul(keel.randn([4]));
    }), /aten::matmul/);
    assert.deepEqual(live(), before);
  });

  test('kept tensors stay after their scope, then dispose() brings the count back', () => {
    const before = live();
    const kept = keel.scope(() => {
      const k = [keel.randn([10]).keep(), keel.keep(keel.ones([2, 2]))];
      keel.randn([10]);
      return k;
    });
    assert.equal(live().tensors, before.tensors + 2);
    assert.equal(live().bytes, before.bytes + 10 * 4 + 4 * 4);
    assert.equal(kept[0].isDisposed, false);
    keel.dispose(kept);
    assert.deepEqual(live(), before);
    // a returned tensor at top level is the caller's to dispose
    const returned = keel.scope(() => keel.randn([7]));
    assert.equal(live().tensors, before.tensors + 1);
    returned.dispose();
    assert.deepEqual(live(), before);
  });

  test('the GC safety net frees tensors that escape every scope', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const settle = async (): Promise<void> => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    };
    for (let i = 0; i < 3; i++) await settle();  // what earlier tests dropped
    const before = live().tensors;
    (() => {
      for (let i = 0; i < 100; i++) keel.randn([16]);  // never disposed, no scope
    })();
    assert.equal(live().tensors, before + 100);
    for (let round = 0; round < 50 && live().tensors > before; round++) await settle();
    assert.equal(live().tensors, before, 'finalizers freed the dropped tensors');
  });
});

// ---- a long training loop in a child process ---------------------------------

interface TrainResult {
  steps: number;
  warmup: number;
  ms: number;
  firstLoss: number;
  lastLoss: number;
  rssMB: Record<string, number>;
  heapTotalMB: Record<string, number>;
  tensorsAtSamples: Record<string, number>;
  tensorsAtStart: number;
  tensorsWithModel: number;
  tensorsAtEnd: number;
  bytesAtEnd: number;
}

const RSS_GROWTH_LIMIT_MB = 20;

function train(...args: string[]): TrainResult {
  const child = fileURLToPath(new URL('./train-child.js', import.meta.url));
  const r = spawnSync(process.execPath, [child, ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.ok(r.status === 0 && r.signal === null, `train-child failed (exit ${r.status}, signal ${r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TrainResult;
}

function growth(r: TrainResult): number {
  return r.rssMB[String(r.steps)] - r.rssMB[String(r.warmup)];
}

describe('a 10,000-step training loop (child process)', () => {
  test(`RSS grows less than ${RSS_GROWTH_LIMIT_MB} MB from step 1,000 to 10,000 and every tensor is freed`, { timeout: 150_000 }, (t) => {
    const r = train('--steps', '10000', '--warmup', '1000');
    const msg = `RSS (MB) by step ${JSON.stringify(r.rssMB)}, V8 heap ${JSON.stringify(r.heapTotalMB)}, ` +
      `growth ${growth(r).toFixed(1)} MB; tensors ${JSON.stringify(r.tensorsAtSamples)}; ${r.ms} ms; loss ${r.firstLoss.toFixed(3)} -> ${r.lastLoss.toFixed(4)}`;
    t.diagnostic(msg);
    console.log(`training loop: ${msg}`);
    assert.ok(r.lastLoss < r.firstLoss / 10, `the MLP did not train: ${msg}`);
    assert.ok(growth(r) < RSS_GROWTH_LIMIT_MB, `RSS grew ${growth(r).toFixed(1)} MB: ${msg}`);
    // + the handles of w2's and b2's gradients (zeroed in place, so kept), owned by them
    for (const [step, n] of Object.entries(r.tensorsAtSamples)) {
      assert.equal(n, r.tensorsWithModel + 2, `live tensors at step ${step}`);
    }
    assert.equal(r.tensorsAtEnd, r.tensorsAtStart);
    assert.equal(r.bytesAtEnd, 0);
  });

  test('the same criterion catches a leak of one gradient handle per step', { timeout: 150_000 }, (t) => {
    const r = train('--steps', '10000', '--warmup', '1000', '--leak');
    t.diagnostic(`with the leak: RSS ${JSON.stringify(r.rssMB)}, growth ${growth(r).toFixed(1)} MB, tensors at end ${r.tensorsAtEnd}`);
    assert.ok(growth(r) > RSS_GROWTH_LIMIT_MB, `a leaked 8 KB gradient per step grew RSS by only ${growth(r).toFixed(1)} MB`);
    assert.equal(r.tensorsAtEnd - r.tensorsAtStart, 10_000);
  });
});

describe('a parameter owns the handle its grad getter returns', () => {
  test('reading .grad many times, in a scope or not, makes no new live tensors', () => {
    const p = keel.randn([4, 3], { requiresGrad: true });
    keel.scope(() => p.mul(2).sum().backward());
    const g = p.grad!;
    const before = live();
    for (let i = 0; i < 100; i++) assert.equal(p.grad, g);
    keel.scope(() => {
      for (let i = 0; i < 100; i++) assert.equal(p.grad, g);
    });
    assert.deepEqual(live(), before);
    assert.equal(g.isDisposed, false, 'a scope does not free the parameter-owned gradient');
    assert.deepEqual(g.toArray(), [[2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]);
  });

  test('a new gradient tensor replaces (and frees) the old handle; clearing frees it', () => {
    const p = keel.randn([3], { requiresGrad: true });
    keel.scope(() => p.sum().backward());
    const first = p.grad!;
    keel.scope(() => p.sum().backward()); // accumulates in place: same tensor
    assert.equal(p.grad, first);
    assert.deepEqual(first.toArray(), [2, 2, 2]);
    const before = live();
    p.grad = null;
    assert.equal(first.isDisposed, true);
    assert.equal(p.grad, undefined);
    assert.equal(live().tensors, before.tensors - 1);
    keel.scope(() => p.mul(3).sum().backward());
    assert.deepEqual(p.grad!.toArray(), [3, 3, 3]);
    p.dispose();
    assert.equal(live().tensors, before.tensors - 2);
  });
});
