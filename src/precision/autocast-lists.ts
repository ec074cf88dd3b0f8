// PyTorch 1.13's CPU autocast op lists: the operators with an AutocastCPU
// kernel in this libtorch (read with torch._C._dispatch_has_kernel_for_dispatch_key),
// by cast policy. The native autocast applies them itself; these lists drive
// the float16 emulation on CPU (libtorch 1.13 has no float16 CPU kernels), so
// that emulated fp16 casts exactly the ops native autocast would.

/** Run in the low format: inputs cast (rounded) to it, output in it. */
export const LOWER_PRECISION_FP = new Set([
  'conv1d', 'conv1d.padding', 'conv2d', 'conv2d.padding', 'conv3d', 'conv3d.padding', 'bmm', 'mm', 'baddbmm', 'addmm',
  'addbmm', 'linear', '_convolution.deprecated', 'matmul', 'conv_tbc', 'conv_transpose1d', 'conv_transpose2d.input',
  'conv_transpose3d.input',
].map((n) => `aten::${n}`));

/** Run in the widest input type (float32 when any input is float32). */
export const PROMOTE = new Set(['cat', 'stack', 'index_copy', 'index_copy.dimname'].map((n) => `aten::${n}`));

/** Run in float32 (every other op with an AutocastCPU kernel): losses, reductions like prod, linear algebra, FFTs, pooling in 3-D. */
export const FP32 = new Set([
  '_grid_sampler_2d_cpu_fallback', '_lu_with_info', 'adaptive_avg_pool3d', 'adaptive_max_pool3d', 'avg_pool3d',
  'binary_cross_entropy', 'binary_cross_entropy_with_logits', 'cdist', 'cholesky', 'cholesky_inverse', 'cholesky_solve',
  'cosine_embedding_loss', 'cross_entropy_loss', 'ctc_loss.IntList', 'ctc_loss.Tensor', 'fake_quantize_per_tensor_affine',
  'fft_fft', 'fft_fft2', 'fft_fftn', 'fft_hfft', 'fft_ifft', 'fft_ifft2', 'fft_ifftn', 'fft_ihfft', 'fft_irfft', 'fft_irfft2',
  'fft_irfftn', 'fft_rfft', 'fft_rfft2', 'fft_rfftn', 'fractional_max_pool2d', 'fractional_max_pool3d', 'geqrf', 'grid_sampler',
  'grid_sampler_2d', 'grid_sampler_3d', 'hinge_embedding_loss', 'huber_loss', 'inverse', 'kl_div', 'l1_loss',
  'linalg_cholesky', 'linalg_cholesky_ex', 'linalg_cond', 'linalg_cond.p_str', 'linalg_eig', 'linalg_eigh', 'linalg_eigvals',
  'linalg_eigvalsh', 'linalg_householder_product', 'linalg_inv', 'linalg_inv_ex', 'linalg_lstsq', 'linalg_matrix_norm',
  'linalg_matrix_norm.str_ord', 'linalg_matrix_rank', 'linalg_matrix_rank.atol_rtol_float', 'linalg_matrix_rank.atol_rtol_tensor',
  'linalg_matrix_rank.tol_tensor', 'linalg_qr', 'linalg_solve', 'linalg_svd', 'linalg_svdvals', 'linalg_tensorinv',
  'linalg_tensorsolve', 'lu_solve', 'margin_ranking_loss', 'max_pool3d', 'max_unpool2d', 'max_unpool3d', 'mse_loss',
  'multi_margin_loss', 'multilabel_margin_loss', 'multilabel_margin_loss_forward', 'nanquantile', 'nanquantile.scalar',
  'nll_loss', 'nll_loss2d', 'orgqr', 'ormqr', 'pinverse', 'poisson_nll_loss', 'polar', 'prod', 'prod.dim_Dimname', 'prod.dim_int',
  'qr', 'quantile', 'quantile.scalar', 'reflection_pad1d', 'reflection_pad2d', 'replication_pad1d', 'replication_pad2d',
  'replication_pad3d', 'smooth_l1_loss', 'soft_margin_loss', 'stft', 'stft.center', 'svd', 'symeig', 'trace',
  'triangular_solve', 'triplet_margin_loss', 'view_as_complex',
].map((n) => `aten::${n}`));

export type CastPolicy = 'lower' | 'fp32' | 'promote';

/** How autocast runs an op: 'aten::name.overload' → its cast policy ('promote' for ops autocast leaves alone). */
export function castPolicy(op: string): CastPolicy {
  if (LOWER_PRECISION_FP.has(op)) return 'lower';
  if (FP32.has(op)) return 'fp32';
  return 'promote';
}
