// Mixed precision: autocast (libtorch's own, float16 emulated on CPU) and dynamic loss scaling.
export { autocast, type AutocastOptions } from './autocast.js';
export { GradScaler, type GradScalerOptions, type GradScalerState } from './grad-scaler.js';
export { castPolicy, LOWER_PRECISION_FP, FP32, PROMOTE, type CastPolicy } from '../precision/autocast-lists.js';
