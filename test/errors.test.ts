// Error paths: each bad call throws an Error of the right class (TypeError for
// a wrong JS argument, Error for what libtorch refuses) whose message names
// what was wrong, frees what the call made, and leaves the process working.
// Inputs that have crashed the process run in a child process, so that a
// crash fails one test instead of killing the run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as keel from 'keel';

type ErrorClass = typeof Error | typeof TypeError;

/**
 * Runs fn in a scope and returns what it threw, after checking the class (exact,
 * so an Error is not a TypeError), every pattern against the message, that the
 * tensors the call made were freed, and that the engine still computes.
 */
function fails(fn: () => unknown, cls: ErrorClass, ...patterns: RegExp[]): Error {
  const before = keel.memory().tensors;
  let caught: unknown = undefined;
  let returned = false;
  keel.scope(() => {
    try {
      fn();
      returned = true;
    } catch (e) {
      caught = e;
    }
  });
  assert.ok(!returned, `expected ${cls.name} matching ${patterns.join(' ')}, but the call returned`);
  assert.ok(caught instanceof Error, `expected an Error, got ${String(caught)}`);
  assert.equal(caught.constructor, cls, `expected ${cls.name}, got ${caught.constructor.name}: ${caught.message}`);
  for (const p of patterns) assert.match(caught.message, p);
  assert.equal(keel.memory().tensors, before, 'the failed call left tensors alive');
  assertAlive();
  return caught;
}

function assertAlive(): void {
  keel.scope(() => assert.equal(keel.ones([2, 2]).matmul(keel.ones([2, 1])).sum().item(), 4));
}

/** An op called with arguments its types forbid, as plain JS can. */
function loose(fn: unknown): (...args: unknown[]) => unknown {
  return fn as (...args: unknown[]) => unknown;
}

const a = keel.randn([2, 3]).keep();

describe('wrong shapes', () => {
  test('matmul of 2x3 by 4x5 names the operator and both shapes', () => {
    fails(() => keel.ops.matmul(a, keel.randn([4, 5])), Error, /aten::matmul/, /2x3 and 4x5/);
    fails(() => a.matmul(keel.randn([4, 5])), Error, /aten::matmul/, /2x3 and 4x5/);
  });

  test('add that cannot broadcast names the sizes and the dimension', () => {
    fails(() => a.add(keel.randn([4])), Error, /aten::add/, /size of tensor a \(3\) must match the size of tensor b \(4\)/, /dimension 1/);
  });

  test('conv2d with the wrong number of input channels names both', () => {
    fails(() => keel.ops.conv2d(keel.randn([1, 3, 8, 8]), keel.randn([4, 2, 3, 3])), Error,
      /aten::conv2d/, /\[4, 2, 3, 3\]/, /\[1, 3, 8, 8\]/, /2 channels, but got 3 channels/);
  });

  test('cat of mismatched sizes and with a dim out of range', () => {
    fails(() => keel.cat([keel.randn([2, 3]), keel.randn([2, 4])]), Error, /aten::cat/, /Expected size 3 but got size 4 for tensor number 1/);
    fails(() => keel.cat([a, a], 5), Error, /aten::cat/, /Dimension out of range.*got 5/);
  });

  test('reshape and view to an incompatible shape', () => {
    fails(() => a.reshape(4, 2), Error, /aten::reshape/, /\[4, 2\]/, /size 6/);
    fails(() => a.t().view(6), Error, /aten::view/, /reshape/);
  });
});

describe('wrong dtypes', () => {
  test('an int tensor where a float one is required', () => {
    const i = keel.tensor([[1, 2]], { dtype: 'int64' }).keep();
    fails(() => keel.ops.mm(i, keel.ones([2, 1])), Error, /aten::mm/, /Long/, /Float/);
    fails(() => keel.ops.linalgInv(keel.randint(0, 5, [3, 3])), Error, /linalg[._]inv/, /floating point/, /Long/);
    i.dispose();
  });

  test('requiresGrad on an int tensor names the dtype', () => {
    fails(() => keel.randint(0, 5, [3]).requiresGrad_(), Error, /only floating-point tensors can require gradients/, /Long/);
    fails(() => keel.zeros([3], { dtype: 'int32', requiresGrad: true }), Error, /only floating-point/, /Int/);
    fails(() => { keel.tensor([true, false]).requiresGrad = true; }, Error, /only floating-point/, /Bool/);
  });

  test('indexing with a float tensor', () => {
    fails(() => a.indexSelect(0, keel.tensor([0, 1])), Error, /aten::index_select/, /int32 or int64/);
    fails(() => a.index([keel.tensor([0, 1])]), Error, /aten::index/, /long, byte or bool/);
    fails(() => a.gather(1, keel.tensor([[0, 1, 1], [0, 0, 0]])), Error, /aten::gather/, /int64/);
  });
});

describe('wrong argument types', () => {
  test('a string where a tensor goes', () => {
    fails(() => keel.ops.relu('x' as never), TypeError, /aten::relu/, /argument 'self' must be a Tensor, got "x"/);
    // several overloads: the message lists them
    fails(() => keel.ops.add('x' as never, a), TypeError, /aten::add/, /no overload accepts \("x"/, /aten::add\.Tensor\(self: Tensor, other: Tensor/);
  });

  test('a missing required argument is named', () => {
    fails(() => loose(keel.ops.matmul)(a), TypeError, /aten::matmul/, /missing required argument 'other'/);
    fails(() => loose(keel.ops.relu)(), TypeError, /missing required argument 'self'/);
    fails(() => keel.ops.relu(null as never), TypeError, /missing required argument 'self'/);
  });

  test('an unknown option name is named, with the signature', () => {
    fails(() => keel.ops.sum.dim_IntList(a, [0], { keepDimm: true } as never), TypeError,
      /aten::sum\.dim_IntList/, /no argument named 'keepDimm'/, /keepdim\?: bool/);
    fails(() => keel.ops.relu(a, { foo: 1 } as never), TypeError, /no argument named 'foo'/);
  });

  test('too many arguments', () => {
    fails(() => loose(keel.ops.relu)(a, a, a), TypeError, /aten::relu/, /at most 1 arguments, got 3/);
    fails(() => loose(keel.ops.relu.default)(a, 1, 2), TypeError, /at most 1 arguments, got 3/);
  });

  test('a non-integer where an int goes', () => {
    fails(() => a.select(0, 1.5), TypeError, /aten::select\.int/, /argument 'index' must be an integer/, /1\.5/);
    fails(() => a.select(0, Number.NaN), TypeError, /argument 'index' must be an integer/);
    fails(() => a.select(0, Infinity), TypeError, /argument 'index' must be an integer/);
    fails(() => a.select(0, 1n as never), TypeError, /argument 'index' must be a number, got bigint/);
    fails(() => a.reshape(2.5, 2), TypeError, /aten::reshape/, /argument 'shape' must be an integer/);
    fails(() => keel.zeros([2, -1]), TypeError, /zeros/, /non-negative integers/);
  });

  test('a bad dtype name', () => {
    fails(() => keel.zeros([2], { dtype: 'float33' as never }), TypeError, /unknown dtype 'float33'/, /float32/);
    fails(() => keel.ops.to.dtype(a, 'float33' as never), TypeError, /aten::to\.dtype/, /argument 'dtype'/, /unknown dtype 'float33'/);
    // a string that is not a dtype is read as a device: the message still names it
    const e = fails(() => a.to('float33' as never), Error, /'float33'/);
    assert.match(e.message, /device|dtype/);
  });

  test('nested data that is ragged or not numbers', () => {
    fails(() => keel.tensor([[1, 2], [3]]), TypeError, /ragged/, /expected length 2 at depth 1/);
    fails(() => keel.tensor(['a'] as never), TypeError, /numbers or booleans, got string/);
  });
});

describe('disposed tensors', () => {
  test('used as an argument, alone or in a list, the argument is named', () => {
    const d = keel.ones([2, 3]);
    d.dispose();
    fails(() => keel.ops.relu(d), Error, /aten::relu/, /argument 'self' is a disposed tensor/);
    fails(() => a.add(d), Error, /aten::add\.Tensor/, /argument 'other' is a disposed tensor/);
    fails(() => keel.cat([a, d]), Error, /aten::cat/, /argument 'tensors\[1\]' is a disposed tensor/);
  });

  test('.shape, .item(), .grad and .data() of a disposed tensor throw; dispose twice is fine', () => {
    const before = keel.memory().tensors;
    const d = keel.ones([1]);
    d.dispose();
    assert.equal(keel.memory().tensors, before);
    fails(() => d.shape, Error, /disposed/);
    fails(() => d.item(), Error, /disposed/);
    fails(() => d.grad, Error, /disposed/);
    fails(() => d.data(), Error, /disposed/);
    assert.equal(d.isDisposed, true);
    assert.equal(String(d), 'tensor(<disposed>)');
    d.dispose();
    keel.dispose([d, d]);
    assert.equal(keel.memory().tensors, before);
    assertAlive();
  });
});

describe('out-of-range indices', () => {
  test('select, indexSelect, gather, narrow', () => {
    fails(() => a.select(0, 5), Error, /aten::select\.int/, /index 5 out of range/, /\[2, 3\]/);
    fails(() => a.select(2, 0), Error, /aten::select\.int/, /Dimension out of range/);
    fails(() => a.indexSelect(0, keel.tensor([7], { dtype: 'int64' })), Error, /aten::index_select/, /out of range/);
    fails(() => a.gather(1, keel.tensor([[0, 9, 1], [0, 0, 0]], { dtype: 'int64' })), Error, /aten::gather/, /index 9 is out of bounds for dimension 1 with size 3/);
    fails(() => a.narrow(1, 2, 5), Error, /aten::narrow/, /start \(2\) \+ length \(5\) exceeds dimension size \(3\)/);
    fails(() => a.index([keel.tensor([3], { dtype: 'int64' })]), Error, /aten::index/, /index 3 is out of bounds for dimension 0 with size 2/);
  });

  test('size(dim) out of range', () => {
    assert.throws(() => a.size(2), (e: unknown) => e instanceof RangeError && /size\(2\).*2-d/.test(e.message));
  });
});

describe('values and autograd', () => {
  test('item() of a multi-element tensor says how many elements', () => {
    fails(() => a.item(), Error, /item/, /6 elements/);
    fails(() => keel.zeros([0]).item(), Error, /item/, /0 elements/);
  });

  test('backward of a non-scalar without a gradient names the shape', () => {
    const x = keel.randn([3], { requiresGrad: true }).keep();
    fails(() => x.mul(2).backward(), Error, /backward/, /scalar outputs/, /\[3\]/);
    fails(() => x.mul(2).backward(keel.ones([4])), Error, /backward/, /\[4\]/, /\[3\]/);
    fails(() => keel.randn([1]).sum().backward(), Error, /backward/, /does not require grad/);
    x.dispose();
  });

  test('backward twice without retainGraph; with it, twice works', () => {
    const x = keel.randn([3], { requiresGrad: true }).keep();
    keel.scope(() => {
      const y = x.mul(x).sum();
      y.backward();
      fails(() => y.backward(), Error, /backward/, /second time/, /retain_graph/);
    });
    keel.scope(() => {
      const y = x.mul(x).sum();
      x.grad = null;
      y.backward(undefined, { retainGraph: true });
      y.backward();
      assert.deepEqual(x.grad!.toArray(), x.mul(4).toArray());
    });
    x.dispose();
  });

  test('a hook that throws: its own error comes out of backward, then backward works again', () => {
    const x = keel.randn([3], { requiresGrad: true }).keep();
    const thrown = new RangeError('my hook failed: 42');
    const h = x.registerHook(() => {
      throw thrown;
    });
    const e = fails(() => x.mul(2).sum().backward(), RangeError, /^my hook failed: 42$/);
    assert.equal(e, thrown, 'the very error object the hook threw');
    assert.equal(x.grad, undefined, 'no gradient was accumulated');
    h.remove();
    keel.scope(() => {
      x.mul(2).sum().backward();
      assert.deepEqual(x.grad!.toArray(), [2, 2, 2]);
    });
    x.dispose();
  });

  test('a hook that throws something other than an Error: that value comes out of backward', () => {
    const x = keel.randn([3], { requiresGrad: true }).keep();
    x.registerHook(() => {
      throw 'a string from the hook';  // eslint-disable-line no-throw-literal
    });
    let caught: unknown;
    keel.scope(() => {
      try {
        x.mul(2).sum().backward();
      } catch (e) {
        caught = e;
      }
    });
    // today the string is lost: "backward: JavaScript callback threw"
    assert.ok(caught === 'a string from the hook' || (caught instanceof Error && caught.message.includes('a string from the hook')),
      `the value the hook threw was lost: got ${caught instanceof Error ? `${caught.constructor.name}: ${caught.message}` : String(caught)}`);
    assertAlive();
    x.dispose();
  });

  test('a hook that returns the wrong shape is named', () => {
    const x = keel.randn([3], { requiresGrad: true }).keep();
    x.registerHook(() => keel.ones([4]));
    fails(() => x.sum().backward(), Error, /hook/, /\[4\]/, /\[3\]/);
    x.dispose();
  });

  test('a hook that returns something other than a tensor is named', () => {
    const x = keel.randn([3], { requiresGrad: true }).keep();
    x.registerHook((() => 5) as never);
    fails(() => x.sum().backward(), TypeError, /hook/);
    x.dispose();
  });

  test('a custom Function whose backward returns a wrong shape names the function, input and shapes', () => {
    class Double extends keel.autograd.Function {
      static override forward(_ctx: keel.autograd.FunctionContext, t: keel.Tensor): keel.Tensor {
        return t.mul(2);
      }
      static override backward(): keel.Tensor[] {
        return [keel.ones([5])];
      }
    }
    const x = keel.randn([3], { requiresGrad: true }).keep();
    fails(() => Double.apply(x).sum().backward(), Error, /Double\.backward/, /shape \[5\]/, /input 0/, /3/);
    x.dispose();
  });

  test('a custom Function whose backward returns too many gradients, or throws', () => {
    class TwoGrads extends keel.autograd.Function {
      static override forward(_ctx: keel.autograd.FunctionContext, t: keel.Tensor): keel.Tensor {
        return t.mul(2);
      }
      static override backward(_ctx: keel.autograd.FunctionContext, g: keel.Tensor): keel.Tensor[] {
        return [g, g];
      }
    }
    const thrown = new SyntaxError('custom backward threw');
    class Throws extends keel.autograd.Function {
      static override forward(ctx: keel.autograd.FunctionContext, t: keel.Tensor): keel.Tensor {
        ctx.saveForBackward(t);
        return t.mul(2);
      }
      static override backward(): keel.Tensor[] {
        throw thrown;
      }
    }
    const x = keel.randn([3], { requiresGrad: true }).keep();
    fails(() => TwoGrads.apply(x).sum().backward(), Error, /TwoGrads\.backward returned 2 gradients for 1 forward argument/);
    const e = fails(() => Throws.apply(x).sum().backward(), SyntaxError, /^custom backward threw$/);
    assert.equal(e, thrown);
    x.dispose();
  });

  test('a custom Function that saved tensors: backward twice without retainGraph throws, as built-in ops do', () => {
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
    const x = keel.randn([3], { requiresGrad: true }).keep();
    keel.scope(() => {
      const y = Square.apply(x).sum();
      y.backward();
      // today the second backward runs and accumulates into x.grad again
      fails(() => y.backward(), Error, /second time|retainGraph|retain_graph|freed/);
    });
    keel.scope(() => {
      x.grad = null;
      const y = Square.apply(x).sum();
      y.backward(undefined, { retainGraph: true });
      y.backward();
      assert.deepEqual(x.grad!.toArray(), x.mul(4).toArray());
    });
    x.dispose();
  });

  test('autograd.grad of an input that was not used, and assigning a grad of the wrong shape', () => {
    const w = keel.randn([2], { requiresGrad: true }).keep();
    const v = keel.randn([2], { requiresGrad: true }).keep();
    fails(() => keel.autograd.grad(w.sum(), [w, v]), Error, /autograd\.grad/, /allow_unused/);
    fails(() => { w.grad = keel.ones([3]); }, Error, /grad/, /\[3\]/, /\[2\]/);
    fails(() => w.add_(1), Error, /aten::add_/, /leaf Variable that requires grad/);
    w.dispose();
    v.dispose();
  });
});

// ---- inputs that have crashed the process: each runs in a child ---------------

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs an ES module body (with `keel` imported) in a child node; it must exit 0 and print what the call threw. */
function inChild(body: string): { status: number | null; signal: NodeJS.Signals | null; out: string } {
  const code = `import * as keel from 'keel';
try { (() => { ${body} })(); console.log('RETURNED'); }
catch (e) { console.log('THREW ' + (e && e.constructor && e.constructor.name) + ': ' + (e && e.message)); }
console.log('ALIVE ' + keel.ones([2]).sum().item());`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

/** The call must complete normally in a child that stays alive. */
function returns(body: string, ...patterns: RegExp[]): void {
  const r = inChild(`${body}; console.log('VALUE ' + JSON.stringify(value));`.replace(/^/, 'let value; '));
  assert.ok(r.status === 0 && r.signal === null, `the process crashed (exit ${r.status}, signal ${r.signal}) on:\n  ${body}\noutput:\n${r.out.slice(-2000)}`);
  assert.match(r.out, /RETURNED/, r.out);
  assert.match(r.out, /ALIVE 2/);
  for (const p of patterns) assert.match(r.out, p);
}

function survives(body: string, ...patterns: RegExp[]): void {
  const r = inChild(body);
  assert.ok(r.status === 0 && r.signal === null,
    `the process crashed (exit ${r.status}, signal ${r.signal}) on:\n  ${body}\noutput:\n${r.out.slice(-2000)}`);
  assert.match(r.out, /ALIVE 2/);
  assert.match(r.out, /THREW \w*Error: /, `expected the call to throw an Error:\n${r.out.slice(-2000)}`);
  for (const p of patterns) assert.match(r.out, p);
}

describe('inputs that crashed the process (run in a child process)', () => {
  test('an int list whose element getter throws', () => {
    survives(`const arr = [1, 0]; Object.defineProperty(arr, 0, { get() { throw new Error('getter boom'); } });
      keel.ops.permute(keel.randn([2, 3]), arr);`, /THREW Error: getter boom/);
  });

  test('an int list whose element getter calls back into Keel (re-entrant op call) works', () => {
    returns(`const arr = [1, 0]; Object.defineProperty(arr, 1, { get() { keel.ops.add(keel.ones([2]), keel.ones([2])); return 0; } });
      value = keel.ops.permute(keel.randn([2, 3]), arr).shape`, /VALUE \[3,2\]/);
  });

  test('a fixed-size int list (int[2]) given empty: thnn_conv2d kernel_size []', () => {
    survives(`keel.ops.thnnConv2d.default(keel.randn([1, 1, 4, 3]), keel.randn([1, 3]), []);`, /kernel_size|int\[2\]|2 values/);
  });

  test('a fixed-size int list (int[2]) given empty: max_unpool2d output_size []', () => {
    survives(`keel.ops.maxUnpool2d(keel.randn([1, 4]), keel.zeros([4], { dtype: 'int64' }), []);`);
  });

  test('a fixed-size int list (int[4]) given one element expands, as PyTorch does; other lengths are refused', () => {
    // libtorch reads padding[1..3] without checking the list's length
    returns(`value = keel.ops.reflectionPad2d(keel.randn([1, 4, 2]), [1]).shape`, /VALUE \[1,6,4\]/);
    survives(`keel.ops.reflectionPad2d(keel.randn([1, 4, 2]), [1, 1, 1]);`, /TypeError: aten::reflection_pad2d: argument 'padding' needs 4 integers \(or one\), got 3/);
  });

  test('internal operators whose kernels crash on malformed input are not generated', () => {
    const ops = keel.ops as Record<string, unknown>;
    for (const name of ['_localScalarDense', '_stack', '_computeLinearCombination', '_removeBatchDim', 'quantizedLstmCell',
      // found by the 1,000,000-call fuzz (seeds 7300000–7300008)
      '_cummaxHelper', '_cumminHelper', '_choleskySolveHelper', '_reshapeAlias', '_reshapeAliasCopy', '_sobolEngineFf_',
      '_sobolEngineDraw', '_sobolEngineScramble_', '_adaptiveAvgPool2dBackward', '_adaptiveAvgPool3dBackward',
      '_nativeMultiHeadAttention', '_transformerEncoderLayerFwd', '_pdistBackward', '_cdistBackward',
      '_padPackedSequence', '_packPaddedSequence', '_packPaddedSequenceBackward']) {
      assert.equal(ops[name], undefined, name);
    }
  });

  test('align_tensors of an empty list', () => {
    survives(`keel.ops.alignTensors([]);`, /RangeError: aten::align_tensors: tensors must not be empty/);
  });

  test('native_channel_shuffle with groups that do not divide the channels (SIGFPE in the kernel)', () => {
    survives(`keel.ops.nativeChannelShuffle(keel.zeros([1, 2, 1], { dtype: 'int32' }), 4);`, /must be divisible by groups/);
    survives(`keel.ops.nativeChannelShuffle(keel.zeros([1, 2, 1], { dtype: 'int32' }), 0);`, /groups must be positive/);
    survives(`keel.ops.nativeChannelShuffle(keel.zeros([0, 3, 4, 2]), 3);`, /the input is empty/);
    survives(`keel.ops.nativeChannelShuffle(keel.zeros([3, 0, 3, 4]), { groups: 2 });`, /the input is empty/);
  });

  test('adaptive pooling to a huge output size is refused instead of looping for days', () => {
    survives(`keel.ops.adaptiveAvgPool3d(keel.randn([1, 2, 1, 2]), [1, 2 ** 53 - 1, 0]);`, /output cells per channel/);
  });
});

/**
 * Several calls in one child (each would crash the process without its
 * check): each `check` must throw an Error matching its patterns, each
 * `checkReturns` must return (setting `value`), and the child must survive.
 */
function batch(fn: (check: (body: string, ...p: RegExp[]) => void, checkReturns: (body: string, ...p: RegExp[]) => void) => void): void {
  const calls: { body: string; patterns: RegExp[]; returns: boolean }[] = [];
  fn((body, ...patterns) => calls.push({ body, patterns, returns: false }), (body, ...patterns) => calls.push({ body, patterns, returns: true }));
  const code = calls.map((c, i) => `try { let value; (() => { ${c.body} })(); console.log('CALL ${i} RETURNED ' + JSON.stringify(value)); }
catch (e) { console.log('CALL ${i} THREW ' + (e && e.constructor && e.constructor.name) + ': ' + (e && e.message)); }`).join('\n');
  const r = inChild(code);
  assert.ok(r.status === 0 && r.signal === null, `the process crashed (exit ${r.status}, signal ${r.signal})\noutput:\n${r.out.slice(-3000)}`);
  assert.match(r.out, /ALIVE 2/);
  calls.forEach((c, i) => {
    const line = r.out.split('\n').find((l) => l.startsWith(`CALL ${i} `)) ?? '';
    assert.match(line, c.returns ? /RETURNED/ : /THREW \w*Error: /, `call ${c.body}:\n${line}`);
    for (const p of c.patterns) assert.match(line, p, `call ${c.body}`);
  });
}

describe('crashers found by the long fuzz (issue 12), in child processes', () => {
  // several crash PyTorch 1.13 too
  test('slow_conv3d / slow_conv3d_forward with a weight of size 0 in dim 1 (SIGFPE)', () => {
    batch((check) => {
      check(`keel.ops.slowConv3d(keel.randn([1, 1, 3, 3, 3]), keel.randn([1, 0, 2, 2, 2]), [2, 2, 2]);`,
        /RangeError: aten::slow_conv3d: weight has size 0 in dim 1/);
      check(`keel.ops.slowConv3dForward(keel.randn([1, 1, 3, 3, 3]), keel.randn([1, 0, 2, 2, 2]), [2, 2, 2], null, [1, 1, 1], [0, 0, 0]);`,
        /RangeError: aten::slow_conv3d_forward: weight has size 0 in dim 1/);
    });
  });

  test('_weight_norm_interface_backward on empty or mismatched tensors (SIGFPE, SIGSEGV)', () => {
    batch((check) => {
      check(`keel.ops._weightNormInterfaceBackward(keel.randn([0, 3]), keel.randn([0, 3]), keel.randn([0]), keel.randn([0]), 0);`,
        /RangeError: aten::_weight_norm_interface_backward: saved_v must be a non-empty tensor/);
      check(`keel.ops._weightNormInterfaceBackward(keel.randn([2, 3]), keel.randn([2, 3]), keel.randn([2]), keel.randn([0]), 0);`,
        /saved_norms must hold 2 values/);
      check(`keel.ops._weightNormInterfaceBackward(keel.randn([0]), keel.randn([2, 3]), keel.randn([2]), keel.randn([2]), 0);`,
        /grad_w has shape \[0\] but saved_v has shape \[2, 3\]/);
    });
  });

  test('_pdist_forward of a 3-D input (SIGSEGV)', () => {
    batch((check) => {
      check(`keel.ops._pdistForward(keel.randn([2, 3, 4]).transpose(0, 2));`, /RangeError: aten::_pdist_forward: expects a 2-D input/);
    });
  });

  test('lu_unpack with pivots that are not lu_factor\'s for LU_data (SIGSEGV)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.luUnpack(keel.randn([3, 3]), keel.tensor([[1, 2, 3], [1, 2, 3]], { dtype: 'int32' }));`,
        /RangeError: aten::lu_unpack: LU_pivots must have shape \[3\]/);
      check(`keel.ops.luUnpack(keel.randn([2, 4, 2]), keel.tensor([1, 2], { dtype: 'int32' }));`, /LU_pivots must have shape \[2, 2\]/);
      checkReturns(`const [lu, piv] = keel.ops.linalgLuFactor(keel.randn([2, 3, 3])); value = keel.ops.luUnpack(lu, piv).map((t) => t.shape)`,
        /RETURNED \[\[2,3,3\],\[2,3,3\],\[2,3,3\]\]/);
    });
  });

  test('_batch_norm_impl_index_backward without the saved statistics (SIGSEGV)', () => {
    batch((check) => {
      check(`keel.ops._batchNormImplIndexBackward(0, keel.randn([2, 3]), keel.randn([2, 3]), null, null, null, null, null, true, 1e-5, [true, true, true], keel.randn([1]));`,
        /RangeError: aten::_batch_norm_impl_index_backward: save_mean is required/);
    });
  });

  test('_logcumsumexp.out / logcumsumexp.out into an out tensor of another dtype (SIGABRT)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops._logcumsumexp.out(keel.randn([3]), 0, { out: keel.zeros([3], { dtype: 'float64' }) });`,
        /RangeError: aten::_logcumsumexp.out: out has dtype float64 but self has dtype float32/);
      check(`keel.ops.logcumsumexp.out(keel.randn([3]), 0, { out: keel.zeros([3], { dtype: 'int64' }) });`, /out has dtype int64/);
      checkReturns(`const o = keel.zeros([3]); keel.ops.logcumsumexp.out(keel.zeros([3]), 0, { out: o }); value = o.toArray()`,
        /RETURNED \[0,0\.69314\d*,1\.09861\d*\]/);
    });
  });

  test('layout mkldnn with a dtype other than float32, on every factory op (heap corruption)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.zeros([2, 2], { layout: 'mkldnn', dtype: 'bfloat16' });`,
        /RangeError: aten::zeros: layout 'mkldnn' holds float32 tensors only, got dtype bfloat16/);
      check(`keel.ops.newZeros(keel.randn([2]), [2, 2], { layout: 'mkldnn', dtype: 'bfloat16' });`, /aten::new_zeros: layout 'mkldnn' holds float32/);
      check(`keel.ops.newZeros(keel.randn([2], { dtype: 'float64' }), [2], { layout: 'mkldnn' });`, /got dtype float64/);
      check(`keel.ops.empty([2], { layout: 'mkldnn', dtype: 'float16' });`, /aten::empty\S*: layout 'mkldnn'/);
      checkReturns(`value = keel.ops.zeros([2, 2], { layout: 'mkldnn' }).shape`, /RETURNED \[2,2\]/);
    });
  });

  test('_embedding_bag with a 1-D weight and 2-D offsets (SIGSEGV)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops._embeddingBag(keel.randn([1], { dtype: 'float16' }), keel.zeros([3], { dtype: 'int32' }), keel.zeros([4, 0], { dtype: 'int8' }), true, undefined, false, undefined, true, 3);`,
        /RangeError: aten::_embedding_bag: weight must be 2-D/);
      check(`keel.ops.embeddingBag(keel.randn([3, 2]), keel.zeros([3], { dtype: 'int64' }), keel.zeros([2, 1], { dtype: 'int64' }));`,
        /RangeError: aten::embedding_bag: offsets must be 1-D/);
      checkReturns(`value = keel.ops.embeddingBag(keel.randn([3, 2]), keel.tensor([0, 2, 1], { dtype: 'int64' }), keel.tensor([0, 1], { dtype: 'int64' }))[0].shape`, /RETURNED \[2,2\]/);
    });
  });

  test('unfold_backward with step 0 and _weight_norm_interface on an empty v (SIGFPE)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.unfoldBackward(keel.randn([2, 2]), [4], 0, 2, 0);`, /RangeError: aten::unfold_backward: step must be positive, got 0/);
      check(`keel.ops.unfoldBackward(keel.randn([2, 2]), [4], 0, -1, 1);`, /RangeError: aten::unfold_backward: size must be non-negative, got -1/);
      checkReturns(`value = keel.ops.unfoldBackward(keel.ones([3, 2]), [4], 0, 2, 1).toArray()`, /RETURNED \[1,2,2,1\]/);
      // seed 7400003: a window larger than the dim (free(): invalid pointer)
      check(`keel.ops.unfoldBackward(keel.zeros([2, 1, 1, 0], { dtype: 'int64' }), [1], -1, 4, 4);`, /RangeError: aten::unfold_backward: size 4 is larger than input_sizes\[0\] = 1/);
      check(`keel.ops.unfoldBackward(keel.zeros([2, 2]), [4], 0, 2, 1);`, /grad_in must have the shape unfold\(0, 2, 1\) gives for input_sizes \[4\]: \[3, 2\], got \[2, 2\]/);
      check(`keel.ops.unfoldBackward(keel.zeros([2, 2]), [4], 3, 2, 2);`, /dim 3 is out of range/);
      checkReturns(`const x = keel.arange(0, 5).to('float64').requiresGrad_(); keel.ops.unfold(x, 0, 2, 2).mul(keel.tensor([[1, 2], [3, 4]], { dtype: 'float64' })).sum().backward();
        value = [keel.ops.unfoldBackward(keel.tensor([[1, 2], [3, 4]], { dtype: 'float64' }), [5], 0, 2, 2).toArray(), x.grad.toArray()]`, /RETURNED \[\[1,2,3,4,0\],\[1,2,3,4,0\]\]/);
      check(`keel.ops._weightNormInterface(keel.randn([0, 3]), keel.randn([1, 3]));`, /RangeError: aten::_weight_norm_interface: v must be a non-empty tensor/);
      check(`keel.ops._weightNormInterface(keel.randn([]), keel.randn([]));`, /v must be a non-empty tensor of at least 1 dim, got shape \[\]/);
      checkReturns(`value = keel.ops._weightNormInterface(keel.ones([2, 2]), keel.ones([2, 1]), 0).map((t) => t.shape)`, /RETURNED \[\[2,2\],\[2,1\]\]/);
    });
  });

  test('native_batch_norm_backward without the saved statistics (SIGSEGV, fuzz seed 7300004)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.nativeBatchNormBackward(keel.randn([2, 3]), keel.randn([2, 3]), null, null, null, null, null, true, 1e-5, [true, true, true]);`,
        /RangeError: aten::native_batch_norm_backward: save_mean is required \(train = true\)/);
      checkReturns(`value = keel.ops.nativeBatchNormBackward(keel.ones([2, 3]), keel.randn([2, 3]), null, keel.zeros([3]), keel.ones([3]), null, null, false, 0, [true, false, false])[0].toArray()`,
        /RETURNED \[\[1,1,1\],\[1,1,1\]\]/);
      check(`keel.ops.nativeBatchNormBackward(keel.randn([2, 3]), keel.randn([2, 3]), null, null, null, keel.zeros([2]), keel.ones([3]), true, 1e-5, [true, true, true]);`,
        /save_mean must have shape \[3\] \(one value per channel\), got \[2\]/);
      check(`keel.ops.nativeBatchNormBackward(keel.randn([2, 4]), keel.randn([2, 3]), null, null, null, keel.zeros([3]), keel.ones([3]), true, 1e-5, [true, true, true]);`,
        /grad_out has shape \[2, 4\] but input has shape \[2, 3\]/);
      // the values libtorch gives with the statistics its forward saved
      checkReturns(`const x = keel.tensor([[1, 2], [3, 6]]); const [, m, r] = keel.ops.nativeBatchNorm(x, null, null, null, null, true, 0.1, 0);
        value = keel.ops.nativeBatchNormBackward(keel.ones([2, 2]), x, null, null, null, m, r, true, 0, [true, false, false])[0].toArray()`,
        /RETURNED \[\[0,0\],\[0,0\]\]/);
    });
  });

  test('native_batch_norm on an input with no samples or no channels (SIGFPE, fuzz seed 7300007)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.nativeBatchNorm(keel.randn([3, 0], { dtype: 'float64' }), undefined, keel.tensor(1, { dtype: 'float64' }), undefined, undefined, true, -Infinity, 2.76);`,
        /RangeError: aten::native_batch_norm: input of shape \[3, 0\] has no channels/);
      check(`keel.ops.nativeBatchNorm(keel.randn([0, 3, 4]), null, null, null, null, true, 0.1, 1e-5);`, /input of shape \[0, 3, 4\] has no samples/);
      check(`keel.ops.nativeBatchNorm(keel.randn([3, 2]), keel.randn([5]), null, null, null, true, 0.1, 1e-5);`, /weight must have shape \[2\] \(one value per channel\), got \[5\]/);
      checkReturns(`value = keel.ops.batchNorm(keel.randn([0, 3]), null, null, null, null, true, 0.1, 1e-5, false).shape`, /RETURNED \[0,3\]/);
      checkReturns(`value = keel.ops.nativeBatchNorm(keel.tensor([[1, 2], [3, 6]]), null, null, null, null, true, 0.1, 0)[1].toArray()`, /RETURNED \[2,4\]/);
    });
  });

  test('lstm / gru / rnn with hidden states, weights or batch sizes that do not fit num_layers (SIGSEGV, fuzz seed 7300008)', () => {
    const P = `[keel.full([12, 2], 0.1), keel.full([12, 3], -0.05), keel.full([12], 0.01), keel.zeros([12])]`;
    const H = `[keel.zeros([1, 2, 3]), keel.zeros([1, 2, 3])]`;
    batch((check, checkReturns) => {
      // the fuzz's call
      check(`keel.ops.lstm.data(keel.zeros([3, 0], { dtype: 'bool' }), keel.zeros([3, 2], { dtype: 'int64' }), [keel.zeros([4, 4, 1, 1], { dtype: 'bool' }), keel.zeros([1, 2, 1], { dtype: 'float64' })], [], true, -1, 2.06, false, false);`,
        /RangeError: aten::lstm\S*: num_layers must be at least 1, got -1/);
      check(`keel.ops.lstm.data(keel.zeros([3, 2]), keel.tensor([2, 1], { dtype: 'int64' }), [keel.zeros([4, 4, 1, 1]), keel.zeros([1, 2, 1])], ${P}, true, 1, 0, false, false);`,
        /hx\[0\] must be 3-D/);
      check(`keel.ops.lstm.data(keel.zeros([3, 2]), keel.tensor([2, 1], { dtype: 'int64' }), [keel.zeros([1, 2, 3]), keel.zeros([1, 3, 3])], ${P}, true, 1, 0, false, false);`,
        /h0 and c0 must have the same batch size/);
      check(`keel.ops.lstm.data(keel.zeros([3, 2]), keel.tensor([1, 2], { dtype: 'int64' }), ${H}, ${P}, true, 1, 0, false, false);`,
        /batch_sizes must be positive and non-increasing .* got \[1, 2\]/);
      check(`keel.ops.lstm.data(keel.zeros([3, 2]), keel.tensor([2, 2], { dtype: 'int64' }), ${H}, ${P}, true, 1, 0, false, false);`,
        /batch_sizes add up to 4 but data has 3 rows/);
      check(`keel.ops.lstm.input(keel.zeros([2, 3, 2]), [keel.zeros([1, 3, 3]), keel.zeros([1, 3, 3])], ${P}, true, 2, 0, false, false, false);`,
        /params must hold 4 tensors per layer and direction \(8 for num_layers 2; 10 with projections\), got 4/);
      check(`keel.ops.gru.input(keel.zeros([2, 3, 2]), keel.zeros([1, 3, 3]), [], true, 0, 0, false, false, false);`, /aten::gru\S*: num_layers must be at least 1, got 0/);
      check(`keel.ops.rnnTanh.input(keel.zeros([2, 3, 2]), keel.zeros([2, 3, 3]), [keel.zeros([3, 2]), keel.zeros([3, 3])], false, 1, 0, false, false, false);`,
        /hx has 2 layer states, num_layers 1 needs 1/);
      // valid calls give PyTorch's values (torch.lstm on the same inputs: 0.042359 and 0.029989)
      checkReturns(`const x = keel.arange(12).reshape([2, 3, 2]).div(10);
        value = keel.ops.lstm.input(x, [keel.zeros([1, 3, 3]), keel.zeros([1, 3, 3])], ${P}, true, 1, 0, false, false, false)[0].select(0, 1).select(0, 0).toArray().map((v) => +v.toFixed(6))`,
        /RETURNED \[0.042359,0.042359,0.042359\]/);
      checkReturns(`value = keel.ops.lstm.data(keel.arange(6).reshape([3, 2]).div(10), keel.tensor([2, 1], { dtype: 'int64' }), ${H}, ${P}, true, 1, 0, false, false)[0].select(0, 2).toArray().map((v) => +v.toFixed(6))`,
        /RETURNED \[0.029989,0.029989,0.029989\]/);
    });
  });

  test('replication_pad3d_backward with a gradient of another shape than the padded output (SIGSEGV, fuzz seed 7500007)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.replicationPad3dBackward(keel.zeros([3, 0, 4]), keel.zeros([1, 4, 2, 1]), [0, 1, -9007199254740991, 1, 5, 3]);`,
        /RangeError: aten::replication_pad3d_backward: padding .* makes the padded shape .* negative/);
      check(`keel.ops.replicationPad3dBackward(keel.zeros([1, 4, 2, 1]), keel.zeros([1, 4, 2, 1]), [0, 1, 1, 1, 5, 3]);`,
        /grad_output must have the padded output's shape \[1, 12, 4, 2\], got \[1, 4, 2, 1\]/);
      check(`keel.ops.reflectionPad2dBackward(keel.zeros([1, 2, 7, 9]), keel.zeros([1, 2, 5, 5]), [1, 1, 1, 1]);`, /shape \[1, 2, 7, 7\], got \[1, 2, 7, 9\]/);
      // the gradient autograd gives, and the op on the same inputs: each border cell adds into its edge
      checkReturns(`const x = keel.zeros([1, 1, 1, 2], { dtype: 'float64' }).requiresGrad_(); keel.ops.replicationPad2d(x, [1, 0, 0, 0]).mul(keel.tensor([[[[1, 2, 3]]]], { dtype: 'float64' })).sum().backward();
        value = [x.grad.toArray(), keel.ops.replicationPad2dBackward(keel.tensor([[[[1, 2, 3]]]], { dtype: 'float64' }), x.detach(), [1, 0, 0, 0]).toArray()]`,
        /RETURNED \[\[\[\[\[3,3\]\]\]\],\[\[\[\[3,3\]\]\]\]\]/);
    });
  });

  test('batch_norm_update_stats without samples (SIGFPE, seed 7500009); embedding_backward with indices past num_weights (heap corruption, seed 7500003)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.batchNormUpdateStats(keel.zeros([0, 3]), undefined, undefined, 1.31);`, /RangeError: aten::batch_norm_update_stats: input of shape \[0, 3\] has no samples/);
      check(`keel.ops.batchNormUpdateStats(keel.zeros([3, 0]), null, null, 0.1);`, /has no channels/);
      checkReturns(`value = keel.ops.batchNormUpdateStats(keel.tensor([[1, 2], [3, 6]]), null, null, 0.1).map((t) => t.toArray())`, /RETURNED \[\[2,4\],\[1,4\]\]/);
      check(`keel.ops.embeddingBackward(keel.zeros([0], { dtype: 'float64' }), keel.zeros([2], { dtype: 'int32' }), 3, 2, true, false);`,
        /RangeError: aten::embedding_backward: grad must have shape \[2, embedding_dim\] \(one row per index\), got \[0\]/);
      check(`keel.ops.embeddingBackward(keel.ones([2, 4]), keel.tensor([0, 5], { dtype: 'int64' }), 3, -1, false, false);`, /index 5 is out of range for num_weights 3/);
      check(`keel.ops.embeddingDenseBackward(keel.ones([2, 4]), keel.tensor([-1, 0], { dtype: 'int64' }), 3, -1, false);`, /index -1 is out of range/);
      // the gradient autograd gives for embedding, and the op on the same inputs
      checkReturns(`const w = keel.zeros([3, 2], { dtype: 'float64' }).requiresGrad_(); const i = keel.tensor([0, 2, 0], { dtype: 'int64' });
        keel.ops.embedding(w, i).mul(keel.tensor([[1, 2], [3, 4], [5, 6]], { dtype: 'float64' })).sum().backward();
        value = [w.grad.toArray(), keel.ops.embeddingBackward(keel.tensor([[1, 2], [3, 4], [5, 6]], { dtype: 'float64' }), i, 3, -1, false, false).toArray()]`,
        /RETURNED \[\[\[6,8\],\[0,0\],\[3,4\]\],\[\[6,8\],\[0,0\],\[3,4\]\]\]/);
    });
  });

  test('histogramdd with fewer or more bin counts than dimensions (SIGSEGV, read past the list)', () => {
    batch((check, checkReturns) => {
      check(`keel.ops.histogramdd(keel.randn([4, 1], { dtype: 'float64' }), [], [1.39, 2.6]);`,
        /RangeError: aten::histogramdd: bins must give one count \(or one tensor of edges\) per dimension: 1 for input of shape \[4, 1\], got 0/);
      check(`keel.ops.histogramdd(keel.randn([3, 3, 2]), [], undefined, keel.randn([2]));`, /per dimension: 2 for input of shape \[3, 3, 2\], got 0/);
      check(`keel.ops.histogramdd(keel.randn([4, 2]), [3]);`, /per dimension: 2 .* got 1/);
      check(`keel.ops.histogramdd(keel.randn([4, 2]), [3, 3, 3]);`, /per dimension: 2 .* got 3/);
      check(`keel.ops.histogramdd(keel.randn([4]), [3]);`, /input must have at least 2 dims/);
      checkReturns(`value = keel.ops.histogramdd(keel.tensor([[0, 0], [1, 1], [1, 0.5]]), [2, 2], [0, 1, 0, 1])[0].toArray()`,
        /RETURNED \[\[1,0\],\[0,2\]\]/);
      checkReturns(`value = keel.ops.histogramdd(keel.tensor([[0, 0], [1, 1]]), 2)[0].shape`, /RETURNED \[2,2\]/);
    });
  });

  test('broadcast_to a view of more than 2^60 bytes (V8 aborted on the memory report, SIGTRAP)', () => {
    batch((check, checkReturns) => {
      checkReturns(`value = keel.ops.broadcastTo(keel.tensor(1, { dtype: 'float64' }), [5, 5, 2 ** 53 - 1]).shape`, /RETURNED \[5,5,9007199254740991\]/);
    });
  });

  test('SVD-based LAPACK ops on a matrix holding inf are refused (they never return)', () => {
    batch((check, checkReturns) => {
      const inf = `const a = keel.randn([3, 3]); a.view(-1).select(0, 4).fill_(Infinity);`;
      for (const [name, call] of [['pinverse', 'pinverse(a)'], ['svd', 'svd(a)'], ['linalg_svd', 'linalgSvd(a)'],
        ['linalg_pinv', 'linalgPinv(a, 1e-15)'], ['_linalg_svd', '_linalgSvd(a)'], ['linalg_lstsq', 'linalgLstsq(a, keel.randn([3, 2]))']]) {
        const arg = name === 'linalg_svd' || name === '_linalg_svd' ? 'A' : 'self';
        check(`${inf} keel.ops.${call};`, new RegExp(`THREW Error: aten::${name}\\S*: input '${arg}' holds non-finite values \\(LAPACK does not return on them\\)`));
      }
      check(`const b = keel.randn([3, 2]); b.view(-1).select(0, 0).fill_(-Infinity); keel.ops.linalgLstsq(keel.randn([3, 3]), b, { driver: 'gelsd' });`,
        /input 'b' holds non-finite values/);
      checkReturns(`value = keel.ops.linalgSvd(keel.eye(3)).map((t) => t.shape)`, /RETURNED \[\[3,3\],\[3\],\[3,3\]\]/);
    });
  });
});
