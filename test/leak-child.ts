// The leak test's child (run by leak.test.ts): a PyTorch-style loop over a
// DataLoader (no dispose, no scope) or the idiomatic one (each step in a
// scope); prints the warnings it got and keel.memory() as one JSON line.
//   node build/test/leak-child.js leak|scoped
import * as keel from 'keel';

const mode = process.argv[2] ?? 'leak';
const warnings: string[] = [];
process.on('warning', (w) => { if ((w as { code?: string }).code === 'KEEL_TENSOR_LEAK') warnings.push(w.message); });

keel.manualSeed(0);
const data = new keel.data.TensorDataset(keel.randn([64, 4]), keel.randint(0, 2, [64]));
const loader = new keel.data.DataLoader(data, { batchSize: 8, shuffle: true, seed: 0 });
const model = new keel.nn.zoo.MLP({ inFeatures: 4, numClasses: 2, hidden: [8] });
const optimizer = new keel.optim.SGD(model.parameters(), { lr: 0.01 });

function step(x: keel.Tensor, y: keel.Tensor): number {
  const loss = keel.losses.crossEntropy(model.call(x) as keel.Tensor, y);
  optimizer.zeroGrad();
  loss.backward();
  optimizer.step();
  return loss.item();
}

for (let epoch = 0; epoch < 800; epoch++) {
  loader.setEpoch(epoch);
  if (mode === 'leak') {
    for (const [x, y] of loader) step(x, y);
  } else {
    // the README's idiomatic loop
    for (const [x, y] of loader) {
      keel.scope(() => step(x, y));
      keel.dispose([x, y]);
    }
  }
}
await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
const m = keel.memory();
process.stdout.write(`${JSON.stringify({ warnings, outsideScopes: m.outsideScopes, byOrigin: m.byOrigin })}\n`);
