// keel.autocast: mixed precision as torch.autocast runs it. bfloat16 on CPU
// and float16/bfloat16 on CUDA are libtorch's own autocast (the AutocastCPU /
// AutocastCUDA dispatch keys with PyTorch 1.13's op lists). float16 on CPU has
// no kernels in libtorch 1.13: the same op lists run through the precision
// emulation (inputs and outputs of the low-precision ops rounded to fp16,
// computed in float32), and Keel says so once.
import { dtypeCode, dtypeName } from '../core/dtype.js';
import { native } from '../native/binding.js';
import { PrecisionPolicy } from '../precision/policy.js';
import { castPolicy } from '../precision/autocast-lists.js';

export interface AutocastOptions {
  /** The low format: 'bfloat16' (the CPU default) or 'float16' (the CUDA default). */
  dtype?: 'bfloat16' | 'float16';
  device?: 'cpu' | 'cuda';
  /** false runs fn with autocast off (also inside an outer autocast), as torch.autocast(enabled=False). */
  enabled?: boolean;
  /** Cache the low-precision casts of leaf tensors (weights) within the outermost autocast (default true). */
  cacheEnabled?: boolean;
}

let warnedEmulation = false;
let emulationDepth = 0;
const fp16Emulation = new PrecisionPolicy('fp16', { select: castPolicy });

function checkSync<T>(result: T): T {
  if (result instanceof Promise) throw new TypeError('keel.autocast(options, fn): fn must be synchronous (it returned a Promise)');
  return result;
}

/** Runs fn (synchronous) under autocast; returns what fn returns. */
export function autocast<T>(options: AutocastOptions, fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('keel.autocast(options, fn): fn must be a function');
  const known = ['dtype', 'device', 'enabled', 'cacheEnabled'];
  for (const k of Object.keys(options ?? {})) if (!known.includes(k)) throw new TypeError(`keel.autocast: unknown option '${k}' (${known.join(', ')})`);
  const device = options.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`keel.autocast: device must be 'cpu' or 'cuda', got ${String(device)}`);
  const dtype = options.dtype ?? (device === 'cpu' ? 'bfloat16' : 'float16');
  if (dtype !== 'bfloat16' && dtype !== 'float16') throw new TypeError(`keel.autocast: dtype must be 'bfloat16' or 'float16', got ${String(dtype)}`);
  const enabled = options.enabled ?? true;
  if (enabled && device === 'cpu' && dtype === 'float16') {
    if (!warnedEmulation) {
      warnedEmulation = true;
      process.emitWarning('libtorch 1.13 has no float16 kernels on CPU: keel.autocast emulates float16 (the autocast op lists computed in float32, inputs and outputs rounded to fp16)', { code: 'KEEL_FP16_EMULATED' });
    }
    emulationDepth++;
    try {
      return checkSync(fp16Emulation.run(fn));
    } finally {
      emulationDepth--;
    }
  }
  const [was, previous, previousCache] = native.autocastEnter(device, dtypeCode(dtype), options.cacheEnabled ?? true, enabled);
  try {
    return checkSync(fn());
  } finally {
    native.autocastExit(device, was, previous, previousCache);
  }
}

/** Is autocast on for this device (native, or the float16 emulation on CPU)? */
autocast.enabled = (device: 'cpu' | 'cuda' = 'cpu'): boolean => {
  const s = native.autocastState();
  return device === 'cpu' ? s.cpu || emulationDepth > 0 : s.cuda;
};

/** The low format autocast uses on this device now, or undefined when it is off. */
autocast.dtype = (device: 'cpu' | 'cuda' = 'cpu'): 'bfloat16' | 'float16' | undefined => {
  if (device === 'cpu' && emulationDepth > 0) return 'float16';
  const s = native.autocastState();
  if (device === 'cpu') return s.cpu ? (dtypeName(s.cpuDtype) as 'bfloat16' | 'float16') : undefined;
  return s.cuda ? (dtypeName(s.cudaDtype) as 'bfloat16' | 'float16') : undefined;
};
