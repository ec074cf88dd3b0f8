// safetensors read/write: against files written and read by PyTorch in a
// subprocess (with a small independent implementation of the format, as
// Debian has no Python `safetensors` package), against the reference
// implementation's own golden bytes, and against hostile files.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import * as keel from 'keel';
import { runTorch, torchAvailable } from './helpers/torch.js';

const st = keel.safetensors;
const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'keel-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const noTorch = torchAvailable() ? false : 'needs /usr/bin/python3 with torch';

// An independent reader and writer of the format, in Python, on torch.
const PY = `
import struct, os
DT = {'F64': torch.float64, 'F32': torch.float32, 'BF16': torch.bfloat16, 'F16': torch.float16,
      'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool}
FMT = {v: k for k, v in DT.items()}
def raw(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16: t = t.view(torch.int16)
    return t.numpy().tobytes()
def vals(t):
    flat = t.reshape(-1)
    if t.dtype == torch.bool: return [bool(x) for x in flat.tolist()]
    if t.is_floating_point():
        return [x if math.isfinite(x) else str(x) for x in flat.to(torch.float64).tolist()]
    return [str(x) for x in flat.tolist()]
def describe(t):
    return {'dtype': FMT[t.dtype], 'shape': list(t.shape), 'hex': raw(t).hex(), 'vals': vals(t)}
def write_st(path, tensors, metadata=None, order=None):
    header, blobs, off = {}, [], 0
    if metadata is not None: header['__metadata__'] = metadata
    for name in (order or sorted(tensors)):
        b = raw(tensors[name])
        header[name] = {'dtype': FMT[tensors[name].dtype], 'shape': list(tensors[name].shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':'), ensure_ascii=False).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
def read_st(path):
    with open(path, 'rb') as f: buf = f.read()
    (n,) = struct.unpack('<Q', buf[:8])
    hb = buf[8:8 + n]
    header = json.loads(hb.decode('utf-8'))
    data = buf[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == '__metadata__': continue
        b, e = info['data_offsets']
        dt = DT[info['dtype']]
        if e == b: t = torch.empty(info['shape'], dtype=dt)
        else: t = torch.frombuffer(bytearray(data[b:e]), dtype=dt).reshape(info['shape'])
        tensors[name] = t
    return n, hb, header, data, tensors
`;

type PyDesc = { dtype: string; shape: number[]; hex: string; vals: (number | string | boolean)[] };

const FORMAT: Record<string, string> = {
  float64: 'F64', float32: 'F32', bfloat16: 'BF16', float16: 'F16',
  int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const ELEM: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, BF16: 2, F16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1 };

function hexOf(a: ArrayBufferView): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}

/** A tensor's raw bytes as hex, float16/bfloat16 as their bit patterns. */
function rawHex(t: keel.Tensor): string {
  return keel.scope(() => {
    const bits = t.dtype === 'float16' || t.dtype === 'bfloat16' ? keel.ops.view.dtype(t, 'int16') : t;
    return hexOf(bits.data());
  });
}

/** How the Python side prints values: floats as numbers or 'nan'/'inf', ints as strings. */
function pyFloat(x: number): number | string {
  return Number.isNaN(x) ? 'nan' : x === Infinity ? 'inf' : x === -Infinity ? '-inf' : x;
}
function keelVals(t: keel.Tensor): (number | string | boolean)[] {
  const d = t.data();
  if (t.dtype === 'bool') return Array.from(d as Uint8Array, (v) => v === 1);
  if (keel.isFloatingDType(t.dtype)) return Array.from(d as Float64Array, pyFloat);
  return Array.from(d as Int32Array, (v) => String(v));
}

// Independent decoders of the 16-bit formats.
function f16(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function bf16(bits: number): number {
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, ((bits & 0xffff) << 16) >>> 0);
  return v.getFloat32(0);
}

function bitsTensor(bits: number[], dtype: 'float16' | 'bfloat16', shape: number[]): keel.Tensor {
  return keel.scope(() => keel.ops.view.dtype(keel.tensor(new Int16Array(bits), { shape }), dtype).contiguous());
}

describe('safetensors against PyTorch', { skip: noTorch }, () => {
  test('Keel reads files written by Python/torch: every dtype, exact bits, NaN/inf, scalars, empty tensors', () => {
    const path = join(dir, 'from-python.safetensors');
    const expected = runTorch<Record<string, PyDesc>>(`${PY}
F = [0.0, -0.0, 1.0, -2.5, 3.140625, 65504.0, 6e-08, 1e-40, float('inf'), float('-inf'), float('nan'), 1e300]
ts = {
  'f64': torch.tensor(F, dtype=torch.float64).reshape(3, 4),
  'f32': torch.tensor(F, dtype=torch.float32).reshape(2, 6),
  'bf16': torch.tensor(F, dtype=torch.bfloat16),
  'f16': torch.tensor(F, dtype=torch.float16).reshape(4, 3),
  'f16_t': torch.arange(6, dtype=torch.float32).to(torch.float16).reshape(2, 3).t(),
  'f16_nan_bits': torch.tensor([0x7c01, -1, 0x7e00, -512], dtype=torch.int16).view(torch.float16),
  'bf16_nan_bits': torch.tensor([0x7fc1, -127, 0x7f81], dtype=torch.int16).view(torch.bfloat16),
  'f32_nan_bits': torch.tensor([0x7fa00001, -1], dtype=torch.int32).view(torch.float32),
  'i64': torch.tensor([-2**63, 2**63 - 1, 0, -1, 2**53 + 1], dtype=torch.int64),
  'i32': torch.tensor([-2**31, 2**31 - 1, 0, -7], dtype=torch.int32),
  'i16': torch.tensor([-32768, 32767, 1, -1], dtype=torch.int16).reshape(2, 2),
  'i8': torch.tensor([-128, 127, 0, 5], dtype=torch.int8),
  'u8': torch.arange(256, dtype=torch.int32).to(torch.uint8).reshape(16, 16),
  'bool': torch.tensor([True, False, False, True, True]),
  'scalar_f32': torch.tensor(2.5),
  'scalar_bf16': torch.tensor(-0.0, dtype=torch.bfloat16),
  'scalar_bool': torch.tensor(True),
  'scalar_i64': torch.tensor(-42),
  'empty_f16': torch.zeros(0, dtype=torch.float16),
  'empty_i64': torch.zeros(2, 0, 3, dtype=torch.int64),
  'empty_bool': torch.zeros(0, 5, dtype=torch.bool),
  'ünïcode.Δ': torch.tensor([7], dtype=torch.uint8),
  '__proto__': torch.tensor([1.5]),
  '10': torch.tensor([10], dtype=torch.int8),
  '2': torch.tensor([2], dtype=torch.int8),
}
# written in reverse name order, unaligned: a reader must follow data_offsets
write_st(inp['path'], ts, {'format': 'pt', 'note': 'written by python'}, order=sorted(ts, reverse=True))
out = {k: describe(v) for k, v in ts.items()}
`, { path });
    assert.equal(Object.keys(expected).length, 25);

    const before = keel.memory().tensors;
    const { tensors, metadata } = st.loadFileWithMetadata(path);
    assert.deepEqual(metadata, { format: 'pt', note: 'written by python' });
    assert.deepEqual(Object.keys(tensors).sort(), Object.keys(expected).sort());
    assert.equal(Object.getPrototypeOf(tensors), Object.prototype, "a tensor named '__proto__' must not replace the prototype");
    assert.ok(Object.hasOwn(tensors, '__proto__'));
    for (const [name, e] of Object.entries(expected)) {
      const t = tensors[name];
      assert.equal(FORMAT[t.dtype], e.dtype, `${name}: dtype`);
      assert.deepEqual(t.shape, e.shape, `${name}: shape`);
      assert.equal(rawHex(t), e.hex, `${name}: bytes`);
      assert.deepEqual(keelVals(t), e.vals, `${name}: values`);
    }
    // A few values checked by hand, not only against torch.
    assert.equal(tensors.f16.data()[5], 65504);
    assert.equal(tensors.f16.data()[6], f16(0x0001), 'float16 subnormal 2^-24 (6e-8 rounds to it)');
    assert.equal(tensors.bf16.data()[4], 3.140625);
    assert.ok(Object.is(tensors.scalar_bf16.item(), -0));
    assert.deepEqual(Array.from(tensors.i64.data() as BigInt64Array), [-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n]);
    assert.deepEqual(tensors.f16_t.toArray(), [[0, 3], [1, 4], [2, 5]]);
    assert.deepEqual(tensors.scalar_f32.shape, []);
    assert.equal(tensors.scalar_f32.item(), 2.5);
    assert.deepEqual(tensors.empty_i64.shape, [2, 0, 3]);

    const again = st.loadFile(path);
    assert.deepEqual(Object.keys(again).sort(), Object.keys(expected).sort());
    assert.deepEqual(st.readHeader(path).metadata, metadata);
    keel.dispose(tensors);
    keel.dispose(again);
    assert.equal(keel.memory().tensors, before, 'every loaded tensor was freed');
  });

  test('Python/torch reads files written by Keel: every dtype, exact bits, layout as the reference writes it', () => {
    const f64Bits = new BigInt64Array([0x3ff0000000000000n, 0x7ff0000000000001n, 1n, 0xfff0000000000000n, 0x8000000000000000n, 0x400921fb54442d18n]);
    const f32Bits = new Int32Array([0x3f800000, 0xc0200000, 0x7fa00001, 0x00000001, 0x7f800000, 0x80000000]);
    const bf16Bits = [0x3f80, 0xff81, 0x7f80, 0x0001, 0x8000, 0x4049];
    const f16Bits = [0x3c00, 0x7bff, 0x0001, 0x7c00, 0xfc01, 0x8000];
    const i64 = new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n]);
    const i32 = new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, -7]);
    const i16 = new Int16Array([-32768, 32767, 1, -1]);
    const i8 = new Int8Array([-128, 127, 0, 5]);
    const u8 = Uint8Array.from({ length: 256 }, (_, i) => i);
    const f64View = new DataView(f64Bits.buffer);
    const f32View = new DataView(f32Bits.buffer);
    const littleEndianFloats = (n: number, get: (i: number) => number) => Array.from({ length: n }, (_, i) => pyFloat(get(i)));

    type Spec = { make: () => keel.Tensor; dtype: string; shape: number[]; hex: string; vals: (number | string | boolean)[] };
    const specs: Record<string, Spec> = {
      i64: { make: () => keel.tensor(i64), dtype: 'I64', shape: [5], hex: hexOf(i64), vals: Array.from(i64, String) },
      empty_i64: { make: () => keel.zeros([2, 0, 3], { dtype: 'int64' }), dtype: 'I64', shape: [2, 0, 3], hex: '', vals: [] },
      f64: {
        make: () => keel.tensor(new Float64Array(f64Bits.buffer), { shape: [2, 3] }), dtype: 'F64', shape: [2, 3], hex: hexOf(f64Bits),
        vals: littleEndianFloats(6, (i) => f64View.getFloat64(8 * i, true)),
      },
      f32: {
        make: () => keel.tensor(new Float32Array(f32Bits.buffer)), dtype: 'F32', shape: [6], hex: hexOf(f32Bits),
        vals: littleEndianFloats(6, (i) => f32View.getFloat32(4 * i, true)),
      },
      f32_t: {
        make: () => keel.scope(() => keel.tensor(new Float32Array([0, 1, 2, 3, 4, 5]), { shape: [2, 3] }).t()),
        dtype: 'F32', shape: [3, 2], hex: hexOf(new Float32Array([0, 3, 1, 4, 2, 5])), vals: [0, 3, 1, 4, 2, 5],
      },
      '10': {
        make: () => keel.tensor(new Float32Array([2.5]), { shape: [], requiresGrad: true }),
        dtype: 'F32', shape: [], hex: hexOf(new Float32Array([2.5])), vals: [2.5],
      },
      '2': { make: () => keel.tensor(i32), dtype: 'I32', shape: [4], hex: hexOf(i32), vals: Array.from(i32, String) },
      bf16: {
        make: () => bitsTensor(bf16Bits, 'bfloat16', [6]), dtype: 'BF16', shape: [6],
        hex: hexOf(new Int16Array(bf16Bits)), vals: bf16Bits.map((b) => pyFloat(bf16(b))),
      },
      scalar_bf16: { make: () => bitsTensor([0x8000], 'bfloat16', []), dtype: 'BF16', shape: [], hex: '0080', vals: [-0] },
      f16: {
        make: () => bitsTensor(f16Bits, 'float16', [2, 3]), dtype: 'F16', shape: [2, 3],
        hex: hexOf(new Int16Array(f16Bits)), vals: f16Bits.map((b) => pyFloat(f16(b))),
      },
      empty_f16: { make: () => keel.zeros([0], { dtype: 'float16' }), dtype: 'F16', shape: [0], hex: '', vals: [] },
      i16: { make: () => keel.tensor(i16, { shape: [2, 2] }), dtype: 'I16', shape: [2, 2], hex: hexOf(i16), vals: Array.from(i16, String) },
      i8: { make: () => keel.tensor(i8), dtype: 'I8', shape: [4], hex: hexOf(i8), vals: Array.from(i8, String) },
      u8: { make: () => keel.tensor(u8, { shape: [16, 16] }), dtype: 'U8', shape: [16, 16], hex: hexOf(u8), vals: Array.from(u8, String) },
      'ünïcode.Δ': { make: () => keel.tensor(new Uint8Array([9, 8])), dtype: 'U8', shape: [2], hex: '0908', vals: ['9', '8'] },
      bool: {
        make: () => keel.tensor(new Uint8Array([1, 0, 0, 1, 1]), { dtype: 'bool' }), dtype: 'BOOL', shape: [5],
        hex: '0100000101', vals: [true, false, false, true, true],
      },
      scalar_bool: { make: () => keel.tensor(new Uint8Array([1]), { dtype: 'bool', shape: [] }), dtype: 'BOOL', shape: [], hex: '01', vals: [true] },
      empty_bool: { make: () => keel.zeros([0, 5], { dtype: 'bool' }), dtype: 'BOOL', shape: [0, 5], hex: '', vals: [] },
    };
    // `__proto__:` in an object literal sets the prototype; make it a real key.
    Object.defineProperty(specs, '__proto__', { value: { make: () => keel.tensor(new Int8Array([-3])), dtype: 'I8', shape: [1], hex: 'fd', vals: ['-3'] }, enumerable: true });
    assert.equal(Object.keys(specs).length, 19);

    const tensors: Record<string, keel.Tensor> = {};
    for (const [name, s] of Object.entries(specs)) Object.defineProperty(tensors, name, { value: s.make(), enumerable: true });
    for (const [name, s] of Object.entries(specs)) {
      assert.equal(FORMAT[tensors[name].dtype], s.dtype, `${name}: made with the intended dtype`);
      assert.deepEqual(tensors[name].shape, s.shape, `${name}: made with the intended shape`);
    }
    const metadata = { format: 'pt', 'ünï': 'välue with "quotes" and \\ backslash', empty: '' };
    const path = join(dir, 'from-keel.safetensors');
    st.saveFile(tensors, path, metadata);

    const got = runTorch<{ n: number; size: number; headerText: string; header: Record<string, unknown>; tensors: Record<string, PyDesc> }>(`${PY}
n, hb, header, data, ts = read_st(inp['path'])
out = {'n': n, 'size': os.path.getsize(inp['path']), 'headerText': hb.decode('utf-8'), 'header': header,
       'tensors': {k: describe(v) for k, v in ts.items()}}
`, { path });

    // The framing, as the reference writes it.
    assert.equal(got.n % 8, 0, 'header length is a multiple of 8');
    assert.match(got.headerText, /^\{"__metadata__":\{/);
    const json = got.headerText.trimEnd();
    assert.ok(got.n - Buffer.byteLength(json) < 8 && /^ *$/.test(got.headerText.slice(json.length)), 'padded with fewer than 8 spaces');
    assert.ok(!/\s/.test(json.replace(/"(?:[^"\\]|\\.)*"/g, '')), 'compact JSON, as serde_json writes it');
    assert.deepEqual(got.header.__metadata__, metadata);

    // Layout: descending alignment, then name by UTF-8 bytes; contiguous and aligned.
    const infos = Object.entries(got.header).filter(([k]) => k !== '__metadata__') as [string, { dtype: string; data_offsets: [number, number] }][];
    const byOffset = infos.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0] || a[1].data_offsets[1] - b[1].data_offsets[1]);
    assert.deepEqual(byOffset.map(([k]) => k), [
      'empty_i64', 'i64', 'f64', '10', 'f32', 'f32_t', '2', 'bf16', 'scalar_bf16', 'empty_f16', 'f16', 'i16',
      '__proto__', 'i8', 'u8', 'ünïcode.Δ', 'bool', 'empty_bool', 'scalar_bool',
    ]);
    let cursor = 0;
    for (const [name, info] of byOffset) {
      assert.equal(info.data_offsets[0], cursor, `${name} starts where the previous tensor ends`);
      assert.equal((8 + got.n + info.data_offsets[0]) % ELEM[info.dtype], 0, `${name} is aligned in the file`);
      cursor = info.data_offsets[1];
    }
    assert.equal(got.size, 8 + got.n + cursor, 'the data section is exactly covered');

    assert.deepEqual(Object.keys(got.tensors).sort(), Object.keys(specs).sort());
    for (const [name, s] of Object.entries(specs)) {
      const py = got.tensors[name];
      assert.equal(py.dtype, s.dtype, `${name}: dtype`);
      assert.deepEqual(py.shape, s.shape, `${name}: shape`);
      assert.equal(py.hex, s.hex, `${name}: bytes`);
      assert.deepEqual(py.vals, s.vals, `${name}: values as torch reads them`);
    }
    keel.dispose(tensors);
  });
});

describe('safetensors format', () => {
  test("bytes equal the reference implementation's own golden tests", () => {
    // From huggingface/safetensors, safetensors/src/tensor.rs: test_serialization,
    // test_empty and test_serialization_forced_alignement.
    const attn = keel.tensor(new Float32Array([0, 1, 2, 3, 4, 5]), { shape: [1, 2, 3] });
    assert.deepEqual(Array.from(st.save({ 'attn.0': attn })), [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
      116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
      101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
      0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    assert.deepEqual(Array.from(st.save({})), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    assert.deepEqual(Array.from(st.save({}, { framework: 'pt' })), [
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
      95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
      116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    const attn0 = keel.tensor(new Float32Array([0, 1, 2, 3, 4, 5]), { shape: [1, 1, 2, 3] });
    const aligned = st.save({ attn0 });
    assert.deepEqual(Array.from(aligned), [
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
      121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
      91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
      115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
      32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
      160, 64,
    ]);
    const back = st.load(aligned);
    assert.deepEqual(back.attn0.shape, [1, 1, 2, 3]);
    assert.deepEqual(Array.from(back.attn0.data() as Float32Array), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(st.loadWithMetadata(st.save({})), { tensors: {}, metadata: {} });
    keel.dispose([attn, attn0, back.attn0]);
  });

  test('round trip through a file with metadata, every dtype, bit-exact', () => {
    const tensors: Record<string, keel.Tensor> = {
      f64: keel.tensor(new Float64Array([Math.PI, -0, NaN, Infinity, 5e-324])),
      f32: keel.tensor(new Float32Array([1.5, -2, NaN, -Infinity]), { shape: [2, 2] }),
      bf16: bitsTensor([0x3f80, 0x7fc1, 0x0001], 'bfloat16', [3, 1]),
      f16: bitsTensor([0x7bff, 0x0001, 0xfc01, 0x8000], 'float16', [1, 4]),
      i64: keel.tensor(new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n])),
      i32: keel.tensor(new Int32Array([-(2 ** 31), 7])),
      i16: keel.tensor(new Int16Array([-32768, 32767])),
      i8: keel.tensor(new Int8Array([-128, 127])),
      u8: keel.tensor(new Uint8Array([0, 255])),
      bool: keel.tensor(new Uint8Array([0, 1, 1]), { dtype: 'bool' }),
      scalar: keel.tensor(new Float64Array([-1.25]), { shape: [] }),
      empty: keel.zeros([3, 0], { dtype: 'bfloat16' }),
    };
    const metadata = { epoch: '3', note: 'ünïcode ✓', json: '{"lr": 0.001}' };
    const path = join(dir, 'roundtrip.safetensors');
    writeFileSync(path, 'an older file that the save replaces');
    st.saveFile(tensors, path, metadata);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file is left behind');

    const { tensors: back, metadata: meta } = st.loadFileWithMetadata(path);
    assert.deepEqual(meta, metadata);
    assert.deepEqual(Object.keys(back).sort(), Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      assert.equal(back[name].dtype, t.dtype, `${name}: dtype`);
      assert.deepEqual(back[name].shape, t.shape, `${name}: shape`);
      assert.equal(rawHex(back[name]), rawHex(t), `${name}: bytes`);
    }
    // The in-memory form is the same bytes as the file.
    assert.deepEqual(Buffer.from(st.save(tensors, metadata)), readFileSync(path));
    const header = st.readHeader(path);
    assert.deepEqual(header.metadata, metadata);
    // i64 [0,16], f64 [16,56], scalar [56,64], f32 [64,80], i32 [80,88], bf16 [88,94], empty [94,94], f16 [94,102]
    assert.deepEqual(header.tensors.f16, { dtype: 'float16', shape: [1, 4], dataOffsets: [94, 102] });
    assert.deepEqual(header.tensors.empty, { dtype: 'bfloat16', shape: [3, 0], dataOffsets: [94, 94] });
    assert.equal(header.headerLength % 8, 0);
    // Without metadata there is no __metadata__ entry, and reading gives {}.
    st.saveFile({ x: tensors.f32 }, path);
    assert.doesNotMatch(readFileSync(path).toString('latin1'), /__metadata__/);
    assert.deepEqual(st.loadFileWithMetadata(path).metadata, {});
    keel.dispose(tensors);
    keel.dispose(back);
  });

  test('writes lay tensors out by descending alignment, then name, each aligned', () => {
    const path = join(dir, 'layout.safetensors');
    st.saveFile({
      b: keel.tensor(new Uint8Array([1, 2, 3])),
      a: keel.tensor(new Float32Array([1, 2])),
      c: keel.tensor(new BigInt64Array([5n])),
      e: keel.tensor(new Uint8Array([1]), { dtype: 'bool' }),
      d: bitsTensor([0x3f80], 'bfloat16', [1]),
      '10': keel.tensor(new Int8Array([1])),
      '9': keel.tensor(new Int8Array([1])),
    }, path);
    const h = st.readHeader(path);
    const order = Object.entries(h.tensors).sort((x, y) => x[1].dataOffsets[0] - y[1].dataOffsets[0]).map(([k]) => k);
    assert.deepEqual(order, ['c', 'a', 'd', '10', '9', 'b', 'e']);
    assert.deepEqual(h.tensors.c.dataOffsets, [0, 8]);
    assert.deepEqual(h.tensors.a.dataOffsets, [8, 16]);
    assert.deepEqual(h.tensors.d.dataOffsets, [16, 18]);
    assert.deepEqual(h.tensors.e.dataOffsets, [23, 24]);
  });
});

// ---------------------------------------------------------------------------
// hostile files

function frame(header: string | Uint8Array, data: Uint8Array | number = 0, declaredLength?: bigint): Uint8Array {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = Buffer.alloc(8 + h.length + d.length);
  out.writeBigUInt64LE(declaredLength ?? BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(d, 8 + h.length);
  return out;
}

let hostileCount = 0;
/** The file and the same bytes in memory both fail with a message naming the source and matching `problem`. */
function assertRejected(bytes: Uint8Array, problem: RegExp): void {
  const path = join(dir, `hostile-${hostileCount++}.safetensors`);
  writeFileSync(path, bytes);
  const before = keel.memory().tensors;
  assert.throws(() => st.loadFile(path), (e: unknown) => {
    assert.ok(e instanceof Error, 'an Error');
    assert.ok(e.message.includes(path), `the message names the file: ${e.message}`);
    assert.match(e.message, problem);
    return true;
  });
  assert.throws(() => st.load(bytes), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /bytes in memory/);
    assert.match(e.message, problem);
    return true;
  });
  assert.equal(keel.memory().tensors, before, 'a failed load leaves no tensor behind');
}

const F32x2 = (offsets: string) => `{"a":{"dtype":"F32","shape":[2],"data_offsets":${offsets}}}`;

describe('safetensors refuses hostile files with a clear Error', () => {
  test('file shorter than 8 bytes', () => {
    assertRejected(new Uint8Array(0), /0 bytes long, shorter than the 8-byte header length/);
    assertRejected(new Uint8Array([1, 2, 3, 4, 5]), /5 bytes long, shorter than the 8-byte/);
  });

  test('header length past the end of the file, or absurdly large', () => {
    assertRejected(frame('{}', 0, 1000n), /header length 1000 runs past the end of the file \(10 bytes/);
    assertRejected(frame('{}', 0, 16n * 1024n * 1024n + 1n), /header length 16777217 is too large \(the limit is 16777216/);
    assertRejected(frame('{}', 0, 2n ** 64n - 1n), /header length 18446744073709551615 is too large/);
  });

  test('header not UTF-8, not JSON, not an object', () => {
    assertRejected(frame(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /header is not valid UTF-8/);
    assertRejected(frame('{"a":'), /header is not valid JSON/);
    assertRejected(frame('\ufeff{}'), /header is not valid JSON/);
    assertRejected(frame('[]      '), /header is not a JSON object \(it is an array\)/);
    assertRejected(frame('"text"'), /header is not a JSON object \(it is the string "text"\)/);
    assertRejected(frame('null'), /header is not a JSON object \(it is null\)/);
    assertRejected(frame('42'), /header is not a JSON object \(it is number 42\)/);
  });

  test('bad tensor entries: not an object, unknown or unsupported dtype', () => {
    assertRejected(frame('{"a":5}'), /tensor "a": expected \{dtype, shape, data_offsets\}, got number 5/);
    assertRejected(frame('{"a":{"shape":[],"data_offsets":[0,4]}}', 4), /tensor "a": dtype must be a string, got undefined/);
    assertRejected(frame('{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}', 4), /tensor "a": unknown dtype "F17"/);
    assertRejected(frame('{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', 4), /unknown dtype "f32"/);
    assertRejected(frame('{"a":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}}', 2), /dtype U16 is valid safetensors but Keel has no tensor type/);
    assertRejected(frame('{"a":{"dtype":"toString","shape":[1],"data_offsets":[0,2]}}', 2), /unknown dtype "toString"/);
  });

  test('shape not an array of non-negative safe integers', () => {
    for (const shape of ['3', '[-1]', '[1.5]', '["2"]', '[null]', `[${2 ** 60}]`, '[1e400]']) {
      assertRejected(frame(`{"a":{"dtype":"U8","shape":${shape},"data_offsets":[0,0]}}`), /tensor "a": shape must be an array of non-negative integers/);
    }
  });

  test('huge declared shapes are caught without overflow or allocation', () => {
    // numel × 4 wraps to 0 in u64 arithmetic: a classic way past a naive check.
    assertRejected(frame('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}'), /needs more than 2\^53 bytes, but data_offsets \[0, 0\] hold 0/);
    assertRejected(frame('{"a":{"dtype":"F32","shape":[67108864,67108864,67108864,67108864],"data_offsets":[0,8]}}', 8), /needs more than 2\^53 bytes/);
    assertRejected(frame('{"a":{"dtype":"F64","shape":[1000000,1000000],"data_offsets":[0,8]}}', 8), /shape \[1000000, 1000000\] of F64 needs 8000000000000 bytes, but data_offsets \[0, 8\] hold 8/);
    assertRejected(frame('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8), /shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] hold 8/);
    // A zero dimension makes the rest irrelevant, as it does for the reference.
    const ok = st.load(frame('{"a":{"dtype":"F32","shape":[0,9007199254740991],"data_offsets":[0,0]}}'));
    assert.deepEqual(ok.a.shape, [0, 9007199254740991]);
    ok.a.dispose();
  });

  test('data_offsets malformed, out of range, not from 0, overlapping, leaving holes or trailing bytes', () => {
    for (const offsets of ['[0]', '"0,8"', '[0,8,16]', '[-8,0]', '[0,8.5]', `[0,${2 ** 53}]`]) {
      assertRejected(frame(F32x2(offsets), 8), /tensor "a": data_offsets must be \[begin, end\]/);
    }
    assertRejected(frame('{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}', 8), /data_offsets \[8, 0\] end before they begin/);
    assertRejected(frame('{"a":{"dtype":"F32","shape":[250],"data_offsets":[0,1000]}}', 8), /run past the end of the data section \(8 bytes/);
    assertRejected(frame(F32x2('[8,16]'), 16), /tensor "a": data_offsets start at byte 8, not 0/);
    assertRejected(frame('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', 12),
      /tensor "b": data_offsets \[4, 12\] overlap tensor "a", which ends at byte 8/);
    assertRejected(frame('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', 12),
      /tensor "b": data_offsets \[8, 12\] leave a hole of bytes \[4, 8\) after tensor "a"/);
    assertRejected(frame('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4), /overlap/);
    assertRejected(frame(F32x2('[0,8]'), 12), /the tensors cover 8 bytes of data but the data section holds 12: 4 trailing bytes/);
    assertRejected(frame('{}', 1), /cover 0 bytes of data but the data section holds 1/);
  });

  test('__metadata__ that is not strings to strings', () => {
    assertRejected(frame('{"__metadata__":{"a":1}}'), /__metadata__ must map strings to strings, but "a" is number 1/);
    assertRejected(frame('{"__metadata__":{"a":{"b":"c"}}}'), /__metadata__ must map strings to strings/);
    assertRejected(frame('{"__metadata__":["a"]}'), /__metadata__ must be an object of strings, got an array/);
    const ok = st.loadWithMetadata(frame('{"__metadata__":null}'));
    assert.deepEqual(ok.metadata, {});
  });

  test('a BOOL byte other than 0 or 1, found after a good tensor: nothing leaks', () => {
    const bytes = frame('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"BOOL","shape":[3],"data_offsets":[4,7]}}',
      new Uint8Array([0, 0, 128, 63, 1, 2, 0]));
    assertRejected(bytes, /tensor "b" is BOOL but element 1 is the byte 2/);
  });

  test('a missing file, a folder, a non-string path', () => {
    const missing = join(dir, 'no', 'such.safetensors');
    assert.throws(() => st.loadFile(missing), (e: unknown) => e instanceof Error && e.message.includes(missing) && /no such file/.test(e.message));
    assert.throws(() => st.loadFileWithMetadata(missing), new RegExp('no such file'));
    assert.throws(() => st.loadFile(dir), (e: unknown) => e instanceof Error && e.message.includes(dir) && /not a regular file/.test(e.message));
    assert.throws(() => st.loadFile(42 as unknown as string), TypeError);
  });

  test('never crashes: every truncation and thousands of random byte edits give a tensor set or an Error', () => {
    const good = st.save({
      a: keel.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] }),
      b: keel.tensor(new BigInt64Array([7n, -8n])),
      c: keel.tensor(new Uint8Array([1, 0, 1]), { dtype: 'bool' }),
      d: keel.zeros([0], { dtype: 'bfloat16' }),
    }, { k: 'v' });
    const before = keel.memory().tensors;
    for (let n = 0; n < good.length; n++) {
      assert.throws(() => st.load(good.subarray(0, n)), (e: unknown) => e instanceof Error && e.message.startsWith(`safetensors: <${n} bytes in memory>: `));
    }
    let seed = 12345;
    const rand = () => {
      seed ^= seed << 13; seed >>>= 0;
      seed ^= seed >>> 17;
      seed ^= seed << 5; seed >>>= 0;
      return seed / 2 ** 32;
    };
    let loaded = 0;
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const bad = Uint8Array.from(good);
      const edits = 1 + Math.floor(rand() * 3);
      for (let j = 0; j < edits; j++) {
        // Mostly the header, where the structure is.
        const at = rand() < 0.8 ? Math.floor(rand() * Math.min(bad.length, 8 + 160)) : Math.floor(rand() * bad.length);
        bad[at] = rand() < 0.5 ? Math.floor(rand() * 256) : '0123456789[]{},:" '.charCodeAt(Math.floor(rand() * 18));
      }
      try {
        keel.dispose(st.load(bad));
        loaded++;
      } catch (e) {
        assert.ok(e instanceof Error);
        assert.match(e.message, /^safetensors: <\d+ bytes in memory>: /, `every refusal is the loader's own: ${e.message}`);
        refused++;
      }
    }
    assert.ok(refused > 1000 && loaded > 10, `both outcomes were exercised (${loaded} loaded, ${refused} refused)`);
    assert.equal(keel.memory().tensors, before, 'no tensor leaked');
  });
});

describe('safetensors refuses hostile files (issue 12)', () => {
  test('a FIFO is refused before it is opened, without blocking', () => {
    // loadFile used to open it first and block forever; run it in a child with a timeout
    const fifo = join(dir, 'fifo.safetensors');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const code = `import * as keel from 'keel';
try { keel.safetensors.loadFile(${JSON.stringify(fifo)}); console.log('LOADED'); } catch (e) { console.log('THREW ' + e.message); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
    assert.equal(r.signal, null, `the load blocked (killed after 60 s): ${r.stdout}${r.stderr}`);
    assert.ok(r.stdout.includes(`THREW safetensors: ${fifo}: not a regular file (a FIFO); refused without opening it`), r.stdout + r.stderr);
    assert.throws(() => st.readHeader(dir), /not a regular file \(a directory\)/);
  });

  test('a tensor named twice is refused (JSON.parse would keep the last)', () => {
    const t = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
    assertRejected(frame(`{"a":${t},"a":${t}}`, 1), /tensor "a" appears more than once in the header/);
    assertRejected(frame(`{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, 1), /tensor "a": the key "dtype" appears more than once/);
    assertRejected(frame(`{"__metadata__":{"k":"1","k":"2"}}`), /__metadata__: the key "k" appears more than once/);
    // the same key in different objects, and escaped keys that only look alike, are fine
    const ok = frame(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a\\"":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2);
    assert.deepEqual(Object.keys(st.load(ok)).sort(), ['a', 'a"']);
  });

  test('an empty shape too large to count is refused, naming the file and tensor', () => {
    const m = 2 ** 53 - 1;
    assertRejected(frame(`{"big":{"dtype":"U8","shape":[${m},${m},0],"data_offsets":[0,0]}}`),
      /tensor "big": shape \[9007199254740991,9007199254740991,0\] overflows 64-bit size arithmetic/);
  });

  test('too many tensors are refused before any is made', () => {
    const entries = Array.from({ length: st.MAX_TENSORS + 1 }, (_, i) => `"t${i}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`);
    assertRejected(frame(`{${entries.join(',')}}`), /header lists 100001 tensors, more than the 100000 a file may hold/);
  });

  test('a large tensor is read straight into its memory (a 256 MiB sparse file takes ~256 MiB, not twice that)', () => {
    const path = join(dir, 'sparse.safetensors');
    const n = 64 * 1024 * 1024 + 3;  // float32 values: 17 reads of at most 16 MiB
    const head = Buffer.from(`{"x":{"dtype":"F32","shape":[${n}],"data_offsets":[0,${4 * n}]}}`);
    const fd = openSync(path, 'w');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(head.length));
    writeSync(fd, prefix);
    writeSync(fd, head);
    // the last value is 1.5, the rest zeros (a hole)
    const last = Buffer.alloc(4);
    last.writeFloatLE(1.5);
    writeSync(fd, last, 0, 4, 8 + head.length + 4 * (n - 1));
    closeSync(fd);
    const code = `import * as keel from 'keel';
const before = process.resourceUsage().maxRSS;
const { x } = keel.safetensors.loadFile(${JSON.stringify(path)});
console.log(JSON.stringify({ grew: process.resourceUsage().maxRSS - before, sum: x.sum().item(), last: x.select(0, -1).item(), shape: x.shape }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { grew: number; sum: number; last: number; shape: number[] };
    assert.deepEqual([got.sum, got.last, got.shape], [1.5, 1.5, [n]]);
    // maxRSS in KiB: the tensor (256 MiB) and one 16 MiB piece (twice), not a second copy
    assert.ok(got.grew < 480 * 1024, `loading a 256 MiB tensor grew the process by ${(got.grew / 1024).toFixed(0)} MiB`);
    rmSync(path);
  });
});

describe('safetensors refuses what it cannot write', () => {
  test('bad inputs are TypeErrors naming the tensor; nothing is written', () => {
    const a = keel.tensor(new Float32Array([1]));
    const path = join(dir, 'refused.safetensors');
    const disposed = keel.tensor(new Float32Array([1]));
    disposed.dispose();
    assert.throws(() => st.saveFile({ a, b: [1, 2] as unknown as keel.Tensor }, path), /tensor "b": expected a Tensor, got an array/);
    assert.throws(() => st.saveFile({ a, gone: disposed }, path), /tensor "gone": the tensor was disposed/);
    const c = keel.zeros([2], { dtype: 'complex64' });
    assert.throws(() => st.saveFile({ c }, path), /tensor "c": dtype complex64 cannot be stored/);
    assert.throws(() => st.saveFile({ __metadata__: a }, path), /the name __metadata__ is reserved/);
    assert.throws(() => st.saveFile({ ['\ud800']: a }, path), /not valid Unicode/);
    assert.throws(() => st.saveFile({ a }, path, { n: 1 as unknown as string }), /metadata must map strings to strings, but "n" is number 1/);
    assert.throws(() => st.save(a as unknown as Record<string, keel.Tensor>), /tensors must be an object mapping names to tensors/);
    assert.throws(() => st.saveFile({ a }, ''), /path must be a non-empty string/);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('refused') || f.startsWith('.refused')), []);
    keel.dispose([a, c]);
  });

  test('an unwritable destination is an Error naming the path, and an existing file survives a failed save', () => {
    const a = keel.tensor(new Float32Array([1, 2]));
    const missing = join(dir, 'no-such-dir', 'x.safetensors');
    assert.throws(() => st.saveFile({ a }, missing), (e: unknown) => e instanceof Error && e.message.includes(missing) && /ENOENT/.test(e.message));
    // The destination is a folder: the rename fails after the temp file is written.
    const folder = join(dir, 'a-folder.safetensors');
    mkdirSync(folder);
    assert.throws(() => st.saveFile({ a }, folder), (e: unknown) => e instanceof Error && e.message.includes(folder));
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'the temporary file was removed');
    const kept = join(dir, 'kept.safetensors');
    st.saveFile({ a }, kept);
    const bytes = readFileSync(kept);
    const gone = keel.tensor(new Float32Array([3]));
    gone.dispose();
    assert.throws(() => st.saveFile({ a, gone }, kept));
    assert.deepEqual(readFileSync(kept), bytes);
    a.dispose();
  });
});
