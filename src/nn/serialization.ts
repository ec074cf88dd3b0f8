// A module's state dict to and from a safetensors file, keyed by PyTorch's
// names (`layer1.0.conv1.weight`, `bn1.running_mean`), so a file moves between
// Keel and PyTorch (safetensors.torch.save_file / load_file on the other side).
import { scope } from '../core/memory.js';
import * as safetensors from '../io/safetensors.js';
import type { Module } from './module.js';

/** Writes model.stateDict() (parameters and buffers) to a .safetensors file. */
export function saveStateDict(model: Module, path: string, metadata?: Record<string, string>): void {
  scope(() => {
    // contiguous copies: the format stores C-ordered bytes
    const state: Record<string, ReturnType<Module['stateDict']>[string]> = {};
    for (const [k, t] of Object.entries(model.stateDict())) state[k] = t.detach().contiguous();
    safetensors.saveFile(state, path, metadata);
  });
}

/**
 * Loads a .safetensors file into model (values copied, dtypes converted).
 * strict: the file's keys must equal the model's; shapes must always match.
 * Errors name the offending keys.
 */
export function loadStateDict(model: Module, path: string, { strict = true } = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
  return scope(() => {
    const state = safetensors.loadFile(path);
    try {
      return model.loadStateDict(state, { strict });
    } catch (e) {
      if (e instanceof Error) e.message = `${path}: ${e.message}`;
      throw e;
    }
  });
}
