// The NaN guard's per-step work in one call each: the fused check (a norm per
// gradient and buffer, the loss and the watch counts, read at once; on CPU the
// gradients are summed here, read from the parameters, with no op dispatched
// and no handle made) and the pre-update copy (one copy_ per tensor, no
// dispatch from JS per tensor). Measured in bench/guard.mjs: the JS path took
// ~6 dispatched calls, two reads and ~20 tensor handles a step.
#include "keel.h"

#include <ATen/CPUGeneratorImpl.h>
#include <immintrin.h>

#include <type_traits>

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace keel {

namespace {

// AVX2 + FMA for the sum of squares (KEEL_NO_AVX2=1 takes the portable loop: tests compare the two)
const bool kHasAvx2Fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && std::getenv("KEEL_NO_AVX2") == nullptr;

// Σ x² of a contiguous range, returned in double (NaN and inf propagate as in
// any sum; a float32 run's sum beyond float32's range is inf, as the total
// would be). Portable and AVX2 forms.
template <typename T>
double sumSquaresPortable(const T* p, int64_t n) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const double x0 = p[i], x1 = p[i + 1], x2 = p[i + 2], x3 = p[i + 3];
    a0 += x0 * x0;
    a1 += x1 * x1;
    a2 += x2 * x2;
    a3 += x3 * x3;
  }
  for (; i < n; ++i) a0 += static_cast<double>(p[i]) * p[i];
  return (a0 + a1) + (a2 + a3);
}

__attribute__((target("avx2,fma"))) double hsum(__m256d a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// float32: squares summed in float32 lanes over runs of 1,024 values (32
// lanes, 32 terms each), each run's sum then added in double. Converting every
// value to double made this loop compute-bound (~4 values a cycle); this one
// is bound by the memory it reads.
__attribute__((target("avx2,fma"))) double sumSquaresAvx2(const float* p, int64_t n) {
  constexpr int64_t kRun = 1024;
  double s = 0;
  int64_t i = 0;
  while (i + 32 <= n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const int64_t end = std::min(n, i + kRun);
    for (; i + 32 <= end; i += 32) {
      const __m256 x0 = _mm256_loadu_ps(p + i), x1 = _mm256_loadu_ps(p + i + 8), x2 = _mm256_loadu_ps(p + i + 16), x3 = _mm256_loadu_ps(p + i + 24);
      a0 = _mm256_fmadd_ps(x0, x0, a0);
      a1 = _mm256_fmadd_ps(x1, x1, a1);
      a2 = _mm256_fmadd_ps(x2, x2, a2);
      a3 = _mm256_fmadd_ps(x3, x3, a3);
    }
    const __m256 r = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    s += hsum(_mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(r)), _mm256_cvtps_pd(_mm256_extractf128_ps(r, 1))));
  }
  for (; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

__attribute__((target("avx2,fma"))) double sumSquaresAvx2(const double* p, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256d x0 = _mm256_loadu_pd(p + i), x1 = _mm256_loadu_pd(p + i + 4), x2 = _mm256_loadu_pd(p + i + 8), x3 = _mm256_loadu_pd(p + i + 12);
    a0 = _mm256_fmadd_pd(x0, x0, a0);
    a1 = _mm256_fmadd_pd(x1, x1, a1);
    a2 = _mm256_fmadd_pd(x2, x2, a2);
    a3 = _mm256_fmadd_pd(x3, x3, a3);
  }
  double s = hsum(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  for (; i < n; ++i) s += p[i] * p[i];
  return s;
}

template <typename T>
double sumSquaresRange(const T* p, int64_t n) {
  return kHasAvx2Fma ? sumSquaresAvx2(p, n) : sumSquaresPortable(p, n);
}

// Σ x² over a contiguous CPU tensor in fixed blocks (in parallel when each
// thread gets passGrain() values), the block sums added in order: the same value at any thread
// count.
template <typename T>
double sumSquares(const T* p, int64_t n) {
  constexpr int64_t kBlock = int64_t{1} << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks <= 1) return sumSquaresRange(p, n);
  std::vector<double> part(static_cast<size_t>(blocks));
  at::parallel_for(0, blocks, std::max<int64_t>(1, passGrain() / kBlock), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) part[b] = sumSquaresRange(p + b * kBlock, std::min(kBlock, n - b * kBlock));
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

// One read of norms and scalars, each as float32 (a norm, a squared norm or a
// scalar beyond float32's range reads as inf: the guard wants to know of
// those too). CPU float32/float64 tensors are summed here directly, in one
// pass, with no dispatched op or new tensor; anything else (another device or
// dtype) goes through the ops — a squared norm by the dot of the flattened
// tensor with itself, other dtypes by linalg_vector_norm — stacked and read
// once.
class NormRead {
 public:
  void norm(const at::Tensor& t) {
    const auto st = t.scalar_type();
    const bool real = st == at::kFloat || st == at::kDouble;
    if (real && t.layout() == at::kStrided && t.device().is_cpu()) {
      if (t.numel() == 0) {
        values_.push_back(0);
        return;
      }
      const at::Tensor c = t.contiguous();
      const double s = st == at::kFloat ? sumSquares(c.data_ptr<float>(), c.numel()) : sumSquares(c.data_ptr<double>(), c.numel());
      values_.push_back(std::sqrt(static_cast<float>(s)));
      return;
    }
    at::Tensor v;
    bool squared = false;
    if (real && t.layout() == at::kStrided) {
      if (t.numel() == 0) {
        values_.push_back(0);
        return;
      }
      at::Tensor flat = t.reshape({-1});
      v = at::dot(flat, flat);
      squared = true;
    } else {
      v = at::linalg_vector_norm(t);
    }
    pend(v, squared);
  }

  void scalar(const at::Tensor& s) {
    at::Tensor d = s.detach();
    if (d.device().is_cpu() && d.numel() == 1 && d.layout() == at::kStrided) {
      if (d.scalar_type() == at::kFloat) {
        values_.push_back(*d.data_ptr<float>());
        return;
      }
      if (d.scalar_type() == at::kDouble) {
        values_.push_back(static_cast<float>(*d.data_ptr<double>()));
        return;
      }
    }
    pend(d.dim() == 0 ? d : d.reshape({}), false);
  }

  void zero() { values_.push_back(0); }

  napi_value read(napi_env env) {
    if (!pending_.empty()) {
      at::Tensor c = at::stack(pending_).to(at::kCPU).contiguous();
      const float* p = c.data_ptr<float>();
      for (size_t k = 0; k < pendingAt_.size(); ++k) values_[pendingAt_[k]] = squared_[k] ? std::sqrt(p[k]) : p[k];
    }
    void* data = nullptr;
    napi_value buf;
    NAPI_OK(napi_create_arraybuffer(env, values_.size() * sizeof(double), &data, &buf));
    if (!values_.empty()) std::memcpy(data, values_.data(), values_.size() * sizeof(double));
    napi_value arr;
    NAPI_OK(napi_create_typedarray(env, napi_float64_array, values_.size(), buf, 0, &arr));
    return arr;
  }

 private:
  void pend(const at::Tensor& v, bool squared) {
    pendingAt_.push_back(values_.size());
    values_.push_back(0);
    pending_.push_back(v.scalar_type() == at::kFloat ? v : v.to(at::kFloat));
    squared_.push_back(squared);
  }

  std::vector<double> values_;
  std::vector<at::Tensor> pending_;
  std::vector<size_t> pendingAt_;
  std::vector<bool> squared_;
};

// dst ← src for contiguous CPU tensors of one dtype: 32-byte streaming
// stores past the cache (the copy is read back only to undo an update, so it
// need not evict the step's working set, nor be read before it is written), in
// 64 KB blocks across the intra-op threads.
__attribute__((target("avx2"))) void streamCopyAvx2(char* dst, const char* src, size_t n) {
  size_t head = (32 - (reinterpret_cast<uintptr_t>(dst) & 31)) & 31;
  if (head > n) head = n;
  std::memcpy(dst, src, head);
  size_t i = head;
  for (; i + 32 <= n; i += 32) _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
  std::memcpy(dst + i, src + i, n - i);
}

void copyTensor(at::Tensor& dst, const at::Tensor& src) {
  const bool flat = dst.device().is_cpu() && src.device().is_cpu() && dst.is_contiguous() && src.is_contiguous() &&
                    dst.scalar_type() == src.scalar_type() && dst.layout() == at::kStrided && src.layout() == at::kStrided;
  if (!flat || !kHasAvx2Fma) {
    dst.copy_(src);
    return;
  }
  char* d = static_cast<char*>(dst.data_ptr());
  const char* s = static_cast<const char*>(src.data_ptr());
  const int64_t n = static_cast<int64_t>(src.nbytes());
  constexpr int64_t kBlock = int64_t{1} << 16;
  // kBlock bytes a block, passGrain() floats' worth a thread
  at::parallel_for(0, (n + kBlock - 1) / kBlock, std::max<int64_t>(1, passGrain() * 4 / kBlock), [&](int64_t b0, int64_t b1) {
    const int64_t from = b0 * kBlock, to = std::min(n, b1 * kBlock);
    streamCopyAvx2(d + from, s + from, static_cast<size_t>(to - from));
  });
  _mm_sfence();
}

std::vector<at::Tensor> optTensorList(napi_env env, napi_value v, const char* what) {
  return isNullish(env, v) ? std::vector<at::Tensor>{} : argTensorList(env, v, what);
}

// The two checks' common form: (tensors: id[], scalars: id[] | null, bufferNorms: id[] | null).
// ofGrads: the first list is parameters, whose gradients are normed (0 without one).
napi_value readNorms(napi_env env, napi_callback_info info, const char* name, bool ofGrads) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, name, {
    auto first = argTensorList(env, a[0], ofGrads ? "params" : "norms");
    auto scalars = optTensorList(env, a[1], "scalars");
    auto bufs = optTensorList(env, a[2], "bufferNorms");
    at::NoGradGuard noGrad;
    NormRead r;
    for (const auto& t : first) {
      if (!ofGrads) r.norm(t);
      else if (t.grad().defined()) r.norm(t.grad());
      else r.zero();
    }
    for (const auto& s : scalars) r.scalar(s);
    for (const auto& b : bufs) r.norm(b);
    return r.read(env);
  })
}

// guardNorms(norms: id[], scalars: id[], bufferNorms: id[]) → Float64Array
// [‖t‖₂ for t in norms..., each scalar (as float32)..., ‖b‖₂ for b in bufferNorms...]
napi_value GuardNorms(napi_env env, napi_callback_info info) {
  return readNorms(env, info, "guardNorms", false);
}

// guardGradNorms(params: id[], scalars: id[], bufferNorms: id[]) → Float64Array
// [‖p.grad‖₂ (0 without one) for p in params..., each scalar..., ‖b‖₂ for b in bufferNorms...]:
// the guard's per-step check, reading the gradients where they are (no handle for them).
napi_value GuardGradNorms(napi_env env, napi_callback_info info) {
  return readNorms(env, info, "guardGradNorms", true);
}

// copyTensors(dst: id[], src: id[]) → boolean: dst[i].copy_(src[i]) for every
// i, without autograd, when every pair has the same shape and dtype (the
// caller's copies still fit their sources); else nothing is copied and the
// answer is false (the caller makes new copies).
napi_value CopyTensors(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "copyTensors", {
    auto dst = argTensorList(env, a[0], "dst");
    auto src = argTensorList(env, a[1], "src");
    if (dst.size() != src.size()) throw ArgError("copyTensors: dst and src differ in length");
    for (size_t i = 0; i < dst.size(); ++i) {
      if (!dst[i].sizes().equals(src[i].sizes()) || dst[i].scalar_type() != src[i].scalar_type()) return jsBool(env, false);
    }
    at::NoGradGuard noGrad;
    for (size_t i = 0; i < dst.size(); ++i) copyTensor(dst[i], src[i]);
    return jsBool(env, true);
  })
}

// The default CPU generator's state as plain bytes: its engine (the mt19937
// words and position) and its cached normal samples. Saving it is a copy of
// ~2.5 KB into a tensor the guard keeps, with no tensor made and no op
// dispatched (get_state() makes a new 5 KB tensor, which rngStateInto then
// copied: 2 µs alone, 3–6 µs inside a step).
struct RngSnapshot {
  at::mt19937_data_pod engine;
  double doubleNormal;
  float floatNormal;
  bool hasFloatNormal;
  bool hasDoubleNormal;
};
static_assert(std::is_trivially_copyable<RngSnapshot>::value, "RngSnapshot is copied as bytes");

char* snapshotBytes(napi_env env, napi_value v, const char* what) {
  const at::Tensor& t = argTensor(env, v, what);
  if (!t.device().is_cpu() || t.scalar_type() != at::kByte || !t.is_contiguous() || t.nbytes() < sizeof(RngSnapshot)) {
    throw ArgError(std::string("argument '") + what + "' must be a contiguous CPU uint8 tensor of at least " + std::to_string(sizeof(RngSnapshot)) + " bytes");
  }
  return static_cast<char*>(t.data_ptr());
}

// rngSave(dst: id): the default CPU generator's state into dst's bytes (for rngRestore only).
napi_value RngSave(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "rngSave", {
    char* dst = snapshotBytes(env, a[0], "dst");
    RngSnapshot s{};
    auto gen = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      auto* impl = gen.get<at::CPUGeneratorImpl>();
      s.engine = impl->engine().data();
      const auto f = impl->next_float_normal_sample();
      const auto d = impl->next_double_normal_sample();
      s.hasFloatNormal = f.has_value();
      s.floatNormal = f.value_or(0.0f);
      s.hasDoubleNormal = d.has_value();
      s.doubleNormal = d.value_or(0.0);
    }
    std::memcpy(dst, &s, sizeof s);
    return nullptr;
  })
}

// rngRestore(src: id): the default CPU generator back to a state rngSave wrote.
napi_value RngRestore(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "rngRestore", {
    RngSnapshot s;
    std::memcpy(&s, snapshotBytes(env, a[0], "src"), sizeof s);
    at::mt19937 engine;
    engine.set_data(s.engine);
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    auto* impl = gen.get<at::CPUGeneratorImpl>();
    impl->set_engine(engine);
    impl->set_next_float_normal_sample(s.hasFloatNormal ? c10::optional<float>(s.floatNormal) : c10::nullopt);
    impl->set_next_double_normal_sample(s.hasDoubleNormal ? c10::optional<double>(s.doubleNormal) : c10::nullopt);
    return nullptr;
  })
}

}  // namespace

void registerGuardFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "guardNorms", GuardNorms);
  defineFunction(env, exports, "guardGradNorms", GuardGradNorms);
  defineFunction(env, exports, "copyTensors", CopyTensors);
  defineFunction(env, exports, "rngSave", RngSave);
  defineFunction(env, exports, "rngRestore", RngRestore);
}

}  // namespace keel
