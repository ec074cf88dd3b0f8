// SGD's update fused into one pass per tensor: p, its gradient and the
// momentum buffer are read once and written once, where the multi-tensor path
// (src/optim/sgd.ts) makes one pass per stage (up to five with momentum,
// weight decay and Nesterov). Each element takes the float32 operations of
// ATen's kernels in the same order, so the numbers are bitwise those of the
// _foreach / single-tensor path (test/optim.test.ts, "SGD's fused pass"):
//   d ← −g                         neg                       (maximize)
//   d ← fma(wd, p, d)              add(p, alpha = wd)        (weight decay)
//   b ← d on its first step, else fma(1 − dampening, d, b·μ)
//                                  mul_(μ).add_(d, alpha)    (momentum)
//   d ← fma(μ, b, d) or b          add(b, alpha = μ)         (Nesterov, or momentum)
//   p ← fma(−lr, d, p)             add_(d, alpha = −lr)
// Only CPU float32, contiguous, same-sized tensors: anything else is declined
// (false, nothing written) and the caller takes the multi-tensor path. The
// tensors run one after another, each on one thread below passGrain() elements.
#include <immintrin.h>

#include <cmath>
#include <cstdlib>

#include "keel.h"

namespace keel {

namespace {

struct SgdScalars {
  float negLr, momentum, oneMinusDampening, weightDecay;
  bool hasMomentum, first, nesterov, maximize;
};

const bool kHasAvx512 = __builtin_cpu_supports("avx512f") && std::getenv("KEEL_NO_AVX512") == nullptr;
const bool kHasAvx2Fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && std::getenv("KEEL_NO_AVX2") == nullptr;

// One element: also what every vector lane computes.
inline void sgdElement(float* p, const float* g, float* b, int64_t i, const SgdScalars& s) {
  float d = s.maximize ? -g[i] : g[i];
  if (s.weightDecay != 0.0f) d = std::fma(s.weightDecay, p[i], d);
  if (s.hasMomentum) {
    const float bi = s.first ? d : std::fma(s.oneMinusDampening, d, b[i] * s.momentum);
    b[i] = bi;
    d = s.nesterov ? std::fma(s.momentum, bi, d) : bi;
  }
  p[i] = std::fma(s.negLr, d, p[i]);
}

__attribute__((target("avx512f"))) void sgdRangeAvx512(float* p, const float* g, float* b, int64_t begin, int64_t end, const SgdScalars& s) {
  const __m512 negLr = _mm512_set1_ps(s.negLr), mu = _mm512_set1_ps(s.momentum), damp = _mm512_set1_ps(s.oneMinusDampening);
  const __m512 wd = _mm512_set1_ps(s.weightDecay);
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const bool decays = s.weightDecay != 0.0f;
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = end - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (end - i)) - 1);
    const __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
    __m512 d = _mm512_maskz_loadu_ps(k, g + i);
    // neg flips the sign bit (−(+0) is −0, where 0 − x would give +0)
    if (s.maximize) d = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(d), sign));
    if (decays) d = _mm512_fmadd_ps(wd, pi, d);
    if (s.hasMomentum) {
      const __m512 bi = s.first ? d : _mm512_fmadd_ps(damp, d, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, b + i), mu));
      _mm512_mask_storeu_ps(b + i, k, bi);
      d = s.nesterov ? _mm512_fmadd_ps(mu, bi, d) : bi;
    }
    _mm512_mask_storeu_ps(p + i, k, _mm512_fmadd_ps(negLr, d, pi));
  }
}

__attribute__((target("avx2,fma"))) void sgdRangeAvx2(float* p, const float* g, float* b, int64_t begin, int64_t end, const SgdScalars& s) {
  const __m256 negLr = _mm256_set1_ps(s.negLr), mu = _mm256_set1_ps(s.momentum), damp = _mm256_set1_ps(s.oneMinusDampening);
  const __m256 wd = _mm256_set1_ps(s.weightDecay), sign = _mm256_set1_ps(-0.0f);
  const bool decays = s.weightDecay != 0.0f;
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 pi = _mm256_loadu_ps(p + i);
    __m256 d = _mm256_loadu_ps(g + i);
    if (s.maximize) d = _mm256_xor_ps(d, sign);
    if (decays) d = _mm256_fmadd_ps(wd, pi, d);
    if (s.hasMomentum) {
      const __m256 bi = s.first ? d : _mm256_fmadd_ps(damp, d, _mm256_mul_ps(_mm256_loadu_ps(b + i), mu));
      _mm256_storeu_ps(b + i, bi);
      d = s.nesterov ? _mm256_fmadd_ps(mu, bi, d) : bi;
    }
    _mm256_storeu_ps(p + i, _mm256_fmadd_ps(negLr, d, pi));
  }
  for (; i < end; ++i) sgdElement(p, g, b, i, s);
}

void sgdRange(float* p, const float* g, float* b, int64_t begin, int64_t end, const SgdScalars& s) {
  if (kHasAvx512) sgdRangeAvx512(p, g, b, begin, end, s);
  else if (kHasAvx2Fma) sgdRangeAvx2(p, g, b, begin, end, s);
  else
    for (int64_t i = begin; i < end; ++i) sgdElement(p, g, b, i, s);
}

// sgdStep(params, grads: id[], buffers: id[] | null, first: boolean[] | null,
//         lr, momentum, dampening, weightDecay, nesterov, maximize)
// -> true when every tensor was updated in one fused pass; false (nothing
// written) when some tensor is not CPU float32 contiguous of its parameter's
// size, or one is another's storage. With momentum, buffers[i] is written
// (with d itself where first[i]: a new buffer's first step).
napi_value SgdStep(napi_env env, napi_callback_info info) {
  napi_value a[10];
  getArgs(env, info, 10, a);
  KEEL_GUARD(env, "sgdStep", {
    const auto ps = argTensorList(env, a[0], "params");
    const auto gs = argTensorList(env, a[1], "grads");
    const size_t n = ps.size();
    if (gs.size() != n) throw ArgError("sgdStep: params and grads differ in length");
    const bool hasMomentum = !isNullish(env, a[2]);
    std::vector<at::Tensor> bs;
    std::vector<bool> first(n, false);
    if (hasMomentum) {
      bs = argTensorList(env, a[2], "buffers");
      if (bs.size() != n) throw ArgError("sgdStep: one momentum buffer per param");
      uint32_t len = 0;
      NAPI_OK(napi_get_array_length(env, a[3], &len));
      if (len != n) throw ArgError("sgdStep: one first-step flag per param");
      for (uint32_t i = 0; i < len; ++i) {
        napi_value v;
        NAPI_OK(napi_get_element(env, a[3], i, &v));
        first[i] = argBool(env, v, "first");
      }
    }
    const double lr = argNumber(env, a[4], "lr");
    const double momentum = argNumber(env, a[5], "momentum");
    const double dampening = argNumber(env, a[6], "dampening");
    const double weightDecay = argNumber(env, a[7], "weightDecay");
    const bool nesterov = argBool(env, a[8], "nesterov");
    const bool maximize = argBool(env, a[9], "maximize");
    for (size_t i = 0; i < n; ++i) {
      const int64_t numel = ps[i].numel();
      if (!plainFloat32(ps[i], numel) || !plainFloat32(gs[i], numel)) return jsBool(env, false);
      // an update that reads what it writes through another name is left to the ops
      if (gs[i].storage().is_alias_of(ps[i].storage())) return jsBool(env, false);
      if (hasMomentum) {
        if (!plainFloat32(bs[i], numel)) return jsBool(env, false);
        if (bs[i].storage().is_alias_of(ps[i].storage()) || bs[i].storage().is_alias_of(gs[i].storage())) return jsBool(env, false);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      // each scalar as ATen's kernels see it: a double Scalar cast to the tensor's float
      const SgdScalars s{static_cast<float>(-lr), static_cast<float>(momentum), static_cast<float>(1 - dampening), static_cast<float>(weightDecay),
                         hasMomentum, hasMomentum && first[i], nesterov, maximize};
      float* p = ps[i].data_ptr<float>();
      const float* g = gs[i].data_ptr<float>();
      float* b = hasMomentum ? bs[i].data_ptr<float>() : nullptr;
      at::parallel_for(0, ps[i].numel(), passGrain(), [&](int64_t begin, int64_t end) { sgdRange(p, g, b, begin, end, s); });
      // the in-place ops bump these versions; autograd's checks must see the writes too
      ps[i].unsafeGetTensorImpl()->bump_version();
      if (hasMomentum) bs[i].unsafeGetTensorImpl()->bump_version();
    }
    return jsBool(env, true);
  })
}

}  // namespace

void registerSgdFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "sgdStep", SgdStep);
}

}  // namespace keel
