// The IDX format of (Fashion-)MNIST: a magic number 0x0000TTDD (TT the element
// type, DD the number of dims), DD big-endian uint32 sizes, then the values,
// big-endian. Files may be gzipped (detected by content, not by name). Every
// way a file can be wrong is an Error that names the file.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export type IdxType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export interface IdxArray {
  shape: number[];
  type: IdxType;
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<number, { type: IdxType; bytes: number }> = {
  0x08: { type: 'uint8', bytes: 1 },
  0x09: { type: 'int8', bytes: 1 },
  0x0b: { type: 'int16', bytes: 2 },
  0x0c: { type: 'int32', bytes: 4 },
  0x0d: { type: 'float32', bytes: 4 },
  0x0e: { type: 'float64', bytes: 8 },
};

const CODE_OF: Record<IdxType, number> = { uint8: 0x08, int8: 0x09, int16: 0x0b, int32: 0x0c, float32: 0x0d, float64: 0x0e };

export interface IdxExpectation {
  type?: IdxType;
  ndim?: number;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** Reads an IDX file, gzipped or not. `expect` turns a wrong magic number into an error. */
export function readIdx(file: string, expect: IdxExpectation = {}): IdxArray {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`IDX file not found: ${file}`);
    throw new Error(`cannot read IDX file ${file}: ${(e as Error).message}`);
  }
  let bytes: Uint8Array = raw;
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      bytes = gunzipSync(raw);
    } catch (e) {
      throw new Error(`${file}: the gzip stream is truncated or corrupt (${(e as Error).message})`);
    }
  }
  return parseIdx(bytes, file, expect);
}

/** Parses IDX bytes (already decompressed); `name` is used in errors. */
export function parseIdx(bytes: Uint8Array, name: string, expect: IdxExpectation = {}): IdxArray {
  if (bytes.length < 4) throw new Error(`${name}: truncated IDX file: ${bytes.length} bytes, shorter than the 4-byte magic number`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const code = bytes[2];
  const ndim = bytes[3];
  const kind = TYPES[code];
  const wanted = expect.type !== undefined && expect.ndim !== undefined ? ((CODE_OF[expect.type] << 8) | expect.ndim) >>> 0 : undefined;
  const wantedText = wanted !== undefined ? `, expected ${hex(wanted)} (${expect.type}, ${expect.ndim} dims)` : '';
  if (bytes[0] !== 0 || bytes[1] !== 0 || kind === undefined || ndim === 0) {
    throw new Error(`${name}: wrong magic number ${hex(magic)}: not an IDX file${wantedText}`);
  }
  if ((expect.type !== undefined && kind.type !== expect.type) || (expect.ndim !== undefined && ndim !== expect.ndim)) {
    throw new Error(`${name}: wrong magic number ${hex(magic)} (${kind.type}, ${ndim} dims)${wantedText}`);
  }
  const header = 4 + 4 * ndim;
  if (bytes.length < header) throw new Error(`${name}: truncated IDX file: ${bytes.length} bytes, shorter than its ${header}-byte header`);
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, d) => a * d, 1);
  const expected = header + count * kind.bytes;
  if (bytes.length < expected) {
    throw new Error(`${name}: truncated IDX file: ${bytes.length} bytes, but its header [${shape.join(', ')}] of ${kind.type} needs ${expected}`);
  }
  if (bytes.length > expected) {
    throw new Error(`${name}: ${bytes.length - expected} bytes past the end of the data its header [${shape.join(', ')}] of ${kind.type} describes`);
  }
  return { shape, type: kind.type, data: decode(view, header, count, kind.type) };
}

function decode(view: DataView, offset: number, count: number, type: IdxType): IdxArray['data'] {
  switch (type) {
    case 'uint8': return new Uint8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 'int8': return new Int8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 'int16': return Int16Array.from({ length: count }, (_, i) => view.getInt16(offset + 2 * i, false));
    case 'int32': return Int32Array.from({ length: count }, (_, i) => view.getInt32(offset + 4 * i, false));
    case 'float32': return Float32Array.from({ length: count }, (_, i) => view.getFloat32(offset + 4 * i, false));
    case 'float64': return Float64Array.from({ length: count }, (_, i) => view.getFloat64(offset + 8 * i, false));
  }
}
