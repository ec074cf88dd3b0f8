// One constructor for every architecture, by name.
import { AntisymmetricBlock } from './antisymmetric.js';
import type { Architecture, OdeBlock, OdeBlockOptions } from './block.js';
import { HamiltonianBlock } from './hamiltonian.js';
import { LeapfrogBlock } from './leapfrog.js';
import { ParabolicBlock } from './parabolic.js';
import { ResNetBlock } from './resnet.js';

export const ARCHITECTURES: Architecture[] = ['resnet', 'antisymmetric', 'hamiltonian', 'leapfrog', 'parabolic'];

export function makeBlock(architecture: Architecture, options: OdeBlockOptions): OdeBlock {
  switch (architecture) {
    case 'resnet': return new ResNetBlock(options);
    case 'antisymmetric': return new AntisymmetricBlock(options);
    case 'hamiltonian': return new HamiltonianBlock(options);
    case 'leapfrog': return new LeapfrogBlock(options);
    case 'parabolic': return new ParabolicBlock(options);
    default: throw new TypeError(`unknown architecture '${String(architecture)}' (${ARCHITECTURES.join(', ')})`);
  }
}
