// The fuzz test's child process (run by fuzz.test.ts, never by `node --test`
// directly): calls random operators of keel.ops with bad and borderline
// arguments and checks that each call returns or throws a JS Error. A crash
// (a signal, an abort) kills this process; the parent sees it and reads the
// last call from the log written before each call.
//
//   node build/test/fuzz-child.js --seed 1 --calls 12000 --log /tmp/fuzz.log [--start i] [--skip op,op]
//   node build/test/fuzz-child.js --seed 1 --only i       (just call i, printed first)
//
// Call i depends only on (seed, i): its own random stream and libtorch seed,
// fresh argument tensors. So --start resumes after a crash, --skip leaves out
// operators (by keel.ops name) without changing the other calls, and --only
// reproduces one call alone.
//
// Prints one JSON line: { seed, calls, returns, throws, nonErrorThrows, leaks, ... }.
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as keel from 'keel';

type Fn = ((...args: unknown[]) => unknown) & Record<string, (...args: unknown[]) => unknown>;
/** [name, kind, flags, fixed list length] as scripts/gen-ops.mjs writes them (ArgKind in core/dispatch.ts). */
type ArgSpec = [string, number, number, number?];
type OverloadSpec = [string, ArgSpec[], number[], number];

const K = {
  Tensor: 0, TensorList: 1, OptionalTensorList: 2, Int: 3, Float: 4, Bool: 5, Scalar: 6, String: 7,
  ScalarType: 8, Layout: 9, MemoryFormat: 10, Device: 11, IntList: 12, FloatList: 13, BoolList: 14, Generator: 15, ScalarList: 16,
} as const;
const OPTIONAL = 1;
const DEFAULTED = 2;

// ---- options ----------------------------------------------------------------

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const SEED = Number(option('seed', '1'));
const CALLS = Number(option('calls', '12000'));
const START = Number(option('start', '0'));
const ONLY = option('only', '');
const LOG = option('log', '');
const EXTRA_SKIP = new Set(option('skip', '').split(',').filter((s) => s !== ''));

// ---- the operators, with their argument kinds from the generated specs -------

const root = join(dirname(createRequire(import.meta.url).resolve('keel')), '..');
const genDir = join(root, 'src', 'ops', 'generated');
const specsByAten = new Map<string, OverloadSpec[]>();
for (const file of readdirSync(genDir)) {
  if (!file.endsWith('.ts') || file === 'index.ts') continue;
  const text = readFileSync(join(genDir, file), 'utf8');
  for (const m of text.matchAll(/defineOp\("([^"]+)", (\[[\s\S]*?\n\])\)/g)) {
    specsByAten.set(m[1], JSON.parse(m[2].replace(/,(\s*\])/g, '$1')) as OverloadSpec[]);
  }
}

// Every operator, less those whose names say they may legitimately write
// files or run for days: from_file (it creates the file it is given) and the
// orthogonal polynomials of degree n (n steps per element: n = 2^53 runs for
// days). Allocation is capped by the parent (ulimit -d), so a huge but valid
// size fails with an Error instead of swapping.
const SKIP = /^fromFile$|Polynomial/;

const ops = keel.ops as unknown as Record<string, Fn>;
const opKeys = Object.keys(ops)
  .filter((k) => typeof ops[k] === 'function' && specsByAten.has(ops[k].name))
  .filter((k) => !SKIP.test(k))
  .sort();
if (opKeys.length < 1000) throw new Error(`fuzz-child: found only ${opKeys.length} operators with specs`);

// ---- seeded randomness -------------------------------------------------------

let state = 1;
/** Starts call i's own random stream. */
function seedCall(i: number): void {
  state = (Math.imul(SEED >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
  for (let k = 0; k < 4; k++) rand();
  keel.manualSeed((SEED % 1_000_000) * 1_000_000 + i);
}
function rand(): number {
  // mulberry32
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const chance = (p: number): boolean => rand() < p;
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

// ---- argument generators --------------------------------------------------------

const DTYPES: keel.DType[] = ['float32', 'float64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool', 'float16', 'bfloat16', 'complex64'];
const EDGE_NUMBERS = [Number.NaN, Infinity, -Infinity, 1e300, -1e300, 1e13, -1e13, 2 ** 53 - 1, -(2 ** 53), 2 ** 62, 0.5, -2.5, -0, 1e-300, Number.MIN_VALUE];
const STRINGS = ['', 'none', 'mean', 'sum', 'valid', 'same', 'tanh', 'floor', 'trunc', 'reflect', 'replicate', 'circular', 'constant',
  'bilinear', 'nearest', 'bicubic', 'zeros', 'border', 'reduced', 'complete', 'L', 'U', 'fro', 'nuc', 'gelsy', 'linear', 'ij', 'xy',
  'float32', 'cpu', 'cuda', 'meta', 'x'.repeat(1000), 'é∂😀', '\u0000', 'aten::add'];
const DEVICES: unknown[] = ['cpu', 'cpu:0', 'cpu:-1', 'meta', 'cuda', 'cuda:99', 'xla', 'cpu:x', '', 'CPU', { type: 'cpu' }, { type: 'cuda', index: -1 }, { type: 7 }];

let made: keel.Tensor[] = [];

function shape(): number[] {
  const nd = pick([0, 0, 1, 1, 1, 2, 2, 2, 3, 4]);
  const dims: number[] = [];
  let numel = 1;
  for (let i = 0; i < nd; i++) {
    const d = chance(0.08) ? 0 : int(1, 4);
    if (numel * Math.max(d, 1) > 64) break;
    dims.push(d);
    numel *= Math.max(d, 1);
  }
  return dims;
}

function tensor(): keel.Tensor {
  const dt = pick(DTYPES);
  const s = shape();
  let t: keel.Tensor;
  if (dt === 'bool') t = keel.randint(0, 2, s).to('bool');
  else if (dt.startsWith('int') || dt === 'uint8') t = keel.randint(chance(0.3) && dt !== 'uint8' ? -3 : 0, 5, s, { dtype: dt });
  else {
    t = keel.randn(s, { dtype: dt === 'complex64' ? 'float32' : dt });
    if (chance(0.1) && t.numel() > 0) t.view(-1).select(0, 0).fill_(pick([Number.NaN, Infinity, -Infinity]));
    if (dt === 'complex64') t = t.to('complex64');
  }
  if (chance(0.1) && t.ndim >= 2) t = t.transpose(0, t.ndim - 1);  // non-contiguous
  if (chance(0.1) && (dt === 'float32' || dt === 'float64')) t = t.detach().requiresGrad_(true);
  made.push(t);
  if (chance(0.04)) {
    const gone = keel.zeros([2]);
    gone.dispose();
    return gone;
  }
  // sometimes the same tensor twice in one call (self and out, say)
  if (made.length > 1 && chance(0.1)) return made[int(0, made.length - 1)];
  return t;
}

function smallInt(): number {
  return chance(0.85) ? int(-2, 5) : pick([0, -1, 1e13, -1e13, 2 ** 53 - 1, -(2 ** 53 - 1), 64, 100, 1000]);
}

function junk(depth = 0): unknown {
  switch (int(0, 17)) {
    case 0: return pick(EDGE_NUMBERS);
    case 1: return smallInt();
    case 2: return rand() * 10 - 5;
    case 3: return pick(STRINGS);
    case 4: return null;
    case 5: return undefined;
    case 6: return chance(0.5);
    case 7: return depth < 2 ? Array.from({ length: int(0, 4) }, () => junk(depth + 1)) : [];
    case 8: return [[1, [2, [3]]], 'a'];
    case 9: return {};
    case 10: return pick([{ a: 1 }, { self: made[0] ?? null }, { dim: 1, keepdim: true }, { dtype: 'float64' }, Object.create(null)]);
    case 11: return pick([() => 1, function named() { return made[0]; }, keel.ops.add, keel.Tensor]);
    case 12: return pick([0n, 10n, -(2n ** 70n)]);
    case 13: return pick([Symbol('s'), new Date(0), new Float32Array(3), new Map(), /re/, new Error('an error as argument')]);
    case 14: return tensor();
    case 15: return [tensor(), tensor()];
    case 16: return [tensor(), null, 3];
    default: return Array.from({ length: int(0, 3) }, smallInt);
  }
}

/** A value of roughly the right kind, often at an edge. */
function plausible(kind: number, n: number | undefined): unknown {
  switch (kind) {
    case K.Tensor: return tensor();
    case K.TensorList: return Array.from({ length: int(0, 3) }, tensor);
    case K.OptionalTensorList: return Array.from({ length: int(0, 3) }, () => (chance(0.3) ? null : tensor()));
    case K.Int: return smallInt();
    case K.Float: return chance(0.7) ? rand() * 4 - 1 : pick(EDGE_NUMBERS);
    case K.Bool: return chance(0.5);
    case K.Scalar: return chance(0.1) ? chance(0.5) : chance(0.7) ? int(-2, 3) : pick(EDGE_NUMBERS);
    case K.String: return pick(STRINGS);
    case K.ScalarType: return chance(0.9) ? pick([...DTYPES, 'complex128', 'double', 'half', 'long']) : pick(['float33', '', 'qint8']);
    case K.Layout: return chance(0.9) ? pick(['strided', 'sparse', 'sparseCsr', 'mkldnn']) : 'jagged';
    case K.MemoryFormat: return chance(0.9) ? pick(['contiguousFormat', 'preserveFormat', 'channelsLast', 'channelsLast3d']) : 'rowMajor';
    case K.Device: return pick(DEVICES);
    case K.IntList:
      if (n && chance(0.3)) return smallInt();
      return Array.from({ length: n && chance(0.7) ? n : int(0, 4) }, smallInt);
    case K.FloatList: return Array.from({ length: n ?? int(0, 3) }, () => (chance(0.8) ? rand() * 3 : pick(EDGE_NUMBERS)));
    case K.BoolList: return Array.from({ length: n ?? int(0, 3) }, () => chance(0.5));
    case K.Generator: return chance(0.9) ? null : junk();
    case K.ScalarList: return Array.from({ length: n ?? int(0, 3) }, () => plausible(K.Scalar, undefined));
    default: return junk();
  }
}

function camel(name: string): string {
  return name.replace(/(?<=[a-zA-Z0-9])_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function describe(v: unknown, depth = 0): string {
  if (v instanceof keel.Tensor) {
    if (v.isDisposed) return 'disposed Tensor';
    return `Tensor(${v.dtype}${JSON.stringify(v.shape)}${v.requiresGrad ? ',grad' : ''})`;
  }
  if (Array.isArray(v)) return depth > 3 ? '[…]' : `[${v.map((x) => describe(x, depth + 1)).join(', ')}]`;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…(${v.length})` : v);
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'function') return `function ${v.name}`;
  if (typeof v === 'symbol') return 'Symbol';
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return (proto as { constructor?: { name?: string } }).constructor?.name ?? 'object';
    return `{ ${Object.entries(v).map(([k, x]) => `${k}: ${describe(x, depth + 1)}`).join(', ')} }`;
  }
  return String(v);
}

/** The operator of a random call: drawn first, so that skipping it costs nothing. */
function randomKey(): string {
  return pick(opKeys);
}

/** One random call of ops[key]: [description, the thunk]. */
function randomCall(key: string): [string, () => unknown] {
  const fn = ops[key];
  const overloads = specsByAten.get(fn.name)!;
  const [overload, specs] = pick(overloads);
  const byName = chance(0.5);
  const callee = byName ? fn[overload === '' ? 'default' : overload] : fn;
  const args: unknown[] = [];
  const mode = rand();
  if (mode < 0.65) {
    // the right number of arguments, mostly of the right kinds
    for (const [, kind, flags, n] of specs) {
      if ((flags & (OPTIONAL | DEFAULTED)) !== 0 && chance(0.4)) args.push(undefined);
      else args.push(chance(0.88) ? plausible(kind, n) : junk());
    }
    while (args.length > 0 && args[args.length - 1] === undefined && chance(0.7)) args.pop();
  } else if (mode < 0.8) {
    // some right, then junk; too few or too many
    const count = int(0, specs.length + 2);
    for (let i = 0; i < count; i++) args.push(i < specs.length && chance(0.5) ? plausible(specs[i][1], specs[i][3]) : junk());
  } else if (mode < 0.9) {
    // positional head, the rest as options by name (sometimes a wrong name)
    const head = int(0, specs.length);
    for (let i = 0; i < head; i++) args.push(plausible(specs[i][1], specs[i][3]));
    const options: Record<string, unknown> = {};
    for (let i = head; i < specs.length; i++) {
      if (chance(0.5)) options[chance(0.5) ? camel(specs[i][0]) : specs[i][0]] = chance(0.85) ? plausible(specs[i][1], specs[i][3]) : junk();
    }
    if (chance(0.15)) options[pick(['notAnArgument', 'constructor', '__proto__x', ''])] = junk();
    args.push(options);
  } else {
    for (let i = int(0, 5); i > 0; i--) args.push(junk());
  }
  const label = `ops.${key}${byName ? `.${overload === '' ? 'default' : overload}` : ''}`;
  const text = `${label}(${args.map((a) => describe(a)).join(', ')})`;
  return [text, () => callee(...args)];
}

// ---- the run ----------------------------------------------------------------------

const logFd = LOG ? openSync(LOG, 'w') : -1;
let baseline = keel.memory().tensors;
const summary = {
  seed: SEED, operators: opKeys.length, start: START, calls: 0, skipped: 0, returns: 0, throws: 0, typeErrors: 0,
  nonErrorThrows: 0, leaks: 0, firstProblems: [] as string[], ms: 0,
};
const started = Date.now();
const [first, end] = ONLY !== '' ? [Number(ONLY), Number(ONLY) + 1] : [START, CALLS];
for (let i = first; i < end; i++) {
  seedCall(i);
  const key = randomKey();
  if (EXTRA_SKIP.has(key)) {
    summary.skipped++;
    continue;
  }
  let text = '';
  keel.scope(() => {
    made = [];
    let thunk: () => unknown;
    try {
      [text, thunk] = randomCall(key);
    } catch (e) {
      // building the arguments uses the engine too; that must not fail
      throw new Error(`fuzz-child: making arguments failed at call ${i}: ${(e as Error).stack}`);
    }
    if (logFd >= 0) writeSync(logFd, `${i}\t${key}\t${text}\n`);
    if (ONLY !== '') process.stdout.write(`call ${i}: ${text}\n`);
    summary.calls++;
    try {
      thunk();
      summary.returns++;
    } catch (e) {
      if (e instanceof Error) {
        summary.throws++;
        if (e instanceof TypeError) summary.typeErrors++;
        if (ONLY !== '') process.stdout.write(`threw ${e.constructor.name}: ${e.message}\n`);
      } else {
        summary.nonErrorThrows++;
        if (summary.firstProblems.length < 10) summary.firstProblems.push(`call ${i} threw a non-Error (${describe(e)}): ${text}`);
      }
    }
  });
  const live = keel.memory().tensors;
  if (live !== baseline) {
    summary.leaks += live - baseline;
    if (summary.firstProblems.length < 10) summary.firstProblems.push(`call ${i} left ${live - baseline} tensors alive: ${text}`);
    baseline = live;  // count each leak once
  }
}
summary.ms = Date.now() - started;
if (logFd >= 0) closeSync(logFd);
process.stdout.write(JSON.stringify(summary) + '\n');
