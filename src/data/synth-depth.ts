// SynthDepth: a procedural monocular-depth data set that needs no download.
// Each example is a perspective view of a small scene, ray cast in JS:
//
//   camera    pinhole at height 1.2–2.0 m, pitched 2–12° down, horizontal
//             field of view 55–75°, a little roll; depth is the metric z-depth
//             along the optical axis (as KITTI / NYU store it)
//   ground    plane y = 0, textured (checker or stripes of random scale and
//             colour, with procedural value noise)
//   walls     a back wall at 8–24 m, and on most scenes a left and/or a right
//             side wall (a corridor / street canyon), textured with bricks or
//             panels; walls have a finite height, so the sky shows above them
//   boxes     1–4 boxes standing on the ground, turned about the vertical
//             axis, with a grid texture
//   spheres   0–3 spheres resting on the ground, smooth-shaded
//   light     one directional sun (random azimuth and elevation) with Lambert
//             shading + ambient term, hard shadows from boxes and spheres cast
//             on the ground, distance haze toward the sky colour, and pixel
//             noise — so shading, texture gradient, occlusion, the horizon and
//             object contact points are all depth cues a network can learn.
//
// Ground truth: `depth` (float32 metres, > 0 everywhere: sky pixels carry
// maxDepth) and `valid` (1 where a surface nearer than maxDepth was hit, 0 on
// sky). The optional sparse mask imitates LiDAR: `scanlines` keeps a few
// rows (beams) and a random fraction of the pixels on them; `random` keeps an
// i.i.d. fraction of pixels; either way the mask is 0 on sky. Example i of a
// split depends only on (seed, split, i): larger n extends a smaller one.
import { tensor } from '../core/creation.js';
import { scope } from '../core/memory.js';
import type { Tensor } from '../core/tensor.js';
import { TensorDataset } from './dataset.js';
import { Rng } from './rng.js';

export type SynthDepthSplit = 'train' | 'val';

export interface SparseMaskOptions {
  /** 'scanlines': LiDAR-like beams (default); 'random': i.i.d. pixels. */
  pattern?: 'scanlines' | 'random';
  /** Fraction of the valid pixels kept on a beam (scanlines) or overall (random), default 0.3 / 0.05. */
  density?: number;
  /** Number of beams over the image height (scanlines), default ⌈H / 8⌉. */
  lines?: number;
}

export interface SynthDepthOptions {
  /** Number of examples. */
  n: number;
  split?: SynthDepthSplit;
  /** The same seed gives the same scenes, bit for bit (default 0). */
  seed?: number;
  /** Image side, or [height, width] (default 64). */
  size?: number | [number, number];
  /** Depth cap in metres: farther surfaces and sky are invalid (default 20). */
  maxDepth?: number;
  /** A sparse validity mask instead of the dense one (default: dense). */
  sparse?: SparseMaskOptions | false;
}

/** One rendered scene: planar [3·H·W] RGB in [0, 1], [H·W] depth and validity. */
export interface SynthDepthScene {
  height: number;
  width: number;
  rgb: Float32Array;
  depth: Float32Array;
  valid: Float32Array;
}

type Vec3 = [number, number, number];
const STREAM = 0xde97;
const SPLIT_KEY: Record<SynthDepthSplit, number> = { train: 1, val: 2 };

function hsv(h: number, s: number, v: number): Vec3 {
  const f = (k: number) => {
    const x = (k + h * 6) % 6;
    return v - v * s * Math.max(0, Math.min(x, 4 - x, 1));
  };
  return [f(5), f(3), f(1)];
}

/** Smooth value noise in [0, 1] from an integer lattice hash. */
function hash2(x: number, y: number, k: number): number {
  let h = Math.imul(x | 0, 0x27d4eb2d) ^ Math.imul(y | 0, 0x165667b1) ^ Math.imul(k, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h ^= h >>> 13;
  return ((h >>> 0) & 0xffff) / 0xffff;
}
function valueNoise(x: number, y: number, k: number): number {
  const xi = Math.floor(x);
  const yi = Math.floor(y);
  const fx = x - xi;
  const fy = y - yi;
  const sx = fx * fx * (3 - 2 * fx);
  const sy = fy * fy * (3 - 2 * fy);
  const a = hash2(xi, yi, k) + (hash2(xi + 1, yi, k) - hash2(xi, yi, k)) * sx;
  const b = hash2(xi, yi + 1, k) + (hash2(xi + 1, yi + 1, k) - hash2(xi, yi + 1, k)) * sx;
  return a + (b - a) * sy;
}

interface Box { cx: number; cz: number; hx: number; hz: number; h: number; cos: number; sin: number; colour: Vec3; cell: number }
interface Sphere { c: Vec3; r: number; colour: Vec3 }
interface Wall { kind: 'back' | 'left' | 'right'; at: number; height: number; colour: Vec3; brick: boolean; scale: number }

interface Scene {
  eye: Vec3;
  right: Vec3; up: Vec3; fwd: Vec3;
  focal: number;
  ground: { colourA: Vec3; colourB: Vec3; checker: boolean; scale: number };
  walls: Wall[];
  boxes: Box[];
  spheres: Sphere[];
  sun: Vec3;
  sky: Vec3;
  haze: number;
  noiseKey: number;
}

function makeScene(rng: Rng, width: number): Scene {
  const camH = rng.uniform(1.2, 2.0);
  const pitch = (rng.uniform(2, 12) * Math.PI) / 180;
  const roll = (rng.uniform(-3, 3) * Math.PI) / 180;
  const fov = (rng.uniform(55, 75) * Math.PI) / 180;
  const fwd: Vec3 = [0, -Math.sin(pitch), Math.cos(pitch)];
  const up0: Vec3 = [0, Math.cos(pitch), Math.sin(pitch)];
  const right0: Vec3 = [1, 0, 0];
  const [cr, sr] = [Math.cos(roll), Math.sin(roll)];
  const right: Vec3 = [right0[0] * cr + up0[0] * sr, right0[1] * cr + up0[1] * sr, right0[2] * cr + up0[2] * sr];
  const up: Vec3 = [-right0[0] * sr + up0[0] * cr, -right0[1] * sr + up0[1] * cr, -right0[2] * sr + up0[2] * cr];
  const hue = rng.next();
  const ground = {
    colourA: hsv(hue, rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.7)),
    colourB: hsv((hue + rng.uniform(-0.1, 0.1) + 1) % 1, rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.55)),
    checker: rng.next() < 0.6,
    scale: rng.uniform(0.6, 1.6),
  };
  const walls: Wall[] = [];
  const wallColour = () => hsv(rng.next(), rng.uniform(0.1, 0.6), rng.uniform(0.4, 0.85));
  walls.push({ kind: 'back', at: rng.uniform(8, 24), height: rng.uniform(3, 9), colour: wallColour(), brick: rng.next() < 0.5, scale: rng.uniform(0.3, 0.8) });
  const sides = rng.next();
  if (sides < 0.75) walls.push({ kind: 'left', at: -rng.uniform(2.5, 6), height: rng.uniform(2.5, 8), colour: wallColour(), brick: rng.next() < 0.5, scale: rng.uniform(0.3, 0.8) });
  if (sides > 0.25) walls.push({ kind: 'right', at: rng.uniform(2.5, 6), height: rng.uniform(2.5, 8), colour: wallColour(), brick: rng.next() < 0.5, scale: rng.uniform(0.3, 0.8) });
  const xMin = walls.find((w) => w.kind === 'left')?.at ?? -8;
  const xMax = walls.find((w) => w.kind === 'right')?.at ?? 8;
  const zMax = walls[0].at;
  const boxes: Box[] = [];
  const nBoxes = 1 + rng.int(4);
  for (let i = 0; i < nBoxes; i++) {
    const hx = rng.uniform(0.25, 1.0);
    const hz = rng.uniform(0.25, 1.0);
    const yaw = rng.uniform(0, Math.PI);
    boxes.push({
      cx: rng.uniform(xMin + 0.8, xMax - 0.8), cz: rng.uniform(2.5, zMax - 1.2), hx, hz, h: rng.uniform(0.4, 2.5),
      cos: Math.cos(yaw), sin: Math.sin(yaw), colour: hsv(rng.next(), rng.uniform(0.3, 0.9), rng.uniform(0.4, 0.95)), cell: rng.uniform(0.15, 0.5),
    });
  }
  const spheres: Sphere[] = [];
  const nSpheres = rng.int(4);
  for (let i = 0; i < nSpheres; i++) {
    const r = rng.uniform(0.25, 0.9);
    spheres.push({ c: [rng.uniform(xMin + r, xMax - r), r, rng.uniform(2, zMax - r - 0.5)], r, colour: hsv(rng.next(), rng.uniform(0.4, 1), rng.uniform(0.5, 1)) });
  }
  const az = rng.uniform(0, 2 * Math.PI);
  const el = rng.uniform(0.35, 1.2);
  const sun: Vec3 = [Math.cos(el) * Math.cos(az), Math.sin(el), Math.cos(el) * Math.sin(az)];
  return {
    eye: [0, camH, 0], right, up, fwd, focal: width / 2 / Math.tan(fov / 2), ground, walls, boxes, spheres, sun,
    sky: hsv(rng.uniform(0.52, 0.65), rng.uniform(0.2, 0.6), rng.uniform(0.7, 1)), haze: rng.uniform(0.01, 0.04), noiseKey: rng.int(0x7fffffff),
  };
}

interface Hit { t: number; n: Vec3; albedo: Vec3; obj: number }

/** Nearest intersection of the ray o + t·d (t > tMin) with the scene, or null; obj = -1 for ground/walls. */
function castRay(s: Scene, o: Vec3, d: Vec3, tMin: number, shadowOnly: boolean): Hit | null {
  let best: Hit | null = null;
  let bestT = Infinity;
  // ground
  if (!shadowOnly && d[1] < 0) {
    const t = -o[1] / d[1];
    if (t > tMin && t < bestT) {
      const x = o[0] + t * d[0];
      const z = o[2] + t * d[2];
      const g = s.ground;
      const u = x / g.scale;
      const v = z / g.scale;
      const a = g.checker ? ((Math.floor(u) + Math.floor(v)) & 1) === 0 : (Math.floor(v * 1.5) & 1) === 0;
      const nz = 0.75 + 0.5 * valueNoise(x * 2, z * 2, s.noiseKey);
      const c = a ? g.colourA : g.colourB;
      bestT = t;
      best = { t, n: [0, 1, 0], albedo: [c[0] * nz, c[1] * nz, c[2] * nz], obj: -1 };
    }
  }
  // walls
  if (!shadowOnly) {
    for (const w of s.walls) {
      const axis = w.kind === 'back' ? 2 : 0;
      if (d[axis] === 0) continue;
      const t = (w.at - o[axis]) / d[axis];
      if (!(t > tMin && t < bestT)) continue;
      const y = o[1] + t * d[1];
      if (y > w.height) continue;
      const along = w.kind === 'back' ? o[0] + t * d[0] : o[2] + t * d[2];
      let shade = 1;
      if (w.brick) {
        const row = Math.floor(y / (w.scale * 0.5));
        const col = Math.floor(along / w.scale + (row & 1) * 0.5);
        const fy = y / (w.scale * 0.5) - row;
        const fx = along / w.scale + (row & 1) * 0.5 - col;
        shade = fy < 0.1 || fx < 0.06 ? 0.55 : 0.85 + 0.15 * hash2(col, row, s.noiseKey + 7);
      } else {
        shade = 0.8 + 0.2 * valueNoise(along / w.scale, y / w.scale, s.noiseKey + 3);
        if (Math.abs(((along / (w.scale * 4)) % 1 + 1) % 1 - 0.5) < 0.02) shade *= 0.6;
      }
      const sign = w.kind === 'back' ? -1 : w.kind === 'left' ? 1 : -1;
      const n: Vec3 = axis === 2 ? [0, 0, sign] : [sign, 0, 0];
      bestT = t;
      best = { t, n, albedo: [w.colour[0] * shade, w.colour[1] * shade, w.colour[2] * shade], obj: -1 };
    }
  }
  // boxes: slabs in the box's yawed frame
  for (let bi = 0; bi < s.boxes.length; bi++) {
    const b = s.boxes[bi];
    const ox = o[0] - b.cx;
    const oz = o[2] - b.cz;
    const lox = ox * b.cos + oz * b.sin;
    const loz = -ox * b.sin + oz * b.cos;
    const ldx = d[0] * b.cos + d[2] * b.sin;
    const ldz = -d[0] * b.sin + d[2] * b.cos;
    const lo = [lox, o[1], loz];
    const ld = [ldx, d[1], ldz];
    const lo3 = [-b.hx, 0, -b.hz];
    const hi3 = [b.hx, b.h, b.hz];
    let t0 = tMin;
    let t1 = bestT;
    let axisHit = -1;
    let signHit = 0;
    let miss = false;
    for (let a = 0; a < 3; a++) {
      if (Math.abs(ld[a]) < 1e-12) {
        if (lo[a] < lo3[a] || lo[a] > hi3[a]) { miss = true; break; }
        continue;
      }
      let ta = (lo3[a] - lo[a]) / ld[a];
      let tb = (hi3[a] - lo[a]) / ld[a];
      let sgn = -1;
      if (ta > tb) { const tmp = ta; ta = tb; tb = tmp; sgn = 1; }
      if (ta > t0) { t0 = ta; axisHit = a; signHit = sgn; }
      if (tb < t1) t1 = tb;
      if (t0 > t1) { miss = true; break; }
    }
    if (miss || axisHit < 0 || !(t0 < bestT)) continue;
    if (shadowOnly) return { t: t0, n: [0, 1, 0], albedo: [0, 0, 0], obj: bi };
    let n: Vec3;
    if (axisHit === 1) n = [0, signHit, 0];
    else {
      const lx = axisHit === 0 ? signHit : 0;
      const lz = axisHit === 2 ? signHit : 0;
      n = [lx * b.cos - lz * b.sin, 0, lx * b.sin + lz * b.cos];
    }
    const p = [lo[0] + t0 * ld[0], lo[1] + t0 * ld[1], lo[2] + t0 * ld[2]];
    const u = axisHit === 0 ? p[2] : p[0];
    const v = axisHit === 1 ? p[2] : p[1];
    const line = Math.abs((u / b.cell) - Math.round(u / b.cell)) < 0.08 || Math.abs((v / b.cell) - Math.round(v / b.cell)) < 0.08;
    const k = line ? 0.6 : 1;
    bestT = t0;
    best = { t: t0, n, albedo: [b.colour[0] * k, b.colour[1] * k, b.colour[2] * k], obj: bi };
  }
  for (let si = 0; si < s.spheres.length; si++) {
    const sp = s.spheres[si];
    const oc = [o[0] - sp.c[0], o[1] - sp.c[1], o[2] - sp.c[2]];
    const bq = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2];
    const cq = oc[0] * oc[0] + oc[1] * oc[1] + oc[2] * oc[2] - sp.r * sp.r;
    const disc = bq * bq - cq;
    if (disc < 0) continue;
    const t = -bq - Math.sqrt(disc);
    if (!(t > tMin && t < bestT)) continue;
    if (shadowOnly) return { t, n: [0, 1, 0], albedo: [0, 0, 0], obj: 100 + si };
    const p = [o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]];
    const n: Vec3 = [(p[0] - sp.c[0]) / sp.r, (p[1] - sp.c[1]) / sp.r, (p[2] - sp.c[2]) / sp.r];
    bestT = t;
    best = { t, n, albedo: sp.colour, obj: 100 + si };
  }
  return best;
}

function noise(rng: Rng): number {
  const x = rng.nextUint32();
  return ((x & 255) + ((x >>> 8) & 255) + ((x >>> 16) & 255) + (x >>> 24) - 510) / 295.6;
}

/** Renders example `index` of a split: RGB, metric z-depth and the dense validity (no sparse mask). */
export function renderSynthDepth(seed: number, split: SynthDepthSplit, index: number, height: number, width: number, maxDepth: number): SynthDepthScene {
  const rng = new Rng(seed, STREAM, SPLIT_KEY[split], index);
  const s = makeScene(rng.fork(1), width);
  const pix = rng.fork(2);
  const plane = height * width;
  const rgb = new Float32Array(3 * plane);
  const depth = new Float32Array(plane);
  const valid = new Float32Array(plane);
  const d: Vec3 = [0, 0, 0];
  for (let y = 0; y < height; y++) {
    const py = (height / 2 - (y + 0.5)) / s.focal;
    for (let x = 0; x < width; x++) {
      const px = (x + 0.5 - width / 2) / s.focal;
      d[0] = s.fwd[0] + px * s.right[0] + py * s.up[0];
      d[1] = s.fwd[1] + px * s.right[1] + py * s.up[1];
      d[2] = s.fwd[2] + px * s.right[2] + py * s.up[2];
      // d has unit component along fwd, so t (ray parameter) is the z-depth
      const hit = castRay(s, s.eye, d, 1e-6, false);
      const i = y * width + x;
      let c: Vec3;
      if (hit === null || hit.t > maxDepth) {
        depth[i] = maxDepth;
        valid[i] = 0;
        const k = Math.max(0, Math.min(1, 0.6 + py));
        c = [s.sky[0] * k + (1 - k), s.sky[1] * k + (1 - k), s.sky[2] * k + (1 - k)];
      } else {
        depth[i] = hit.t;
        valid[i] = 1;
        const p: Vec3 = [s.eye[0] + hit.t * d[0], s.eye[1] + hit.t * d[1], s.eye[2] + hit.t * d[2]];
        let lambert = Math.max(0, hit.n[0] * s.sun[0] + hit.n[1] * s.sun[1] + hit.n[2] * s.sun[2]);
        if (lambert > 0 && castRay(s, [p[0] + hit.n[0] * 1e-4, p[1] + hit.n[1] * 1e-4, p[2] + hit.n[2] * 1e-4], s.sun, 1e-4, true) !== null) lambert = 0;
        const light = 0.3 + 0.75 * lambert;
        const dist = hit.t * Math.hypot(d[0], d[1], d[2]);
        const fog = 1 - Math.exp(-s.haze * dist);
        c = [0, 1, 2].map((ch) => hit.albedo[ch] * light * (1 - fog) + s.sky[ch] * fog) as Vec3;
      }
      for (let ch = 0; ch < 3; ch++) {
        const v = c[ch] + 0.02 * noise(pix);
        rgb[ch * plane + i] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    }
  }
  return { height, width, rgb, depth, valid };
}

/** A LiDAR-like sparse subset of `valid` (0 stays 0), drawn from rng. */
export function sparseMask(valid: Float32Array, height: number, width: number, options: SparseMaskOptions, rng: Rng): Float32Array {
  const pattern = options.pattern ?? 'scanlines';
  const density = options.density ?? (pattern === 'scanlines' ? 0.3 : 0.05);
  if (!(density >= 0 && density <= 1)) throw new RangeError(`SynthDepth: sparse density must be in [0, 1], got ${density}`);
  const out = new Float32Array(valid.length);
  if (pattern === 'random') {
    for (let i = 0; i < valid.length; i++) if (valid[i] > 0 && rng.next() < density) out[i] = 1;
    return out;
  }
  if (pattern !== 'scanlines') throw new RangeError(`SynthDepth: unknown sparse pattern '${String(pattern)}'`);
  const lines = options.lines ?? Math.ceil(height / 8);
  if (!Number.isInteger(lines) || lines < 1) throw new RangeError(`SynthDepth: lines must be a positive integer, got ${lines}`);
  const pitch = height / lines;
  const offset = rng.uniform(0, pitch);
  for (let k = 0; k < lines; k++) {
    const y = Math.floor(offset + k * pitch);
    if (y >= height) continue;
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (valid[i] > 0 && rng.next() < density) out[i] = 1;
    }
  }
  return out;
}

function sizeOf(size: number | [number, number] | undefined): [number, number] {
  const [h, w] = size === undefined ? [64, 64] : typeof size === 'number' ? [size, size] : size;
  for (const v of [h, w]) if (!Number.isInteger(v) || v < 4) throw new RangeError(`SynthDepth: size must be integers ≥ 4, got ${String(size)}`);
  return [h, w];
}

/**
 * SYNTHETIC data: n scenes as a TensorDataset of [image float32 [n, 3, H, W] in
 * [0, 1], depth float32 [n, 1, H, W] in metres (> 0; maxDepth on sky),
 * mask float32 [n, 1, H, W] (1 = ground truth valid: dense, or the sparse
 * LiDAR-like subset)]. Deterministic from (seed, split, index).
 */
export function synthDepth(options: SynthDepthOptions): TensorDataset<[Tensor, Tensor, Tensor]> {
  const { n } = options;
  const split = options.split ?? 'train';
  const seed = options.seed ?? 0;
  const maxDepth = options.maxDepth ?? 20;
  const [h, w] = sizeOf(options.size);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`synthDepth: n must be a non-negative integer, got ${n}`);
  if (!Number.isSafeInteger(seed)) throw new TypeError(`synthDepth: seed must be a safe integer, got ${seed}`);
  if (split !== 'train' && split !== 'val') throw new RangeError(`synthDepth: split must be 'train' or 'val', got '${String(split)}'`);
  if (!(maxDepth > 0)) throw new RangeError(`synthDepth: maxDepth must be positive, got ${maxDepth}`);
  const plane = h * w;
  const images = new Float32Array(n * 3 * plane);
  const depths = new Float32Array(n * plane);
  const masks = new Float32Array(n * plane);
  for (let i = 0; i < n; i++) {
    const s = renderSynthDepth(seed, split, i, h, w, maxDepth);
    images.set(s.rgb, i * 3 * plane);
    depths.set(s.depth, i * plane);
    const m = options.sparse ? sparseMask(s.valid, h, w, options.sparse, new Rng(seed, STREAM, SPLIT_KEY[split], i, 3)) : s.valid;
    masks.set(m, i * plane);
  }
  const [x, d, m] = scope(() => [
    tensor(images, { shape: [n, 3, h, w] }),
    tensor(depths, { shape: [n, 1, h, w] }),
    tensor(masks, { shape: [n, 1, h, w] }),
  ]);
  return new TensorDataset<[Tensor, Tensor, Tensor]>(x, d, m);
}
