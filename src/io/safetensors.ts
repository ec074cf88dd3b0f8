// safetensors, Hugging Face's tensor file format, read and written as the
// reference implementation (huggingface/safetensors, Rust) does:
//
//   [u64 little-endian N][N bytes of JSON header, space-padded to a multiple of 8][data]
//
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
// (offsets relative to the start of the data section) and may hold
// "__metadata__": {string: string}. Tensors are C-ordered little-endian bytes,
// and together they must cover the data section exactly, with no gap or overlap.
//
// A file is untrusted input: everything the header claims is checked against
// the file's real size before any tensor memory is allocated, and every
// failure is an Error naming the file and what is wrong.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { native } from '../native/binding.js';
import { writeAll, writeAtomic } from './atomic.js';
import { dtypeCode, elementSize, type DType } from '../core/dtype.js';
import { unintercepted } from '../core/dispatch.js';
import { scope } from '../core/memory.js';
import * as ops from '../ops/index.js';
import { Tensor } from '../core/tensor.js';

/**
 * The longest header read (16 MiB; the reference's limit is 100 MB): a longer
 * one is refused unread. Real checkpoints' headers are well under 1 MB, and a
 * hostile 81 MB header of empty tensors used to take 3 GB and 35 s to load.
 */
export const MAX_HEADER_SIZE = 16 * 1024 * 1024;
/** The most tensors one file may hold (real checkpoints hold a few thousand). */
export const MAX_TENSORS = 100_000;
/** Tensor data is read in pieces of at most this many bytes, straight into the tensor. */
const READ_CHUNK = 16 * 1024 * 1024;

/** safetensors dtype names ↔ Keel's. */
const FROM_FORMAT: Record<string, DType> = {
  F64: 'float64', F32: 'float32', BF16: 'bfloat16', F16: 'float16',
  I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const TO_FORMAT: Partial<Record<DType, string>> = Object.fromEntries(
  Object.entries(FROM_FORMAT).map(([k, v]) => [v, k]),
);
/** dtypes the format names but Keel (libtorch 1.13) has no tensor type for. */
const UNSUPPORTED = new Set(['U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64']);

// The reference writes tensors in descending order of its Dtype enum (which is
// ordered by alignment), then by name; since the header is padded to 8 bytes,
// every tensor's data then starts at a multiple of its element size.
const WRITE_RANK: Record<string, number> = {
  BOOL: 0, U8: 1, I8: 2, I16: 5, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13,
};

/** What the header says of one tensor. */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** [begin, end) byte offsets into the data section (after the header). */
  dataOffsets: [number, number];
}

/** A parsed, validated header. */
export interface Header {
  /** `__metadata__`, or {} when the file has none. */
  metadata: Record<string, string>;
  /** Tensor infos by name, in the header's order. */
  tensors: Record<string, TensorInfo>;
  /** Byte length of the JSON header (without the 8-byte length prefix). */
  headerLength: number;
}

// ---------------------------------------------------------------------------
// reading

/** Where bytes come from: a file read piece by piece, or a buffer in memory. */
interface ByteSource {
  /** How error messages name it. */
  what: string;
  size: number;
  /** Exactly `length` bytes at `position`, as a fresh or borrowed Uint8Array (or in `into`, when given and large enough). */
  read(position: number, length: number, into?: Uint8Array): Uint8Array;
}

class SafetensorsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SafetensorsError';
  }
}

function fail(src: { what: string }, problem: string, cause?: unknown): never {
  throw new SafetensorsError(`safetensors: ${src.what}: ${problem}`, cause === undefined ? undefined : { cause });
}

function checkHostEndianness(): void {
  if (endianness() !== 'LE') {
    throw new SafetensorsError('safetensors: this host is big-endian; the format stores little-endian bytes and Keel does not byte-swap them');
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v === 'object' ? 'an object' : typeof v;
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Bytes a tensor of this shape needs, or Infinity when that passes 2^53 - 1. */
function byteLength(shape: number[], elem: number): number {
  if (shape.some((d) => d === 0)) return 0;
  let n = elem;
  for (const d of shape) {
    // Both factors are safe integers, so a true product past 2^53 - 1 rounds to
    // at least 2^53 and one below it is exact: no BigInt needed.
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return Infinity;
  }
  return n;
}

function parseHeader(src: ByteSource): Header {
  if (src.size < 8) {
    fail(src, `not a safetensors file: it is ${src.size} byte${src.size === 1 ? '' : 's'} long, shorter than the 8-byte header length that starts the format`);
  }
  const prefix = src.read(0, 8);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    fail(src, `header length ${n} is too large (the limit is ${MAX_HEADER_SIZE} bytes); the file is corrupt or not safetensors`);
  }
  const headerLength = Number(n);
  if (8 + headerLength > src.size) {
    fail(src, `header length ${headerLength} runs past the end of the file (${src.size} bytes, so at most ${src.size - 8} for the header)`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(src.read(8, headerLength));
  } catch (e) {
    fail(src, 'header is not valid UTF-8', e);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(src, `header is not valid JSON (${(e as Error).message})`, e);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    fail(src, `header is not a JSON object (it is ${describe(json)})`);
  }
  const count = Object.keys(json).length - (Object.hasOwn(json, '__metadata__') ? 1 : 0);
  if (count > MAX_TENSORS) fail(src, `header lists ${count} tensors, more than the ${MAX_TENSORS} a file may hold`);
  // JSON.parse keeps the last of repeated keys: a file naming a tensor twice
  // would load one of them silently.
  const repeated = repeatedKey(text);
  if (repeated !== undefined) {
    fail(src, repeated.path === '' ? `tensor ${JSON.stringify(repeated.key)} appears more than once in the header`
      : `${repeated.path}: the key ${JSON.stringify(repeated.key)} appears more than once`);
  }

  const metadata: Record<string, string> = {};
  const tensors: Record<string, TensorInfo> = {};
  const order: { name: string; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value)) {
        fail(src, `__metadata__ must be an object of strings, got ${describe(value)}`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(src, `__metadata__ must map strings to strings, but ${JSON.stringify(k)} is ${describe(v)}`);
        setOwn(metadata, k, v);
      }
      continue;
    }
    const what = `tensor ${JSON.stringify(name)}`;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail(src, `${what}: expected {dtype, shape, data_offsets}, got ${describe(value)}`);
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info.dtype !== 'string') fail(src, `${what}: dtype must be a string, got ${describe(info.dtype)}`);
    const dtype = Object.hasOwn(FROM_FORMAT, info.dtype) ? FROM_FORMAT[info.dtype] : undefined;
    if (dtype === undefined) {
      if (UNSUPPORTED.has(info.dtype)) {
        fail(src, `${what}: dtype ${info.dtype} is valid safetensors but Keel has no tensor type for it (supported: ${Object.keys(FROM_FORMAT).join(', ')})`);
      }
      fail(src, `${what}: unknown dtype ${short(info.dtype)} (expected one of ${Object.keys(FROM_FORMAT).join(', ')})`);
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every(isSize)) {
      fail(src, `${what}: shape must be an array of non-negative integers below 2^53, got ${short(shape)}`);
    }
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) {
      fail(src, `${what}: data_offsets must be [begin, end], two non-negative integers below 2^53, got ${short(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(src, `${what}: data_offsets [${begin}, ${end}] end before they begin`);
    const need = byteLength(shape, elementSize(dtype));
    if (need !== end - begin) {
      const needs = need === Infinity ? 'more than 2^53 bytes' : `${need} bytes`;
      fail(src, `${what}: shape [${shape.join(', ')}] of ${info.dtype} needs ${needs}, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    // libtorch multiplies the dimensions in order and refuses a shape whose
    // running product passes 2^63 before a 0 is reached, even an empty one
    // ([2^53-1, 2^53-1, 0]): refuse it here, naming the file and tensor.
    let product = 1n;
    for (const d of shape) {
      if (d === 0) break;
      product *= BigInt(d);
      if (product > 2n ** 63n - 1n) fail(src, `${what}: shape ${short(shape)} overflows 64-bit size arithmetic before its 0 dimension (libtorch refuses it)`);
    }
    setOwn(tensors, name, { dtype, shape: shape.slice(), dataOffsets: [begin, end] });
    order.push({ name, begin, end });
  }

  // The tensors must tile the data section: sorted by offsets, each starts
  // where the previous one ended, the first at 0, the last at the file's end.
  order.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = src.size - 8 - headerLength;
  let cursor = 0;
  let previous: string | undefined;
  for (const t of order) {
    const what = `tensor ${JSON.stringify(t.name)}`;
    if (t.begin > cursor) {
      fail(src, previous === undefined
        ? `${what}: data_offsets start at byte ${t.begin}, not 0: the data section must be covered without holes`
        : `${what}: data_offsets [${t.begin}, ${t.end}] leave a hole of bytes [${cursor}, ${t.begin}) after tensor ${JSON.stringify(previous)}`);
    }
    if (t.begin < cursor) {
      fail(src, `${what}: data_offsets [${t.begin}, ${t.end}] overlap tensor ${JSON.stringify(previous)}, which ends at byte ${cursor}`);
    }
    if (t.end > dataLength) {
      fail(src, `${what}: data_offsets [${t.begin}, ${t.end}] run past the end of the data section (${dataLength} bytes; is the file truncated?)`);
    }
    cursor = t.end;
    previous = t.name;
  }
  if (cursor !== dataLength) {
    fail(src, `the tensors cover ${cursor} bytes of data but the data section holds ${dataLength}: ${dataLength - cursor} trailing bytes belong to no tensor`);
  }
  return { metadata, tensors, headerLength };
}

/**
 * The first key repeated within one object of a (valid) JSON text: its key and
 * where (the enclosing top-level key, '' for the top level), or undefined.
 */
function repeatedKey(text: string): { key: string; path: string } | undefined {
  const stack: (Set<string> | null)[] = [];  // null: an array
  let topKey = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const keys = stack[stack.length - 1];
      if (keys) {
        // a string in an object is a key when a ':' follows it
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k])) k++;
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (keys.has(key)) return { key, path: stack.length === 1 ? '' : topKey === '__metadata__' ? '__metadata__' : `tensor ${JSON.stringify(topKey)}` };
          keys.add(key);
          if (stack.length === 1) topKey = key;
        }
      }
      i = j;
    } else if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(null);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
  }
  return undefined;
}

/** Sets a key as an own property, even '__proto__'. */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function readTensors(src: ByteSource): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  checkHostEndianness();
  const header = parseHeader(src);
  const dataStart = 8 + header.headerLength;
  const names = Object.keys(header.tensors).sort(compareNames);
  // A scope frees what was made so far if a later tensor fails.
  return scope(() => {
    const tensors: Record<string, Tensor> = {};
    for (const name of names) {
      const { dtype, shape, dataOffsets: [begin, end] } = header.tensors[name];
      const what = `tensor ${JSON.stringify(name)}`;
      const nbytes = end - begin;
      let tensor: Tensor;
      try {
        tensor = nbytes === 0
          ? new Tensor(native.fromData(new Uint8Array(0), dtypeCode(dtype), shape))
          : unintercepted(() => readInto(src, what, dtype, shape, dataStart + begin, nbytes));
      } catch (e) {
        if (e instanceof SafetensorsError) throw e;
        fail(src, `cannot load ${what} (${dtype} [${shape.join(', ')}]): ${(e as Error).message}`, e);
      }
      setOwn(tensors, name, tensor);
    }
    return { tensors, metadata: header.metadata };
  });
}

/**
 * A new tensor holding `nbytes` bytes read from `position`, read piece by piece
 * straight into its memory: a large tensor never sits in memory twice.
 */
function readInto(src: ByteSource, what: string, dtype: DType, shape: number[], position: number, nbytes: number): Tensor {
  return scope(() => {
    const tensor = ops.empty(shape, { dtype }) as Tensor;
    const flat = ops.view.dtype(ops.reshape(tensor, [-1]) as Tensor, 'uint8') as Tensor;
    // one buffer for every piece: pieces left to the GC would pile up
    const buffer = new Uint8Array(Math.min(READ_CHUNK, nbytes));
    for (let at = 0; at < nbytes; at += READ_CHUNK) {
      const length = Math.min(READ_CHUNK, nbytes - at);
      let bytes: Uint8Array;
      try {
        bytes = src.read(position + at, length, buffer);
      } catch (e) {
        if (e instanceof SafetensorsError) throw e;
        fail(src, `cannot read ${what} (${nbytes} bytes): ${(e as Error).message}`, e);
      }
      if (dtype === 'bool') {
        const bad = bytes.findIndex((b) => b > 1);
        if (bad >= 0) fail(src, `${what} is BOOL but element ${at + bad} is the byte ${bytes[bad]} (only 0 and 1 are booleans)`);
      }
      scope(() => {
        // the addon memcpys the bytes (of any alignment) into a new tensor
        const piece = new Tensor(native.fromData(bytes, dtypeCode('uint8'), [length]));
        ops.copy_(ops.narrow(flat, 0, at, length) as Tensor, piece);
      });
    }
    return tensor;
  });
}

function fileSource(path: string, fd: number): ByteSource {
  const src: ByteSource = {
    what: path,
    size: 0,
    read(position, length, into) {
      const out = into !== undefined && into.byteLength >= length ? into.subarray(0, length) : new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const got = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
        if (got === 0) fail(src, `the file ended at byte ${position + done} while reading ${length} bytes at ${position} (was it truncated while being read?)`);
        done += got;
      }
      return out;
    },
  };
  let st;
  try {
    st = fstatSync(fd);
  } catch (e) {
    fail(src, `cannot stat the file: ${(e as Error).message}`, e);
  }
  if (!st.isFile()) fail(src, 'not a regular file');
  if (st.size > Number.MAX_SAFE_INTEGER) fail(src, `the file is ${st.size} bytes long, past 2^53`);
  src.size = st.size;
  return src;
}

function withFile<T>(path: string, fn: (src: ByteSource) => T): T {
  if (typeof path !== 'string') throw new TypeError(`safetensors: path must be a string, got ${describe(path)}`);
  // A FIFO or a device would block the open (or the reads) forever: refuse
  // anything but a regular file before opening, and open without blocking in
  // case it is swapped for one in between (fileSource checks again).
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    fail({ what: path }, `cannot open the file: ${why}`, e);
  }
  if (!st.isFile()) fail({ what: path }, `not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device or other special file'}); refused without opening it`);
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    fail({ what: path }, `cannot open the file: ${why}`, e);
  }
  try {
    return fn(fileSource(path, fd));
  } finally {
    closeSync(fd);
  }
}

function bytesSource(bytes: Uint8Array): ByteSource {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`safetensors.load: expected a Uint8Array (or Buffer), got ${describe(bytes)}`);
  return {
    what: `<${bytes.byteLength} bytes in memory>`,
    size: bytes.byteLength,
    read: (position, length) => bytes.subarray(position, position + length),
  };
}

/**
 * Loads every tensor of a .safetensors file onto the CPU, like Python's
 * `safetensors.torch.load_file`. The file is read tensor by tensor (it is
 * never held whole in memory) after its header has been validated.
 */
export function loadFile(path: string): Record<string, Tensor> {
  return withFile(path, readTensors).tensors;
}

/** loadFile, plus the file's `__metadata__` ({} when it has none). */
export function loadFileWithMetadata(path: string): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  return withFile(path, readTensors);
}

/** Tensors from safetensors bytes, like Python's `safetensors.torch.load`. */
export function load(bytes: Uint8Array): Record<string, Tensor> {
  return readTensors(bytesSource(bytes)).tensors;
}

/** load, plus the `__metadata__` ({} when there is none). */
export function loadWithMetadata(bytes: Uint8Array): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  return readTensors(bytesSource(bytes));
}

/** The validated header of a file (names, dtypes, shapes, offsets, metadata), without loading tensors. */
export function readHeader(path: string): Header {
  return withFile(path, parseHeader);
}

// ---------------------------------------------------------------------------
// writing

/** Orders names by their UTF-8 bytes, as Rust's String ordering does. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const LONE_SURROGATE = /\p{Surrogate}/u;

interface Plan {
  head: Uint8Array;
  entries: { name: string; tensor: Tensor; nbytes: number }[];
  dataLength: number;
}

function plan(where: string, tensors: Record<string, Tensor>, metadata: Record<string, string> | undefined): Plan {
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors) || tensors instanceof Tensor) {
    throw new TypeError(`${where}: tensors must be an object mapping names to tensors, got ${describe(tensors)}`);
  }
  const entries: { name: string; tensor: Tensor; format: string; shape: number[]; nbytes: number }[] = [];
  for (const [name, tensor] of Object.entries(tensors)) {
    const what = `${where}: tensor ${JSON.stringify(name)}`;
    if (name === '__metadata__') throw new TypeError(`${what}: the name __metadata__ is reserved by the format`);
    if (LONE_SURROGATE.test(name)) throw new TypeError(`${what}: the name is not valid Unicode (it has a lone surrogate)`);
    if (!(tensor instanceof Tensor)) throw new TypeError(`${what}: expected a Tensor, got ${describe(tensor)}`);
    if (tensor.isDisposed) throw new TypeError(`${what}: the tensor was disposed`);
    const dtype = tensor.dtype;
    const format = TO_FORMAT[dtype];
    if (format === undefined) throw new TypeError(`${what}: dtype ${dtype} cannot be stored in safetensors by Keel`);
    const shape = tensor.shape;
    entries.push({ name, tensor, format, shape, nbytes: byteLength(shape, elementSize(dtype)) });
  }
  const meta: [string, string][] = [];
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new TypeError(`${where}: metadata must be an object of strings, got ${describe(metadata)}`);
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`${where}: metadata must map strings to strings, but ${JSON.stringify(k)} is ${describe(v)}`);
      if (LONE_SURROGATE.test(k) || LONE_SURROGATE.test(v)) throw new TypeError(`${where}: metadata ${JSON.stringify(k)} is not valid Unicode (it has a lone surrogate)`);
      meta.push([k, v]);
    }
    meta.sort((a, b) => compareNames(a[0], b[0]));
  }

  if (entries.length > MAX_TENSORS) throw new RangeError(`${where}: ${entries.length} tensors, more than the ${MAX_TENSORS} a file may hold`);
  entries.sort((a, b) => WRITE_RANK[b.format] - WRITE_RANK[a.format] || compareNames(a.name, b.name));
  // Built by hand rather than by JSON.stringify of an object: JS objects put
  // integer-like keys ('0', '10') first, which would reorder the header.
  const parts: string[] = [];
  if (metadata !== undefined) {
    parts.push(`"__metadata__":{${meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  let offset = 0;
  for (const e of entries) {
    parts.push(`${JSON.stringify(e.name)}:{"dtype":"${e.format}","shape":[${e.shape.join(',')}],"data_offsets":[${offset},${offset + e.nbytes}]}`);
    offset += e.nbytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_SIZE) throw new RangeError(`${where}: the header would be ${padded} bytes, past the format's ${MAX_HEADER_SIZE}-byte limit`);
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(head, 8);
  return { head, entries, dataLength: offset };
}

function tensorBytes(where: string, name: string, tensor: Tensor, nbytes: number): Uint8Array {
  // toBuffer copies a contiguous CPU image of any dtype, float16/bfloat16 as raw bits.
  const bytes = new Uint8Array(native.toBuffer(tensor.id));
  if (bytes.byteLength !== nbytes) {
    throw new Error(`${where}: tensor ${JSON.stringify(name)} gave ${bytes.byteLength} bytes, expected ${nbytes}`);
  }
  return bytes;
}

/** Serializes tensors (and optional string metadata) to safetensors bytes, like Python's `safetensors.torch.save`. */
export function save(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  checkHostEndianness();
  const p = plan('safetensors.save', tensors, metadata);
  const out = new Uint8Array(p.head.byteLength + p.dataLength);
  out.set(p.head, 0);
  let at = p.head.byteLength;
  for (const e of p.entries) {
    out.set(tensorBytes('safetensors.save', e.name, e.tensor, e.nbytes), at);
    at += e.nbytes;
  }
  return out;
}

/**
 * Writes tensors (and optional string metadata) to a .safetensors file, like
 * Python's `safetensors.torch.save_file`. The write is atomic: a temporary
 * file in the same folder is written, fsynced and renamed over `path`, so a
 * crash leaves either the old file or the new one, never a torn one.
 * Tensors are copied to the file one at a time.
 */
export function saveFile(tensors: Record<string, Tensor>, path: string, metadata?: Record<string, string>): void {
  checkHostEndianness();
  if (typeof path !== 'string' || path === '') throw new TypeError(`safetensors.saveFile: path must be a non-empty string, got ${describe(path)}`);
  const where = `safetensors.saveFile(${path})`;
  const p = plan(where, tensors, metadata);
  try {
    writeAtomic(path, (fd) => {
      writeAll(fd, p.head);
      for (const e of p.entries) writeAll(fd, tensorBytes(where, e.name, e.tensor, e.nbytes));
    });
  } catch (e) {
    throw new SafetensorsError(`safetensors: ${(e as Error).message}`, { cause: e });
  }
}
