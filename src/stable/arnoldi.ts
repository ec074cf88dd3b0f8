// Arnoldi's method for a few eigenvalues of a large real linear map A given
// only as v ↦ A v (Saad, "Numerical Methods for Large Eigenvalue Problems",
// §6.2), with thick restarts (Stewart's Krylov–Schur idea, Morgan's "thick
// restarted Arnoldi"): m steps build an orthonormal basis V of the Krylov
// space span{v, Av, …, A^{m−1}v}; the eigenvalues θ of G = Vᵀ A V (the
// Hessenberg H_m of the Arnoldi relation A V_m = V_m H_m + β_m v_{m+1} e_mᵀ)
// are the Ritz values, which approximate the outer eigenvalues of A first.
// For each Ritz pair (θ, x = V y, ‖y‖ = 1) we report the residual
// ‖A x − θ x‖, computed explicitly from the stored products A V.
// A restart keeps the wanted Ritz vectors (a real basis of their span: real
// and imaginary parts) plus the next Krylov direction — every Ritz residual
// lies in span{V, v_{m+1}}, so the kept space is again a Krylov space — and
// expands it back to m vectors; unwanted Ritz directions are filtered out,
// which is what lets the values of largest real part converge where plain
// Arnoldi (restarts: 0) finds mostly those of largest magnitude.
// Every new vector is orthogonalised twice against the basis (classical
// Gram–Schmidt with one re-orthogonalisation, "CGS2"), which keeps V
// orthonormal to rounding where one pass loses orthogonality as Ritz values
// converge. Everything is float64 (JS numbers; G's eigenpairs by LAPACK
// through linalg_eig).
import { tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import { Rng } from '../data/rng.js';
import * as ops from '../ops/index.js';

export interface RitzValue {
  re: number;
  im: number;
  /** ‖A x − θ x‖ for the Ritz vector x (‖x‖ = 1) */
  residual: number;
}

export type RitzOrder = 'largest-magnitude' | 'largest-real' | 'smallest-real';

export interface ArnoldiOptions {
  /** Krylov dimension m, the basis size (clamped to n); default min(n, 60) */
  steps?: number;
  /** the start vector (length n, nonzero); default a seeded Gaussian draw */
  start?: Float64Array;
  /** seed of the default start vector; default 1 */
  seed?: number;
  /** the basis is invariant (every Ritz value exact to rounding) when the next direction has norm ≤ tol·‖G‖; default 1e-12 */
  tol?: number;
  /** how many thick restarts at most; default 0 (plain Arnoldi) */
  restarts?: number;
  /** the Ritz values kept at a restart and tested for convergence: the k first in each order; default k = 6, both largest-magnitude and largest-real */
  want?: { k: number; orders: RitzOrder[] };
  /** a wanted Ritz value has converged when its residual ≤ rtol·max|θ|; default 1e-10 */
  rtol?: number;
}

export interface ArnoldiResult {
  /** the dimension n of the space */
  n: number;
  /** the final basis size */
  steps: number;
  /** products with A used */
  applies: number;
  /** restarts done */
  restarts: number;
  /** true when the Krylov space became invariant (every Ritz value exact to rounding) */
  invariant: boolean;
  /** true when every wanted Ritz value met rtol (or the space was invariant) */
  converged: boolean;
  /** all Ritz values of the final basis, unsorted */
  ritz: RitzValue[];
  /** max_{i,j} |v_iᵀ v_j − δ_ij| of the final basis: how orthonormal it stayed */
  orthogonalityLoss: number;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function norm(a: Float64Array): number {
  return Math.sqrt(dot(a, a));
}

/** w ← w − V Vᵀ w, twice (CGS2); returns ‖w‖ after. */
function orthogonalise(w: Float64Array, V: Float64Array[]): number {
  for (let pass = 0; pass < 2; pass++) {
    const c = V.map((v) => dot(v, w));
    for (let i = 0; i < V.length; i++) {
      const ci = c[i], vi = V[i];
      for (let t = 0; t < w.length; t++) w[t] -= ci * vi[t];
    }
  }
  return norm(w);
}

/** Σ_i X[i]·c[i]. */
function combine(X: Float64Array[], c: number[]): Float64Array {
  const out = new Float64Array(X[0].length);
  for (let i = 0; i < X.length; i++) {
    const ci = c[i], xi = X[i];
    if (ci !== 0) for (let t = 0; t < out.length; t++) out[t] += ci * xi[t];
  }
  return out;
}

const orderKey = (order: RitzOrder) => (r: { re: number; im: number }): number => (order === 'largest-magnitude' ? Math.hypot(r.re, r.im) : order === 'largest-real' ? r.re : -r.re);

/** Indices of the k first in the given order (ties: larger |Im| first, then positive Im first). */
function firstK<T extends { re: number; im: number }>(vals: T[], k: number, order: RitzOrder): number[] {
  const key = orderKey(order);
  return vals.map((_, i) => i).sort((a, b) => key(vals[b]) - key(vals[a]) || Math.abs(vals[b].im) - Math.abs(vals[a].im) || vals[b].im - vals[a].im).slice(0, k);
}

/** The k Ritz values first in the given order (ties: larger |Im| first, then positive Im first). */
export function selectRitz(ritz: RitzValue[], k: number, order: RitzOrder): RitzValue[] {
  return firstK(ritz, k, order).map((i) => ritz[i]);
}

/** Arnoldi with re-orthogonalisation (and optional thick restarts) on v ↦ apply(v), a linear map of R^n. */
export function arnoldi(apply: (v: Float64Array) => Float64Array, n: number, options: ArnoldiOptions = {}): ArnoldiResult {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`arnoldi: the dimension n must be a positive integer, got ${n}`);
  const m = Math.min(n, options.steps ?? 60);
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`arnoldi: steps must be a positive integer, got ${options.steps}`);
  const tol = options.tol ?? 1e-12;
  const rtol = options.rtol ?? 1e-10;
  const maxRestarts = options.restarts ?? 0;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) throw new RangeError(`arnoldi: restarts must be a non-negative integer, got ${maxRestarts}`);
  const want = options.want ?? { k: Math.min(6, n), orders: ['largest-magnitude', 'largest-real'] as RitzOrder[] };
  if (!Number.isInteger(want.k) || want.k < 1) throw new RangeError(`arnoldi: want.k must be a positive integer, got ${want.k}`);
  let v0: Float64Array;
  if (options.start) {
    if (options.start.length !== n) throw new RangeError(`arnoldi: start vector has length ${options.start.length}, the space has dimension ${n}`);
    v0 = Float64Array.from(options.start);
  } else {
    const rng = new Rng(options.seed ?? 1, 0x4a52);
    v0 = new Float64Array(n);
    for (let i = 0; i < n; i++) v0[i] = rng.normal();
  }
  const n0 = norm(v0);
  if (!(n0 > 0) || !Number.isFinite(n0)) throw new RangeError('arnoldi: the start vector must be finite and nonzero');
  for (let i = 0; i < n; i++) v0[i] /= n0;

  let applies = 0;
  const A = (v: Float64Array): Float64Array => {
    const w = Float64Array.from(apply(v));
    applies++;
    if (w.length !== n) throw new RangeError(`arnoldi: apply returned a vector of length ${w.length}, expected ${n}`);
    for (let i = 0; i < n; i++) if (!Number.isFinite(w[i])) throw new RangeError(`arnoldi: apply returned a non-finite value (product ${applies})`);
    return w;
  };

  let V: Float64Array[] = [v0];
  let AV: Float64Array[] = [A(v0)];
  let invariant = false;
  let restarts = 0;
  for (;;) {
    // expand from the most recent vector to m vectors
    let scale = norm(AV[0]);
    while (V.length < m) {
      const z = Float64Array.from(AV[AV.length - 1]);
      scale = Math.max(scale, norm(z));
      const beta = orthogonalise(z, V);
      if (beta <= tol * Math.max(scale, Number.MIN_VALUE)) { invariant = true; break; }
      for (let t = 0; t < n; t++) z[t] /= beta;
      V.push(z);
      AV.push(A(z));
    }
    if (V.length === n) invariant = true;
    // Rayleigh–Ritz: G = Vᵀ A V and its eigenpairs
    const s = V.length;
    const G = new Float64Array(s * s);
    for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) G[i * s + j] = dot(V[i], AV[j]);
    const { lam, Y } = scope(() => {
      const [l, vec] = ops.linalgEig(tensor(G, { shape: [s, s] }));
      return { lam: ops.viewAsReal(l).toArray<number[][]>(), Y: ops.viewAsReal(vec).toArray<number[][][]>() };
    });
    // residuals ‖A V y − θ V y‖, y the unit eigenvector (column i of Y)
    const ritz: RitzValue[] = lam.map(([re, im], i) => {
      const yr = Y.map((row) => row[i][0]);
      const yi = Y.map((row) => row[i][1]);
      const xr = combine(V, yr), xi = combine(V, yi), axr = combine(AV, yr), axi = combine(AV, yi);
      let r2 = 0;
      for (let t = 0; t < n; t++) {
        const dr = axr[t] - (re * xr[t] - im * xi[t]);
        const di = axi[t] - (re * xi[t] + im * xr[t]);
        r2 += dr * dr + di * di;
      }
      return { re, im, residual: Math.sqrt(r2) };
    });
    const thetaMax = Math.max(...ritz.map((r) => Math.hypot(r.re, r.im)), Number.MIN_VALUE);
    const wanted = [...new Set(want.orders.flatMap((o) => firstK(ritz, Math.min(want.k, s), o)))];
    const converged = invariant || wanted.every((i) => ritz[i].residual <= rtol * thetaMax);
    const orthogonalityLoss = (): number => {
      let loss = 0;
      for (let a = 0; a < s; a++) for (let b = a; b < s; b++) loss = Math.max(loss, Math.abs(dot(V[a], V[b]) - (a === b ? 1 : 0)));
      return loss;
    };
    if (converged || restarts >= maxRestarts || s < m) {
      return { n, steps: s, applies, restarts, invariant, converged, ritz, orthogonalityLoss: orthogonalityLoss() };
    }
    // thick restart: a real orthonormal basis (coefficients in R^s) of the wanted Ritz vectors' span
    const cols: number[][] = [];
    const addCol = (c: number[]): void => {
      for (let pass = 0; pass < 2; pass++) {
        for (const q of cols) {
          let d = 0;
          for (let t = 0; t < s; t++) d += q[t] * c[t];
          for (let t = 0; t < s; t++) c[t] -= d * q[t];
        }
      }
      const nc = Math.sqrt(c.reduce((a, v) => a + v * v, 0));
      if (nc > 1e-8) cols.push(c.map((v) => v / nc));
    };
    for (const i of wanted) {
      addCol(Y.map((row) => row[i][0]));
      if (Math.abs(ritz[i].im) > 0) addCol(Y.map((row) => row[i][1]));
    }
    if (cols.length + 2 > m) {
      // no room to expand: report what we have
      return { n, steps: s, applies, restarts, invariant, converged, ritz, orthogonalityLoss: orthogonalityLoss() };
    }
    // the next Krylov direction, orthogonal to the old basis and so to the kept one
    const z = Float64Array.from(AV[s - 1]);
    const beta = orthogonalise(z, V);
    const nextV = cols.map((c) => combine(V, c));
    const nextAV = cols.map((c) => combine(AV, c));
    if (beta <= tol * Math.max(norm(AV[s - 1]), Number.MIN_VALUE)) {
      // V was invariant after all; keep it
      invariant = true;
      return { n, steps: s, applies, restarts, invariant, converged: true, ritz, orthogonalityLoss: orthogonalityLoss() };
    }
    for (let t = 0; t < n; t++) z[t] /= beta;
    nextV.push(z);
    nextAV.push(A(z));
    V = nextV;
    AV = nextAV;
    restarts++;
  }
}
