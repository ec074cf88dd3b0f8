// Tensor methods with PyTorch's names (camelCase), attached above the generated
// ops so that core/tensor.ts need not import them.
import * as ops from '../ops/index.js';
import { B, S, U, binaryDirect, scalarDirect, unaryDirect } from './dispatch.js';
import { canonicalDType, isDType, isDeviceLike, type DType, type DeviceLike, type Scalar } from './dtype.js';
import { Tensor } from './tensor.js';

/** One entry of `index()`: an int selects, null keeps a whole dim, a slice narrows, a Tensor gathers. */
export type IndexEntry = number | null | { start?: number; end?: number; step?: number } | Tensor;

declare module './tensor.js' {
  interface Tensor {
    // arithmetic (broadcasting)
    add(other: Tensor | Scalar, alpha?: Scalar): Tensor;
    sub(other: Tensor | Scalar, alpha?: Scalar): Tensor;
    mul(other: Tensor | Scalar): Tensor;
    div(other: Tensor | Scalar, roundingMode?: 'trunc' | 'floor'): Tensor;
    pow(exponent: Tensor | Scalar): Tensor;
    remainder(other: Tensor | Scalar): Tensor;
    maximum(other: Tensor): Tensor;
    minimum(other: Tensor): Tensor;
    neg(): Tensor;
    abs(): Tensor;
    sign(): Tensor;
    reciprocal(): Tensor;
    square(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    exp(): Tensor;
    expm1(): Tensor;
    log(): Tensor;
    log1p(): Tensor;
    log2(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    floor(): Tensor;
    ceil(): Tensor;
    round(): Tensor;
    clamp(min?: Scalar | null, max?: Scalar | null): Tensor;
    // activations
    relu(): Tensor;
    sigmoid(): Tensor;
    logSigmoid(): Tensor;
    tanh(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    softplus(beta?: number, threshold?: number): Tensor;
    softmax(dim: number): Tensor;
    logSoftmax(dim: number): Tensor;
    // in place
    add_(other: Tensor | Scalar, alpha?: Scalar): Tensor;
    sub_(other: Tensor | Scalar, alpha?: Scalar): Tensor;
    mul_(other: Tensor | Scalar): Tensor;
    div_(other: Tensor | Scalar): Tensor;
    clamp_(min?: Scalar | null, max?: Scalar | null): Tensor;
    zero_(): Tensor;
    fill_(value: Scalar): Tensor;
    copy_(src: Tensor): Tensor;
    uniform_(from?: number, to?: number): Tensor;
    normal_(mean?: number, std?: number): Tensor;
    // comparison
    eq(other: Tensor | Scalar): Tensor;
    ne(other: Tensor | Scalar): Tensor;
    lt(other: Tensor | Scalar): Tensor;
    le(other: Tensor | Scalar): Tensor;
    gt(other: Tensor | Scalar): Tensor;
    ge(other: Tensor | Scalar): Tensor;
    isnan(): Tensor;
    isinf(): Tensor;
    isfinite(): Tensor;
    logicalNot(): Tensor;
    // reductions
    sum(dim?: number | number[], keepdim?: boolean): Tensor;
    mean(dim?: number | number[], keepdim?: boolean): Tensor;
    prod(dim?: number, keepdim?: boolean): Tensor;
    max(): Tensor;
    max(dim: number, keepdim?: boolean): [Tensor, Tensor];
    min(): Tensor;
    min(dim: number, keepdim?: boolean): [Tensor, Tensor];
    amax(dim?: number | number[], keepdim?: boolean): Tensor;
    amin(dim?: number | number[], keepdim?: boolean): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    argmin(dim?: number, keepdim?: boolean): Tensor;
    var(dim?: number | number[], options?: { correction?: number; keepdim?: boolean }): Tensor;
    std(dim?: number | number[], options?: { correction?: number; keepdim?: boolean }): Tensor;
    norm(p?: number, dim?: number | number[], keepdim?: boolean): Tensor;
    logsumexp(dim: number | number[], keepdim?: boolean): Tensor;
    all(): Tensor;
    any(): Tensor;
    // linear algebra
    matmul(other: Tensor): Tensor;
    mm(other: Tensor): Tensor;
    bmm(other: Tensor): Tensor;
    dot(other: Tensor): Tensor;
    t(): Tensor;
    // shape and views
    reshape(...shape: (number | number[])[]): Tensor;
    view(...shape: (number | number[])[]): Tensor;
    permute(...dims: (number | number[])[]): Tensor;
    transpose(dim0: number, dim1: number): Tensor;
    squeeze(dim?: number): Tensor;
    unsqueeze(dim: number): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    expand(...shape: (number | number[])[]): Tensor;
    expandAs(other: Tensor): Tensor;
    repeat(...repeats: (number | number[])[]): Tensor;
    contiguous(): Tensor;
    clone(): Tensor;
    detach(): Tensor;
    chunk(chunks: number, dim?: number): Tensor[];
    split(size: number | number[], dim?: number): Tensor[];
    unbind(dim?: number): Tensor[];
    narrow(dim: number, start: number, length: number): Tensor;
    select(dim: number, index: number): Tensor;
    slice(dim: number, start?: number | null, end?: number | null, step?: number): Tensor;
    index(indices: IndexEntry[]): Tensor;
    indexSelect(dim: number, index: Tensor): Tensor;
    gather(dim: number, index: Tensor): Tensor;
    flip(dims: number | number[]): Tensor;
    // conversion
    to(target: DType | DeviceLike | { dtype?: DType; device?: DeviceLike }): Tensor;
    float(): Tensor;
    double(): Tensor;
    half(): Tensor;
    bfloat16(): Tensor;
    long(): Tensor;
    int(): Tensor;
    bool(): Tensor;
    cpu(): Tensor;
    cuda(index?: number): Tensor;
  }
}

type Method = (this: Tensor, ...args: any[]) => unknown;
const methods: Record<string, Method> = {
  // the hottest binary ops pick their overload here, sparing the resolver
  add(other, alpha) {
    if (alpha === undefined) {
      const r = other instanceof Tensor ? binaryDirect(B['add.Tensor'], this, other) : scalarDirect(S['add.Scalar'], this, other);
      if (r !== undefined) return r;
    }
    return other instanceof Tensor ? ops.add.Tensor(this, other, alpha === undefined ? undefined : { alpha }) : ops.add.Scalar(this, other, alpha);
  },
  sub(other, alpha) {
    if (alpha === undefined) {
      const r = other instanceof Tensor ? binaryDirect(B['sub.Tensor'], this, other) : scalarDirect(S['sub.Scalar'], this, other);
      if (r !== undefined) return r;
    }
    return other instanceof Tensor ? ops.sub.Tensor(this, other, alpha === undefined ? undefined : { alpha }) : ops.sub.Scalar(this, other, alpha);
  },
  mul(other) {
    const r = other instanceof Tensor ? binaryDirect(B['mul.Tensor'], this, other) : scalarDirect(S['mul.Scalar'], this, other);
    if (r !== undefined) return r;
    return other instanceof Tensor ? ops.mul.Tensor(this, other) : ops.mul.Scalar(this, other);
  },
  div(other, roundingMode) {
    if (roundingMode === undefined) {
      const r = other instanceof Tensor ? binaryDirect(B['div.Tensor'], this, other) : scalarDirect(S['div.Scalar'], this, other);
      if (r !== undefined) return r;
      return other instanceof Tensor ? ops.div.Tensor(this, other) : ops.div.Scalar(this, other);
    }
    return other instanceof Tensor
      ? ops.div.Tensor_mode(this, other, { rounding_mode: roundingMode })
      : ops.div.Scalar_mode(this, other, { rounding_mode: roundingMode });
  },
  pow(exponent) { return (exponent instanceof Tensor ? binaryDirect(B['pow.Tensor_Tensor'], this, exponent) : scalarDirect(S['pow.Tensor_Scalar'], this, exponent)) ?? ops.pow(this, exponent); },
  remainder(other) { return ops.remainder(this, other); },
  maximum(other) { return binaryDirect(B.maximum, this, other) ?? ops.maximum(this, other); },
  minimum(other) { return binaryDirect(B.minimum, this, other) ?? ops.minimum(this, other); },
  neg() { return unaryDirect(U.neg, this) ?? ops.neg(this); },
  abs() { return unaryDirect(U.abs, this) ?? ops.abs(this); },
  sign() { return unaryDirect(U.sign, this) ?? ops.sign(this); },
  reciprocal() { return unaryDirect(U.reciprocal, this) ?? ops.reciprocal(this); },
  square() { return unaryDirect(U.square, this) ?? ops.square(this); },
  sqrt() { return unaryDirect(U.sqrt, this) ?? ops.sqrt(this); },
  rsqrt() { return unaryDirect(U.rsqrt, this) ?? ops.rsqrt(this); },
  exp() { return unaryDirect(U.exp, this) ?? ops.exp(this); },
  expm1() { return ops.expm1(this); },
  log() { return unaryDirect(U.log, this) ?? ops.log(this); },
  log1p() { return ops.log1p(this); },
  log2() { return ops.log2(this); },
  sin() { return unaryDirect(U.sin, this) ?? ops.sin(this); },
  cos() { return unaryDirect(U.cos, this) ?? ops.cos(this); },
  floor() { return ops.floor(this); },
  ceil() { return ops.ceil(this); },
  round() { return ops.round(this); },
  clamp(min, max) { return ops.clamp(this, min ?? null, max ?? null); },
  relu() { return unaryDirect(U.relu, this) ?? ops.relu(this); },
  sigmoid() { return unaryDirect(U.sigmoid, this) ?? ops.sigmoid(this); },
  logSigmoid() { return ops.logSigmoid(this); },
  tanh() { return unaryDirect(U.tanh, this) ?? ops.tanh(this); },
  gelu(approximate = 'none') { return ops.gelu(this, { approximate }); },
  softplus(beta = 1, threshold = 20) { return ops.softplus(this, beta, threshold); },
  softmax(dim) { return ops.softmax.int(this, dim); },
  logSoftmax(dim) { return ops.logSoftmax.int(this, dim); },
  add_(other, alpha) { return other instanceof Tensor ? ops.add_.Tensor(this, other, alpha === undefined ? undefined : { alpha }) : ops.add_.Scalar(this, other, alpha); },
  sub_(other, alpha) { return other instanceof Tensor ? ops.sub_.Tensor(this, other, alpha === undefined ? undefined : { alpha }) : ops.sub_.Scalar(this, other, alpha); },
  mul_(other) { return ops.mul_(this, other); },
  div_(other) { return ops.div_(this, other); },
  clamp_(min, max) { return ops.clamp_(this, min ?? null, max ?? null); },
  zero_() { return ops.zero_(this); },
  fill_(value) { return ops.fill_.Scalar(this, value); },
  copy_(src) { return ops.copy_(this, src); },
  uniform_(from = 0, to = 1) { return ops.uniform_(this, from, to); },
  normal_(mean = 0, std = 1) { return ops.normal_(this, mean, std); },
  eq(other) { return (other instanceof Tensor ? binaryDirect(B['eq.Tensor'], this, other) : scalarDirect(S['eq.Scalar'], this, other)) ?? ops.eq(this, other); },
  ne(other) { return (other instanceof Tensor ? binaryDirect(B['ne.Tensor'], this, other) : scalarDirect(S['ne.Scalar'], this, other)) ?? ops.ne(this, other); },
  lt(other) { return (other instanceof Tensor ? binaryDirect(B['lt.Tensor'], this, other) : scalarDirect(S['lt.Scalar'], this, other)) ?? ops.lt(this, other); },
  le(other) { return (other instanceof Tensor ? binaryDirect(B['le.Tensor'], this, other) : scalarDirect(S['le.Scalar'], this, other)) ?? ops.le(this, other); },
  gt(other) { return (other instanceof Tensor ? binaryDirect(B['gt.Tensor'], this, other) : scalarDirect(S['gt.Scalar'], this, other)) ?? ops.gt(this, other); },
  ge(other) { return (other instanceof Tensor ? binaryDirect(B['ge.Tensor'], this, other) : scalarDirect(S['ge.Scalar'], this, other)) ?? ops.ge(this, other); },
  isnan() { return ops.isnan(this); },
  isinf() { return ops.isinf(this); },
  isfinite() { return ops.isfinite(this); },
  logicalNot() { return ops.logicalNot(this); },
  sum(dim, keepdim = false) { return dim === undefined ? unaryDirect(U.sum, this) ?? ops.sum(this) : ops.sum.dim_IntList(this, dim, keepdim); },
  mean(dim, keepdim = false) { return dim === undefined ? unaryDirect(U.mean, this) ?? ops.mean(this) : ops.mean.dim(this, dim, keepdim); },
  prod(dim, keepdim = false) { return dim === undefined ? ops.prod(this) : ops.prod.dim_int(this, dim, keepdim); },
  max(dim, keepdim = false) { return dim === undefined ? ops.max(this) : ops.max.dim(this, dim, keepdim); },
  min(dim, keepdim = false) { return dim === undefined ? ops.min(this) : ops.min.dim(this, dim, keepdim); },
  amax(dim = [], keepdim = false) { return ops.amax(this, dim, keepdim); },
  amin(dim = [], keepdim = false) { return ops.amin(this, dim, keepdim); },
  argmax(dim, keepdim = false) { return ops.argmax(this, dim ?? null, keepdim); },
  argmin(dim, keepdim = false) { return ops.argmin(this, dim ?? null, keepdim); },
  var(dim, options = {}) { return ops.var.correction(this, dim ?? null, { correction: options.correction ?? 1, keepdim: options.keepdim ?? false }); },
  std(dim, options = {}) { return ops.std.correction(this, dim ?? null, { correction: options.correction ?? 1, keepdim: options.keepdim ?? false }); },
  norm(p = 2, dim, keepdim = false) {
    return dim === undefined ? ops.linalgVectorNorm(this, p) : ops.linalgVectorNorm(this, p, dim, keepdim);
  },
  logsumexp(dim, keepdim = false) { return ops.logsumexp(this, dim, keepdim); },
  all() { return ops.all(this); },
  any() { return ops.any(this); },
  matmul(other) { return binaryDirect(B.matmul, this, other) ?? ops.matmul(this, other); },
  mm(other) { return binaryDirect(B.mm, this, other) ?? ops.mm(this, other); },
  bmm(other) { return binaryDirect(B.bmm, this, other) ?? ops.bmm(this, other); },
  dot(other) { return ops.dot(this, other); },
  t() { return unaryDirect(U.t, this) ?? ops.t(this); },
  reshape(...shape) { return ops.reshape(this, sizes(shape)); },
  view(...shape) { return ops.view(this, sizes(shape)); },
  permute(...dims) { return ops.permute(this, sizes(dims)); },
  transpose(dim0, dim1) { return ops.transpose.int(this, dim0, dim1); },
  squeeze(dim) { return dim === undefined ? ops.squeeze(this) : ops.squeeze.dim(this, dim); },
  unsqueeze(dim) { return ops.unsqueeze(this, dim); },
  flatten(startDim = 0, endDim = -1) { return ops.flatten.using_ints(this, startDim, endDim); },
  expand(...shape) { return ops.expand(this, sizes(shape)); },
  expandAs(other) { return ops.expandAs(this, other); },
  repeat(...repeats) { return ops.repeat(this, sizes(repeats)); },
  contiguous() { return ops.contiguous(this); },
  clone() { return unaryDirect(U.clone, this) ?? ops.clone(this); },
  detach() { return unaryDirect(U.detach, this) ?? ops.detach(this); },
  chunk(chunks, dim = 0) { return ops.chunk(this, chunks, dim); },
  split(size, dim = 0) { return typeof size === 'number' ? ops.split.Tensor(this, size, dim) : ops.split.sizes(this, size, dim); },
  unbind(dim = 0) { return ops.unbind.int(this, dim); },
  narrow(dim, start, length) { return ops.narrow(this, dim, start, length); },
  select(dim, index) { return ops.select.int(this, dim, index); },
  slice(dim, start = null, end = null, step = 1) { return ops.slice.Tensor(this, dim, start, end, step); },
  index(indices) { return indexWith(this, indices); },
  indexSelect(dim, index) { return ops.indexSelect(this, dim, index); },
  gather(dim, index) { return ops.gather(this, dim, index); },
  flip(dims) { return ops.flip(this, typeof dims === 'number' ? [dims] : dims); },
  to(target) { return convert(this, target); },
  float() { return convert(this, 'float32'); },
  double() { return convert(this, 'float64'); },
  half() { return convert(this, 'float16'); },
  bfloat16() { return convert(this, 'bfloat16'); },
  long() { return convert(this, 'int64'); },
  int() { return convert(this, 'int32'); },
  bool() { return convert(this, 'bool'); },
  cpu() { return convert(this, 'cpu'); },
  cuda(index) { return convert(this, index === undefined ? 'cuda' : `cuda:${index}`); },
};

for (const [name, fn] of Object.entries(methods)) {
  Object.defineProperty(Tensor.prototype, name, { value: fn, writable: true, configurable: true });
}

/** (2, 3), ([2, 3]) → [2, 3] */
function sizes(args: (number | number[])[]): number[] {
  return args.length === 1 && Array.isArray(args[0]) ? args[0] : (args as number[]);
}

function convert(t: Tensor, target: DType | DeviceLike | { dtype?: DType; device?: DeviceLike }): Tensor {
  if (typeof target === 'string' && isDType(target)) return ops.to.dtype(t, canonicalDType(target));
  if (typeof target === 'object' && target !== null && !('type' in target)) {
    const dtype = target.dtype ? canonicalDType(target.dtype) : t.dtype;
    if (target.device !== undefined) return ops.to.device(t, target.device, dtype);
    return ops.to.dtype(t, dtype);
  }
  if (isDeviceLike(target)) return ops.to.device(t, target, t.dtype);
  throw new TypeError(`to(): expected a dtype name, a device or { dtype, device }, got ${JSON.stringify(target)}`);
}

function indexWith(t: Tensor, indices: IndexEntry[]): Tensor {
  let cur = t;
  const made: Tensor[] = [];
  const advanced: (Tensor | null)[] = [];
  let dim = 0;
  for (const entry of indices) {
    if (typeof entry === 'number') {
      cur = ops.select.int(cur, dim, entry);
      made.push(cur);
    } else if (entry === null) {
      advanced.push(null);
      dim++;
    } else if (entry instanceof Tensor) {
      while (advanced.length < dim) advanced.push(null);
      advanced.push(entry);
      dim++;
    } else if (typeof entry === 'object') {
      cur = ops.slice.Tensor(cur, dim, entry.start ?? null, entry.end ?? null, entry.step ?? 1);
      made.push(cur);
      advanced.push(null);
      dim++;
    } else {
      throw new TypeError(`index(): entries must be numbers, null, {start, end, step} or Tensors, got ${typeof entry}`);
    }
  }
  let out = cur;
  if (advanced.some((a) => a !== null)) {
    while (advanced.length > 0 && advanced[advanced.length - 1] === null) advanced.pop();
    out = ops.index.Tensor(cur, advanced);
  } else if (cur === t) {
    out = ops.alias(t);
  }
  for (const m of made) if (m !== out) m.dispose();
  return out;
}
