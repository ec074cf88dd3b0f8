// keel.data: datasets, the seeded resumable DataLoader, transforms, the
// Fashion-MNIST IDX loader (real files and broken ones) and the synthetic set.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import * as keel from 'keel';

const { data } = keel;
type Tensor = keel.Tensor;

/** x[i] = [3i, 3i+1, 3i+2] (float32), y[i] = i (int64). */
function rows(n: number): keel.data.TensorDataset<[Tensor, Tensor]> {
  return new data.TensorDataset<[Tensor, Tensor]>(
    keel.arange(0, 3 * n).reshape([n, 3]),
    keel.arange(0, n, 1, { dtype: 'int64' }),
  );
}

function labelsOf(batches: Tensor[][]): number[][] {
  return batches.map((b) => b[1].toArray<number[]>());
}

function collect<T extends keel.data.Example>(loader: keel.data.DataLoader<T>, limit = Infinity): Tensor[][] {
  const out: Tensor[][] = [];
  for (const b of loader) {
    out.push(b as unknown as Tensor[]);
    if (out.length >= limit) break;
  }
  return out;
}

test('TensorDataset and DataLoader: batch shapes, dtypes, order, length, dropLast', () => {
  keel.scope(() => {
    const ds = rows(10);
    assert.equal(ds.length, 10);
    const [x3, y3] = ds.get(3);
    assert.deepEqual(x3.toArray(), [9, 10, 11]);
    assert.equal(y3.item(), 3);
    assert.throws(() => ds.get(10), /out of range/);
    assert.throws(() => new data.TensorDataset(keel.zeros([3, 2]), keel.zeros([4])), /same size along dim 0/);

    const loader = new data.DataLoader(ds, { batchSize: 4 });
    assert.equal(loader.length, 3);
    const batches = collect(loader);
    assert.equal(batches.length, 3);
    assert.deepEqual(batches.map((b) => b[0].shape), [[4, 3], [4, 3], [2, 3]]);
    assert.equal(batches[0][0].dtype, 'float32');
    assert.equal(batches[0][1].dtype, 'int64');
    assert.deepEqual(labelsOf(batches), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    assert.deepEqual(batches[2][0].toArray(), [[24, 25, 26], [27, 28, 29]]);
    // a batch is a copy: writing to it leaves the data set alone
    batches[0][0].fill_(-1);
    assert.deepEqual(ds.get(0)[0].toArray(), [0, 1, 2]);

    const dropping = new data.DataLoader(ds, { batchSize: 4, dropLast: true });
    assert.equal(dropping.length, 2);
    assert.deepEqual(labelsOf(collect(dropping)), [[0, 1, 2, 3], [4, 5, 6, 7]]);
    assert.equal(new data.DataLoader(ds, { batchSize: 5, dropLast: true }).length, 2);
    assert.equal(new data.DataLoader(ds, { batchSize: 11, dropLast: true }).length, 0);
    assert.equal(new data.DataLoader(ds, { batchSize: 11 }).length, 1);
    assert.throws(() => new data.DataLoader(ds, { batchSize: 0 }), /batchSize/);
  });
});

test('a Dataset without getBatch is collated example by example (numbers become tensors)', () => {
  keel.scope(() => {
    const ds: keel.data.Dataset<[Tensor, number]> = {
      length: 5,
      get: (i) => [keel.full([2, 2], i), i * 10],
    };
    const batches = collect(new data.DataLoader(ds, { batchSize: 2 }));
    assert.equal(batches.length, 3);
    assert.deepEqual(batches[0][0].shape, [2, 2, 2]);
    assert.equal(batches[0][1].dtype, 'int64');
    assert.deepEqual(batches[1][1].toArray(), [20, 30]);
    assert.deepEqual(batches[2][0].toArray(), [[[4, 4], [4, 4]]]);
    const floats = data.collate([[keel.zeros([1]), 0.5], [keel.zeros([1]), 1]] as [Tensor, number][]);
    assert.equal(floats[1].dtype, 'float32');
    assert.throws(() => data.collate([keel.zeros([2]), keel.zeros([3])]), /equal shapes/);
  });
});

test('shuffling: fixed by the seed, a permutation, different every epoch, seeded by manualSeed', () => {
  keel.scope(() => {
    const ds = rows(50);
    const epochs = (loader: keel.data.DataLoader<[Tensor, Tensor]>, n: number) =>
      Array.from({ length: n }, () => labelsOf(collect(loader)).flat());
    const a = epochs(new data.DataLoader(ds, { batchSize: 8, shuffle: true, seed: 7 }), 3);
    const b = epochs(new data.DataLoader(ds, { batchSize: 8, shuffle: true, seed: 7 }), 3);
    assert.deepEqual(a, b);
    const identity = Array.from({ length: 50 }, (_, i) => i);
    for (const order of a) assert.deepEqual([...order].sort((p, q) => p - q), identity);
    assert.notDeepEqual(a[0], identity);
    assert.notDeepEqual(a[0], a[1]);
    assert.notDeepEqual(a[1], a[2]);
    const other = epochs(new data.DataLoader(ds, { batchSize: 8, shuffle: true, seed: 8 }), 1);
    assert.notDeepEqual(other[0], a[0]);

    // without a seed option, the seed comes from Keel's default generator
    keel.manualSeed(123);
    const c = new data.DataLoader(ds, { batchSize: 8, shuffle: true });
    keel.manualSeed(123);
    const d = new data.DataLoader(ds, { batchSize: 8, shuffle: true });
    assert.equal(c.seed, d.seed);
    assert.deepEqual(epochs(c, 2), epochs(d, 2));
    // and iterating never draws from that generator
    keel.manualSeed(9);
    const before = keel.rand([3]).toArray();
    keel.manualSeed(9);
    collect(new data.DataLoader(ds, { batchSize: 8, shuffle: true, seed: 1, transform: data.randomHorizontalFlip() }));
    assert.deepEqual(keel.rand([3]).toArray(), before);
  });
});

test('stateDict/loadStateDict resume at the exact next batch, augmentation included', () => {
  keel.scope(() => {
    const n = 37;
    const images = new data.TensorDataset<[Tensor, Tensor]>(
      keel.arange(0, n * 2 * 6 * 6).reshape([n, 2, 6, 6]),
      keel.arange(0, n, 1, { dtype: 'int64' }),
    );
    const options = () => ({
      batchSize: 5,
      shuffle: true,
      seed: 2024,
      transform: data.compose([data.randomCrop(6, { padding: 2 }), data.randomHorizontalFlip(0.5)]),
    });
    const values = (bs: Tensor[][]) => bs.map((b) => [b[0].toArray(), b[1].toArray()]);

    const reference = new data.DataLoader(images, options());
    const uninterrupted = [...collect(reference), ...collect(reference), ...collect(reference)];
    assert.equal(uninterrupted.length, 3 * 8);

    const first = new data.DataLoader(images, options());
    const seen = collect(first); // epoch 0
    let state = '';
    let k = 0;
    for (const b of first) {
      seen.push(b);
      if (++k === 3) {
        state = JSON.stringify(first.stateDict()); // taken inside the loop, after batch 3 of epoch 1
        break;
      }
    }
    assert.deepEqual(JSON.parse(state), { epoch: 1, batchIndex: 3, seed: 2024, length: n, batchSize: 5, shuffle: true, dropLast: false });

    // a fresh loader with another seed picks everything up from the state
    const resumed = new data.DataLoader(images, { ...options(), seed: 1 });
    resumed.loadStateDict(JSON.parse(state));
    const rest = [...collect(resumed), ...collect(resumed)];
    assert.equal(seen.length + rest.length, uninterrupted.length);
    assert.deepEqual(values([...seen, ...rest]), values(uninterrupted));
    assert.deepEqual(resumed.stateDict(), { ...JSON.parse(state), epoch: 3, batchIndex: 0 });

    // breaking out leaves the cursor at the next unseen batch; the state must fit the loader
    assert.deepEqual(values(collect(first)), values(uninterrupted.slice(11, 16)));
    assert.throws(() => new data.DataLoader(images, { ...options(), batchSize: 4 }).loadStateDict(JSON.parse(state)), /different loader.*batchSize 5 vs 4/);
    assert.throws(() => resumed.loadStateDict({ ...JSON.parse(state), batchIndex: 99 }), /past the 8 batches/);
    // random access agrees with iteration
    assert.deepEqual(values([reference.batchAt(2, 7) as Tensor[]]), values(uninterrupted.slice(23)));

    // the position seen from inside the loop body, batch by batch
    const cursor = new data.DataLoader(images, options());
    const positions: string[] = [];
    for (const _ of cursor) positions.push(`${cursor.epoch}:${cursor.batchIndex}`);
    assert.deepEqual(positions, ['0:1', '0:2', '0:3', '0:4', '0:5', '0:6', '0:7', '1:0']);
  });
});

test('advance() moves past one batch, into the next epoch after the last, as iterating would', () => {
  const ds = new data.TensorDataset(keel.arange(10).float());
  const loader = new data.DataLoader(ds, { batchSize: 4, shuffle: true, seed: 3 });
  const iterated = new data.DataLoader(ds, { batchSize: 4, shuffle: true, seed: 3 });
  assert.equal(loader.length, 3);
  for (let k = 0; k < 5; k++) {
    const { epoch, batchIndex } = loader;
    const expected = keel.scope(() => Array.from(iterated[Symbol.iterator]().next().value![0].data() as Float32Array));
    const got = keel.scope(() => Array.from(loader.batchAt(epoch, batchIndex)[0].data() as Float32Array));
    assert.deepEqual(got, expected, `batch ${k}`);
    loader.advance();
    assert.deepEqual([loader.epoch, loader.batchIndex], [iterated.epoch, iterated.batchIndex]);
  }
  assert.deepEqual([loader.epoch, loader.batchIndex], [1, 2]);
});

test('random transforms draw afresh for every batch and every epoch', () => {
  keel.scope(() => {
    // 8 copies of one image, in order: only the augmentation can tell batches apart
    const image = keel.arange(0, 36).reshape([1, 1, 6, 6]);
    const same = new data.TensorDataset(image.expand([8, 1, 6, 6]).contiguous());
    const loader = new data.DataLoader(same, { batchSize: 4, seed: 3, transform: data.randomCrop(6, { padding: 2 }) });
    const [e0b0, e0b1] = collect(loader).map((b) => b[0].toArray());
    const [e1b0] = collect(loader).map((b) => b[0].toArray());
    assert.notDeepEqual(e0b0, e0b1);
    assert.notDeepEqual(e0b0, e1b0);
    assert.deepEqual(loader.batchAt(0, 1)[0].toArray(), e0b1);
  });
});

test('normalize: (x − mean) / std per channel, exact in float32', () => {
  keel.scope(() => {
    const mean = [0.5, 0.4, 0.3];
    const std = [0.2, 0.25, 0.3];
    keel.manualSeed(1);
    const x = keel.rand([2, 3, 2, 2]);
    const y = data.normalize(mean, std)(x);
    assert.deepEqual(y.shape, [2, 3, 2, 2]);
    assert.equal(y.dtype, 'float32');
    const xs = x.data() as Float32Array;
    const expected = Float32Array.from(xs, (v, i) => {
      const c = Math.floor(i / 4) % 3;
      return Math.fround(Math.fround(v - Math.fround(mean[c])) / Math.fround(std[c]));
    });
    assert.deepEqual(y.data(), expected);
    // one value for every channel, and float64 batches stay float64
    const d = data.normalize(0.5, 2)(keel.tensor([[1, 3]], { dtype: 'float64' }).reshape([1, 2, 1]));
    assert.deepEqual(d.toArray(), [[[0.25], [1.25]]]);
    assert.equal(d.dtype, 'float64');
    assert.throws(() => data.normalize([0, 0], [1, 1])(x), /2 channel values for a batch with 3 channels/);
    assert.throws(() => data.normalize(0, 0), /non-zero/);
  });
});

/** The size×size window at (dy, dx) of image b of x [B, C, H, W] zero-padded by p, as nested arrays. */
function window(x: number[][][][], b: number, p: number, dy: number, dx: number, h: number, w: number): number[][][] {
  return x[b].map((plane) =>
    Array.from({ length: h }, (_, r) =>
      Array.from({ length: w }, (_, c) => {
        const i = dy + r - p;
        const j = dx + c - p;
        return i >= 0 && i < plane.length && j >= 0 && j < plane[0].length ? plane[i][j] : 0;
      }),
    ),
  );
}

test('randomCrop: zero padding then a crop at offsets drawn per example from the seeded stream', () => {
  keel.scope(() => {
    const B = 32;
    const x = keel.arange(1, 1 + B * 2 * 5 * 5).reshape([B, 2, 5, 5]);
    const xs = x.toArray<number[][][][]>();
    const crop = data.randomCrop(4, { padding: 1 });
    const ctx = () => ({ rng: new data.Rng(42), epoch: 0, batchIndex: 0 });
    const out = crop(x, ctx());
    assert.deepEqual(out.shape, [B, 2, 4, 4]);
    assert.deepEqual(crop(x, ctx()).toArray(), out.toArray());
    const got = out.toArray<number[][][][]>();
    // the documented draws: per example, the top offset then the left one
    const rng = new data.Rng(42);
    const offsets = new Set<string>();
    for (let b = 0; b < B; b++) {
      const dy = rng.int(7 - 4 + 1);
      const dx = rng.int(7 - 4 + 1);
      offsets.add(`${dy},${dx}`);
      assert.deepEqual(got[b], window(xs, b, 1, dy, dx, 4, 4), `example ${b} at (${dy}, ${dx})`);
    }
    assert.ok(offsets.size >= 8, `only ${offsets.size} distinct offsets in ${B} examples`);
    assert.notDeepEqual(crop(x, { rng: new data.Rng(43), epoch: 0, batchIndex: 0 }).toArray(), got);

    // asymmetric padding [l, t, r, b], rectangular size, a 3-d batch, fill value
    const small = keel.tensor([[[1, 2], [3, 4]]]);
    const padded = data.randomCrop([3, 2], { padding: [0, 1, 0, 0], fill: -1 })(small, ctx());
    assert.deepEqual(padded.toArray(), [[[-1, -1], [1, 2], [3, 4]]]);
    assert.throws(() => data.randomCrop(6)(x), /larger than the padded image/);
  });
});

test('randomHorizontalFlip: mirrors exactly the examples the seeded stream picks', () => {
  keel.scope(() => {
    const B = 40;
    const x = keel.arange(0, B * 3 * 2 * 4).reshape([B, 3, 2, 4]);
    const xs = x.toArray<number[][][][]>();
    const out = data.randomHorizontalFlip(0.5)(x, { rng: new data.Rng(5), epoch: 0, batchIndex: 0 }).toArray<number[][][][]>();
    const rng = new data.Rng(5);
    let flipped = 0;
    for (let b = 0; b < B; b++) {
      const flip = rng.next() < 0.5;
      flipped += flip ? 1 : 0;
      const expected = flip ? xs[b].map((plane) => plane.map((row) => [...row].reverse())) : xs[b];
      assert.deepEqual(out[b], expected, `example ${b} (flip ${flip})`);
    }
    assert.ok(flipped > 5 && flipped < 35, `${flipped} of ${B} flipped`);
    assert.deepEqual(data.randomHorizontalFlip(0)(x).toArray(), xs);
    assert.deepEqual(data.randomHorizontalFlip(1)(x).toArray(), x.flip(-1).toArray());
  });
});

test('compose gives each transform its own stream forked from the batch context', () => {
  keel.scope(() => {
    const x = keel.arange(0, 16 * 3 * 4 * 4).reshape([16, 3, 4, 4]);
    const crop = data.randomCrop(4, { padding: 1 });
    const flip = data.randomHorizontalFlip();
    const norm = data.normalize([1, 2, 3], [2, 2, 2]);
    const ctx = { rng: new data.Rng(11, 3), epoch: 1, batchIndex: 2 };
    const composed = data.compose([crop, flip, norm])(x, ctx);
    const sub = (i: number) => ({ ...ctx, rng: ctx.rng.fork(i) });
    const manual = norm(flip(crop(x, sub(0)), sub(1)), sub(2));
    assert.deepEqual(composed.toArray(), manual.toArray());
  });
});

test('Rng: deterministic streams, forks independent of draws, valid permutations', () => {
  const a = new data.Rng(3, 1);
  const b = new data.Rng(3, 1);
  const xs = Array.from({ length: 5 }, () => a.nextUint32());
  assert.deepEqual(Array.from({ length: 5 }, () => b.nextUint32()), xs);
  assert.notDeepEqual(Array.from({ length: 5 }, () => new data.Rng(3, 2).nextUint32()), xs);
  assert.deepEqual(a.fork(9).nextUint32(), new data.Rng(3, 1, 9).nextUint32());
  const p = new data.Rng(0).permutation(1000);
  assert.deepEqual([...p].sort((u, v) => u - v), Array.from({ length: 1000 }, (_, i) => i));
  const r = new data.Rng(1);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) counts[r.int(6)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `int(6) counts ${counts}`);
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < 20000; i++) {
    const z = r.normal();
    sum += z;
    sq += z * z;
  }
  assert.ok(Math.abs(sum / 20000) < 0.05 && Math.abs(sq / 20000 - 1) < 0.05);
});

const FASHION = '/usr/share/datasets/fashion-mnist';
const haveFashion = existsSync(join(FASHION, 'train-images-idx3-ubyte.gz'));

test('Fashion-MNIST from the installed IDX files', { skip: haveFashion ? false : `no Fashion-MNIST under ${FASHION}` }, () => {
  keel.scope(() => {
    const train = data.fashionMnist({ split: 'train' });
    const [x, y] = train.tensors;
    assert.equal(train.length, 60000);
    assert.deepEqual(x.shape, [60000, 1, 28, 28]);
    assert.equal(x.dtype, 'float32');
    assert.equal(y.dtype, 'int64');
    assert.equal(x.min().item(), 0);
    assert.equal(x.max().item(), 1);
    // reference values read once from the files with Python's gzip module
    assert.deepEqual(y.slice(0, 0, 10).toArray(), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert.deepEqual(keel.ops.bincount(y).toArray(), new Array(10).fill(6000));
    assert.equal(x.select(0, 0).mul(255).round().sum().item(), 76247);
    assert.equal(x.select(0, 59999).mul(255).round().sum().item(), 16684);
    train.dispose();

    const testSet = data.fashionMnist({ split: 'test' });
    assert.equal(testSet.length, 10000);
    assert.deepEqual(testSet.tensors[1].slice(0, 0, 10).toArray(), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    assert.equal(testSet.tensors[0].double().mul(255).round().sum().item(), 573469082);
    const [bx, by] = collect(new data.DataLoader(testSet, { batchSize: 128 }), 1)[0];
    assert.deepEqual(bx.shape, [128, 1, 28, 28]);
    assert.deepEqual(by.shape, [128]);
  });
});

/** IDX bytes: magic 0x0000TTDD, big-endian sizes, then the payload. */
function idx(type: number, shape: number[], payload: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = type;
  header[3] = shape.length;
  shape.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, payload]);
}

function images(n: number, rowsN = 28, cols = 28): Buffer {
  const px = new Uint8Array(n * rowsN * cols);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7) % 256;
  return idx(0x08, [n, rowsN, cols], px);
}

function labels(values: number[]): Buffer {
  return idx(0x08, [values.length], Uint8Array.from(values));
}

function withDir(files: Record<string, Buffer>, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'keel-idx-'));
  try {
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const IMG = 'train-images-idx3-ubyte';
const LBL = 'train-labels-idx1-ubyte';

test('Fashion-MNIST loader reads small valid files, gzipped or not', () => {
  keel.scope(() => {
    const gz = { [`${IMG}.gz`]: gzipSync(images(3)), [`${LBL}.gz`]: gzipSync(labels([4, 0, 9])) };
    const raw = { [IMG]: images(3), [LBL]: labels([4, 0, 9]) };
    for (const files of [gz, raw]) {
      withDir(files, (root) => {
        const ds = data.fashionMnist({ split: 'train', root });
        assert.equal(ds.length, 3);
        assert.deepEqual(ds.tensors[1].toArray(), [4, 0, 9]);
        const first = ds.tensors[0].flatten().slice(0, 0, 3).toArray<number[]>();
        assert.deepEqual(first, [0, 7 / 255, 14 / 255].map(Math.fround));
      });
    }
  });
});

test('Fashion-MNIST loader: each broken file is an Error naming it', () => {
  const good = { [`${IMG}.gz`]: gzipSync(images(3)), [`${LBL}.gz`]: gzipSync(labels([1, 2, 3])) };
  const expectError = (files: Record<string, Buffer>, pattern: RegExp, named: string) =>
    withDir(files, (root) => {
      assert.throws(
        () => data.fashionMnist({ split: 'train', root }),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.match(e.message, pattern);
          assert.ok(e.message.includes(join(root, named)), `"${e.message}" does not name ${named}`);
          return true;
        },
      );
    });
  expectError({ [`${LBL}.gz`]: good[`${LBL}.gz`] }, /not found/, `${IMG}.gz`);
  expectError({ [`${IMG}.gz`]: good[`${IMG}.gz`] }, /not found/, `${LBL}.gz`);
  // data shorter than the header says
  expectError({ ...good, [`${IMG}.gz`]: gzipSync(images(3).subarray(0, 16 + 100)) }, /truncated IDX file/, `${IMG}.gz`);
  // header cut short
  expectError({ ...good, [`${LBL}.gz`]: gzipSync(labels([1, 2, 3]).subarray(0, 6)) }, /truncated IDX file/, `${LBL}.gz`);
  // the gzip stream itself cut
  const zipped = good[`${IMG}.gz`];
  expectError({ ...good, [`${IMG}.gz`]: zipped.subarray(0, zipped.length >> 1) }, /gzip stream is truncated or corrupt/, `${IMG}.gz`);
  // uncompressed and truncated
  expectError({ [IMG]: images(3).subarray(0, 1000), [`${LBL}.gz`]: good[`${LBL}.gz`] }, /truncated IDX file/, IMG);
  // a labels file where the images should be, and bytes that are not IDX at all
  expectError({ ...good, [`${IMG}.gz`]: gzipSync(labels([1, 2, 3])) }, /wrong magic number 0x00000801.*expected 0x00000803/, `${IMG}.gz`);
  expectError({ ...good, [`${LBL}.gz`]: gzipSync(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0])) }, /wrong magic number 0x89504e47/, `${LBL}.gz`);
  // files that disagree, images of the wrong size, a label outside 0..9
  expectError({ ...good, [`${LBL}.gz`]: gzipSync(labels([1, 2])) }, /holds 3 images but .* holds 2 labels/, `${LBL}.gz`);
  expectError({ ...good, [`${IMG}.gz`]: gzipSync(images(3, 27, 28)) }, /27×28/, `${IMG}.gz`);
  expectError({ ...good, [`${LBL}.gz`]: gzipSync(labels([1, 12, 3])) }, /label 12 at index 1/, `${LBL}.gz`);
  expectError({ ...good, [`${LBL}.gz`]: gzipSync(Buffer.concat([labels([1, 2, 3]), Buffer.from([0])])) }, /1 bytes past the end/, `${LBL}.gz`);
});

test('memory: iterating loaders in scopes frees every tensor they make', () => {
  const baseline = keel.memory().tensors;
  const ds = data.syntheticImages({ n: 70, seed: 1, size: 16 });
  const start = keel.memory().tensors;
  assert.equal(start, baseline + 2);
  const loader = new data.DataLoader(ds, {
    batchSize: 16,
    shuffle: true,
    seed: 3,
    transform: data.compose([data.randomCrop(16, { padding: 2 }), data.randomHorizontalFlip(), data.normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])]),
  });
  keel.scope(() => {
    for (const [x, y] of loader) x.mean().add(y.float().mean());
  });
  assert.equal(keel.memory().tensors, start);
  // forEach: a scope per step, so at most one batch is alive at a time
  let peak = 0;
  loader.forEach(([x]) => {
    x.mul(2);
    peak = Math.max(peak, keel.memory().tensors - start);
  });
  assert.ok(peak > 0 && peak <= 4, `peak ${peak} live tensors during a step`);
  assert.equal(keel.memory().tensors, start);
  // per-step scopes around an explicit dispose
  for (const batch of loader) {
    keel.scope(() => {
      batch[0].sum();
    });
    keel.dispose(batch);
  }
  assert.equal(keel.memory().tensors, start);
  // a collated (no getBatch) data set and a break mid-epoch
  keel.scope(() => {
    const examples: keel.data.Dataset<[Tensor, number]> = { length: 9, get: (i) => [ds.get(i)[0], i] };
    for (const [x] of new data.DataLoader(examples, { batchSize: 4 })) {
      x.sum();
      break;
    }
  });
  assert.equal(keel.memory().tensors, start);
  ds.dispose();
  assert.equal(keel.memory().tensors, baseline);
});

test('syntheticImages: deterministic from the seed, shapes, ranges, balanced labels', () => {
  keel.scope(() => {
    const a = data.syntheticImages({ n: 40, seed: 5 });
    const b = data.syntheticImages({ n: 40, seed: 5 });
    const [x, y] = a.tensors;
    assert.deepEqual(x.shape, [40, 3, 32, 32]);
    assert.equal(x.dtype, 'float32');
    assert.equal(y.dtype, 'int64');
    assert.deepEqual(x.data(), b.tensors[0].data());
    assert.deepEqual(y.toArray(), Array.from({ length: 40 }, (_, i) => i % 10));
    assert.ok((x.min().item() as number) >= 0 && (x.max().item() as number) <= 1);
    assert.notDeepEqual(data.syntheticImages({ n: 40, seed: 6 }).tensors[0].data(), x.data());
    // example i depends on (seed, i) only: a smaller set is a prefix of a larger one
    const prefix = data.syntheticImages({ n: 15, seed: 5 });
    assert.deepEqual(prefix.tensors[0].data(), x.slice(0, 0, 15).data());
    // not one image repeated: examples of one class differ
    assert.ok((x.select(0, 0).sub(x.select(0, 10)).abs().mean().item() as number) > 0.05);
    const small = data.syntheticImages({ n: 6, numClasses: 3, seed: 0, size: 16 });
    assert.deepEqual(small.tensors[0].shape, [6, 3, 16, 16]);
    assert.deepEqual(small.tensors[1].toArray(), [0, 1, 2, 0, 1, 2]);
    assert.throws(() => data.syntheticImages({ n: 4, numClasses: 1 }), /numClasses/);
  });
});
