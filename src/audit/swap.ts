// Swapping backward rules into a built model without touching its code: walk
// namedModules() and replace each nn.ReLU / nn.MaxPool2d child by the audit's
// module with the same forward value (parents find children through their own
// fields, so assigning the field is the whole replacement).
import { ReLU } from '../nn/activation.js';
import { Module } from '../nn/module.js';
import { AvgPool2d, MaxPool2d } from '../nn/pooling.js';
import { MaxPool2dBeta } from './maxpool.js';
import { ReLUWithDerivativeAt0 } from './relu.js';

export interface BackwardRules {
  /** ReLU'(0) for every nn.ReLU (undefined: leave ReLUs alone). */
  reluAt0?: number;
  /** MaxPool-β for every nn.MaxPool2d (undefined: leave max pools alone). */
  beta?: number;
  /** Replace every max pool by an average pool of the same window (a remedy the paper discusses). */
  avgPool?: boolean;
}

export interface SwapReport {
  relu: string[];
  maxPool: string[];
  avgPool: string[];
}

/**
 * Replaces, in place, the model's ReLU and MaxPool2d modules (also ones swapped
 * in before) by ReLUWithDerivativeAt0(reluAt0) and MaxPool2dBeta(β); returns
 * the paths replaced. Parameters are untouched, so the same θ is kept.
 */
export function swapBackwardRules(model: Module, rules: BackwardRules): SwapReport {
  const report: SwapReport = { relu: [], maxPool: [], avgPool: [] };
  for (const [path, parent] of model.namedModules()) {
    for (const [name, child] of parent.namedChildren()) {
      const full = path ? `${path}.${name}` : name;
      let replacement: Module | undefined;
      if (rules.reluAt0 !== undefined && (child instanceof ReLU || child instanceof ReLUWithDerivativeAt0)) {
        replacement = new ReLUWithDerivativeAt0(rules.reluAt0);
        report.relu.push(full);
      } else if (child instanceof MaxPool2d || child instanceof MaxPool2dBeta) {
        if (child instanceof MaxPool2d && child.ceilMode) throw new RangeError(`swapBackwardRules: ${full} uses ceil_mode, which MaxPool2dBeta does not support`);
        const c = child instanceof MaxPool2d ? child : child.config;
        if (rules.avgPool) {
          if (c.dilation[0] !== 1 || c.dilation[1] !== 1) throw new RangeError(`swapBackwardRules: ${full} is dilated; no average pool matches it`);
          replacement = new AvgPool2d(c.kernelSize, { stride: c.stride, padding: c.padding });
          report.avgPool.push(full);
        } else if (rules.beta !== undefined) {
          const m = new MaxPool2dBeta(c.kernelSize, { stride: c.stride, padding: c.padding, dilation: c.dilation, beta: rules.beta });
          m.label = full;
          replacement = m;
          report.maxPool.push(full);
        }
      }
      if (replacement !== undefined) {
        replacement.training = child.training;
        (parent as unknown as Record<string, Module>)[name] = replacement;
      }
    }
  }
  return report;
}
