#!/usr/bin/env node
// Generates src/ops/generated/: one typed function per ATen operator of the
// installed libtorch, read from its dispatcher (build/keel.node must exist).
//
//   node scripts/gen-ops.mjs           write the files
//   node scripts/gen-ops.mjs --check   exit 1 if the committed files are stale
//
// Each operator becomes `export const <camelName>` whose call picks the
// overload from the argument types, and whose properties (`.default`,
// `.Tensor`, `.out`, ...) are the overloads by name, as torch.ops.aten has them.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'src', 'ops', 'generated');
const check = process.argv.includes('--check');

const native = createRequire(import.meta.url)(join(root, 'build', 'keel.node'));
const schemas = native.schemas();
const version = native.info().version;

// Argument kinds, shared with src/core/dispatch.ts (ArgKind there).
const KINDS = ['Tensor', 'TensorList', 'OptionalTensorList', 'Int', 'Float', 'Bool', 'Scalar', 'String',
  'ScalarType', 'Layout', 'MemoryFormat', 'Device', 'IntList', 'FloatList', 'BoolList', 'Generator', 'ScalarList'];
const OPTIONAL = 1;
const DEFAULTED = 2;
const MUTABLE = 4;
const KWARG_ONLY = 8;

const RESERVED = new Set(['break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do',
  'else', 'export', 'extends', 'finally', 'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'return', 'super',
  'switch', 'this', 'throw', 'try', 'typeof', 'var', 'void', 'while', 'with', 'yield', 'let', 'static', 'enum', 'await',
  'implements', 'package', 'protected', 'interface', 'private', 'public', 'arguments', 'eval']);

export function camel(name) {
  return name.replace(/(?<=[a-zA-Z0-9])_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

// A reserved word (var, where it is an ATen name) is declared as `var_` and
// exported under its own name: `ops.var(...)` works.
function jsName(name) {
  const c = camel(name);
  return RESERVED.has(c) ? `${c}_` : c;
}

function tsType(arg) {
  const n = arg.n ?? 0;
  let t;
  switch (arg.kind) {
    case 'Tensor': t = 'Tensor'; break;
    case 'TensorList': t = 'Tensor[]'; break;
    case 'OptionalTensorList': t = '(Tensor | null)[]'; break;
    case 'Int': case 'Float': t = 'number'; break;
    case 'Bool': t = 'boolean'; break;
    case 'Scalar': t = 'Scalar'; break;
    case 'String': t = 'string'; break;
    case 'ScalarType': t = 'DType'; break;
    case 'Layout': t = 'Layout'; break;
    case 'MemoryFormat': t = 'MemoryFormat'; break;
    case 'Device': t = 'DeviceLike'; break;
    case 'IntList': t = n > 0 ? 'number | number[]' : 'number[]'; break;
    case 'FloatList': t = n > 0 ? 'number | number[]' : 'number[]'; break;
    case 'BoolList': t = 'boolean[]'; break;
    case 'Generator': t = 'null'; break;
    case 'ScalarList': t = 'Scalar[]'; break;
    default: throw new Error(`no TS type for ${arg.kind}`);
  }
  return arg.optional && arg.kind !== 'Generator' ? `${t} | null` : t;
}

function tsReturn(rets) {
  const one = (r) => {
    const base = { Tensor: 'Tensor', TensorList: 'Tensor[]', Int: 'number', Float: 'number', Bool: 'boolean', Scalar: 'number',
      ScalarType: 'DType', IntList: 'number[]' }[r.kind];
    if (!base) throw new Error(`no TS return type for ${r.kind}`);
    return r.optional ? `${base} | null` : base;
  };
  if (rets.length === 0) return 'void';
  if (rets.length === 1) return one(rets[0]);
  return `[${rets.map(one).join(', ')}]`;
}

// Operators whose libtorch 1.13 kernels crash the process (SIGSEGV, SIGFPE,
// abort) on malformed input instead of raising, found by test/fuzz.test.ts:
// internal helpers (a leading underscore: not meant to be called directly)
// and quantized RNN cells / quantisation helpers. No input from JS may crash
// the process, so they are not generated; public operators with such kernels
// are guarded by argument checks in src/core/preconditions.ts instead.
const CRASHES_ON_BAD_INPUT = new Set([
  '_compute_linear_combination', '_remove_batch_dim', '_symeig_helper', '_fft_c2r', '_fft_r2c', '_fft_c2c',
  '_thnn_differentiable_gru_cell_backward', '_thnn_differentiable_lstm_cell_backward',
  '_new_zeros_with_same_feature_meta', '_fused_moving_avg_obs_fq_helper_functional', '_fused_moving_avg_obs_fq_helper',
  '_convert_indices_from_coo_to_csr', '_convert_indices_from_csr_to_coo', '_sobol_engine_initialize_state_',
  '_weight_norm', '_saturate_weight_to_fp16', '_ctc_loss_backward', '_histogramdd_bin_edges', '_histogramdd_from_bin_cts',
  '_transform_bias_rescale_qkv', '_stack', '_local_scalar_dense',
  'quantized_lstm_cell', 'quantized_gru_cell', 'quantized_rnn_relu_cell', 'quantized_rnn_tanh_cell',
  'fake_quantize_per_channel_affine', 'choose_qparams_optimized',
  // the 1,000,000-call fuzz (seeds 7300000–7300008): SIGSEGV / SIGABRT, or a
  // view past the end of its storage that crashes when read
  '_cummax_helper', '_cummin_helper', '_cholesky_solve_helper', '_reshape_alias', '_reshape_alias_copy',
  '_sobol_engine_ff_', '_sobol_engine_draw', '_sobol_engine_scramble_',
  '_adaptive_avg_pool2d_backward', '_adaptive_avg_pool3d_backward',
  // fused attention fast paths: num_head(s) 0 divides by zero (SIGFPE; seed 7400001)
  '_native_multi_head_attention', '_transformer_encoder_layer_fwd',
  // backward kernels fed a pdist/cdist of another shape (SIGSEGV; seed 7500001)
  '_pdist_backward', '_cdist_backward',
  // packed sequences read by unchecked batch sizes / lengths (SIGSEGV; seed 7500003; a length past the
  // sequence reads past the input)
  '_pad_packed_sequence', '_pack_padded_sequence', '_pack_padded_sequence_backward',
]);

// Named-tensor (Dimname) overloads take `str` where others take `int`: they are
// reachable by name only, never picked by type.
function isNamedTensorOverload(s) {
  return /(^|_)(names|dimname|Dimname|DimnameList)(_|$)/.test(s.overload);
}

const supported = [];
const skipped = [];
const crashing = [];
for (const s of schemas) {
  const bad = [...s.arguments, ...s.returns].find((a) => a.kind === 'Unsupported');
  let retOk = true;
  try { tsReturn(s.returns); } catch { retOk = false; }
  if (CRASHES_ON_BAD_INPUT.has(s.name)) crashing.push(`${s.name}${s.overload ? '.' + s.overload : ''}`);
  else if (bad || !retOk || s.vararg) skipped.push(`${s.name}${s.overload ? '.' + s.overload : ''}`);
  else supported.push(s);
}

const byName = new Map();
for (const s of supported) {
  if (!byName.has(s.name)) byName.set(s.name, []);
  byName.get(s.name).push(s);
}

// The argument a return is (Tensor(a!) self -> Tensor(a!)): the written
// argument in the return's alias set, or -1. Each out= slot maps to its own
// argument (sort.values returns [values, indices], not [values, values]).
function writtenArgument(s, r) {
  if (!r.mutable || r.alias === undefined) return -1;
  return s.arguments.findIndex((a) => a.mutable && a.alias === r.alias);
}

function specOf(s) {
  const args = s.arguments.map((a) => {
    const flags = (a.optional ? OPTIONAL : 0) | (a.default !== undefined ? DEFAULTED : 0) | (a.mutable ? MUTABLE : 0) |
      (a.kwargOnly ? KWARG_ONLY : 0);
    const k = KINDS.indexOf(a.kind);
    return a.n ? `[${JSON.stringify(a.name)},${k},${flags},${a.n}]` : `[${JSON.stringify(a.name)},${k},${flags}]`;
  });
  const rets = s.returns.map((r) => {
    const written = writtenArgument(s, r);
    return written >= 0 ? -1 - written : KINDS.indexOf(r.kind);
  });
  // out= overloads (mutable keyword-only arguments) are reachable by name only
  const byType = !isNamedTensorOverload(s) && !s.arguments.some((a) => a.mutable && a.kwargOnly);
  return `[${JSON.stringify(s.overload)},[${args.join(',')}],[${rets.join(',')}],${byType ? 1 : 0}]`;
}

// Keyword-only arguments (after the schema's `*`: `out`, `dtype` of the
// reductions, `output_size`, ...) go only in the options object, as
// torch.ops.aten takes them: no positional value can land in one.
function signature(s, optionsType) {
  let seenOptional = false;
  const params = s.arguments.filter((a) => !a.kwargOnly).map((a) => {
    const optional = a.optional || a.default !== undefined;
    seenOptional = seenOptional || optional;
    const p = RESERVED.has(a.name) ? `${a.name}_` : a.name;
    return optional || seenOptional ? `${p}?: ${tsType(a)} | ${optionsType}` : `${p}: ${tsType(a)}`;
  });
  params.push(`options?: ${optionsType}`);
  return `(${params.join(', ')}): ${tsReturn(s.returns)}`;
}

// Options by schema name, and by camelCase name where that differs
// (`output_padding` or `outputPadding`): the dispatcher takes both.
function optionsTypeOf(s) {
  if (s.arguments.length === 0) return '{}';
  const key = (n) => (/^[A-Za-z_$][\w$]*$/.test(n) ? n : JSON.stringify(n));
  const fields = [];
  for (const a of s.arguments) {
    // a keyword-only argument without a default can only come from here
    const q = a.kwargOnly && !a.optional && a.default === undefined && camel(a.name) === a.name ? '' : '?';
    fields.push(`${key(a.name)}${q}: ${tsType(a)}`);
    if (camel(a.name) !== a.name) fields.push(`${key(camel(a.name))}?: ${tsType(a)}`);
  }
  return `{ ${fields.join('; ')} }`;
}

function propName(overload) {
  return overload === '' ? 'default' : overload;
}

function emitOp(name, overloads) {
  const js = jsName(name);
  // default overload first, then schema order: the resolver takes the first match
  const ordered = [...overloads].sort((a, b) => (b.overload === '') - (a.overload === ''));
  const optionsName = (s) => `O_${name}${s.overload ? '_' + s.overload : ''}`;
  const lines = [];
  for (const s of ordered) lines.push(`type ${optionsName(s)} = ${optionsTypeOf(s)};`);
  lines.push('/**');
  for (const s of ordered) lines.push(` * ${s.schema.replace(/\*\//g, '*\\/')}`);
  lines.push(' */');
  lines.push(`${js === camel(name) ? 'export ' : ''}const ${js}: {`);
  for (const s of ordered.filter((s) => specOf(s).endsWith(',1]'))) {
    lines.push(`  /** ${s.schema.replace(/\*\//g, '*\\/')} */`);
    lines.push(`  ${signature(s, optionsName(s))};`);
  }
  for (const s of ordered) {
    lines.push(`  /** ${s.schema.replace(/\*\//g, '*\\/')} */`);
    lines.push(`  ${JSON.stringify(propName(s.overload))}${signature(s, optionsName(s))};`);
  }
  lines.push(`} = defineOp(${JSON.stringify(name)}, [`);
  for (const s of ordered) lines.push(`  ${specOf(s)},`);
  lines.push(']) as any;');
  if (js !== camel(name)) lines.push(`export { ${js} as ${camel(name)} };`);
  return lines.join('\n');
}

function fileKey(name) {
  const c = name.replace(/^_+/, '')[0] ?? '_';
  return /[a-z]/.test(c) ? c : 'other';
}

const files = new Map();
for (const name of [...byName.keys()].sort()) {
  const key = (name.startsWith('_') ? 'private_' : '') + fileKey(name);
  if (!files.has(key)) files.set(key, []);
  files.get(key).push(emitOp(name, byName.get(name)));
}

const header = (what) => `// GENERATED by scripts/gen-ops.mjs from the operator schemas of libtorch ${version}: do not edit.
// ${what}
/* eslint-disable */
import type { Tensor } from '../../core/tensor.js';
import type { DType, DeviceLike, Layout, MemoryFormat, Scalar } from '../../core/dtype.js';
import { defineOp } from '../../core/dispatch.js';
`;

const out = new Map();
for (const [key, ops] of files) {
  out.set(`${key}.ts`, `${header(`${ops.length} operators`)}\n${ops.join('\n\n')}\n`);
}
const keys = [...files.keys()].sort();
out.set('index.ts', `// GENERATED by scripts/gen-ops.mjs from the operator schemas of libtorch ${version}: do not edit.
// ${supported.length} overloads of ${byName.size} ATen operators; ${skipped.length} overloads skipped (argument types Keel cannot pass):
// ${skipped.join(', ').replace(/(.{1,110})(, |$)/g, '$1$2\n// ').trimEnd()}
// ${crashing.length} overloads left out because their kernels crash the process on malformed input:
// ${crashing.join(', ').replace(/(.{1,110})(, |$)/g, '$1$2\n// ').trimEnd()}
${keys.map((k) => `export * from './${k}.js';`).join('\n')}
`);

if (check) {
  const stale = [];
  for (const [f, text] of out) {
    const p = join(outDir, f);
    if (!existsSync(p) || readFileSync(p, 'utf8') !== text) stale.push(f);
  }
  if (existsSync(outDir)) for (const f of readdirSync(outDir)) if (!out.has(f)) stale.push(f);
  if (stale.length) {
    console.error(`src/ops/generated is stale (${stale.join(', ')}): run node scripts/gen-ops.mjs`);
    process.exit(1);
  }
  console.log(`src/ops/generated is current (${supported.length} overloads, ${byName.size} operators)`);
} else {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  for (const [f, text] of out) writeFileSync(join(outDir, f), text);
  console.log(`wrote ${out.size} files: ${supported.length} overloads of ${byName.size} operators (${skipped.length} skipped)`);
}
