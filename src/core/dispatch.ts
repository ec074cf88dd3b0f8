// The one place every operator call passes through: overload resolution from
// argument types, JS → native argument conversion, result wrapping, and the
// interceptors (precision policy, NaN tracing) that see each op's inputs and
// outputs. The generated functions in ops/ are thin specs handed to defineOp.
import { native, type Handle } from '../native/binding.js';
import {
  deviceString, dtypeCode, dtypeName, isDType, isDeviceLike, isLayout, isMemoryFormat, layoutCode, memoryFormatCode,
} from './dtype.js';
import { preconditionFor, type Precondition } from './preconditions.js';
import { Tensor } from './tensor.js';

/** Argument kinds, in the order scripts/gen-ops.mjs writes them. */
export const enum ArgKind {
  Tensor, TensorList, OptionalTensorList, Int, Float, Bool, Scalar, String,
  ScalarType, Layout, MemoryFormat, Device, IntList, FloatList, BoolList, Generator, ScalarList,
}
const KIND_NAMES = ['Tensor', 'Tensor[]', '(Tensor|null)[]', 'int', 'float', 'bool', 'Scalar', 'str',
  'ScalarType', 'Layout', 'MemoryFormat', 'Device', 'int[]', 'float[]', 'bool[]', 'Generator', 'Scalar[]'];

const OPTIONAL = 1;
const DEFAULTED = 2;
const MUTABLE = 4;
const KWARG_ONLY = 8;

/** [name, kind, flags, fixed list length] */
export type ArgSpec = [string, number, number, number?];
/** [overload, arguments, returns (a kind, or -1-i for the written argument i it returns), picked by type] */
export type OverloadSpec = [string, ArgSpec[], number[], number];

/** What an interceptor sees of one operator call. */
export interface OpCall {
  /** 'aten::name.overload' */
  readonly op: string;
  /** The arguments in schema order (after an earlier interceptor's `before`, its replacements). */
  readonly inputs: readonly unknown[];
  readonly argNames: readonly string[];
  /** Per argument: the op writes into it (in-place and out= ops); such an argument may not be replaced. */
  readonly mutable: readonly boolean[];
}

/**
 * Sees every operator call; runs with interception paused, so its own ops are
 * not intercepted. `before` runs before the kernel and may return the inputs
 * replaced (same length, schema order; the precision policy rounds them, the
 * NaN guard's tracing gives each consumer its own alias); `after` sees the
 * result and may replace its tensors. Interceptors run in the order installed.
 */
export interface Interceptor {
  /**
   * The ops it must see ('aten::sigmoid', 'aten::add.Tensor'); the others
   * pass it by and keep their direct calls. Omitted: every op. While some
   * interceptor without `ops` is installed, every interceptor sees every op
   * (direct calls are off then anyway), so `after` must take any op.
   */
  readonly ops?: ReadonlySet<string>;
  before?(call: OpCall): readonly unknown[] | undefined;
  after?(call: OpCall, result: unknown): unknown;
  /**
   * The precision policy: true when, as the only interceptor, its whole work
   * on an op can be done inside the op's native call (`native.callRounded`,
   * under the native run it opened): no OpCall, no JS call per tensor.
   */
  roundsNatively?(): boolean;
}

/**
 * For an interceptor's `before`: the inputs with each tensor (also inside
 * tensor lists) passed through fn, or undefined when fn kept every one.
 */
export function replaceTensorInputs(inputs: readonly unknown[], fn: (t: Tensor) => Tensor): unknown[] | undefined {
  let replaced: unknown[] | undefined;
  inputs.forEach((x, i) => {
    if (x instanceof Tensor) {
      const r = fn(x);
      if (r !== x) (replaced ??= [...inputs])[i] = r;
    } else if (Array.isArray(x) && x.some((y) => y instanceof Tensor)) {
      const list = x.map((y) => (y instanceof Tensor ? fn(y) : y));
      if (list.some((y, j) => y !== x[j])) (replaced ??= [...inputs])[i] = list;
    }
  });
  return replaced;
}

const interceptors: Interceptor[] = [];
let paused = 0;
/** Installed interceptors that see every op. */
let seeAll = 0;
/** The ops the others must see. */
let needed = new Set<string>();

/** Installs an interceptor (or a function seeing each result: its `after`) until the returned function is called. */
export function intercept(it: Interceptor | ((call: OpCall, result: unknown) => unknown)): () => void {
  const entry: Interceptor = typeof it === 'function' ? { after: it } : it;
  interceptors.push(entry);
  refreshNeeded();
  return () => {
    const i = interceptors.lastIndexOf(entry);
    if (i >= 0) interceptors.splice(i, 1);
    refreshNeeded();
  };
}

function refreshNeeded(): void {
  seeAll = interceptors.filter((it) => it.ops === undefined).length;
  needed = new Set(interceptors.flatMap((it) => [...(it.ops ?? [])]));
  for (const [list, blocked] of DIRECT_BLOCKED) list.forEach((label, i) => { blocked[i] = needed.has(label) ? 1 : 0; });
}

/** Whether an interceptor would see this op now. */
function seen(label: string): boolean {
  return paused === 0 && (seeAll !== 0 || needed.has(label));
}

/** Whether an interceptor would see an op dispatched now (one is installed and interception is not paused). */
export function interceptionActive(): boolean {
  return interceptors.length !== 0 && paused === 0;
}

/** How many interceptors are installed (the precision policy rounds in place only when it sees each op alone). */
export function interceptorCount(): number {
  return interceptors.length;
}

/** Runs fn with interception off (for an interceptor's own ops). */
export function unintercepted<T>(fn: () => T): T {
  paused++;
  try {
    return fn();
  } finally {
    paused--;
  }
}

// ---- direct (unboxed) calls ------------------------------------------------
//
// The hottest overloads have an unboxed native entry (native/fastops.cc): it
// reads int32 handles and calls the at:: function, which enters the same
// c10::Dispatcher as `call` (autograd and autocast alike) but skips the boxed
// stack, the argument conversion loop and the overload object here. A direct
// call is taken only when no interceptor would see the op (none installed,
// or interception paused), every tensor argument is live and a Scalar is a
// JS number or boolean; otherwise the caller takes the general path, which
// also makes the error messages. The lists name the native tables' entries
// in their order; at load they are checked against the addon's own labels
// (an addon built from other sources turns direct calls off).

/** Unboxed unary overloads, in native/fastops.cc's order. */
export const DIRECT_UNARY = ['aten::relu', 'aten::neg', 'aten::abs', 'aten::exp', 'aten::log', 'aten::sqrt', 'aten::rsqrt',
  'aten::square', 'aten::sigmoid', 'aten::tanh', 'aten::sin', 'aten::cos', 'aten::reciprocal', 'aten::sign', 'aten::clone',
  'aten::detach', 'aten::t', 'aten::sum', 'aten::mean'] as const;
/** Unboxed (Tensor, Tensor) overloads. */
export const DIRECT_BINARY = ['aten::add.Tensor', 'aten::sub.Tensor', 'aten::mul.Tensor', 'aten::div.Tensor', 'aten::matmul',
  'aten::mm', 'aten::bmm', 'aten::maximum', 'aten::minimum', 'aten::pow.Tensor_Tensor', 'aten::eq.Tensor', 'aten::ne.Tensor',
  'aten::lt.Tensor', 'aten::le.Tensor', 'aten::gt.Tensor', 'aten::ge.Tensor'] as const;
/** Unboxed (Tensor, Scalar) overloads. */
export const DIRECT_SCALAR = ['aten::add.Scalar', 'aten::sub.Scalar', 'aten::mul.Scalar', 'aten::div.Scalar',
  'aten::pow.Tensor_Scalar', 'aten::eq.Scalar', 'aten::ne.Scalar', 'aten::lt.Scalar', 'aten::le.Scalar', 'aten::gt.Scalar',
  'aten::ge.Scalar'] as const;

type Codes<L extends readonly string[]> = { [K in L[number] as K extends `aten::${infer N}` ? N : never]: number };
function codes<L extends readonly string[]>(list: L): Codes<L> {
  return Object.fromEntries(list.map((label, i) => [label.slice(6), i])) as Codes<L>;
}
/** Codes by overload ('add.Tensor', 'relu', ...) for unaryDirect / binaryDirect / scalarDirect. */
export const U = codes(DIRECT_UNARY);
export const B = codes(DIRECT_BINARY);
export const S = codes(DIRECT_SCALAR);

/** Per direct overload: an interceptor that sees only some ops must see this one. */
const UNARY_BLOCKED = new Uint8Array(DIRECT_UNARY.length);
const BINARY_BLOCKED = new Uint8Array(DIRECT_BINARY.length);
const SCALAR_BLOCKED = new Uint8Array(DIRECT_SCALAR.length);
const DIRECT_BLOCKED: [readonly string[], Uint8Array][] = [[DIRECT_UNARY, UNARY_BLOCKED], [DIRECT_BINARY, BINARY_BLOCKED], [DIRECT_SCALAR, SCALAR_BLOCKED]];

const NO_DIRECT = { unary: -1, binary: -1, scalar: -1 };
function directIndex(list: readonly string[], label: string): number {
  return (list as readonly string[]).indexOf(label);
}
/** Operator names with at least one direct overload. */
const DIRECT_NAMES = new Set([...DIRECT_UNARY, ...DIRECT_BINARY, ...DIRECT_SCALAR].map((l) => l.slice(6).split('.')[0]));

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Whether direct calls are on: the addon has the entries and its tables match ours (and KEEL_DIRECT is not 0). */
export const directCalls: boolean = (() => {
  if (process.env.KEEL_DIRECT === '0' || typeof native.fastOps !== 'function') return false;
  const t = native.fastOps();
  const labels = [...DIRECT_UNARY, ...DIRECT_BINARY, ...DIRECT_SCALAR];
  // a precondition (core/preconditions.ts) must see its op: none of these may have one
  if (labels.some((l) => preconditionFor(l.slice(6).split('.')[0], []) !== undefined)) return false;
  return sameList(t.unary, DIRECT_UNARY) && sameList(t.binary, DIRECT_BINARY) && sameList(t.scalar, DIRECT_SCALAR);
})();

/** op(t) unboxed, or undefined when the general path must take it. */
export function unaryDirect(code: number, t: unknown): Tensor | undefined {
  if (!directCalls || ((seeAll !== 0 || UNARY_BLOCKED[code] !== 0) && paused === 0) || !(t instanceof Tensor) || t._id < 0) return undefined;
  return new Tensor(native.unary!(code, t._id));
}

/** op(a, b) on two tensors unboxed, or undefined when the general path must take it. */
export function binaryDirect(code: number, a: unknown, b: unknown): Tensor | undefined {
  if (!directCalls || ((seeAll !== 0 || BINARY_BLOCKED[code] !== 0) && paused === 0) || !(a instanceof Tensor) || !(b instanceof Tensor) || a._id < 0 || b._id < 0) {
    return undefined;
  }
  return new Tensor(native.binary!(code, a._id, b._id));
}

/** op(a, s) on a tensor and a number or boolean unboxed, or undefined when the general path must take it. */
export function scalarDirect(code: number, a: unknown, s: unknown): Tensor | undefined {
  if (!directCalls || ((seeAll !== 0 || SCALAR_BLOCKED[code] !== 0) && paused === 0) || !(a instanceof Tensor) || a._id < 0) return undefined;
  if (typeof s !== 'number' && typeof s !== 'boolean') return undefined;
  return new Tensor(native.binaryScalar!(code, a._id, s));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Tensor) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function camel(name: string): string {
  return name.replace(/(?<=[a-zA-Z0-9])_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function matchesKind(v: unknown, kind: number, n: number | undefined): boolean {
  switch (kind) {
    case ArgKind.Tensor: return v instanceof Tensor;
    case ArgKind.TensorList: return Array.isArray(v) && v.every((x) => x instanceof Tensor);
    case ArgKind.OptionalTensorList: return Array.isArray(v) && v.every((x) => x == null || x instanceof Tensor);
    case ArgKind.Int: return Number.isInteger(v);
    case ArgKind.Float: return typeof v === 'number';
    case ArgKind.Bool: return typeof v === 'boolean';
    case ArgKind.Scalar: return typeof v === 'number' || typeof v === 'boolean';
    case ArgKind.String: return typeof v === 'string';
    case ArgKind.ScalarType: return isDType(v);
    case ArgKind.Layout: return isLayout(v);
    case ArgKind.MemoryFormat: return isMemoryFormat(v);
    case ArgKind.Device: return isDeviceLike(v);
    case ArgKind.IntList: return Array.isArray(v) ? v.every((x) => Number.isInteger(x)) : Number.isInteger(v) && (n ?? 0) > 0;
    case ArgKind.FloatList: return Array.isArray(v) ? v.every((x) => typeof x === 'number') : typeof v === 'number' && (n ?? 0) > 0;
    case ArgKind.BoolList: return Array.isArray(v) && v.every((x) => typeof x === 'boolean');
    case ArgKind.Generator: return v == null;
    case ArgKind.ScalarList: return Array.isArray(v) && v.every((x) => typeof x === 'number' || typeof x === 'boolean');
    default: return false;
  }
}

function describe(v: unknown): string {
  if (v instanceof Tensor) return v.isDisposed ? 'disposed Tensor' : `Tensor(${v.dtype}${JSON.stringify(v.shape)})`;
  if (Array.isArray(v)) return `[${v.slice(0, 4).map(describe).join(', ')}${v.length > 4 ? ', …' : ''}]`;
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (isPlainObject(v)) return `{ ${Object.keys(v).join(', ')} }`;
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : typeof v;
}

class Overload {
  readonly label: string;
  readonly argNames: string[];
  private handle = -1;
  /** Arguments before the schema's `*`; the rest go only by name. */
  readonly positionalCount: number;
  private readonly nativeArgs: unknown[];
  private readonly precondition: Precondition | undefined;
  private readonly mutable: boolean[];
  /** This overload's codes in the direct (unboxed) tables, -1 where it has none. */
  readonly direct: { unary: number; binary: number; scalar: number };

  constructor(
    readonly opName: string,
    readonly overload: string,
    readonly args: ArgSpec[],
    readonly rets: number[],
    readonly byType: boolean,
  ) {
    this.label = `aten::${opName}${overload ? '.' + overload : ''}`;
    this.argNames = args.map((a) => a[0]);
    const firstKwargOnly = args.findIndex((a) => (a[2] & KWARG_ONLY) !== 0);
    this.positionalCount = firstKwargOnly < 0 ? args.length : firstKwargOnly;
    this.nativeArgs = new Array(args.length + 1).fill(undefined);
    this.precondition = preconditionFor(opName, this.argNames);
    this.mutable = args.map((a) => (a[2] & MUTABLE) !== 0);
    this.direct = directCalls
      ? { unary: directIndex(DIRECT_UNARY, this.label), binary: directIndex(DIRECT_BINARY, this.label), scalar: directIndex(DIRECT_SCALAR, this.label) }
      : NO_DIRECT;
  }

  signature(): string {
    const parts = this.args.map(([name, kind, flags]) => `${name}${flags & (OPTIONAL | DEFAULTED) ? '?' : ''}: ${KIND_NAMES[kind]}`);
    if (this.positionalCount < parts.length) parts.splice(this.positionalCount, 0, '*');
    return `${this.label}(${parts.join(', ')})`;
  }

  /** Does this overload accept these positional arguments and option names? */
  accepts(positional: unknown[], options: Record<string, unknown> | undefined): boolean {
    const args = this.args;
    let given = positional.length;
    while (given > 0 && positional[given - 1] === undefined) given--;
    if (given > this.positionalCount) return false;
    for (let i = 0; i < args.length; i++) {
      const spec = args[i];
      let v = i < positional.length ? positional[i] : undefined;
      if (v === undefined && options !== undefined) v = optionValue(options, spec[0]);
      if (v == null) {
        if ((spec[2] & (OPTIONAL | DEFAULTED)) === 0) return false;
        continue;
      }
      if (!matchesKind(v, spec[1], spec[3])) return false;
    }
    return options === undefined || this.unknownOption(options) === undefined;
  }

  /** The first option name that is not one of this overload's arguments (schema or camelCase). */
  private unknownOption(options: Record<string, unknown>): string | undefined {
    return Object.keys(options).find((key) => !this.args.some((a) => a[0] === key || camel(a[0]) === key));
  }

  call(positional: unknown[], options: Record<string, unknown> | undefined): unknown {
    const args = this.args;
    const n = args.length;
    let given = positional.length;
    while (given > 0 && positional[given - 1] === undefined) given--; // trailing undefined: defaults
    if (given > this.positionalCount) {
      const what = this.positionalCount < n
        ? `positional arguments, got ${given}; '${args[this.positionalCount][0]}' and after are keyword-only: pass them in the options object`
        : `arguments, got ${given}`;
      throw new TypeError(`${this.label} takes at most ${this.positionalCount} ${what}: ${this.signature()}`);
    }
    const unknown = options === undefined ? undefined : this.unknownOption(options);
    if (unknown !== undefined) throw new TypeError(`${this.label} has no argument named '${unknown}': ${this.signature()}`);
    if (this.handle < 0) this.handle = native.resolveOp(this.opName, this.overload);
    let inputs = options === undefined ? positional : this.gather(positional, options);
    if (interceptors.length === 1 && paused === 0 && interceptors[0].roundsNatively?.() === true) {
      // the policy's per-op work in the one native call; declined (a tensor off the CPU): its JS path below
      this.checkPrecondition(inputs);
      const raw = native.callRounded.apply(null, this.fillNativeArgs(inputs) as [number, ...unknown[]]);
      if (raw !== native.callDeclined) return this.wrapResult(raw, inputs);
    }
    const call = interceptors.length > 0 && seen(this.label) ? this.intercepted(inputs) : undefined;
    if (call !== undefined) inputs = call.inputs as unknown[];
    this.checkPrecondition(inputs);
    const raw = native.call.apply(null, this.fillNativeArgs(inputs) as [number, ...unknown[]]);
    let result = this.wrapResult(raw, inputs);
    if (call !== undefined) {
      paused++;
      try {
        for (const it of interceptors) if (it.after !== undefined) result = it.after(call, result);
      } finally {
        paused--;
      }
    }
    return result;
  }

  private checkPrecondition(inputs: unknown[]): void {
    if (this.precondition !== undefined) {
      this.precondition((name) => inputs[this.argNames.indexOf(name)], this.label);
    }
  }

  /**
   * The native call's arguments: [handle, ...inputs as native values]. One
   * array reused for every call: the native call reads it synchronously and
   * nothing in between re-enters this overload.
   */
  private fillNativeArgs(inputs: unknown[]): unknown[] {
    const args = this.args;
    const buf = this.nativeArgs;
    buf[0] = this.handle;
    for (let i = 0; i < args.length; i++) {
      const v = i < inputs.length ? inputs[i] : undefined;
      if (v == null) {
        buf[i + 1] = v;
      } else {
        const kind = args[i][1];
        if (kind === ArgKind.Tensor) {
          if (!(v instanceof Tensor) || v._id < 0) buf[i + 1] = tensorId(v, args[i][0], this.label);
          else buf[i + 1] = v._id;
        } else {
          buf[i + 1] = kind <= ArgKind.OptionalTensorList || (kind >= ArgKind.ScalarType && kind <= ArgKind.Device)
            ? toNative(v, args[i], this.label)
            : v;
        }
      }
    }
    return buf;
  }

  /** The call as interceptors see it, after every `before` (which may replace inputs). */
  private intercepted(inputs: unknown[]): OpCall {
    let call: OpCall = { op: this.label, inputs: this.gather(inputs, undefined), argNames: this.argNames, mutable: this.mutable };
    paused++;
    try {
      for (const it of interceptors) {
        if (it.before === undefined) continue;
        const replaced = it.before(call);
        if (replaced === undefined || replaced === call.inputs) continue;
        if (replaced.length !== this.args.length) {
          throw new Error(`${this.label}: an interceptor's before() returned ${replaced.length} inputs for ${this.args.length} arguments`);
        }
        this.mutable.forEach((m, i) => {
          if (m && replaced[i] !== call.inputs[i]) throw new Error(`${this.label}: an interceptor's before() replaced '${this.args[i][0]}', which the op writes into`);
        });
        call = { ...call, inputs: replaced };
      }
    } finally {
      paused--;
    }
    return call;
  }

  /** Positional arguments merged with named ones, in schema order. */
  private gather(positional: unknown[], options: Record<string, unknown> | undefined): unknown[] {
    const out: unknown[] = new Array(this.args.length);
    for (let i = 0; i < this.args.length; i++) {
      let v = i < positional.length ? positional[i] : undefined;
      if (v === undefined && options !== undefined) v = optionValue(options, this.args[i][0]);
      out[i] = v;
    }
    return out;
  }

  private wrapOne(raw: unknown, ret: number, inputs: unknown[]): unknown {
    if (ret < 0) {
      // an in-place or out= op returns the argument it wrote: hand back that same object
      const written = inputs[-1 - ret];
      if (written instanceof Tensor && raw !== null && typeof raw === 'number') {
        native.free(raw as Handle);
        return written;
      }
      if (Array.isArray(written) && Array.isArray(raw) && written.length === raw.length && written.every((t) => t instanceof Tensor)) {
        for (const h of raw) if (h !== null) native.free(h as Handle);
        return written;
      }
      return this.wrapOne(raw, this.args[-1 - ret][1], inputs);
    }
    const kind = ret;
    if (kind === ArgKind.Tensor) {
      if (raw === null) return null;
      return new Tensor(raw as Handle);
    }
    if (kind === ArgKind.TensorList) return (raw as (Handle | null)[]).map((h) => (h === null ? null : new Tensor(h)));
    if (kind === ArgKind.ScalarType) return raw === null ? null : dtypeName(raw as number);
    return raw;
  }

  private wrapResult(raw: unknown, inputs: unknown[]): unknown {
    const rets = this.rets;
    if (rets.length === 0) return undefined;
    if (rets.length === 1) return this.wrapOne(raw, rets[0], inputs);
    const arr = raw as unknown[];
    return rets.map((r, i) => this.wrapOne(arr[i], r, inputs));
  }
}

function optionValue(options: Record<string, unknown>, name: string): unknown {
  const v = options[name];
  return v !== undefined ? v : options[camel(name)];
}

function tensorId(v: unknown, name: string, label: string): Handle {
  if (!(v instanceof Tensor)) throw new TypeError(`${label}: argument '${name}' must be a Tensor, got ${describe(v)}`);
  if (v._id < 0) throw new Error(`${label}: argument '${name}' is a disposed tensor`);
  return v._id;
}

function toNative(v: unknown, spec: ArgSpec, label: string): unknown {
  const [name, kind] = spec;
  switch (kind) {
    case ArgKind.Tensor: return tensorId(v, name, label);
    case ArgKind.TensorList:
      if (!Array.isArray(v)) throw new TypeError(`${label}: argument '${name}' must be an array of Tensors, got ${describe(v)}`);
      return v.map((t, i) => tensorId(t, `${name}[${i}]`, label));
    case ArgKind.OptionalTensorList:
      if (!Array.isArray(v)) throw new TypeError(`${label}: argument '${name}' must be an array of Tensors or nulls, got ${describe(v)}`);
      return v.map((t, i) => (t == null ? null : tensorId(t, `${name}[${i}]`, label)));
    case ArgKind.ScalarType: return dtypeCode(v, `${label}: argument '${name}'`);
    case ArgKind.Layout: return layoutCode(v, `${label}: argument '${name}'`);
    case ArgKind.MemoryFormat: return memoryFormatCode(v, `${label}: argument '${name}'`);
    case ArgKind.Device: return deviceString(v, `${label}: argument '${name}'`);
    default: return v;
  }
}

/** The trailing options object of a call, if it has one. */
function optionsOf(args: unknown[]): Record<string, unknown> | undefined {
  const last = args.length > 0 ? args[args.length - 1] : undefined;
  return typeof last === 'object' && last !== null && isPlainObject(last) ? last : undefined;
}

/**
 * Builds an operator from its generated spec: calling it picks the first
 * overload (default first, then schema order) that accepts the arguments;
 * `.default`, `.Tensor`, `.out`, ... call one overload by name.
 */
export function defineOp(name: string, specs: OverloadSpec[]): unknown {
  const overloads = specs.map(([ov, args, rets, byType]) => new Overload(name, ov, args, rets, byType === 1));
  const candidates = overloads.filter((o) => o.byType);
  const only = candidates.length === 1 ? candidates[0] : undefined;
  const pick = (positional: unknown[]): Overload | undefined => only ?? candidates.find((o) => o.accepts(positional, undefined));
  // Direct (unboxed) calls for the argument kinds whose resolution lands on
  // an overload with a native entry: decided once here, with a stand-in tensor.
  let unary = -1;
  let binary = -1;
  let scalar = -1;
  if (directCalls && DIRECT_NAMES.has(name)) {
    const t = Object.create(Tensor.prototype) as Tensor;
    unary = pick([t])?.direct.unary ?? -1;
    binary = pick([t, t])?.direct.binary ?? -1;
    const s = [1, 1.5, true].map((v) => pick([t, v])?.direct.scalar ?? -1);
    if (s.every((c) => c === s[0])) scalar = s[0];
  }
  const general = function (args: unknown[]): unknown {
    const options = optionsOf(args);
    const positional = options === undefined ? args : args.slice(0, -1);
    if (only !== undefined) return only.call(positional, options);
    for (const o of candidates) if (o.accepts(positional, options)) return o.call(positional, options);
    const shown = candidates.length > 0 ? candidates : overloads;
    const kwargOnly = shown.some((o) => o.positionalCount < positional.length && o.positionalCount < o.args.length)
      ? ' (arguments after * are keyword-only: pass them in the options object)'
      : '';
    throw new TypeError(
      `aten::${name}: no overload accepts (${args.map(describe).join(', ')})${kwargOnly}; overloads:\n  ` +
        shown.map((o) => o.signature()).join('\n  '),
    );
  };
  const fn = unary < 0 && binary < 0 && scalar < 0
    ? function (...args: unknown[]): unknown {
      return general(args);
    }
    : function (...args: unknown[]): unknown {
      if (args.length === 1) {
        if (unary >= 0) {
          const r = unaryDirect(unary, args[0]);
          if (r !== undefined) return r;
        }
      } else if (args.length === 2) {
        const r = args[1] instanceof Tensor
          ? (binary >= 0 ? binaryDirect(binary, args[0], args[1]) : undefined)
          : (scalar >= 0 ? scalarDirect(scalar, args[0], args[1]) : undefined);
        if (r !== undefined) return r;
      }
      return general(args);
    };
  Object.defineProperty(fn, 'name', { value: name });
  for (const o of overloads) {
    const d = o.direct;
    const plain = function (args: unknown[]): unknown {
      const options = optionsOf(args);
      return o.call(options === undefined ? args : args.slice(0, -1), options);
    };
    const by = d.unary >= 0
      ? function (...args: unknown[]): unknown {
        return (args.length === 1 ? unaryDirect(d.unary, args[0]) : undefined) ?? plain(args);
      }
      : d.binary >= 0
        ? function (...args: unknown[]): unknown {
          return (args.length === 2 ? binaryDirect(d.binary, args[0], args[1]) : undefined) ?? plain(args);
        }
        : d.scalar >= 0
          ? function (...args: unknown[]): unknown {
            return (args.length === 2 ? scalarDirect(d.scalar, args[0], args[1]) : undefined) ?? plain(args);
          }
          : function (...args: unknown[]): unknown {
            return plain(args);
          };
    Object.defineProperty(by, 'name', { value: `${name}.${o.overload || 'default'}` });
    Object.defineProperty(fn, o.overload === '' ? 'default' : o.overload, { value: by, enumerable: true });
  }
  return fn;
}
