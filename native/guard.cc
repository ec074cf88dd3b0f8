// The NaN guard's per-step work in one call each: the fused check (a norm per
// gradient and buffer, the loss and the watch counts, stacked and read once)
// and the pre-update copy (one copy_ per tensor, no dispatch from JS per
// tensor). Measured in bench/guard.mjs: the JS path took ~6 dispatched calls,
// two reads and ~20 tensor handles a step.
#include "keel.h"

#include <cmath>

namespace keel {

namespace {

// Appends each tensor's squared L2 norm (float32 and float64: a BLAS dot of the
// flattened tensor with itself, measured 5x faster than linalg_vector_norm on
// a 200k-element gradient here) or its norm (other dtypes), as a float32 0-d
// tensor; `squared` marks which, so that the read takes the square root. As
// float32, a squared norm beyond 3.4e38 (a norm beyond 1.8e19) reads as inf:
// the guard wants to know of those too.
void pushNorms(std::vector<at::Tensor>& parts, std::vector<bool>& squared, const std::vector<at::Tensor>& ts) {
  for (const auto& t : ts) {
    const auto st = t.scalar_type();
    at::Tensor v;
    bool sq = false;
    if ((st == at::kFloat || st == at::kDouble) && t.layout() == at::kStrided) {
      if (t.numel() == 0) {
        v = at::zeros({}, t.options());
      } else {
        at::Tensor flat = t.reshape({-1});
        v = at::dot(flat, flat);
        sq = true;
      }
    } else {
      v = at::linalg_vector_norm(t);
    }
    parts.push_back(v.scalar_type() == at::kFloat ? v : v.to(at::kFloat));
    squared.push_back(sq);
  }
}

napi_value readFloat64(napi_env env, const at::Tensor& v, const std::vector<bool>& squared) {
  const int64_t n = v.numel();
  void* data = nullptr;
  napi_value buf;
  NAPI_OK(napi_create_arraybuffer(env, static_cast<size_t>(n) * sizeof(double), &data, &buf));
  double* out = static_cast<double*>(data);
  if (n > 0) {
    at::Tensor c = v.to(at::kCPU).contiguous();
    const float* p = c.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<double>(i < static_cast<int64_t>(squared.size()) && squared[i] ? std::sqrt(p[i]) : p[i]);
  }
  napi_value arr;
  NAPI_OK(napi_create_typedarray(env, napi_float64_array, static_cast<size_t>(n), buf, 0, &arr));
  return arr;
}

// guardNorms(norms: id[], scalars: id[], bufferNorms: id[]) → Float64Array
// (one dispatched reduction per tensor in C++, one stack, one read)
// [‖t‖₂ for t in norms..., each scalar (as float32)..., ‖b‖₂ for b in bufferNorms...]
napi_value GuardNorms(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "guardNorms", {
    auto grads = argTensorList(env, a[0], "norms");
    auto scalars = isNullish(env, a[1]) ? std::vector<at::Tensor>{} : argTensorList(env, a[1], "scalars");
    auto bufs = isNullish(env, a[2]) ? std::vector<at::Tensor>{} : argTensorList(env, a[2], "bufferNorms");
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> parts;
    std::vector<bool> squared;
    parts.reserve(grads.size() + scalars.size() + bufs.size());
    pushNorms(parts, squared, grads);
    for (auto& s : scalars) {
      at::Tensor d = s.detach();
      if (d.scalar_type() != at::kFloat) d = d.to(at::kFloat);
      parts.push_back(d.dim() == 0 ? d : d.reshape({}));
      squared.push_back(false);
    }
    pushNorms(parts, squared, bufs);
    if (parts.empty()) return readFloat64(env, at::empty({0}, at::kFloat), squared);
    return readFloat64(env, at::stack(parts), squared);
  })
}

// copyTensors(dst: id[], src: id[]): dst[i].copy_(src[i]) for every i, without autograd.
napi_value CopyTensors(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "copyTensors", {
    auto dst = argTensorList(env, a[0], "dst");
    auto src = argTensorList(env, a[1], "src");
    if (dst.size() != src.size()) throw ArgError("copyTensors: dst and src differ in length");
    at::NoGradGuard noGrad;
    for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
    return nullptr;
  })
}

// rngStateInto(dst: id): the default CPU generator's state copied into dst (a
// uint8 tensor from getRngState()), without a new handle.
napi_value RngStateInto(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "rngStateInto", {
    const at::Tensor& dst = argTensor(env, a[0], "dst");
    auto gen = at::detail::getDefaultCPUGenerator();
    at::Tensor s;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      s = gen.get_state();
    }
    if (!dst.sizes().equals(s.sizes()) || dst.scalar_type() != s.scalar_type()) throw ArgError("rngStateInto: dst is not a generator state");
    at::NoGradGuard noGrad;
    const_cast<at::Tensor&>(dst).copy_(s);
    return nullptr;
  })
}

}  // namespace

void registerGuardFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "guardNorms", GuardNorms);
  defineFunction(env, exports, "copyTensors", CopyTensors);
  defineFunction(env, exports, "rngStateInto", RngStateInto);
}

}  // namespace keel
