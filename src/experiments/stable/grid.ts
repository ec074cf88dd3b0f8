// The grid of `keel repro stable`: one run per Part A pair (activation ×
// architecture, every depth of cfg.initDepths), per Part B pair (data set ×
// architecture, the multi-level training over its depths; the Fashion-MNIST
// subset too when cfg.fmnist is set), and per Part C pair (activation ×
// architecture, conv blocks at initialisation on Fashion-MNIST states).
import type { Architecture } from '../../stable/block.js';
import { ARCHITECTURES } from '../../stable/factory.js';
import type { StableConfig } from './run.js';

export const ACTIVATIONS = ['tanh', 'identity'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export type StableSpec =
  | { id: string; part: 'init'; activation: Activation; architecture: Architecture }
  | { id: string; part: 'train'; dataset: string; architecture: Architecture }
  | { id: string; part: 'conv-init'; activation: Activation; architecture: Architecture };

/** Every run of the protocol, in the order they run: Part A, Part B (the 2-D sets, then Fashion-MNIST), Part C. */
export function stableSpecs(cfg: StableConfig): StableSpec[] {
  const out: StableSpec[] = [];
  for (const activation of ACTIVATIONS) for (const architecture of ARCHITECTURES) out.push({ id: `init/${activation}/${architecture}`, part: 'init', activation, architecture });
  const datasets = [...cfg.datasets, ...(cfg.fmnist ? ['fashion-mnist'] : [])];
  for (const dataset of datasets) for (const architecture of ARCHITECTURES) out.push({ id: `train/${dataset}/${architecture}`, part: 'train', dataset, architecture });
  if (cfg.fmnist && cfg.convInit) {
    for (const activation of ACTIVATIONS) for (const architecture of ARCHITECTURES) out.push({ id: `conv-init/${activation}/${architecture}`, part: 'conv-init', activation, architecture });
  }
  return out;
}

/** What defines the runs (--resume refuses a results.json of another protocol): the configuration but the output folder. */
export function stableKey(cfg: StableConfig): string {
  const { out: _out, ...defining } = cfg;
  return JSON.stringify(defining);
}
