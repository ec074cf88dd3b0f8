// keel.stable: ODE-view blocks and their stability analysis on cases with
// known answers, and `keel repro stable --quick`.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
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
