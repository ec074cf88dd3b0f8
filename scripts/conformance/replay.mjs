// Child process of scripts/conformance/driver.mjs: replays OpInfo cases (JSON
// from opinfo.py, an array of cases on stdin) against Keel and writes one line
// per phase to stdout, synchronously, so a parent sees how far it got when a
// case kills the process:
//   B <index> <phase>        before running phase (fwd, grad, out, inplace) of case <index>
//   R <index> <phase> <json> its verdict: "pass" or a one-line reason
// Runs on one thread, like the reference (torch.set_num_threads(1)).
import { writeSync, readFileSync } from 'node:fs';
import * as keel from 'keel';

keel.setNumThreads(1);

/** Tolerances per dtype. The same libtorch kernels on one thread agree to the last bits in
 *  float64; 1e-10 relative allows a different summation order and nothing more. float32:
 *  unit roundoff 6e-8, 1e-5 allows a few reassociated sums. Integers and bool are exact. */
export const TOL = {
  float64: { rtol: 1e-10, atol: 1e-12 },
  float32: { rtol: 1e-5, atol: 1e-6 },
  float16: { rtol: 1e-3, atol: 1e-3 },
  bfloat16: { rtol: 1e-2, atol: 1e-2 },
};

function camel(name) {
  return name.replace(/(?<=[a-zA-Z0-9])_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

const num = (x) => (x === 'nan' ? NaN : x === 'inf' ? Infinity : x === '-inf' ? -Infinity : x);

function makeTensor(e, grad) {
  const n = e.v.length;
  let t;
  switch (e.T) {
    case 'int64': t = keel.tensor(BigInt64Array.from(e.v, (x) => BigInt(x)), { shape: e.s }); break;
    case 'int32': t = keel.tensor(Int32Array.from(e.v), { shape: e.s }); break;
    case 'int16': t = keel.tensor(Int16Array.from(e.v), { shape: e.s }); break;
    case 'int8': t = keel.tensor(Int8Array.from(e.v), { shape: e.s }); break;
    case 'uint8': t = keel.tensor(Uint8Array.from(e.v), { shape: e.s }); break;
    case 'bool': t = keel.tensor(Uint8Array.from(e.v, (x) => (x ? 1 : 0)), { shape: e.s, dtype: 'bool' }); break;
    case 'complex64': case 'complex128': {
      // real and imaginary parts interleaved, as opinfo.py writes them
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = num(e.v[i]);
      const re = keel.tensor(a, { shape: [...e.s, 2], dtype: e.T === 'complex64' ? 'float32' : 'float64' });
      t = keel.ops.clone(keel.ops.viewAsComplex(re));
      break;
    }
    default: {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = num(e.v[i]);
      t = keel.tensor(a, { shape: e.s, dtype: e.T });
    }
  }
  if (grad && e.g) t.requiresGrad_(true);
  return t;
}

/** A JSON value from opinfo.py as Keel takes it. */
function decode(v, grad) {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map((x) => decode(x, grad));
  if ('T' in v) return makeTensor(v, grad);
  if ('f' in v) return num(v.f);
  if ('dtype' in v) return v.dtype;
  if ('mf' in v) return v.mf;
  if ('layout' in v) return v.layout;
  throw new Error(`cannot decode ${JSON.stringify(v).slice(0, 80)}`);
}

function tensorsIn(v, out = []) {
  if (v instanceof keel.Tensor) out.push(v);
  else if (Array.isArray(v)) for (const x of v) tensorsIn(x, out);
  return out;
}

function opFn(name, ov) {
  const fn = keel.ops[camel(name)];
  if (typeof fn !== 'function') throw new Error(`keel.ops has no ${camel(name)} (aten::${name})`);
  const by = fn[ov === '' ? 'default' : ov];
  if (typeof by !== 'function') throw new Error(`keel.ops.${camel(name)} has no overload .${ov}`);
  return by;
}

/**
 * Calls keel.ops.<name>.<ov>: arguments before the schema's `*` positionally, up to the first
 * one the sample left out; keyword-only arguments (and any after a gap) by name in the trailing
 * options object. `args` are [name, kwargOnly, value, schemaIndex]; `extra` are more by name.
 */
function invoke(name, ov, args, extra) {
  const positional = [];
  const options = { ...extra };
  for (const [n, kw, v, index] of args) {
    if (!kw && index === positional.length) positional.push(v);
    else options[n] = v;
  }
  const fn = opFn(name, ov);
  return Object.keys(options).length > 0 ? fn(...positional, options) : fn(...positional);
}

function closeTo(a, b, tol) {
  if (Number.isNaN(b)) return Number.isNaN(a);
  if (!Number.isFinite(b)) return a === b;
  return Math.abs(a - b) <= tol.atol + tol.rtol * Math.abs(b);
}

/** undefined when `actual` (Keel) matches `expected` (JSON), else the first difference. */
function compare(actual, expected, where, valuesToo = true) {
  if (expected === null) return actual == null ? undefined : `${where}: expected None, got ${describe(actual)}`;
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${where}: expected a list of ${expected.length}, got ${describe(actual)}`;
    if (actual.length !== expected.length) return `${where}: expected ${expected.length} results, got ${actual.length}`;
    for (let i = 0; i < expected.length; i++) {
      const d = compare(actual[i], expected[i], `${where}[${i}]`, valuesToo);
      if (d) return d;
    }
    return undefined;
  }
  if (typeof expected === 'object' && 'T' in expected) {
    if (!(actual instanceof keel.Tensor)) return `${where}: expected a Tensor, got ${describe(actual)}`;
    if (actual.dtype !== expected.T) return `${where}: dtype ${actual.dtype}, expected ${expected.T}`;
    const shape = actual.shape;
    if (JSON.stringify(shape) !== JSON.stringify(expected.s)) return `${where}: shape [${shape}], expected [${expected.s}]`;
    if (!valuesToo) return undefined;
    const complex = expected.T === 'complex64' || expected.T === 'complex128';
    const data = complex ? keel.ops.viewAsReal(keel.ops.resolveConj(actual)).data() : actual.data();
    const tol = TOL[expected.T === 'complex64' ? 'float32' : expected.T === 'complex128' ? 'float64' : expected.T];
    for (let i = 0; i < expected.v.length; i++) {
      const e = num(expected.v[i]);
      const a = expected.T === 'bool' ? data[i] !== 0 : Number(data[i]);
      const ok = tol ? closeTo(a, e, tol) : a === (typeof e === 'boolean' ? e : Number(e));
      if (!ok) return `${where}: value [${i}] = ${a}, expected ${e}`;
    }
    return undefined;
  }
  const e = typeof expected === 'object' && 'f' in expected ? num(expected.f) : expected;
  if (typeof e === 'number') {
    if (typeof actual !== 'number') return `${where}: expected the number ${e}, got ${describe(actual)}`;
    return closeTo(actual, e, TOL.float64) ? undefined : `${where}: ${actual}, expected ${e}`;
  }
  return actual === e ? undefined : `${where}: ${describe(actual)}, expected ${JSON.stringify(e)}`;
}

function describe(v) {
  if (v instanceof keel.Tensor) return `Tensor(${v.dtype}[${v.shape}])`;
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  return v === undefined ? 'undefined' : JSON.stringify(v);
}

const oneLine = (e) => String(e && e.message ? e.message : e).split('\n')[0].slice(0, 240);

/** Forward, then (where the case has one) the gradient; says each verdict itself. */
function phaseFwdGrad(c, index) {
  const verdict = (phase, v) => say(`R ${index} ${phase} ${JSON.stringify(v)}`);
  keel.scope(() => {
    const args = c.args.map(([n, kw, v, i]) => [n, kw, decode(v, true), i]);
    let res;
    try {
      res = invoke(c.name, c.ov, args);
    } catch (e) {
      verdict('fwd', c.fwd.error ? 'pass' : `Keel raised: ${oneLine(e)}`);
      if (c.grad) verdict('grad', 'not run: the forward call raised');
      return;
    }
    if (c.fwd.error) {
      verdict('fwd', `PyTorch raised (${c.fwd.error.slice(0, 120)}), Keel returned ${describe(res)}`);
      return;
    }
    verdict('fwd', compare(res, c.fwd.out, 'output', !c.nondet) ?? 'pass');
    if (!c.grad) return;
    say(`B ${index} grad`);
    verdict('grad', gradOf(c, args, res));
  });
}

function gradOf(c, args, res) {
  try {
    const ins = tensorsIn(args.map((a) => a[2])).filter((t) => t.requiresGrad);
    const outs = tensorsIn(Array.isArray(res) ? res : [res]).filter((t) => t.requiresGrad && (keel.isFloatingDType(t.dtype) || t.dtype.startsWith('complex')));
    if (outs.length !== c.grad.cot.length) return `${outs.length} outputs require grad, PyTorch had ${c.grad.cot.length}`;
    const cot = c.grad.cot.map((x) => decode(x, false));
    let gs;
    try {
      gs = keel.autograd.grad(outs, ins, { gradOutputs: cot, allowUnused: true });
    } catch (e) {
      return c.grad.error ? 'pass' : `Keel raised: ${oneLine(e)}`;
    }
    if (c.grad.error) return `PyTorch raised (${c.grad.error.slice(0, 120)}), Keel did not`;
    const d = compare(gs, c.grad.grads, 'grad');
    if (d === undefined) return 'pass';
    // values differ where the reference is not reproducible or PyTorch disables its own test:
    // excused if dtype and shape agree (counted as passing, listed in the notes)
    if (c.grad.nondet && compare(gs, c.grad.grads, 'grad', false) === undefined) return `excused: ${c.grad.nondet} (${d})`;
    return d;
  } catch (e) {
    return `harness: ${oneLine(e)}`;
  }
}

function phaseOut(c) {
  const o = c.outv;
  return keel.scope(() => {
    const args = c.args.map(([n, kw, v, i]) => [n, kw, decode(v, false), i]);
    const outs = o.outs.map(([n, dt]) => [n, keel.empty([0], { dtype: dt })]);
    let res;
    try {
      res = invoke(c.name, o.ov, args, Object.fromEntries(outs));
    } catch (e) {
      return o.error ? 'pass' : `Keel raised: ${oneLine(e)}`;
    }
    if (o.error) return `PyTorch raised (${o.error.slice(0, 120)}), Keel returned ${describe(res)}`;
    return compare(res, o.out, 'returned', !c.nondet) ?? compare(outs.map((x) => x[1]), o.written, 'out tensors', !c.nondet) ?? 'pass';
  });
}

function phaseInplace(c) {
  const ip = c.inplace;
  return keel.scope(() => {
    const args = c.args.map(([n, kw, v, i]) => [n, kw, decode(v, false), i]);
    let res;
    try {
      res = invoke(ip.name, ip.ov, args);
    } catch (e) {
      return ip.error ? 'pass' : `Keel raised: ${oneLine(e)}`;
    }
    if (ip.error) return `PyTorch raised (${ip.error.slice(0, 120)}), Keel returned ${describe(res)}`;
    return compare(res, ip.out, 'returned', !c.nondet) ?? compare(args[0][2], ip.self, 'self', !c.nondet) ?? 'pass';
  });
}

const say = (s) => writeSync(1, s + '\n');

const cases = JSON.parse(readFileSync(0, 'utf8'));
for (const { index, case: c } of cases) {
  say(`B ${index} fwd`);
  // for the harness's own test: a case that kills the process the way a segfault would
  if (process.env.KEEL_CONFORMANCE_CRASH === c.id) process.kill(process.pid, 'SIGSEGV');
  try {
    phaseFwdGrad(c, index);
  } catch (e) {
    say(`R ${index} fwd ${JSON.stringify(`harness: ${oneLine(e)}`)}`);
  }
  for (const [phase, run, has] of [['out', phaseOut, c.outv], ['inplace', phaseInplace, c.inplace]]) {
    if (!has) continue;
    say(`B ${index} ${phase}`);
    let r;
    try {
      r = run(c);
    } catch (e) {
      r = `harness: ${oneLine(e)}`;
    }
    say(`R ${index} ${phase} ${JSON.stringify(r)}`);
  }
}
