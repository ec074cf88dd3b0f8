// What a user does: `npm pack` (from a fresh copy of the checkout), a new
// project, `npm install` of the tarball (offline, from npm's cache), a strict
// `tsc` of a small typed training script (skipLibCheck false,
// exactOptionalPropertyTypes, no @types/node of its own) and running it.
//
// The install copies this checkout's addon (KEEL_PREBUILT_ADDON, same
// libtorch) instead of compiling it; the last test rebuilds it for real in the
// installed package (~2 min): KEEL_SKIP_ADDON_BUILD=1 skips that one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LIBTORCH_FIX = /LIBTORCH_FIX = '([^']+)'/.exec(readFileSync(join(ROOT, 'src', 'native', 'setup.ts'), 'utf8'))![1];
const TSC = join(realpathSync(join(ROOT, 'node_modules')), 'typescript', 'bin', 'tsc');

let work = '';
let tarball = '';
let app = '';

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env, timeout = 600_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Without the outer `npm test`'s npm_* variables, which would steer the nested npm. */
function cleanEnv(extra: Record<string, string> = {}, drop: string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && !drop.includes(k)) env[k] = v;
  return { ...env, ...extra };
}

const TRAIN_TS = `import * as keel from 'keel';
import type { Tensor } from 'keel';

type IsAny<T> = 0 extends 1 & T ? true : false;

class Net extends keel.nn.Module<[Tensor], Tensor> {
  readonly fc1 = new keel.nn.Linear(4, 32);
  readonly act = new keel.nn.ReLU();
  readonly fc2 = new keel.nn.Linear(32, 3);
  forward(x: Tensor): Tensor {
    return this.fc2.call(this.act.call(this.fc1.call(x)));
  }
}

// a subclass without type arguments still gets call() typed from its forward
class Scale extends keel.nn.Module {
  forward(x: Tensor, by: number): Tensor {
    return x.mul(by);
  }
}

keel.manualSeed(0);
const x = keel.randn([512, 4]);
const y = x.narrow(1, 0, 3).argmax(1);
const data = new keel.data.TensorDataset(x, y);
const trainLoader = new keel.data.DataLoader(data, { batchSize: 32, shuffle: true, seed: 0 });
const evalLoader = new keel.data.DataLoader(data, { batchSize: 128 });

const model = new Net();
const out = model.call(x.narrow(0, 0, 2));
const notAny: IsAny<typeof out> = false;
const scaled: Tensor = new Scale().call(out, 2);
// padding is a literal union (never called: the line only has to fail to compile)
// @ts-expect-error
const badPadding = () => new keel.nn.Conv2d(1, 1, 3, { padding: 'full' });
void badPadding;

const optimizer = new keel.optim.AdamW(model.parameters(), { lr: 1e-2 });
const guard = new keel.Guard({ model, optimizer, policy: 'skip' });
const result = keel.train.fit({
  model, optimizer, trainLoader, evalLoader, guard, epochs: 8, progress: false,
  loss: (o: Tensor, t: Tensor) => keel.losses.crossEntropy(o, t),
});

let plotError = '';
try {
  await keel.plot.renderSvg({ mark: 'point' });
} catch (e) {
  plotError = e instanceof Error ? e.message : String(e);
}
console.log(JSON.stringify({ steps: result.steps, trainLoss: result.trainLoss, accuracy: result.evaluation?.accuracy, outShape: out.shape, scaledShape: scaled.shape, notAny, plotError }));
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true,
    exactOptionalPropertyTypes: true, skipLibCheck: false, noEmitOnError: true, outDir: 'out',
  },
  files: ['train.ts'],
};

before(() => {
  work = mkdtempSync(join(tmpdir(), 'keel-pack-'));
  // a fresh copy of the checkout (tracked and new files, nothing ignored: no dist/, no build/)
  const src = join(work, 'src');
  const files = ok(sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT), 'git ls-files').split('\0').filter(Boolean);
  for (const f of files) {
    const from = join(ROOT, f);
    if (!existsSync(from) || !statSync(from).isFile()) continue;
    mkdirSync(dirname(join(src, f)), { recursive: true });
    copyFileSync(from, join(src, f));
  }
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(src, 'node_modules'));
  ok(sh('npm', ['pack', '--pack-destination', work], src, cleanEnv()), 'npm pack');
  tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'keel-user', version: '1.0.0', private: true, type: 'module' }, null, 2));
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  writeFileSync(join(app, 'train.ts'), TRAIN_TS);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the tarball holds dist/, the addon sources and build script, bin/, README and LICENSE, nothing else', (t) => {
  const listed = ok(sh('tar', ['-tzf', tarball], work), 'tar').split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
  const allowed = /^(dist\/.*\.(js|d\.ts)|native\/[a-z_]+\.(cc|h)|native\/gloo-shim\/[a-z_/]+\.h|scripts\/build-native\.mjs|bin\/keel\.js|README\.md|LICENSE|package\.json)$/;
  assert.deepEqual(listed.filter((f) => !allowed.test(f)), []);
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'native/dispatch.cc', 'native/keel.h', 'scripts/build-native.mjs', 'bin/keel.js', 'LICENSE']) {
    assert.ok(listed.includes(f), `${f} is in the tarball`);
  }
  const size = statSync(tarball).size;
  t.diagnostic(`${tarball}: ${(size / 1e6).toFixed(2)} MB, ${listed.length} files`);
  assert.ok(size < 1_000_000, `tarball is ${size} bytes`);
  // the build script prints the same apt-get line as the loader and keel doctor
  assert.ok(readFileSync(join(ROOT, 'scripts', 'build-native.mjs'), 'utf8').includes(LIBTORCH_FIX));
});

test('npm install of the tarball, a strict tsc of a typed training script, and running it', (t) => {
  const env = cleanEnv({ KEEL_PREBUILT_ADDON: join(ROOT, 'build', 'keel.node') });
  const args = ['install', '--no-audit', '--no-fund', '--foreground-scripts', tarball];
  let r = sh('npm', [...args, '--offline'], app, env);
  // the first run may lack the registry's metadata in the cache (npm ci only keeps tarballs)
  if (r.status !== 0 && /ENOTCACHED/.test(r.stderr)) r = sh('npm', [...args, '--prefer-offline'], app, env);
  ok(r, 'npm install');
  assert.match(r.stdout, /keel: copied the prebuilt addon/);
  const nm = join(app, 'node_modules');
  assert.ok(existsSync(join(nm, 'keel', 'build', 'keel.node')));
  // @types/node comes as Keel's own dependency (its declarations name Node's types: http.Server, Buffer, signals); the consumer never adds it
  for (const absent of ['vega', 'vega-lite', 'typescript']) assert.ok(!existsSync(join(nm, absent)), `${absent} is not installed`);
  assert.deepEqual(readdirSync(join(nm, '.bin')), ['keel']);

  ok(sh(process.execPath, [TSC, '-p', 'tsconfig.json'], app), 'strict tsc');
  const run = JSON.parse(ok(sh(process.execPath, ['out/train.js'], app, cleanEnv()), 'the training script').trim().split('\n').pop()!);
  t.diagnostic(JSON.stringify(run));
  assert.equal(run.steps, 8 * 16);
  assert.ok(Number.isFinite(run.trainLoss));
  assert.ok(run.accuracy > 0.8, `accuracy ${run.accuracy}`);
  assert.deepEqual(run.outShape, [2, 3]);
  assert.match(run.plotError, /^keel\.plot needs the optional package 'vega(-lite)?' \(npm install vega vega-lite\)$/);

  const doctor = sh(process.execPath, [join(nm, 'keel', 'bin', 'keel.js'), 'doctor'], app, cleanEnv());
  assert.equal(doctor.status, 0, doctor.stdout);
  assert.match(doctor.stdout, /ok +libtorch +1\.13/);
});

test('without the addon, importing keel and keel doctor both name the apt-get line and npm rebuild keel', () => {
  const addon = join(app, 'node_modules', 'keel', 'build', 'keel.node');
  renameSync(addon, `${addon}.away`);
  try {
    const r = sh(process.execPath, ['--input-type=module', '-e', "await import('keel')"], app, cleanEnv());
    assert.notEqual(r.status, 0);
    assert.ok(r.stderr.includes(LIBTORCH_FIX), r.stderr);
    assert.match(r.stderr, /npm rebuild keel/);
    const doctor = sh(process.execPath, [join(app, 'node_modules', 'keel', 'bin', 'keel.js'), 'doctor'], app, cleanEnv());
    assert.equal(doctor.status, 1);
    assert.ok(doctor.stdout.includes(LIBTORCH_FIX), doctor.stdout);
    assert.match(doctor.stdout, /npm rebuild keel/);
  } finally {
    renameSync(`${addon}.away`, addon);
  }
});

test('the install script really builds the addon in the installed package (KEEL_SKIP_ADDON_BUILD=1 skips)', { skip: process.env.KEEL_SKIP_ADDON_BUILD === '1' }, (t) => {
  const pkg = join(app, 'node_modules', 'keel');
  rmSync(join(pkg, 'build'), { recursive: true, force: true });
  const started = performance.now();
  const r = ok(sh('npm', ['rebuild', 'keel', '--foreground-scripts'], app, cleanEnv({}, ['KEEL_PREBUILT_ADDON']), 900_000), 'npm rebuild keel');
  t.diagnostic(`addon build in the installed package: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  assert.match(r, /keel: building the addon against/);
  assert.ok(existsSync(join(pkg, 'build', 'keel.node')));
  const run = JSON.parse(ok(sh(process.execPath, ['out/train.js'], app, cleanEnv()), 'the training script').trim().split('\n').pop()!);
  assert.ok(run.accuracy > 0.8, `accuracy ${run.accuracy}`);
});
