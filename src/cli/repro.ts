// `keel repro <paper> [options]`: runs a paper reproduction from
// src/experiments/<paper>/. Each entry is imported only when called; add a
// reproduction by adding an entry here.

interface Reproduction {
  summary: string;
  run: (args: string[]) => Promise<number>;
}

const reproductions: Record<string, Reproduction> = {
  sing: {
    summary: 'SING (Courtois et al. 2023, arXiv:2305.15997): AdamW vs SING on Fashion-MNIST, LR sweep × seeds [--quick] [--out DIR]',
    run: async (args) => (await import('../experiments/sing/index.js')).reproSing(args),
  },
  stable: {
    summary: 'Stable architectures (Haber & Ruthotto 2017, arXiv:1705.03341): ODE-view networks over depth [--quick] [--out DIR] [--max-depth N] [--iters K] [--no-fmnist]',
    run: async (args) => (await import('../experiments/stable/cli.js')).run(args),
  },
  mde: {
    summary: 'NaN divergence in monocular depth estimation (Kim, Jang & Kim 2023, arXiv:2311.03938): SILog/head/variance/init ablation on SynthDepth, then the guard policies [--quick] [--out DIR]',
    run: async (args) => (await import('../experiments/mde/cli.js')).run(args),
  },
  maxpool: {
    summary: 'Nonsmooth AD (Boustany 2024, arXiv:2401.02736; Bertoin et al. 2021): MaxPool-β and ReLU\'(0) training impact across precisions [--quick] [--out DIR]',
    run: async (args) => (await import('../experiments/nonsmooth/cli.js')).runRepro(args),
  },
};

export function reproUsage(): string {
  const width = Math.max(...Object.keys(reproductions).map((c) => c.length));
  return [
    'usage: keel repro <paper> [options]',
    '',
    'reproductions:',
    ...Object.entries(reproductions).map(([name, r]) => `  ${name.padEnd(width)}  ${r.summary}`),
    '',
    'keel repro <paper> --help shows its options.',
  ].join('\n');
}

export async function repro(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined) {
    console.error(reproUsage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(reproUsage());
    return 0;
  }
  const reproduction = Object.hasOwn(reproductions, name) ? reproductions[name] : undefined;
  if (reproduction === undefined) {
    console.error(`keel repro: unknown reproduction '${name}' (available: ${Object.keys(reproductions).join(', ')})\n\n${reproUsage()}`);
    return 2;
  }
  return reproduction.run(rest);
}
