// Keel's first demo: a 784-128-10 MLP trained on Fashion-MNIST (Debian's
// dataset-fashion-mnist) with hand-written SGD + momentum, straight on the
// engine: generated ops, autograd, scopes. Falls back to a synthetic two-spiral
// set when the data set is not installed.
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import * as keel from 'keel';

const DIR = '/usr/share/datasets/fashion-mnist';

function idx(file) {
  const bytes = gunzipSync(readFileSync(`${DIR}/${file}`));
  const dims = bytes[3];
  const shape = [];
  for (let i = 0; i < dims; i++) shape.push(bytes.readUInt32BE(4 + 4 * i));
  return { shape, data: bytes.subarray(4 + 4 * dims) };
}

function fashionMnist(split) {
  const prefix = split === 'train' ? 'train' : 't10k';
  const images = idx(`${prefix}-images-idx3-ubyte.gz`);
  const labels = idx(`${prefix}-labels-idx1-ubyte.gz`);
  const n = images.shape[0];
  const x = keel.scope(() => keel.tensor(new Uint8Array(images.data), { shape: [n, 784] }).float().div(255).sub(0.286).div(0.353));
  const y = keel.tensor(new Uint8Array(labels.data), { shape: [n] }).long();
  return { x, y, n, name: 'Fashion-MNIST' };
}

function spirals(n) {
  const xs = new Float32Array(n * 784);
  const ys = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    const t = (i / n) * 4 * Math.PI;
    const r = t / (4 * Math.PI);
    xs[i * 784] = r * Math.cos(t + c * Math.PI);
    xs[i * 784 + 1] = r * Math.sin(t + c * Math.PI);
    ys[i] = c;
  }
  return { x: keel.tensor(xs, { shape: [n, 784] }), y: keel.tensor(ys, { shape: [n] }).long(), n, name: 'synthetic spirals' };
}

const haveData = existsSync(`${DIR}/train-images-idx3-ubyte.gz`);
const train = haveData ? fashionMnist('train') : spirals(8192);
const test = haveData ? fashionMnist('test') : spirals(2048);
console.log(`data: ${train.name}, ${train.n} training and ${test.n} test examples`);

keel.manualSeed(0);
function linear(inF, outF) {
  const bound = 1 / Math.sqrt(inF); // PyTorch's default Linear init
  return {
    w: keel.rand([outF, inF]).mul(2 * bound).sub(bound).requiresGrad_(),
    b: keel.rand([outF]).mul(2 * bound).sub(bound).requiresGrad_(),
  };
}
const layers = [linear(784, 128), linear(128, 10)];
const params = layers.flatMap((l) => [l.w, l.b]);
const velocity = params.map((p) => keel.zerosLike(p));

function forward(x) {
  const h = keel.ops.linear(x, layers[0].w, layers[0].b).relu();
  return keel.ops.linear(h, layers[1].w, layers[1].b);
}

const lr = 0.05;
const momentum = 0.9;
const batch = 128;
const epochs = 2;
const t0 = performance.now();
for (let epoch = 0; epoch < epochs; epoch++) {
  const order = keel.ops.randperm(train.n, { dtype: 'int64' });
  let total = 0;
  let steps = 0;
  for (let start = 0; start + batch <= train.n; start += batch) {
    const loss = keel.scope(() => {
      const idxs = order.slice(0, start, start + batch);
      const logits = forward(train.x.indexSelect(0, idxs));
      const l = keel.ops.crossEntropyLoss(logits, train.y.indexSelect(0, idxs));
      l.backward();
      keel.noGrad(() => {
        params.forEach((p, i) => {
          velocity[i].mul_(momentum).add_(p.grad);
          p.sub_(velocity[i], lr);
          p.grad = null;
        });
      });
      return l.item();
    });
    total += loss;
    steps++;
  }
  order.dispose();
  const accuracy = keel.scope(() => keel.noGrad(() => forward(test.x).argmax(1).eq(test.y).float().mean().item()));
  console.log(`epoch ${epoch + 1}: train loss ${(total / steps).toFixed(4)}, test accuracy ${(100 * accuracy).toFixed(2)}%`);
}
console.log(`trained in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${keel.getNumThreads()} threads; live tensors: ${keel.memory().tensors}`);
