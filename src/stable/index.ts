// keel.stable: residual networks as ODE discretisations (Haber & Ruthotto
// 2017; parabolic from Ruthotto & Haber 2018) and their stability analysis.
export { activate, type ActivationName } from './activation.js';
export { applyK, applyKT, kernelShape, type KernelSpec } from './operator.js';
export { OdeBlock, type Architecture, type Integrator, type InitName, type OdeBlockOptions, type Integration } from './block.js';
export { ResNetBlock } from './resnet.js';
export { AntisymmetricBlock } from './antisymmetric.js';
export { HamiltonianBlock } from './hamiltonian.js';
export { LeapfrogBlock, symmetricForce } from './leapfrog.js';
export { ParabolicBlock } from './parabolic.js';
export { makeBlock, ARCHITECTURES } from './factory.js';
export { jacobian, jacobianFiniteDifference } from './jacobian.js';
export { eigenvalues, summarize, type Eigenvalues, type SpectrumSummary } from './eigen.js';
export { amplification, inStabilityRegion, checkStability, describeRegion, type RegionCheck } from './regions.js';
export { perturbationGrowth, inputGradientNorm, type GrowthOptions } from './growth.js';
export { analyzeBlock, rhsJacobian, type BlockAnalysis, type LayerAnalysis } from './analyze.js';
export { StableNet, type StableNetOptions, type Opening } from './network.js';
export { arnoldi, selectRitz, type ArnoldiOptions, type ArnoldiResult, type RitzValue, type RitzOrder } from './arnoldi.js';
export { jacobianRitzValues, ritzEigenvalues, type JacobianRitz, type JacobianRitzOptions } from './jacobian-ritz.js';
