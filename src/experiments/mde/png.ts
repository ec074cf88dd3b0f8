// The SynthDepth sample sheet (RGB | depth in a turbo-like colormap, sky
// black | a scan-line mask) as PNG: a photo-like raster, which SVG through
// keel.plot would carry as one rect per pixel. No PNG encoder is in
// node_modules (vega-canvas wants the native canvas package), so the file is
// framed here and everything that computes comes from node:zlib: deflate for
// IDAT, crc32 for each chunk (Node ≥ 20.15); 8-bit RGB, filter 0.
import { crc32, deflateSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderSynthDepth, sparseMask, Rng } from '../../data/index.js';

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes interleaved 8-bit RGB pixels (row-major, width·height·3 bytes) as a PNG file. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new RangeError(`encodePng: expected ${width * height * 3} bytes, got ${rgb.length}`);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0)),
  ]);
}

/** A turbo-like colormap: t in [0, 1] → RGB in [0, 1] (near = warm, far = cool). */
export function colormap(t: number): [number, number, number] {
  const x = Math.max(0, Math.min(1, 1 - t));
  const r = 0.13572 + x * (4.6153 + x * (-42.66 + x * (132.13 + x * (-152.95 + x * 59.29))));
  const g = 0.09140 + x * (2.1942 + x * (4.8430 + x * (-14.19 + x * (4.2773 + x * 2.8296))));
  const b = 0.10667 + x * (12.642 + x * (-60.58 + x * (110.36 + x * (-89.90 + x * 27.348))));
  const c = (v: number) => Math.max(0, Math.min(1, v));
  return [c(r), c(g), c(b)];
}

/**
 * Writes `count` SynthDepth samples to dir as PNGs, each RGB | depth | sparse
 * LiDAR-like mask over depth, side by side; returns the file paths.
 */
export function writeSynthDepthSamples(dir: string, { count = 6, size = 96, seed = 0, maxDepth = 20 } = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = renderSynthDepth(seed, 'train', i, size, size, maxDepth);
    const sparse = sparseMask(s.valid, size, size, { pattern: 'scanlines', density: 0.5, lines: 16 }, new Rng(seed, i, 99));
    const W = size * 3 + 4;
    const img = new Uint8Array(W * size * 3).fill(255);
    const plane = size * size;
    // log-depth colouring spreads near and far
    const lo = Math.log(0.5);
    const hi = Math.log(maxDepth);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const p = y * size + x;
        const depthRgb = s.valid[p] > 0 ? colormap((Math.log(s.depth[p]) - lo) / (hi - lo)) : [0, 0, 0];
        for (let ch = 0; ch < 3; ch++) {
          img[(y * W + x) * 3 + ch] = Math.round(255 * s.rgb[ch * plane + p]);
          img[(y * W + size + 2 + x) * 3 + ch] = Math.round(255 * depthRgb[ch]);
          img[(y * W + 2 * size + 4 + x) * 3 + ch] = sparse[p] > 0 ? Math.round(255 * depthRgb[ch]) : 24;
        }
      }
    }
    const path = join(dir, `sample-${i}.png`);
    writeFileSync(path, encodePng(W, size, img));
    paths.push(path);
  }
  return paths;
}
