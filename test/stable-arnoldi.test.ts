// keel.stable's matrix-free eigenvalues (Arnoldi with re-orthogonalisation
// and thick restarts on Jᵀ through vector-Jacobian products) against known
// answers, float64.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as keel from 'keel';

const S = keel.stable;
type Tensor = keel.Tensor;
const f64 = { dtype: 'float64' as const };

/** The distance from (re, im) to the nearest of the exact eigenvalues. */
function nearest(re: number, im: number, exact: { re: number[]; im: number[] }): number {
  return Math.min(...exact.re.map((r, i) => Math.hypot(r - re, exact.im[i] - im)));
}

test('arnoldi on a symmetric matrix with known spectrum: Ritz values converge and every residual bounds the error', () => {
  keel.scope(() => {
    keel.manualSeed(11);
    const n = 200;
    // A = Q diag(λ) Qᵀ, λ = 1..200 with a gap at the top: 400, 300
    const lam = Array.from({ length: n }, (_, i) => i + 1);
    lam[n - 1] = 400;
    lam[n - 2] = 300;
    const [Q] = keel.ops.linalgQr(keel.randn([n, n], f64));
    const A = keel.ops.matmul(keel.ops.mul(Q, keel.tensor(lam, f64)), Q.t());
    const Aa = A.toArray<number[][]>();
    const apply = (v: Float64Array): Float64Array => Float64Array.from(Aa.map((row) => row.reduce((s, a, k) => s + a * v[k], 0)));
    const exact = { re: lam, im: lam.map(() => 0) };
    const plain = S.arnoldi(apply, n, { steps: 30 });
    assert.equal(plain.steps, 30);
    assert.equal(plain.applies, 30);
    assert.ok(plain.orthogonalityLoss < 1e-12, `orthogonality ${plain.orthogonalityLoss}`);
    const top = S.selectRitz(plain.ritz, 2, 'largest-magnitude');
    assert.ok(Math.abs(top[0].re - 400) < 1e-8 && Math.abs(top[1].re - 300) < 1e-8, `top ${top[0].re}, ${top[1].re}`);
    // for a normal matrix an eigenvalue lies within the residual of every Ritz value (Bauer–Fike)
    for (const r of plain.ritz) assert.ok(nearest(r.re, r.im, exact) <= r.residual * (1 + 1e-6) + 1e-10, `θ = ${r.re}, residual ${r.residual}`);
    // thick restarts find the five largest, which plain Arnoldi with 30 steps does not resolve
    const res = S.arnoldi(apply, n, { steps: 30, restarts: 50, want: { k: 5, orders: ['largest-magnitude'] } });
    assert.ok(res.converged && res.restarts > 0, `converged ${res.converged} after ${res.restarts} restarts`);
    const five = S.selectRitz(res.ritz, 5, 'largest-magnitude').map((r) => r.re);
    assert.deepEqual(five.map((v) => Math.round(v * 1e8) / 1e8), [400, 300, 198, 197, 196]);
    assert.ok(S.selectRitz(plain.ritz, 5, 'largest-magnitude').some((r) => Math.abs(r.re - 196) > 1e-3), 'plain Arnoldi has not resolved λ = 196 yet (the restart test is not vacuous)');
  });
});

test('a dense block small enough for the exact path: the Ritz values of largest magnitude and of largest real part match its eigenvalues to 1e-8', () => {
  keel.scope(() => {
    keel.manualSeed(12);
    for (const arch of S.ARCHITECTURES) {
      const blk = S.makeBlock(arch, { kernel: { type: 'dense', width: 60 }, depth: 3, h: 0.1, activation: 'tanh', dtype: 'float64', init: 'random-per-layer', gamma: 0.2 });
      keel.noGrad(() => blk.b.normal_(0, 0.3));
      const u0 = blk.initialState(keel.randn([1, 60], f64));
      const u = keel.ops.add(u0, keel.ops.mul(keel.randnLike(u0), 0.5));
      const exact = S.eigenvalues(S.rhsJacobian(blk, 1, u));
      const n = exact.re.length;
      for (const operator of ['transpose', 'jacobian'] as const) {
        const r = S.jacobianRitzValues((x: Tensor) => blk.rhs(1, x), u, { k: 4, steps: 40, operator });
        assert.equal(r.n, n);
        assert.ok(r.steps < n, 'a Krylov space smaller than the state (not the trivial full factorisation)');
        const byMag = [...exact.re.keys()].sort((a, b) => Math.hypot(exact.re[b], exact.im[b]) - Math.hypot(exact.re[a], exact.im[a]));
        const byRe = [...exact.re.keys()].sort((a, b) => exact.re[b] - exact.re[a]);
        for (let i = 0; i < 4; i++) {
          const m = r.largestMagnitude[i];
          assert.ok(Math.abs(Math.hypot(m.re, m.im) - Math.hypot(exact.re[byMag[i]], exact.im[byMag[i]])) < 1e-8, `${arch} ${operator}: |θ_${i}| ${Math.hypot(m.re, m.im)} vs ${Math.hypot(exact.re[byMag[i]], exact.im[byMag[i]])}`);
          assert.ok(nearest(m.re, m.im, exact) < 1e-8, `${arch} ${operator}: largest-magnitude θ = ${m.re} + ${m.im}i is ${nearest(m.re, m.im, exact)} from the spectrum`);
          if (arch === 'resnet' || arch === 'parabolic') {
            // isolated rightmost values (ResNet; parabolic: real spectrum)
            assert.ok(Math.abs(r.largestReal[i].re - exact.re[byRe[i]]) < 1e-8, `${arch} ${operator}: Re θ_${i} ${r.largestReal[i].re} vs ${exact.re[byRe[i]]}`);
          }
        }
      }
    }
  });
});

test('antisymmetric conv block, linear (identity activation): every Ritz value has real part −γ to 1e-8', () => {
  keel.scope(() => {
    keel.manualSeed(13);
    for (const [gamma, halfFactor, expected] of [[0.3, false, -0.3], [0.5, true, -0.25]] as const) {
      const blk = new S.AntisymmetricBlock({ kernel: { type: 'conv', channels: 4, kernelSize: 3 }, depth: 2, h: 0.1, activation: 'identity', dtype: 'float64', gamma, halfFactor, init: 'random-per-layer' });
      const u = keel.randn([1, 4, 10, 10], f64); // n = 400
      for (const operator of ['transpose', 'jacobian'] as const) {
        const r = S.jacobianRitzValues((x: Tensor) => blk.rhs(1, x), u, { k: 6, operator });
        assert.equal(r.n, 400);
        for (const v of [...r.largestMagnitude, ...r.largestReal, ...r.all]) assert.ok(Math.abs(v.re - expected) < 1e-8, `γ = ${gamma}: Re θ = ${v.re}`);
        assert.ok(Math.max(...r.largestMagnitude.map((v) => Math.abs(v.im))) > 0.5, 'oscillatory: large imaginary parts');
        assert.ok(r.largestMagnitude.every((v) => v.residual < 1e-8), 'largest-magnitude values resolved');
      }
      // the block analysis on this state dimension takes the matrix-free path and finds h·λ in forward Euler's disc
      const a = S.analyzeBlock(blk, u, { layers: [0, 1], method: 'arnoldi' });
      assert.equal(a.method, 'arnoldi');
      assert.ok(Math.abs(a.spectrum.reMin - expected) < 1e-8 && Math.abs(a.spectrum.reMax - expected) < 1e-8, `${a.spectrum.reMin}..${a.spectrum.reMax}`);
    }
  });
});

test('matrix-free block analysis agrees with the dense path (conv, every architecture) and works on a float32 block', () => {
  keel.scope(() => {
    keel.manualSeed(14);
    for (const arch of S.ARCHITECTURES) {
      const blk = S.makeBlock(arch, { kernel: { type: 'conv', channels: 2, kernelSize: 3 }, depth: 4, h: 0.25, activation: 'tanh', dtype: 'float64', init: 'random-per-layer', initScale: 2, gamma: 0.2 });
      keel.noGrad(() => blk.b.normal_(0, 0.3));
      const Y0 = keel.randn([2, 2, 7, 7], f64);
      const dense = S.analyzeBlock(blk, Y0, { layers: [0, 3], method: 'dense' });
      const kry = S.analyzeBlock(blk, Y0, { layers: [0, 3], method: 'arnoldi', k: 4, steps: 30 });
      assert.equal(dense.method, 'dense');
      assert.equal(kry.n, dense.n);
      assert.ok(Math.abs(kry.spectrum.absMax - dense.spectrum.absMax) < 1e-8, `${arch}: |λ|max ${kry.spectrum.absMax} vs ${dense.spectrum.absMax}`);
      assert.ok(Math.abs(kry.spectrum.imMaxAbs - dense.spectrum.imMaxAbs) < 1e-6, `${arch}: |Im λ|max ${kry.spectrum.imMaxAbs} vs ${dense.spectrum.imMaxAbs}`);
      assert.ok(kry.spectrum.reMax <= dense.spectrum.reMax + 1e-8, `${arch}: a resolved Ritz value right of the spectrum`);
      if (arch === 'resnet') assert.ok(Math.abs(kry.spectrum.reMax - dense.spectrum.reMax) < 1e-8, `${arch}: Re λ max ${kry.spectrum.reMax} vs ${dense.spectrum.reMax}`);
      // parabolic: −Kᵀ·diag(σ′)·K is symmetric negative semi-definite — real Ritz values ≤ 0 (its rightmost cluster at 0 resolves only to ~1e-5)
      if (arch === 'parabolic') assert.ok(kry.spectrum.reMax <= 1e-12 && kry.spectrum.imMaxAbs < 1e-8 && kry.spectrum.reMax > dense.spectrum.reMax - 1e-4, `${arch}: Re λ max ${kry.spectrum.reMax}`);
      assert.equal(kry.stable, dense.stable, `${arch}: region check`);
      // a float32 block is analysed on a float64 copy, the block itself unchanged
      const b32 = blk.withDtype('float32');
      const k32 = S.analyzeBlock(b32, Y0.to('float32'), { layers: [0, 3], method: 'arnoldi', k: 4, steps: 30 });
      assert.equal(b32.K.dtype, 'float32');
      assert.ok(Math.abs(k32.spectrum.absMax - dense.spectrum.absMax) < 1e-4 * dense.spectrum.absMax, `${arch} float32: ${k32.spectrum.absMax} vs ${dense.spectrum.absMax}`);
    }
    // Hamiltonian: purely imaginary spectrum, in Verlet's region, on a state too large for the dense default
    const ham = S.makeBlock('hamiltonian', { kernel: { type: 'conv', channels: 4, kernelSize: 3 }, depth: 8, T: 1, activation: 'tanh', dtype: 'float64', init: 'random' });
    const a = S.analyzeBlock(ham, keel.randn([1, 4, 12, 12], f64), { layers: [0, 7] });
    assert.equal(a.method, 'arnoldi');
    assert.equal(a.n, 1152);
    assert.ok(Math.max(Math.abs(a.spectrum.reMin), Math.abs(a.spectrum.reMax)) < 1e-8, `Re λ ${a.spectrum.reMin}..${a.spectrum.reMax}`);
    assert.ok(a.spectrum.imMaxAbs > 0.1 && a.stable, `|Im λ| ${a.spectrum.imMaxAbs}, stable ${a.stable}`);
  });
});

test('matrix-free eigenvalues: bad arguments give clear errors', () => {
  keel.scope(() => {
    const blk = S.makeBlock('resnet', { kernel: { type: 'dense', width: 3 }, depth: 1, dtype: 'float64' });
    const f = (x: Tensor): Tensor => blk.rhs(0, x);
    const u = keel.randn([1, 3], f64);
    assert.throws(() => S.jacobianRitzValues(f, u, { k: 4 }), /k = 4 exceeds the dimension of the state, n = 3/);
    assert.throws(() => S.jacobianRitzValues(f, u, { k: 0 }), /k must be a positive integer/);
    assert.throws(() => S.jacobianRitzValues(f, u.to('float32')), /state must be float64.*float32/);
    assert.throws(() => S.jacobianRitzValues(f, u, { k: 2, steps: 1 }), /steps .* must be an integer ≥ k = 2/);
    assert.throws(() => S.jacobianRitzValues((x: Tensor) => keel.ops.sum(x), u, { k: 1 }), /maps 3 numbers to 1/);
    assert.throws(() => S.jacobianRitzValues(f, u, { k: 1, operator: 'adjoint' as 'jacobian' }), /operator must be 'transpose' or 'jacobian'/);
    assert.throws(() => S.arnoldi((v) => v, 3, { start: new Float64Array(3) }), /start vector must be finite and nonzero/);
    assert.throws(() => S.arnoldi((v) => v.slice(0, 2), 3), /apply returned a vector of length 2, expected 3/);
    assert.throws(() => S.analyzeBlock(blk, u, { layers: [1] }), /layer 1 is not in 0..0/);
    assert.throws(() => S.analyzeBlock(blk, u, { method: 'lanczos' as 'dense' }), /method must be 'dense', 'arnoldi' or 'auto'/);
  });
});
