// Optimizer passes over many tensors in one call: the per-tensor work that
// has no _foreach op in libtorch 1.13 (SING's gradient standardisation, its
// softplus denominator), looped in C++ instead of dispatched from JS tensor by
// tensor. The same ATen ops as the JS path, in the same order: the numbers are
// bitwise those of the per-tensor path (test/optim.test.ts, "SING's native passes").
#include <cstdlib>
#include <cstring>

#include "keel.h"

namespace keel {

// one gradient, in place: g -= mean over dims 1..n-1 (tensors of >= 2 dims,
// when centralize); g /= (||g||_2 + eps) (when normalize). Also native/sing.cc's.
void standardizeGradient(at::Tensor& g, bool centralize, bool normalize, double eps) {
  const int64_t n = g.dim();
  if (centralize && n > 1) {
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < n; ++d) dims.push_back(d);
    g.sub_(at::mean(g, dims, /*keepdim=*/true));
  }
  if (normalize) g.div_(at::add(at::frobenius_norm(g, {}, /*keepdim=*/false), eps));
}

bool plainFloat32(const at::Tensor& t, int64_t numel) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.layout() == at::kStrided && t.is_contiguous() &&
         t.numel() == numel && !t.is_neg() && !t.is_conj();
}

int64_t passGrain() {
  static const int64_t grain = [] {
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    const bool active = policy != nullptr && (std::strcmp(policy, "ACTIVE") == 0 || std::strcmp(policy, "active") == 0);
    return active ? at::internal::GRAIN_SIZE : int64_t{1} << 19;
  }();
  return grain;
}

namespace {

// standardizeGradients(grads: id[], centralize: bool, normalize: bool, eps: number)
// in place, per tensor: g -= mean over dims 1..n-1 (tensors of >= 2 dims, when
// centralize); g /= (||g||_2 + eps) (when normalize).
napi_value StandardizeGradients(napi_env env, napi_callback_info info) {
  napi_value a[4];
  getArgs(env, info, 4, a);
  KEEL_GUARD(env, "standardizeGradients", {
    auto grads = argTensorList(env, a[0], "grads");
    const bool centralize = argBool(env, a[1], "centralize");
    const bool normalize = argBool(env, a[2], "normalize");
    const double eps = argNumber(env, a[3], "eps");
    at::NoGradGuard noGrad;
    for (auto& g : grads) standardizeGradient(g, centralize, normalize, eps);
    return nullptr;
  })
}

// softplusInPlace(ts: id[], beta: number, threshold: number): t <- softplus_beta(t),
// libtorch's kernel writing into its input (no new buffer per tensor).
napi_value SoftplusInPlace(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "softplusInPlace", {
    auto ts = argTensorList(env, a[0], "tensors");
    const double beta = argNumber(env, a[1], "beta");
    const double threshold = argNumber(env, a[2], "threshold");
    at::NoGradGuard noGrad;
    for (auto& t : ts) at::softplus_out(t, t, beta, threshold);
    return nullptr;
  })
}

}  // namespace

void registerOptimFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "standardizeGradients", StandardizeGradients);
  defineFunction(env, exports, "softplusInPlace", SoftplusInPlace);
}

}  // namespace keel
