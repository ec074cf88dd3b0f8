import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as keel from 'keel';

const BIN = fileURLToPath(new URL('../../bin/keel.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function keelCli(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
}

test('classifyBlas tells OpenBLAS from the reference BLAS by real path', () => {
  const cases: [string | null, keel.BlasKind][] = [
    ['/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3', 'openblas'],
    ['/usr/lib/aarch64-linux-gnu/openblas-openmp/libblas.so.3', 'openblas'],
    ['/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0', 'openblas'],
    ['/usr/lib64/libopenblasp.so.0', 'openblas'],
    ['/usr/lib/x86_64-linux-gnu/blas/libblas.so.3', 'reference'],
    ['/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0', 'reference'],
    ['/usr/lib64/libblas.so.3', 'reference'],
    ['/usr/lib/librefblas.so', 'reference'],
    ['/opt/intel/oneapi/mkl/latest/lib/intel64/libmkl_rt.so.2', 'mkl'],
    ['/usr/lib/x86_64-linux-gnu/blis-pthread/libblas.so.3', 'blis'],
    ['/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3', 'atlas'],
    ['/home/u/.local/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so', 'bundled'],
    ['/opt/something/libfastmath.so', 'unknown'],
    ['', 'none'],
    [null, 'none'],
  ];
  for (const [path, kind] of cases) assert.equal(keel.classifyBlas(path), kind, String(path));
  assert.equal(keel.isFastBlas('openblas'), true);
  assert.equal(keel.isFastBlas('reference'), false);
  assert.equal(keel.isFastBlas('unknown'), false);
});

test('`keel doctor --json` reports libtorch, CUDA, BLAS, threads, Node and the PyTorch reference', () => {
  const r = keelCli('doctor', '--json');
  assert.equal(r.error, undefined, String(r.error));
  const report = JSON.parse(r.stdout);
  assert.equal(r.status, report.ok ? 0 : 1, `exit code ${r.status} for ok=${report.ok}; stderr: ${r.stderr}`);
  assert.equal(report.ok, report.problems.length === 0);
  assert.ok(Array.isArray(report.warnings));

  const info = keel.libtorchInfo();
  assert.equal(report.libtorch.found, true);
  assert.equal(report.libtorch.version, info.version);
  assert.equal(report.libtorch.library, realpathSync(info.library));
  assert.equal(typeof report.libtorch.how, 'string');
  assert.equal(typeof report.libtorch.libDir, 'string');
  assert.deepEqual(report.cuda, { available: info.cuda, devices: info.cudaDevices });

  assert.equal(report.blas.sgemm, info.sgemm || null);
  const real = info.sgemm ? realpathSync(info.sgemm) : null;
  assert.equal(report.blas.realpath, real);
  assert.equal(report.blas.kind, keel.classifyBlas(real));
  assert.equal(report.blas.ok, keel.isFastBlas(report.blas.kind));
  if (report.blas.kind === 'reference') {
    assert.equal(report.ok, false, 'the reference BLAS must make the doctor fail');
    assert.match(report.blas.fix, /libopenblas0-pthread/);
  }

  assert.equal(typeof report.threads.intraOp, 'number');
  assert.ok(report.threads.intraOp >= 1);
  assert.ok(report.threads.cores >= 1);
  assert.ok(report.threads.keelDefault >= 1);
  assert.match(report.threads.defaultFrom, /KEEL_NUM_THREADS|availableParallelism/);

  assert.equal(report.node.version, process.version);
  assert.equal(report.node.ok, true);
  assert.equal(report.pytorchReference.python, '/usr/bin/python3');
  assert.equal(typeof report.pytorchReference.available, 'boolean');
  if (report.pytorchReference.available) assert.match(report.pytorchReference.version, /^\d+\.\d+/);
});

test('doctor names the OpenBLAS kernels and warns when OPENBLAS_CORETYPE holds an AVX-512 CPU to AVX2 kernels', () => {
  const run = (coreType: string | undefined) => {
    const env = { ...process.env };
    if (coreType === undefined) delete env.OPENBLAS_CORETYPE;
    else env.OPENBLAS_CORETYPE = coreType;
    const r = spawnSync(process.execPath, [BIN, 'doctor', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, env });
    assert.equal(r.error, undefined, String(r.error));
    return JSON.parse(r.stdout);
  };
  const forced = run('Haswell');
  if (forced.blas.kind !== 'openblas') return; // another BLAS: no OpenBLAS kernels to name
  assert.equal(forced.blas.core, 'Haswell');
  assert.equal(forced.blas.coreType, 'Haswell');
  const warned = forced.warnings.some((w: string) => /^OPENBLAS_CORETYPE=Haswell holds OpenBLAS to its Haswell \(AVX2\) kernels/.test(w));
  assert.equal(warned, forced.cpu.avx512 === true, 'the warning exactly when the CPU has AVX-512');
  const own = run(undefined);
  assert.equal(own.blas.coreType, null);
  assert.equal(typeof own.blas.core, 'string');
  assert.ok(!own.warnings.some((w: string) => w.startsWith('OPENBLAS_CORETYPE')));
});

test('Keel runs every core by default, KEEL_NUM_THREADS overrides it, and doctor reports both', () => {
  const env = { ...process.env };
  delete env.KEEL_NUM_THREADS;
  const byDefault = JSON.parse(spawnSync(process.execPath, [BIN, 'doctor', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, env }).stdout);
  assert.equal(byDefault.threads.defaultFrom, 'os.availableParallelism()');
  assert.equal(byDefault.threads.keelDefault, byDefault.threads.cores);
  assert.equal(byDefault.threads.intraOp, byDefault.threads.cores);

  const one = JSON.parse(spawnSync(process.execPath, [BIN, 'doctor', '--json'], {
    cwd: ROOT, encoding: 'utf8', timeout: 180_000, env: { ...env, KEEL_NUM_THREADS: '1' },
  }).stdout);
  assert.equal(one.threads.defaultFrom, 'KEEL_NUM_THREADS');
  assert.equal(one.threads.keelDefault, 1);
  assert.equal(one.threads.intraOp, 1);

  const bad = spawnSync(process.execPath, [BIN, 'doctor', '--json'], {
    cwd: ROOT, encoding: 'utf8', timeout: 180_000, env: { ...env, KEEL_NUM_THREADS: 'lots' },
  });
  const badReport = JSON.parse(bad.stdout);
  assert.equal(bad.status, 1);
  assert.ok(badReport.problems.some((p: string) => p.includes('KEEL_NUM_THREADS')), badReport.problems.join('\n'));
});

test('`keel doctor` prints a readable report', () => {
  const text = keelCli('doctor');
  assert.equal(text.status, JSON.parse(keelCli('doctor', '--json').stdout).ok ? 0 : 1);
  assert.match(text.stdout, /libtorch\s+\d+\.\d+/);
  assert.match(text.stdout, /BLAS \(sgemm_\)/);
  assert.match(text.stdout, /PyTorch reference/);
  assert.match(text.stdout, /healthy/);
});

test('`keel doctor` fails loudly, with the fix, when the reference BLAS serves sgemm_', (t) => {
  // a stand-in reference BLAS, preloaded so that it answers sgemm_ first; doctor never calls it
  const dir = mkdtempSync(join(tmpdir(), 'keel-refblas-'));
  try {
    mkdirSync(join(dir, 'blas'));
    writeFileSync(join(dir, 'sgemm.c'), 'void sgemm_(void) {}\n');
    const lib = join(dir, 'blas', 'libblas.so.3');
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', lib, join(dir, 'sgemm.c')], { encoding: 'utf8' });
    if (cc.error || cc.status !== 0) {
      t.skip('no C compiler to build the stand-in BLAS');
      return;
    }
    const env = { ...process.env, LD_PRELOAD: lib, NO_COLOR: '1' };
    const json = spawnSync(process.execPath, [BIN, 'doctor', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, env });
    const report = JSON.parse(json.stdout);
    assert.equal(report.blas.realpath, realpathSync(lib));
    assert.equal(report.blas.kind, 'reference');
    assert.equal(report.ok, false);
    assert.equal(json.status, 1);
    assert.match(report.blas.fix, /sudo apt-get install -y libopenblas0-pthread/);
    const text = spawnSync(process.execPath, [BIN, 'doctor'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, env });
    assert.equal(text.status, 1);
    assert.match(text.stdout, /WARNING: libtorch is using the REFERENCE BLAS/);
    assert.match(text.stdout, /sudo apt-get install -y libopenblas0-pthread/);
    assert.match(text.stdout, /NOT healthy/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the keel command: --help exits 0, an unknown command exits 2 with the usage', () => {
  const help = keelCli('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /usage: keel <command>/);
  assert.match(help.stdout, /doctor/);
  const bad = keelCli('no-such-command');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown command 'no-such-command'/);
  assert.match(bad.stderr, /usage: keel <command>/);
  const none = keelCli();
  assert.equal(none.status, 2);
  const badOption = keelCli('doctor', '--frobnicate');
  assert.equal(badOption.status, 2);
});

test('keel doctor says whether the CPU runs bf16 natively (AVX-512 BF16 or AMX), as /proc/cpuinfo says', () => {
  const out = execFileSync(process.execPath, [BIN, 'doctor', '--json'], { encoding: 'utf8' });
  const r = JSON.parse(out) as { cpu: { avx512: boolean | null; avx512bf16: boolean | null; amx: boolean | null } };
  const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)![1].trim().split(/\s+/);
  const avx512 = ['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.includes(f));
  assert.deepEqual(r.cpu, { avx512, avx512bf16: flags.includes('avx512_bf16'), amx: flags.includes('amx_bf16') });
});
