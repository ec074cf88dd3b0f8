// keel.stable: ODE-view blocks and their stability analysis on cases with
// known answers, and `keel repro stable --quick`.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as keel from 'keel';

const S = keel.stable;
type Tensor = keel.Tensor;
const f64 = { dtype: 'float64' as const };

function setK(block: keel.stable.OdeBlock, rows: number[][]): void {
  keel.noGrad(() => {
    const K = keel.tensor(rows, f64);
    for (let j = 0; j < block.depth; j++) block.K.select(0, j).copy_(K);
    block.b.zero_();
  });
}

test('antisymmetric linear block: Jacobian eigenvalues have real part exactly −γ (−γ/2 with the paper\'s ½)', () => {
  keel.scope(() => {
    keel.manualSeed(3);
    for (const [halfFactor, expected] of [[false, -0.3], [true, -0.15]] as const) {
      const blk = new S.AntisymmetricBlock({ kernel: { type: 'dense', width: 7 }, depth: 3, h: 0.1, activation: 'identity', dtype: 'float64', gamma: 0.3, halfFactor, init: 'random-per-layer' });
      for (const j of [0, 2]) {
        const e = S.eigenvalues(S.rhsJacobian(blk, j, keel.randn([1, 7], f64)));
        for (const re of e.re) assert.ok(Math.abs(re - expected) < 1e-10, `re ${re} vs ${expected}`);
        assert.ok(Math.max(...e.im.map(Math.abs)) > 0.1, 'non-trivial imaginary parts');
      }
    }
    // the convolutional form: conv(Y, W) − convᵀ(Y, W) − γY is antisymmetric − γI as an operator
    const conv = new S.AntisymmetricBlock({ kernel: { type: 'conv', channels: 2, kernelSize: 3 }, depth: 1, h: 0.1, activation: 'identity', dtype: 'float64', gamma: 0.25 });
    const e = S.eigenvalues(S.rhsJacobian(conv, 0, keel.randn([1, 2, 4, 4], f64)));
    assert.equal(e.re.length, 32);
    for (const re of e.re) assert.ok(Math.abs(re + 0.25) < 1e-10, `conv re ${re}`);
  });
});

test('Jacobian through autograd matches central finite differences (float64), every architecture, dense and conv', () => {
  keel.scope(() => {
    keel.manualSeed(4);
    for (const arch of S.ARCHITECTURES) {
      for (const kernel of [{ type: 'dense', width: 3 }, { type: 'conv', channels: 2, kernelSize: 3 }] as keel.stable.KernelSpec[]) {
        const blk = S.makeBlock(arch, { kernel, depth: 2, h: 0.2, activation: 'tanh', dtype: 'float64', init: 'random-per-layer', gamma: 0.2 });
        keel.noGrad(() => blk.b.normal_(0, 0.3));
        const shape = kernel.type === 'dense' ? [1, 3] : [1, 2, 3, 3];
        const u0 = blk.initialState(keel.randn(shape, f64));
        const u = keel.ops.add(u0, keel.ops.mul(keel.randnLike(u0), 0.5)); // a nonzero second half too
        const J = S.rhsJacobian(blk, 1, u);
        const Jfd = S.jacobianFiniteDifference((x: Tensor) => blk.rhs(1, x), u, 1e-6);
        const err = keel.ops.sub(J, Jfd).abs().max().item() as number;
        assert.ok(err < 1e-8, `${arch} ${kernel.type}: max |J − J_fd| = ${err}`);
        // and the whole block's input-output Jacobian
        const Jb = S.jacobian((x: Tensor) => blk.forward(x), u0.narrow(1, 0, shape[1]));
        const Jbfd = S.jacobianFiniteDifference((x: Tensor) => blk.forward(x), u0.narrow(1, 0, shape[1]), 1e-6);
        assert.ok((keel.ops.sub(Jb, Jbfd).abs().max().item() as number) < 1e-8, `${arch} ${kernel.type}: block Jacobian`);
      }
    }
  });
});

test('Verlet keeps the energy of a linear Hamiltonian system bounded over 10⁴ steps; forward Euler drifts', () => {
  keel.scope(() => {
    // y' = K z, z' = −Kᵀ y with K a rotation-scaled 2×2 matrix: ω = 1.5, h = 0.1 (hω = 0.15 < 2)
    const K = [[1.2, -0.9], [0.9, 1.2]];
    const N = 10_000;
    const h = 0.1;
    const ham = new S.HamiltonianBlock({ kernel: { type: 'dense', width: 2 }, depth: N, h, activation: 'identity', dtype: 'float64', init: 'zeros' });
    setK(ham, K);
    const y0 = keel.tensor([[1, 0.5]], f64);
    const { states } = keel.noGrad(() => ham.integratePair(y0, null, true));
    const energy = states.map((u) => 0.5 * (keel.ops.sum(keel.ops.square(u)).item() as number));
    const first = energy.slice(0, 1000), last = energy.slice(-1000);
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    const e0 = energy[0];
    assert.ok(Math.max(...energy) / Math.min(...energy) < 1.2, `energy oscillation ${Math.min(...energy)}..${Math.max(...energy)}`);
    assert.ok(Math.abs(mean(last) - mean(first)) / e0 < 1e-3, `drift ${mean(first)} → ${mean(last)}`);
    // forward Euler on the same system u' = A u, A = [[0, K], [−Kᵀ, 0]]: |1 + hλ| = √(1 + h²ω²) > 1
    const A = [[0, 0, ...K[0]], [0, 0, ...K[1]], [-K[0][0], -K[1][0], 0, 0], [-K[0][1], -K[1][1], 0, 0]];
    const fe = new S.ResNetBlock({ kernel: { type: 'dense', width: 4 }, depth: N, h, activation: 'identity', dtype: 'float64', init: 'zeros' });
    setK(fe, A);
    const uN = keel.noGrad(() => fe.forward(keel.tensor([[1, 0.5, 0, 0]], f64)));
    const eN = 0.5 * (keel.ops.sum(keel.ops.square(uN)).item() as number);
    assert.ok(eN / e0 > 1e6, `forward Euler energy ratio ${eN / e0}`);
    // and the region check says so
    const eig = S.eigenvalues(S.rhsJacobian(ham, 0, ham.initialState(y0)));
    assert.ok(S.checkStability('verlet', h, eig).stable);
    assert.ok(!S.checkStability('forward-euler', h, eig).stable);
  });
});

test('forward Euler goes unstable exactly when hλ leaves |1 + hλ| ≤ 1', () => {
  keel.scope(() => {
    const run = (K: number[][], h: number, steps: number): number => {
      const blk = new S.ResNetBlock({ kernel: { type: 'dense', width: K.length }, depth: steps, h, activation: 'identity', dtype: 'float64', init: 'zeros' });
      setK(blk, K);
      const y0 = keel.ones([1, K.length], f64);
      return keel.noGrad(() => (blk.forward(y0).norm().item() as number) / (y0.norm().item() as number));
    };
    // real λ = −1: boundary h = 2
    assert.ok(S.inStabilityRegion('forward-euler', 1.99, -1, 0));
    assert.ok(!S.inStabilityRegion('forward-euler', 2.01, -1, 0));
    assert.ok(run([[-1]], 1.99, 2000) < 1e-6);
    assert.ok(run([[-1]], 2.01, 2000) > 1e6);
    // complex λ = −0.5 ± i: boundary h = 2·0.5/(0.25 + 1) = 0.8
    const K = [[-0.5, -1], [1, -0.5]];
    const e = S.eigenvalues(keel.tensor(K, f64));
    assert.deepEqual(e.re.map((v) => Math.round(v * 1e9) / 1e9), [-0.5, -0.5]);
    for (const [h, inside] of [[0.79, true], [0.81, false]] as const) {
      assert.equal(S.checkStability('forward-euler', h, e).stable, inside);
      const g = run(K, h, 5000);
      assert.ok(inside ? g < 1e-3 : g > 1e3, `h = ${h}: growth ${g}`);
    }
    // leapfrog/Verlet: purely imaginary hλ inside (−2i, 2i)
    assert.ok(S.inStabilityRegion('leapfrog', 1, 0, 1.99));
    assert.ok(!S.inStabilityRegion('leapfrog', 1, 0, 2.01));
    assert.ok(!S.inStabilityRegion('verlet', 1, 0.01, 1));
    assert.ok(Math.abs(S.amplification('leapfrog', 1, 0, 1.5) - 1) < 1e-12);
    assert.ok(S.amplification('leapfrog', 1, 0, 2.5) > 1.5);
  });
});

test('depth 256, same h: Hamiltonian and antisymmetric growth bounded, forward-Euler ResNet not', () => {
  keel.scope(() => {
    for (const activation of ['identity', 'tanh'] as const) {
      const growth: Record<string, number> = {};
      const stable: Record<string, boolean> = {};
      for (const arch of ['resnet', 'antisymmetric', 'hamiltonian'] as const) {
        keel.manualSeed(1);
        const blk = S.makeBlock(arch, { kernel: { type: 'dense', width: 8 }, depth: 256, h: 0.1, activation, dtype: 'float64', gamma: 0.5, init: 'random' });
        const Y0 = keel.ops.mul(keel.randn([16, 8], f64), 0.5);
        growth[arch] = S.perturbationGrowth((y: Tensor) => blk.forward(y), Y0);
        stable[arch] = S.analyzeBlock(blk, Y0, { layers: [0] }).stable;
      }
      assert.ok(growth.hamiltonian < 10 && growth.antisymmetric < 10, `${activation}: ${JSON.stringify(growth)}`);
      assert.ok(growth.resnet > 10, `${activation}: ${JSON.stringify(growth)}`);
      if (activation === 'identity') {
        assert.ok(growth.resnet > 1e6, `linear ResNet growth ${growth.resnet}`);
        assert.deepEqual(stable, { resnet: false, antisymmetric: true, hamiltonian: true });
      }
    }
  });
});

test('multi-level prolongation: 2N layers, h/2, weights interpolated linearly in time; smoothness regulariser', () => {
  keel.scope(() => {
    keel.manualSeed(5);
    const blk = new S.ResNetBlock({ kernel: { type: 'dense', width: 2 }, depth: 3, T: 6, dtype: 'float64', init: 'random-per-layer' });
    keel.noGrad(() => blk.b.normal_());
    const p = blk.prolong();
    assert.equal(p.depth, 6);
    assert.equal(p.h, 1);
    assert.equal(p.T, 6);
    const K = blk.K.toArray<number[][][]>(), P = p.K.toArray<number[][][]>();
    for (let i = 0; i < 6; i++) {
      const j = Math.floor(i / 2), j1 = i % 2 === 0 ? j : Math.min(j + 1, 2);
      for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) assert.ok(Math.abs(P[i][r][c] - 0.5 * (K[j][r][c] + K[j1][r][c])) < 1e-12);
    }
    // (1/2h)·Σ‖K_j − K_{j−1}‖² + ‖b_j − b_{j−1}‖²
    const b = blk.b.toArray<number[][]>();
    let expect = 0;
    for (let j = 1; j < 3; j++) {
      for (let r = 0; r < 2; r++) { for (let c = 0; c < 2; c++) expect += (K[j][r][c] - K[j - 1][r][c]) ** 2; expect += (b[j][r] - b[j - 1][r]) ** 2; }
    }
    expect /= 2 * blk.h;
    assert.ok(Math.abs((blk.smoothness().item() as number) - expect) < 1e-12);
    const flat = new S.HamiltonianBlock({ kernel: { type: 'dense', width: 2 }, depth: 4, init: 'random' });
    assert.equal(flat.smoothness().item(), 0);
    // a Hamiltonian network trains a step through the prolonged block
    const net = new S.StableNet({ architecture: 'hamiltonian', kernel: { type: 'dense', width: 4 }, opening: { type: 'pad', inFeatures: 2 }, classes: 2, depth: 4, T: 2, init: 'identity' });
    net.prolong();
    assert.equal(net.block.depth, 8);
    const { loss } = net.objective(keel.randn([5, 2]), keel.tensor([0, 1, 0, 1, 1], { dtype: 'int64' }), { alphaK: 1e-3, alphaW: 1e-3 });
    loss.backward();
    assert.ok(net.block.K.grad !== null && Number.isFinite(net.block.K.grad!.norm().item() as number));
  });
});

test('keel repro stable --quick writes results.json and SVG plots', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-stable-'));
  try {
    const { run } = await import('../../dist/experiments/stable/cli.js' as string);
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
    let rc: number;
    try {
      rc = await run(['--quick', '--out', dir]);
    } finally {
      console.log = log;
    }
    assert.equal(rc, 0);
    assert.ok(existsSync(join(dir, 'results.json')));
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
    assert.ok(res.init.some((r: { depth: number }) => r.depth >= 256));
    assert.ok(res.trained.length >= 15);
    const svgs = readdirSync(dir).filter((f) => f.endsWith('.svg'));
    for (const need of ['eigenvalues-init.svg', 'accuracy-swiss-roll.svg', 'boundary-peaks-hamiltonian.svg', 'growth-init-tanh.svg']) assert.ok(svgs.includes(need), need);
    for (const f of svgs) assert.match(readFileSync(join(dir, f), 'utf8'), /^<svg[\s\S]*<\/svg>$/);
    assert.ok(lines.some((l) => l.includes('Claims:')));
    // Fashion-MNIST conv blocks get matrix-free eigenvalues at every level
    const fm = res.trained.filter((r: { dataset: string }) => r.dataset === 'fashion-mnist');
    assert.equal(fm.length, 10);
    for (const r of fm) assert.ok(r.reMin !== null && r.krylov && r.krylov.n >= 784 && r.krylov.resolved > 0, JSON.stringify(r));
    // Part C on Fashion-MNIST states, float64: linear antisymmetric blocks have Re λ = −γ; the linear ResNet grows at the same h, they do not
    type C = { activation: string; architecture: string; depth: number; growth: number; reMin: number; reMax: number; inRegion: boolean };
    const ci = (act: string, arch: string, depth: number): C => res.convInit.find((r: C) => r.activation === act && r.architecture === arch && r.depth === depth);
    const anti = ci('identity', 'antisymmetric', 64);
    assert.ok(Math.abs(anti.reMin + 0.5) < 1e-6 && Math.abs(anti.reMax + 0.5) < 1e-6 && anti.inRegion, JSON.stringify(anti));
    assert.ok(ci('identity', 'resnet', 64).growth > 10 && !ci('identity', 'resnet', 64).inRegion);
    assert.ok(anti.growth < 1 && ci('identity', 'hamiltonian', 64).growth < 10);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The Study shape of `keel repro stable` on a small protocol (the 2-D sets, depths 4 → 8, 4 steps per level):
// --jobs 2 records the numbers --jobs 1 does, --resume keeps the finished runs, the verdict lines name their statistic, rule and n.
type StableRun = { id: string; result: unknown; error?: string };
const SMALL = ['--no-fmnist', '--max-depth', '8', '--iters', '4', '--no-progress'];
/** The recorded numbers but the wall times (ms, msPerStep), as JSON. */
const numbersOf = (runs: StableRun[]): string => JSON.stringify(runs, (k, v) => (k === 'ms' || k === 'msPerStep' ? undefined : v));

async function reproStable(args: string[]): Promise<{ rc: number; lines: string[] }> {
  const { run } = await import('../../dist/experiments/stable/cli.js' as string);
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => { lines.push(...a.join(' ').split('\n')); };
  try {
    return { rc: await run(args), lines };
  } finally {
    console.log = log;
  }
}

test('keel repro stable: --jobs 2 records the same numbers as --jobs 1; the verdict lines name statistic, rule and n', async () => {
  const a = mkdtempSync(join(tmpdir(), 'keel-stable-j1-'));
  const b = mkdtempSync(join(tmpdir(), 'keel-stable-j2-'));
  try {
    const one = await reproStable([...SMALL, '--jobs', '1', '--out', a]);
    const two = await reproStable([...SMALL, '--jobs', '2', '--out', b]);
    assert.equal(one.rc, 0);
    assert.equal(two.rc, 0);
    const ra = JSON.parse(readFileSync(join(a, 'results.json'), 'utf8'));
    const rb = JSON.parse(readFileSync(join(b, 'results.json'), 'utf8'));
    // 2 activations × 5 architectures (Part A) + 3 data sets × 5 architectures (Part B)
    assert.equal(ra.runs.length, 25);
    assert.equal(ra.complete, true);
    assert.deepEqual(ra.runs.map((r: StableRun) => r.id), rb.runs.map((r: StableRun) => r.id));
    assert.ok(ra.runs.every((r: StableRun) => r.error === undefined && r.result !== null));
    assert.equal(numbersOf(rb.runs), numbersOf(ra.runs));
    assert.deepEqual(rb.verdicts, ra.verdicts);
    assert.equal(ra.trained.length, 3 * 5 * 2);
    // every verdict line: [outcome] claim — statistic: evidence; rule: …; n = k
    const claims = one.lines.slice(one.lines.indexOf('Claims:') + 1).filter((l) => l.startsWith('  ['));
    assert.equal(claims.length, ra.verdicts.length);
    assert.equal(claims.length, 6);
    for (const l of claims) assert.match(l, /^ {2}\[(holds|FAILS|\?)\] .+ — .+: .+; rule: .+; n = \d+$/);
    assert.match(claims[0], /^ {2}\[holds\] \(identity\) at depth 256, h = 0\.1: .* — ‖δY_N‖\/‖δY_0‖ at N = 256: resnet .*; rule: hamiltonian ≤ 10 and antisymmetric ≤ 10 and resnet > 10; n = 3$/);
    assert.match(claims[2], /share of in-region linear blocks with bounded growth \(Wilson 95 %\): (\d+)\/\1 = 100\.0 % \[[\d.]+, 100\.0\] of 15 blocks; rule: all \1 in-region blocks ≤ 10; n = 15$/);
    for (const v of ra.verdicts) assert.ok(typeof v.statistic === 'string' && typeof v.rule === 'string' && Number.isInteger(v.n) && typeof v.holds === 'boolean', JSON.stringify(v));
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('keel repro stable --resume keeps the finished runs and runs the rest; another protocol is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-stable-resume-'));
  try {
    assert.equal((await reproStable([...SMALL, '--out', dir])).rc, 0);
    const path = join(dir, 'results.json');
    const full = JSON.parse(readFileSync(path, 'utf8'));
    // keep the first 12 runs, as if the session had stopped there; mark them so a rerun would show
    const kept = full.runs.slice(0, 12).map((r: StableRun & { result: { marker?: number } }) => ({ ...r, result: { ...r.result, marker: 7 } }));
    writeFileSync(path, JSON.stringify({ ...full, runs: kept, complete: false }));
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string | Uint8Array) => { stderr.push(String(s)); return true; }) as typeof process.stderr.write;
    let rc: number;
    try {
      rc = (await reproStable([...SMALL, '--resume', '--out', dir])).rc;
    } finally {
      process.stderr.write = write;
    }
    assert.equal(rc, 0);
    assert.ok(stderr.some((l) => l.includes('resuming: 12 of 25 runs already done')), stderr.join(''));
    const resumed = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(resumed.runs.length, 25);
    assert.equal(resumed.complete, true);
    assert.deepEqual(resumed.runs.map((r: StableRun) => r.id), full.runs.map((r: StableRun) => r.id));
    assert.equal(resumed.runs.filter((r: { result: { marker?: number } }) => r.result.marker === 7).length, 12);
    // the runs done again record the numbers of the first session
    assert.equal(numbersOf(resumed.runs.slice(12)), numbersOf(full.runs.slice(12)));
    // another protocol (more steps per level) is refused, naming the option mismatch
    const other = await import('../../dist/experiments/stable/cli.js' as string);
    await assert.rejects(other.runFromOptions({ fmnist: false, maxDepth: 8, iters: 5, out: dir, resume: true, progress: false }), /--resume: .*results\.json was made with another protocol/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
