// Adam's update fused into one pass per tensor: p, its gradient and both
// moments are read once and written once, where the multi-tensor path
// (src/optim/adam.ts) makes nine passes and a temporary. Each element takes
// the float32 operations of ATen's kernels in the same order, so the numbers
// are bitwise those of the _foreach / single-tensor path (test/optim.test.ts,
// "Adam's fused pass"):
//   p ← p·c                         mul_(Scalar)              (AdamW; c = 1 − lr·wd)
//   g ← fma(wd, p, g)               add(p, alpha = wd)        (Adam with L2 decay)
//   m ← fma(1 − β1, g, m·β1)        mul_(β1).add_(g, alpha)   (ATen's add is vec::fmadd)
//   v ← fma((1 − β2)·g, g, v·β2)    mul_(β2).addcmul_(g, g)   (contracted by the compiler)
//   p ← p + (−stepSize·m) / (√v / √bc2 + eps)                addcdiv_
// Only CPU float32, contiguous, same-sized tensors: anything else is declined
// (false, nothing written) and the caller takes the multi-tensor path.
// Given copies (the NaN guard's pre-update copy, deferred to the step), the
// pass also stores each value it read before the update into its copy: the
// copy costs its stores, not a pass of its own.
#include <immintrin.h>

#include <cmath>
#include <cstdlib>

#include "keel.h"

namespace keel {

namespace {

struct AdamScalars {
  float decay;       // c = 1 − lr·wd (AdamW), 1 otherwise
  float l2;          // wd (Adam's L2 decay), 0 otherwise
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2;
  float bc2Sqrt, eps, negStepSize;
  bool decoupled;
};

const bool kHasAvx512 = __builtin_cpu_supports("avx512f") && std::getenv("KEEL_NO_AVX512") == nullptr;
const bool kHasAvx2Fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && std::getenv("KEEL_NO_AVX2") == nullptr;

inline bool aligned64(const float* p) { return (reinterpret_cast<uintptr_t>(p) & 63) == 0; }

// The scalar form of one element: also what every vector lane computes.
// With backups (bp, bm, bv not null), the values before the update are written there too.
struct Backup {
  float* p = nullptr;
  float* m = nullptr;
  float* v = nullptr;
};

inline void adamElement(float* p, float* g, float* m, float* v, int64_t i, const AdamScalars& s, const Backup& b) {
  if (b.p != nullptr) {
    b.p[i] = p[i];
    b.m[i] = m[i];
    b.v[i] = v[i];
  }
  float pi = p[i];
  float gi = g[i];
  if (s.decoupled) pi = pi * s.decay;
  else if (s.l2 != 0.0f) gi = std::fma(s.l2, pi, gi);
  const float mi = std::fma(s.oneMinusBeta1, gi, m[i] * s.beta1);
  const float vi = std::fma(s.oneMinusBeta2 * gi, gi, v[i] * s.beta2);
  const float denom = std::sqrt(vi) / s.bc2Sqrt + s.eps;
  m[i] = mi;
  v[i] = vi;
  p[i] = pi + (s.negStepSize * mi) / denom;
}

__attribute__((target("avx512f"))) void adamRangeAvx512(float* p, float* g, float* m, float* v, int64_t begin, int64_t end,
                                                        const AdamScalars& s, const Backup& b) {
  const __m512 decay = _mm512_set1_ps(s.decay), l2 = _mm512_set1_ps(s.l2);
  const __m512 b1 = _mm512_set1_ps(s.beta1), a1 = _mm512_set1_ps(s.oneMinusBeta1);
  const __m512 b2 = _mm512_set1_ps(s.beta2), a2 = _mm512_set1_ps(s.oneMinusBeta2);
  const __m512 bc2 = _mm512_set1_ps(s.bc2Sqrt), eps = _mm512_set1_ps(s.eps), ss = _mm512_set1_ps(s.negStepSize);
  const bool l2On = !s.decoupled && s.l2 != 0.0f;
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 k = end - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (end - i)) - 1);
    __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
    __m512 gi = _mm512_maskz_loadu_ps(k, g + i);
    const __m512 m0 = _mm512_maskz_loadu_ps(k, m + i);
    const __m512 v0 = _mm512_maskz_loadu_ps(k, v + i);
    if (b.p != nullptr) {
      // the copies are read back only to undo an update: streaming stores, no read for ownership
      if (k == 0xFFFF && aligned64(b.p + i) && aligned64(b.m + i) && aligned64(b.v + i)) {
        _mm512_stream_ps(b.p + i, pi);
        _mm512_stream_ps(b.m + i, m0);
        _mm512_stream_ps(b.v + i, v0);
      } else {
        _mm512_mask_storeu_ps(b.p + i, k, pi);
        _mm512_mask_storeu_ps(b.m + i, k, m0);
        _mm512_mask_storeu_ps(b.v + i, k, v0);
      }
    }
    if (s.decoupled) pi = _mm512_mul_ps(pi, decay);
    else if (l2On) gi = _mm512_fmadd_ps(l2, pi, gi);
    const __m512 mi = _mm512_fmadd_ps(a1, gi, _mm512_mul_ps(m0, b1));
    const __m512 vi = _mm512_fmadd_ps(_mm512_mul_ps(a2, gi), gi, _mm512_mul_ps(v0, b2));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
    _mm512_mask_storeu_ps(p + i, k, _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(ss, mi), denom)));
  }
  if (b.p != nullptr) _mm_sfence();
}

__attribute__((target("avx2,fma"))) void adamRangeAvx2(float* p, float* g, float* m, float* v, int64_t begin, int64_t end,
                                                       const AdamScalars& s, const Backup& b) {
  const __m256 decay = _mm256_set1_ps(s.decay), l2 = _mm256_set1_ps(s.l2);
  const __m256 b1 = _mm256_set1_ps(s.beta1), a1 = _mm256_set1_ps(s.oneMinusBeta1);
  const __m256 b2 = _mm256_set1_ps(s.beta2), a2 = _mm256_set1_ps(s.oneMinusBeta2);
  const __m256 bc2 = _mm256_set1_ps(s.bc2Sqrt), eps = _mm256_set1_ps(s.eps), ss = _mm256_set1_ps(s.negStepSize);
  const bool l2On = !s.decoupled && s.l2 != 0.0f;
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    __m256 pi = _mm256_loadu_ps(p + i);
    __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 m0 = _mm256_loadu_ps(m + i);
    const __m256 v0 = _mm256_loadu_ps(v + i);
    if (b.p != nullptr) {
      _mm256_storeu_ps(b.p + i, pi);
      _mm256_storeu_ps(b.m + i, m0);
      _mm256_storeu_ps(b.v + i, v0);
    }
    if (s.decoupled) pi = _mm256_mul_ps(pi, decay);
    else if (l2On) gi = _mm256_fmadd_ps(l2, pi, gi);
    const __m256 mi = _mm256_fmadd_ps(a1, gi, _mm256_mul_ps(m0, b1));
    const __m256 vi = _mm256_fmadd_ps(_mm256_mul_ps(a2, gi), gi, _mm256_mul_ps(v0, b2));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(ss, mi), denom)));
  }
  for (; i < end; ++i) adamElement(p, g, m, v, i, s, b);
}

void adamRange(float* p, float* g, float* m, float* v, int64_t begin, int64_t end, const AdamScalars& s, const Backup& b) {
  if (kHasAvx512) adamRangeAvx512(p, g, m, v, begin, end, s, b);
  else if (kHasAvx2Fma) adamRangeAvx2(p, g, m, v, begin, end, s, b);
  else
    for (int64_t i = begin; i < end; ++i) adamElement(p, g, m, v, i, s, b);
}

// adamStep(params, grads, expAvgs, expAvgSqs: id[], negStepSizes: number[],
//          bc2Sqrts: number[], lr, beta1, beta2, eps, weightDecay, decoupled,
//          [paramCopies, expAvgCopies, expAvgSqCopies: id[]])
// -> true when every tensor was updated in one fused pass (and, with the
// copies, each param and moment's value before the update written into its
// copy in the same pass); false (nothing written) when some tensor is not CPU
// float32 contiguous of its parameter's size.
napi_value AdamStep(napi_env env, napi_callback_info info) {
  napi_value a[15];
  const size_t given = getArgs(env, info, 15, a);
  KEEL_GUARD(env, "adamStep", {
    const auto ps = argTensorList(env, a[0], "params");
    const auto gs = argTensorList(env, a[1], "grads");
    const auto ms = argTensorList(env, a[2], "expAvgs");
    const auto vs = argTensorList(env, a[3], "expAvgSqs");
    const size_t n = ps.size();
    if (gs.size() != n || ms.size() != n || vs.size() != n) throw ArgError("adamStep: params, grads, expAvgs and expAvgSqs differ in length");
    const auto stepSizes = argNumberList(env, a[4], "negStepSizes");
    const auto bc2Sqrts = argNumberList(env, a[5], "bc2Sqrts");
    if (stepSizes.size() != n || bc2Sqrts.size() != n) throw ArgError("adamStep: one step size and bias correction per tensor");
    const double lr = argNumber(env, a[6], "lr");
    const double beta1 = argNumber(env, a[7], "beta1");
    const double beta2 = argNumber(env, a[8], "beta2");
    const double eps = argNumber(env, a[9], "eps");
    const double weightDecay = argNumber(env, a[10], "weightDecay");
    const bool decoupled = argBool(env, a[11], "decoupled");
    const bool backup = given >= 15 && !isNullish(env, a[12]);
    std::vector<at::Tensor> bps, bms, bvs;
    if (backup) {
      bps = argTensorList(env, a[12], "paramCopies");
      bms = argTensorList(env, a[13], "expAvgCopies");
      bvs = argTensorList(env, a[14], "expAvgSqCopies");
      if (bps.size() != n || bms.size() != n || bvs.size() != n) throw ArgError("adamStep: one copy per param and moment");
    }
    for (size_t i = 0; i < n; ++i) {
      const int64_t numel = ps[i].numel();
      if (!plainFloat32(ps[i], numel) || !plainFloat32(gs[i], numel) || !plainFloat32(ms[i], numel) || !plainFloat32(vs[i], numel)) return jsBool(env, false);
      // an update that reads what it writes through another name is left to the ops
      if (gs[i].is_same(ps[i]) || ms[i].is_same(vs[i])) return jsBool(env, false);
      if (backup) {
        if (!plainFloat32(bps[i], numel) || !plainFloat32(bms[i], numel) || !plainFloat32(bvs[i], numel)) return jsBool(env, false);
        // the copies are put back with copy_: the same shapes, not only sizes
        if (bps[i].sizes() != ps[i].sizes() || bms[i].sizes() != ms[i].sizes() || bvs[i].sizes() != vs[i].sizes()) return jsBool(env, false);
        for (const at::Tensor* c : {&bps[i], &bms[i], &bvs[i]}) {
          if (c->storage().is_alias_of(ps[i].storage()) || c->storage().is_alias_of(ms[i].storage()) || c->storage().is_alias_of(vs[i].storage()) ||
              c->storage().is_alias_of(gs[i].storage()))
            return jsBool(env, false);
        }
      }
    }
    for (size_t i = 0; i < n; ++i) {
      // each scalar as ATen's kernels see it: a double Scalar cast to the tensor's float
      const AdamScalars s{static_cast<float>(1 - lr * weightDecay),
                          static_cast<float>(weightDecay),
                          static_cast<float>(beta1),
                          static_cast<float>(1 - beta1),
                          static_cast<float>(beta2),
                          static_cast<float>(1 - beta2),
                          static_cast<float>(bc2Sqrts[i]),
                          static_cast<float>(eps),
                          static_cast<float>(stepSizes[i]),
                          decoupled};
      float* p = ps[i].data_ptr<float>();
      float* g = gs[i].data_ptr<float>();
      float* m = ms[i].data_ptr<float>();
      float* v = vs[i].data_ptr<float>();
      Backup b;
      if (backup) b = Backup{bps[i].data_ptr<float>(), bms[i].data_ptr<float>(), bvs[i].data_ptr<float>()};
      at::parallel_for(0, ps[i].numel(), passGrain(), [&](int64_t begin, int64_t end) { adamRange(p, g, m, v, begin, end, s, b); });
      if (backup) {
        bps[i].unsafeGetTensorImpl()->bump_version();
        bms[i].unsafeGetTensorImpl()->bump_version();
        bvs[i].unsafeGetTensorImpl()->bump_version();
      }
      // the in-place ops bump these versions; autograd's checks must see the writes too
      ps[i].unsafeGetTensorImpl()->bump_version();
      ms[i].unsafeGetTensorImpl()->bump_version();
      vs[i].unsafeGetTensorImpl()->bump_version();
    }
    return jsBool(env, true);
  })
}

}  // namespace

void registerAdamFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "adamStep", AdamStep);
}

}  // namespace keel
