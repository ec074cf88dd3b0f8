// `keel doctor`: is this machine set up to run Keel fast? Reports libtorch
// (where, how found), CUDA, the BLAS that really serves sgemm_ (the ~25× trap
// of Debian's reference BLAS), threads, Node and the PyTorch reference used by
// the tests. Exit code 0 when healthy, 1 when something is wrong.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BLAS_FIX, classifyBlas, isFastBlas, type BlasKind } from '../native/blas.js';
import { addonFix } from '../native/setup.js';

export { classifyBlas, isFastBlas, BLAS_FIX, type BlasKind };

/** The PyTorch reference the tests compare against: always Debian's python3-torch. */
export const REFERENCE_PYTHON = '/usr/bin/python3';

export interface DoctorReport {
  ok: boolean;
  /** What makes Keel not work, or work ~25× slower: exit code 1. */
  problems: string[];
  /** Worth knowing, not fatal. */
  warnings: string[];
  libtorch: {
    found: boolean;
    version: string | null;
    /** libtorch_cpu as loaded, every symlink resolved */
    library: string | null;
    /** how scripts/build-native.mjs found it, from build/libtorch.json */
    how: string | null;
    libDir: string | null;
    buildConfig: string;
    error: string | null;
  };
  cuda: { available: boolean; devices: number };
  blas: {
    /** the file dladdr() names for sgemm_ */
    sgemm: string | null;
    /** the same with every symlink resolved */
    realpath: string | null;
    kind: BlasKind;
    ok: boolean;
    fix: string | null;
    /** the kernels OpenBLAS picked (openblas_get_corename(): 'Haswell', 'SkylakeX', 'Cooperlake', …); null without OpenBLAS */
    core: string | null;
    /** OPENBLAS_CORETYPE as set in the environment (it overrides OpenBLAS's own choice), else null */
    coreType: string | null;
  };
  threads: {
    /** libtorch's intra-op threads now, after Keel loaded */
    intraOp: number | null;
    interOp: number | null;
    cores: number;
    /** what Keel's default should be: KEEL_NUM_THREADS, else every core */
    keelDefault: number;
    defaultFrom: 'KEEL_NUM_THREADS' | 'os.availableParallelism()';
    howToChange: string;
  };
  node: { version: string; ok: boolean };
  /** CPU features that decide what low precision runs natively (from /proc/cpuinfo; null where it cannot be read). */
  cpu: { avx512: boolean | null; avx512bf16: boolean | null; amx: boolean | null };
  pytorchReference: { python: string; available: boolean; version: string | null; error: string | null };
}

function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n').filter((l) => l.trim() !== '')[0] ?? msg;
}

function realpathOrNull(p: string | null): string | null {
  if (!p) return null;
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/** What OpenBLAS's AVX-512 (SkylakeX) kernels need. */
const AVX512_KERNEL_FLAGS = ['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'];
/** OpenBLAS x86-64 cores whose kernels are AVX2 or older (names as openblas_get_corename() gives them, lower case). */
const PRE_AVX512_CORES = new Set(['haswell', 'zen', 'sandybridge', 'nehalem', 'core2', 'penryn', 'dunnington', 'atom', 'prescott', 'barcelona', 'bulldozer', 'piledriver', 'steamroller', 'excavator', 'bobcat', 'opteron', 'katmai', 'northwood', 'banias']);

/** OPENBLAS_CORETYPE named the kernels OpenBLAS runs (it ignores a name it does not know and picks its own). */
function coreFromEnv(blas: DoctorReport['blas']): boolean {
  return blas.core !== null && blas.coreType !== null && blas.coreType.toLowerCase() === blas.core.toLowerCase();
}

/** bf16 runs natively on CPUs with AVX-512 BF16 (or AMX); fp16 has no CPU kernels in libtorch 1.13 either way. */
function cpuFeatures(): DoctorReport['cpu'] {
  try {
    const flags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
    return { avx512: AVX512_KERNEL_FLAGS.every((f) => flags.has(f)), avx512bf16: flags.has('avx512_bf16'), amx: flags.has('amx_bf16') };
  } catch {
    return { avx512: null, avx512bf16: null, amx: null };
  }
}

function threadDefault(): { n: number; from: DoctorReport['threads']['defaultFrom']; warning: string | null } {
  const raw = process.env.KEEL_NUM_THREADS;
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    if (Number.isInteger(n) && n > 0) return { n, from: 'KEEL_NUM_THREADS', warning: null };
    return { n: availableParallelism(), from: 'os.availableParallelism()', warning: `KEEL_NUM_THREADS=${raw} is not a positive integer` };
  }
  return { n: availableParallelism(), from: 'os.availableParallelism()', warning: null };
}

function probePytorch(): DoctorReport['pytorchReference'] {
  const ref: DoctorReport['pytorchReference'] = { python: REFERENCE_PYTHON, available: false, version: null, error: null };
  try {
    const out = execFileSync(REFERENCE_PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000,
    });
    ref.available = true;
    ref.version = out.trim();
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr;
    const last = typeof stderr === 'string' ? stderr.trim().split('\n').pop() : undefined;
    ref.error = last || firstLine(e);
  }
  return ref;
}

/** Gathers the report. Never throws: what fails becomes a problem. */
export async function diagnose(): Promise<DoctorReport> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const root = packageRoot();
  const buildConfig = join(root, 'build', 'libtorch.json');
  const cores = availableParallelism();
  const def = threadDefault();

  const report: DoctorReport = {
    ok: false,
    problems,
    warnings,
    libtorch: { found: false, version: null, library: null, how: null, libDir: null, buildConfig, error: null },
    cuda: { available: false, devices: 0 },
    blas: { sgemm: null, realpath: null, kind: 'none', ok: false, fix: null, core: null, coreType: process.env.OPENBLAS_CORETYPE || null },
    threads: {
      intraOp: null, interOp: null, cores, keelDefault: def.n, defaultFrom: def.from,
      howToChange: 'keel.setNumThreads(n) or the KEEL_NUM_THREADS environment variable',
    },
    node: { version: process.version, ok: Number(process.versions.node.split('.')[0]) >= 20 },
    cpu: cpuFeatures(),
    pytorchReference: { python: REFERENCE_PYTHON, available: false, version: null, error: null },
  };

  if (existsSync(buildConfig)) {
    try {
      const cfg = JSON.parse(readFileSync(buildConfig, 'utf8')) as { how?: string; lib?: string };
      report.libtorch.how = cfg.how ?? null;
      report.libtorch.libDir = cfg.lib ?? null;
    } catch (e) {
      warnings.push(`${buildConfig} is unreadable: ${firstLine(e)}`);
    }
  }

  let loaded = false;
  try {
    const { native } = await import('../native/binding.js');
    const info = native.info();
    report.libtorch.found = true;
    report.libtorch.version = info.version;
    report.libtorch.library = realpathOrNull(info.library) ?? info.library;
    report.cuda.available = info.cuda;
    report.cuda.devices = info.cudaDevices;
    report.blas.sgemm = info.sgemm || null;
    report.blas.realpath = realpathOrNull(info.sgemm) ?? (info.sgemm || null);
    report.blas.core = info.blasCore || null;
    report.threads.interOp = info.interopThreads;
  } catch (e) {
    report.libtorch.error = firstLine(e);
    // the same fix as the loader's error and the install script: the apt-get line, then the rebuild
    problems.push(`libtorch could not be loaded: ${report.libtorch.error}\n    ${addonFix(root).replace(/\n\s*/g, '\n    ')}`);
  }
  if (report.libtorch.found) {
    try {
      // the whole package, so that its thread default is applied as a user would see it
      const keel = await import('../index.js');
      report.threads.intraOp = keel.getNumThreads();
      loaded = true;
    } catch (e) {
      problems.push(`Keel did not load: ${firstLine(e)}`);
    }
  }

  // Keel refuses a bad KEEL_NUM_THREADS (then "Keel did not load" says why); if it ever ignores one, say so
  if (def.warning && loaded) warnings.push(`${def.warning}; ignored`);

  if (report.libtorch.found) {
    const kind = classifyBlas(report.blas.realpath);
    report.blas.kind = kind;
    report.blas.ok = isFastBlas(kind);
    if (kind === 'reference') {
      report.blas.fix = BLAS_FIX;
      problems.push(
        `sgemm_ is served by the REFERENCE BLAS (${report.blas.realpath}): matmul and conv run ~25× slower.\n` +
          `    fix: ${BLAS_FIX}`,
      );
    } else if (kind === 'none') {
      warnings.push('no library exports sgemm_ in this process: cannot tell which BLAS libtorch uses');
    } else if (kind === 'unknown') {
      warnings.push(`sgemm_ is served by ${report.blas.realpath}, which Keel does not recognise as OpenBLAS, MKL or BLIS`);
    }
    const { core, coreType } = report.blas;
    if (core !== null && coreFromEnv(report.blas) && report.cpu.avx512 === true && PRE_AVX512_CORES.has(core.toLowerCase())) {
      // measured on an AMD EPYC (Zen 5): an MLP layer's 64×784×256 GEMM in ~0.65× the time on OpenBLAS's own choice (Cooperlake)
      warnings.push(
        `OPENBLAS_CORETYPE=${coreType} holds OpenBLAS to its ${core} (AVX2) kernels on a CPU with AVX-512: matmul and linear layers run up to ~1.45× slower ` +
          'than on the AVX-512 kernels OpenBLAS picks by itself. Unset it, unless it is there to match results computed elsewhere bit for bit',
      );
    }
    const t = report.threads;
    if (loaded && t.intraOp !== null && t.intraOp !== t.keelDefault) {
      warnings.push(
        `libtorch runs ${t.intraOp} intra-op thread(s), but Keel's default is ${t.keelDefault} (${t.defaultFrom}); ` +
          'if you did not ask for fewer, the default was not applied',
      );
    }
  }

  if (!report.node.ok) problems.push(`Node ${process.version} is too old: Keel needs Node 20 or newer`);

  report.pytorchReference = probePytorch();
  if (!report.pytorchReference.available) {
    warnings.push(
      `the PyTorch reference (${REFERENCE_PYTHON} -c 'import torch') is unavailable: tests that compare against PyTorch will skip` +
        ` (fix: sudo apt-get install -y python3-torch)`,
    );
  }

  report.ok = problems.length === 0;
  return report;
}

const useColor = (): boolean => process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code: string, s: string): string => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
const good = (s: string): string => paint('32', s);
const bad = (s: string): string => paint('1;31', s);
const warn = (s: string): string => paint('33', s);

/** The report as the text `keel doctor` prints. */
export function formatReport(r: DoctorReport): string {
  const OK = good('ok  ');
  const NO = bad('FAIL');
  const HM = warn('warn');
  const lines: string[] = ['keel doctor', ''];
  const row = (mark: string, label: string, value: string) => lines.push(`  ${mark}  ${label.padEnd(18)} ${value}`);

  if (r.libtorch.found) {
    row(OK, 'libtorch', `${r.libtorch.version}  ${r.libtorch.library}`);
  } else {
    row(NO, 'libtorch', `not loaded: ${r.libtorch.error}`);
  }
  row(r.libtorch.how ? OK : HM, 'found via', r.libtorch.how ? `${r.libtorch.how}  (${r.libtorch.libDir}; ${r.libtorch.buildConfig})` : `unknown (${r.libtorch.buildConfig} missing)`);
  if (r.libtorch.found) row(OK, 'CUDA', r.cuda.available ? `yes, ${r.cuda.devices} device(s)` : 'no (CPU only)');
  else row(HM, 'CUDA', 'unknown (libtorch not loaded)');
  if (r.libtorch.found) {
    const blasMark = r.blas.kind === 'reference' ? NO : r.blas.ok ? OK : HM;
    const via = r.blas.sgemm && r.blas.sgemm !== r.blas.realpath ? `  (via ${r.blas.sgemm})` : '';
    row(blasMark, 'BLAS (sgemm_)', `${r.blas.kind}  ${r.blas.realpath ?? '-'}${via}`);
    if (r.blas.core !== null) {
      const { core, coreType } = r.blas;
      const why = coreType === null ? 'OpenBLAS chose them for this CPU'
        : coreFromEnv(r.blas) ? `OPENBLAS_CORETYPE=${coreType}`
          : `OPENBLAS_CORETYPE=${coreType} names no kernels of this OpenBLAS: it chose these itself`;
      row(r.warnings.some((w) => w.startsWith('OPENBLAS_CORETYPE=')) ? HM : OK, 'BLAS kernels', `${core}  (${why})`);
    }
  }
  const t = r.threads;
  row(t.intraOp === null || t.intraOp === t.keelDefault ? OK : HM, 'threads', `libtorch intra-op ${t.intraOp ?? '-'}, inter-op ${t.interOp ?? '-'}; ${t.cores} core(s)`);
  lines.push(`  ${''.padEnd(4)}  ${''.padEnd(18)} Keel uses ${t.keelDefault} (${t.defaultFrom}) unless told otherwise by ${t.howToChange}`);
  row(r.node.ok ? OK : NO, 'Node', r.node.version);
  const bf16 = r.cpu.avx512bf16 === null ? 'unknown (no /proc/cpuinfo)'
    : r.cpu.avx512bf16 || r.cpu.amx ? `native bf16 (${[r.cpu.avx512bf16 ? 'AVX-512 BF16' : '', r.cpu.amx ? 'AMX' : ''].filter(Boolean).join(', ')}); fp16 emulated (no CPU kernels in libtorch 1.13)`
      : 'no AVX-512 BF16: bf16 runs through slower conversions; fp16 emulated (no CPU kernels in libtorch 1.13)';
  row(OK, 'low precision', bf16);
  const ref = r.pytorchReference;
  row(ref.available ? OK : HM, 'PyTorch reference', ref.available ? `torch ${ref.version} (${ref.python})` : `unavailable (${ref.python}: ${ref.error})`);

  if (r.blas.kind === 'reference') {
    const bar = '!'.repeat(78);
    lines.push('', bad(bar),
      bad('!!  WARNING: libtorch is using the REFERENCE BLAS. Matmul, linear and conv layers'),
      bad('!!  run about 25× slower than with OpenBLAS.'),
      bad(`!!  sgemm_ comes from ${r.blas.realpath}`),
      bad(`!!  Fix:  ${BLAS_FIX}`),
      bad(bar));
  }
  if (r.problems.length > 0) {
    lines.push('', bad('problems:'));
    for (const p of r.problems) lines.push(`  - ${p}`);
  }
  if (r.warnings.length > 0) {
    lines.push('', warn('warnings:'));
    for (const w of r.warnings) lines.push(`  - ${w}`);
  }
  lines.push('', r.ok ? good('healthy') : bad('NOT healthy'));
  return lines.join('\n');
}

/** Runs `keel doctor [--json]` (declared in src/cli/program.ts); returns the exit code. */
export async function runDoctor({ json = false }: { json?: boolean } = {}): Promise<number> {
  const report = await diagnose();
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.ok ? 0 : 1;
}

/** Runs `keel doctor [args]` through the whole command line; returns the exit code. */
export async function doctor(args: string[]): Promise<number> {
  return (await import('./main.js')).main(['doctor', ...args]);
}
