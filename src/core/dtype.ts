// dtypes, layouts, memory formats and devices by name, with libtorch's codes.

/**
 * dtype names as PyTorch spells them (torch.float32 → 'float32'): every
 * c10::ScalarType of libtorch 1.13, so that no op returns an unnamed dtype.
 * complex32, the quantized and the packed 4-/2-bit types have no JS array:
 * reading their values is an Error that says how to convert them.
 */
export type DType =
  | 'float64' | 'float32' | 'bfloat16' | 'float16'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool'
  | 'complex32' | 'complex64' | 'complex128'
  | 'qint8' | 'quint8' | 'qint32' | 'quint4x2' | 'quint2x4';

/** A number or boolean that ATen takes as a Scalar. */
export type Scalar = number | boolean;
export type Layout = 'strided' | 'sparse' | 'sparseCsr' | 'mkldnn';
export type MemoryFormat = 'contiguousFormat' | 'preserveFormat' | 'channelsLast' | 'channelsLast3d';
export type DeviceLike = string | { type: string; index?: number };

// c10::ScalarType
const DTYPE_CODES: Record<DType, number> = {
  uint8: 0, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, float32: 6, float64: 7,
  complex32: 8, complex64: 9, complex128: 10, bool: 11, qint8: 12, quint8: 13, qint32: 14, bfloat16: 15,
  quint4x2: 16, quint2x4: 17,
};
const DTYPE_ALIASES: Record<string, DType> = {
  float: 'float32', double: 'float64', half: 'float16', long: 'int64', int: 'int32', short: 'int16',
  fp64: 'float64', fp32: 'float32', fp16: 'float16', bf16: 'bfloat16',
  chalf: 'complex32', cfloat: 'complex64', cdouble: 'complex128',
};
const DTYPE_NAMES: (DType | undefined)[] = [];
for (const [name, code] of Object.entries(DTYPE_CODES)) DTYPE_NAMES[code] = name as DType;

export const DTYPES = Object.keys(DTYPE_CODES) as DType[];

export function isDType(v: unknown): v is DType {
  return typeof v === 'string' && (v in DTYPE_CODES || v in DTYPE_ALIASES);
}

export function canonicalDType(v: string, what = 'dtype'): DType {
  if (v in DTYPE_CODES) return v as DType;
  const alias = DTYPE_ALIASES[v];
  if (alias) return alias;
  throw new TypeError(`${what}: unknown dtype '${v}' (one of ${DTYPES.join(', ')})`);
}

export function dtypeCode(v: unknown, what = 'dtype'): number {
  if (typeof v !== 'string') throw new TypeError(`${what} must be a dtype name such as 'float32', got ${typeof v}`);
  return DTYPE_CODES[canonicalDType(v, what)];
}

export function dtypeName(code: number): DType {
  const n = DTYPE_NAMES[code];
  if (!n) throw new Error(`libtorch returned a dtype Keel does not name (ScalarType ${code})`);
  return n;
}

export function isFloatingDType(d: DType): boolean {
  return d === 'float64' || d === 'float32' || d === 'bfloat16' || d === 'float16';
}

export function elementSize(d: DType): number {
  switch (d) {
    case 'float64': case 'int64': case 'complex64': return 8;
    case 'complex128': return 16;
    case 'float32': case 'int32': case 'complex32': case 'qint32': return 4;
    case 'float16': case 'bfloat16': case 'int16': return 2;
    default: return 1;
  }
}

const LAYOUT_CODES: Record<Layout, number> = { strided: 0, sparse: 1, sparseCsr: 2, mkldnn: 3 };
const MEMORY_FORMAT_CODES: Record<MemoryFormat, number> = {
  contiguousFormat: 0, preserveFormat: 1, channelsLast: 2, channelsLast3d: 3,
};

export function isLayout(v: unknown): v is Layout {
  return typeof v === 'string' && v in LAYOUT_CODES;
}
export function layoutCode(v: unknown, what = 'layout'): number {
  if (!isLayout(v)) throw new TypeError(`${what} must be one of ${Object.keys(LAYOUT_CODES).join(', ')}, got ${String(v)}`);
  return LAYOUT_CODES[v];
}
export function isMemoryFormat(v: unknown): v is MemoryFormat {
  return typeof v === 'string' && v in MEMORY_FORMAT_CODES;
}
export function memoryFormatCode(v: unknown, what = 'memory_format'): number {
  if (!isMemoryFormat(v)) {
    throw new TypeError(`${what} must be one of ${Object.keys(MEMORY_FORMAT_CODES).join(', ')}, got ${String(v)}`);
  }
  return MEMORY_FORMAT_CODES[v];
}

export function isDeviceLike(v: unknown): v is DeviceLike {
  return typeof v === 'string' || (typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string');
}
export function deviceString(v: unknown, what = 'device'): string {
  if (typeof v === 'string') return v;
  if (isDeviceLike(v)) return typeof v === 'string' ? v : v.index === undefined ? v.type : `${v.type}:${v.index}`;
  throw new TypeError(`${what} must be a device such as 'cpu' or 'cuda:0'`);
}
