// Synthetic run folders for the dashboard and report tests: metrics.jsonl in
// the schema `keel train` writes (step lines, eval lines, health lines, guard
// events), and a repro output (results.json with verdicts, an SVG figure).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const GUARD_EVENT = {
  event: 'guard', step: 30, policy: 'skip', action: 'skipped the update', detail: 'loss is NaN at step 30',
  report: {
    op: 'aten::log', phase: 'forward', module: 'head.fc', callSite: 'examples/train.ts:42:7',
    inputs: [{ name: 'self', dtype: 'float32', shape: [8, 10], min: -0.5, max: 2, minAbs: 0, zeros: 1, negatives: 3, nans: 0, infs: 0, numel: 80 }],
    output: { name: 'output', dtype: 'float32', shape: [8, 10], min: -3, max: 0.7, nans: 3, infs: 1, numel: 80 },
    cause: 'log of a negative number: its input reached -0.5',
    causeId: 'log-domain',
    remedies: ['clamp the input to a small positive value', 'compute the loss on logits (log_softmax)'],
    detectedIn: 'forward',
  },
};

export function stepLine(i: number, nanAt?: number): Record<string, unknown> {
  return { step: i, epoch: Math.floor((i - 1) / 20), loss: i === nanAt ? null : 2 / i + 0.01 * (i % 3), accuracy: Math.min(1, i / 60), lr: 0.01 * 0.99 ** i, gradNorm: 1 + (i % 5), stepTimeMs: 10 + (i % 2) };
}

export function healthLine(i: number, nanAt?: number): Record<string, unknown> {
  return {
    event: 'health', step: i,
    layers: {
      'features.0': { gradNorm: 0.05 * i, gradMax: 0.01, paramNorm: 3, updateRatio: 1e-3 * (1 + i / 50), nonFinite: 0, saturation: 0.1, dead: 0.02 * (i / 10) },
      'head.fc': { gradNorm: i === nanAt ? null : 0.5, gradMax: 0.1, paramNorm: 1, updateRatio: 2e-3, nonFinite: i === nanAt ? 4 : 0, overflow: i === nanAt ? 2 : 0, underflow: 1 },
    },
    lossScale: 65536,
  };
}

/** A training run of `steps` steps; with `nanAt`, that step's loss is NaN and a guard event names it. */
export function writeTrainRun(dir: string, steps: number, o: { nanAt?: number; garbled?: boolean } = {}): Record<string, unknown>[] {
  mkdirSync(dir, { recursive: true });
  const lines: Record<string, unknown>[] = [];
  for (let i = 1; i <= steps; i++) {
    lines.push(stepLine(i, o.nanAt));
    if (i % 10 === 0) lines.push(healthLine(i, o.nanAt));
    if (i === o.nanAt) lines.push({ ...GUARD_EVENT, step: i });
    if (i % 20 === 0) lines.push({ event: 'eval', step: i, epoch: i / 20 - 1, loss: 1 / i, accuracy: 0.5 + i / 200 });
  }
  let text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  if (o.garbled) {
    const cut = text.indexOf('\n', text.length >> 1);
    text = `${text.slice(0, cut + 1)}{"step": 999, "loss": 0.5, garbled\n${text.slice(cut + 1)}`;
  }
  writeFileSync(join(dir, 'metrics.jsonl'), text);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model: 'lenet5', optim: 'adamw', lr: 0.01, epochs: 3 }));
  writeFileSync(join(dir, 'summary.json'), JSON.stringify({ steps, finalLoss: 2 / steps, accuracy: 0.9 }));
  return lines;
}

export const FIGURE_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80"><rect width="120" height="80" fill="#eef"/><text x="10" y="40">eigenvalues hλ</text></svg>';

/** A repro output: results.json with rows and verdicts, report.md and an SVG figure. */
export function writeReproRun(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.json'), JSON.stringify({
    config: { quick: true },
    trained: [
      { dataset: 'peaks', architecture: 'hamiltonian', depth: 8, valAccuracy: 0.91 },
      { dataset: 'peaks', architecture: 'resnet', depth: 8, valAccuracy: 0.87 },
    ],
    verdicts: [
      { claim: 'Hamiltonian blocks keep the forward propagation stable with depth', holds: true, evidence: 'growth 1.02 at N = 64' },
      { claim: 'plain ResNets blow up with depth', holds: false, evidence: 'growth 1.4 at N = 64' },
    ],
  }));
  writeFileSync(join(dir, 'report.md'), '# Stable architectures\n\n| a | b |\n|---|---|\n| 1 | 2 |\n');
  writeFileSync(join(dir, 'eigenvalues-init.svg'), FIGURE_SVG);
}
