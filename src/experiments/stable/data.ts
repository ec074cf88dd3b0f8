// The paper's data sets, generated as Meganet's setup files do, deterministic
// from a seed (Meganet draws with MATLAB's rng; we use keel's Rng, so the
// points differ but the distributions are the same).
import { tensor } from '../../core/creation.js';
import type { Tensor } from '../../core/tensor.js';
import { fashionMnist } from '../../data/fashion-mnist.js';
import { Rng } from '../../data/rng.js';
import * as ops from '../../ops/index.js';

export interface Split {
  x: Tensor;
  y: Tensor;
}

export interface DataSet {
  name: string;
  train: Split;
  val: Split;
  classes: number;
  /** input features (2-D sets) or image channels/size */
  kind: 'points' | 'images';
  /** plot box for 2-D sets [xmin, xmax, ymin, ymax] */
  box?: [number, number, number, number];
}

function split(points: number[][], labels: number[], dtype: 'float32' | 'float64'): Split {
  return {
    x: tensor(points, { dtype }),
    y: tensor(labels, { dtype: 'int64' }),
  };
}

/**
 * Two spirals, Meganet's setupSwissRoll(n): θ = 0 : 4π/(2n) : 4π, r from 0
 * to 1 for one spiral and 0.2 to 1.2 for the other; every other point is
 * training data, the rest validation. No randomness.
 */
export function swissRoll(n = 256, dtype: 'float32' | 'float64' = 'float32'): DataSet {
  const m = 2 * n + 1;
  const pts: number[][] = [];
  const lab: number[] = [];
  for (const [r0, r1, c] of [[0, 1, 0], [0.2, 1.2, 1]] as const) {
    for (let i = 0; i < m; i++) {
      const th = (4 * Math.PI * i) / (2 * n);
      const r = r0 + ((r1 - r0) * i) / (m - 1);
      pts.push([r * Math.cos(th), r * Math.sin(th)]);
      lab.push(c);
    }
  }
  const tr = pts.map((_, i) => i).filter((i) => i % 2 === 0);
  const va = pts.map((_, i) => i).filter((i) => i % 2 === 1);
  return {
    name: 'swiss-roll', classes: 2, kind: 'points', box: [-1.3, 1.3, -1.3, 1.3],
    train: split(tr.map((i) => pts[i]), tr.map((i) => lab[i]), dtype),
    val: split(va.map((i) => pts[i]), va.map((i) => lab[i]), dtype),
  };
}

/** MATLAB's peaks(x, y). */
export function peaksFunction(x: number, y: number): number {
  return 3 * (1 - x) ** 2 * Math.exp(-(x ** 2) - (y + 1) ** 2)
    - 10 * (x / 5 - x ** 3 - y ** 5) * Math.exp(-(x ** 2) - y ** 2)
    - (1 / 3) * Math.exp(-((x + 1) ** 2) - y ** 2);
}

/**
 * Meganet's setupPeaks(np, nc): peaks on a 256×256 grid over [−3, 3]², cut
 * into nc classes of equal value range, then np/nc grid points per class
 * drawn with replacement. Validation: a second draw.
 */
export function peaks(nTrain = 2000, nVal = 1000, seed = 0, nc = 5, dtype: 'float32' | 'float64' = 'float32'): DataSet {
  const ns = 256;
  const byClass: number[][][] = Array.from({ length: nc }, () => []);
  const grid: [number, number, number][] = [];
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < ns; i++) {
    for (let k = 0; k < ns; k++) {
      const x = -3 + (6 * k) / (ns - 1);
      const y = -3 + (6 * i) / (ns - 1);
      const v = peaksFunction(x, y);
      grid.push([x, y, v]);
      mn = Math.min(mn, v);
      mx = Math.max(mx, v);
    }
  }
  const hc = (mx - mn) / nc;
  for (const [x, y, v] of grid) {
    let c = 0;
    for (let i = 1; i <= nc; i++) if (mn + (i - 1) * hc < v && v <= mn + i * hc) c = i - 1;
    byClass[c].push([x, y]);
  }
  const draw = (n: number, rng: Rng): Split => {
    const per = Math.ceil(n / nc);
    const pts: number[][] = [];
    const lab: number[] = [];
    for (let c = 0; c < nc; c++) {
      for (let i = 0; i < per; i++) {
        pts.push(byClass[c][rng.int(byClass[c].length)]);
        lab.push(c);
      }
    }
    return split(pts, lab, dtype);
  };
  const rng = new Rng(seed, 11);
  return { name: 'peaks', classes: nc, kind: 'points', box: [-3, 3, -3, 3], train: draw(nTrain, rng.fork(1)), val: draw(nVal, rng.fork(2)) };
}

/**
 * Concentric ellipses, Meganet's setupCircle(nTrain, nTest): class 0 at
 * radius r ~ U(0, 1), class 1 at r ~ 1 + U(0, 1), angle U(0, 2π), points
 * (r cos θ, 0.4 r sin θ); n per class.
 */
export function ellipses(nTrain = 1000, nVal = 200, seed = 0, dtype: 'float32' | 'float64' = 'float32'): DataSet {
  const draw = (n: number, rng: Rng): Split => {
    const pts: number[][] = [];
    const lab: number[] = [];
    for (const [r0, c] of [[0, 0], [1, 1]] as const) {
      for (let i = 0; i < n; i++) {
        const r = r0 + rng.uniform();
        const th = rng.uniform() * 2 * Math.PI;
        pts.push([r * Math.cos(th), 0.4 * r * Math.sin(th)]);
        lab.push(c);
      }
    }
    return split(pts, lab, dtype);
  };
  const rng = new Rng(seed, 12);
  return { name: 'ellipses', classes: 2, kind: 'points', box: [-2.1, 2.1, -1, 1], train: draw(nTrain, rng.fork(1)), val: draw(nVal, rng.fork(2)) };
}

/** A budgeted Fashion-MNIST: nTrain training images and nVal test images, chosen by a seeded permutation. */
export function fashionMnistSubset(nTrain: number, nVal: number, seed = 0): DataSet {
  const take = (splitName: 'train' | 'test', n: number, key: number): Split => {
    const ds = fashionMnist({ split: splitName });
    const [x, y] = ds.tensors;
    const perm = new Rng(seed, key).permutation(x.shape[0]).slice(0, n);
    const idx = tensor(Array.from(perm), { dtype: 'int64' });
    const out = { x: ops.indexSelect(x, 0, idx), y: ops.indexSelect(y, 0, idx) };
    idx.dispose();
    ds.dispose();
    return out;
  };
  return { name: 'fashion-mnist', classes: 10, kind: 'images', train: take('train', nTrain, 21), val: take('test', nVal, 22) };
}
