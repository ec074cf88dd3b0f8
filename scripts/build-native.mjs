#!/usr/bin/env node
// Builds the addon (build/keel.node) against the libtorch found on this
// machine, with Node's own headers: nothing is downloaded. libtorch is looked
// for in this order: $LIBTORCH (a libtorch folder), the Python `torch`
// package if one imports and ships its libraries, Debian's libtorch-dev.
// It is also the package's `install` script: installing keel as a dependency
// builds the addon inside node_modules/keel/build.
//
// KEEL_PREBUILT_ADDON=/path/to/keel.node skips the compile and copies that
// addon instead, when the libtorch.json beside it names the libtorch found
// here (tests use it to install the packed tarball in seconds, not minutes).
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const buildDir = join(root, 'build');
const objDir = join(buildDir, 'obj');

function fromFolder(dir, how) {
  const lib = join(dir, 'lib');
  const include = join(dir, 'include');
  if (!existsSync(join(lib, 'libtorch.so')) || !existsSync(join(include, 'torch', 'csrc', 'api', 'include'))) return null;
  return { how, lib, includes: [include, join(include, 'torch', 'csrc', 'api', 'include')], abi: null };
}

function fromPython() {
  for (const py of ['python3', '/usr/bin/python3']) {
    try {
      const out = execFileSync(py, ['-c', 'import torch,os;print(os.path.dirname(torch.__file__));print(int(torch._C._GLIBCXX_USE_CXX11_ABI))'], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000,
      }).trim().split('\n');
      const found = fromFolder(out[0], `Python torch package (${py})`);
      if (found) return { ...found, abi: out[1] };
    } catch { /* no torch in this Python */ }
  }
  return null;
}

function fromDebian() {
  let multiarch = '';
  try { multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim(); } catch { /* none */ }
  const libs = [multiarch && `/usr/lib/${multiarch}`, '/usr/lib', '/usr/local/lib'].filter(Boolean);
  for (const lib of libs) {
    if (existsSync(join(lib, 'libtorch.so')) && existsSync('/usr/include/torch/csrc/api/include/torch/torch.h')) {
      return { how: "Debian's libtorch-dev", lib, includes: ['/usr/include', '/usr/include/torch/csrc/api/include'], abi: null };
    }
  }
  return null;
}

function findLibtorch() {
  if (process.env.LIBTORCH) {
    const found = fromFolder(resolve(process.env.LIBTORCH), 'LIBTORCH');
    if (!found) throw new Error(`LIBTORCH=${process.env.LIBTORCH} is not a libtorch folder (needs lib/libtorch.so and include/torch/csrc/api/include)`);
    return found;
  }
  const found = fromPython() ?? fromDebian();
  if (!found) {
    // the same line as LIBTORCH_FIX in src/native/binding.ts (test/package.test.ts checks)
    fail('libtorch not found (looked at $LIBTORCH, the Python torch package, Debian\'s libtorch-dev).\n' +
      'keel: install it with:  sudo apt-get install -y libtorch-dev libopenblas0-pthread\n' +
      'keel: or point LIBTORCH at a libtorch folder, then run `npm rebuild keel`.');
  }
  return found;
}

/** A clear message and exit 1, no stack trace: this is what `npm install` shows a user. */
function fail(message) {
  console.error(`keel: ${message}`);
  process.exit(1);
}

function writeConfig(torch) {
  writeFileSync(join(buildDir, 'libtorch.json'), JSON.stringify({ how: torch.how, lib: torch.lib, includes: torch.includes, cxx11abi: torch.abi }, null, 2) + '\n');
}

const torch = findLibtorch();
const out = join(buildDir, 'keel.node');

const prebuilt = process.env.KEEL_PREBUILT_ADDON;
if (prebuilt) {
  const src = resolve(prebuilt);
  const cfgFile = join(dirname(src), 'libtorch.json');
  if (!existsSync(src) || !existsSync(cfgFile)) fail(`KEEL_PREBUILT_ADDON=${prebuilt}: needs the addon and the libtorch.json written beside it by this script`);
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  if (resolve(cfg.lib) !== resolve(torch.lib) || String(cfg.cxx11abi) !== String(torch.abi)) {
    fail(`KEEL_PREBUILT_ADDON=${prebuilt} was built against ${cfg.lib}, but this machine's libtorch is ${torch.how} (${torch.lib}); unset it to build`);
  }
  mkdirSync(buildDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  copyFileSync(src, tmp);
  renameSync(tmp, out);
  writeConfig(torch);
  console.log(`keel: copied the prebuilt addon ${src} (built against ${torch.how}, ${torch.lib}) to ${out}`);
  process.exit(0);
}

const nodeInclude = resolve(dirname(process.execPath), '..', 'include', 'node');
if (!existsSync(join(nodeInclude, 'node_api.h'))) fail(`Node's headers are missing at ${nodeInclude} (Node's own headers; a Node without them cannot build addons)`);
try {
  execFileSync('g++', ['--version'], { stdio: 'ignore' });
} catch {
  fail('no C++ compiler (g++) to build the addon. Install it with:  sudo apt-get install -y g++');
}

const sources = readdirSync(nativeDir).filter((f) => f.endsWith('.cc'));
// c10d's ProcessGroupGloo.hpp includes Gloo's headers, which Debian does not
// ship with libtorch-dev: without them, native/gloo-shim declares the few
// names that header uses (libtorch_cpu.so holds all of Gloo's code).
const hasGloo = [...torch.includes, '/usr/include', '/usr/local/include'].some((i) => existsSync(join(i, 'gloo', 'context.h')));
const glooShim = hasGloo ? [] : [`-I${join(nativeDir, 'gloo-shim')}`];
const header = join(nativeDir, 'keel.h');
// -fopenmp: at::parallel_for is a header template; without _OPENMP it runs
// its whole range on the calling thread, so the addon's passes (rounding, the
// guard's sums and copies, DDP's bucket copies, the optimizers' fused passes)
// would never use libtorch's OpenMP team however many threads it has
const cflags = [
  '-std=c++17', '-O2', '-fPIC', '-fvisibility=hidden', '-DNAPI_VERSION=8', '-w', '-fopenmp',
  ...(torch.abi !== null ? [`-D_GLIBCXX_USE_CXX11_ABI=${torch.abi}`] : []),
  `-I${nodeInclude}`, ...torch.includes.map((i) => `-I${i}`), ...glooShim,
];

function run(cmd, args) {
  return new Promise((ok, fail) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`${cmd} failed (exit ${code})`))));
  });
}

function newer(a, b) {
  return existsSync(a) && statSync(a).mtimeMs >= statSync(b).mtimeMs;
}

mkdirSync(objDir, { recursive: true });
const stale = sources.filter((s) => {
  const o = join(objDir, s.replace(/\.cc$/, '.o'));
  // the header and this script (its flags) count as every object's sources
  return !newer(o, join(nativeDir, s)) || !newer(o, header) || !newer(o, fileURLToPath(import.meta.url));
});
console.log(`keel: building the addon against ${torch.how} (${torch.lib})`);
const jobs = Math.max(1, cpus().length);
for (let i = 0; i < stale.length; i += jobs) {
  await Promise.all(stale.slice(i, i + jobs).map((s) => {
    console.log(`  c++ ${s}`);
    return run('g++', [...cflags, '-c', join(nativeDir, s), '-o', join(objDir, s.replace(/\.cc$/, '.o'))]);
  }));
}
const libs = ['torch', 'torch_cpu', 'c10'];
for (const extra of ['torch_cuda', 'c10_cuda']) if (existsSync(join(torch.lib, `lib${extra}.so`))) libs.push(extra);
// link beside, then rename: a running process keeps its mapping of the old file
const tmp = `${out}.${process.pid}.tmp`;
await run('g++', [
  '-shared', '-o', tmp, ...sources.map((s) => join(objDir, s.replace(/\.cc$/, '.o'))),
  `-L${torch.lib}`, `-Wl,-rpath,${torch.lib}`, '-Wl,--no-as-needed', ...libs.map((l) => `-l${l}`), '-Wl,--as-needed', '-ldl', '-fopenmp',
]);
renameSync(tmp, out);
writeConfig(torch);
console.log(`keel: built ${out}`);
