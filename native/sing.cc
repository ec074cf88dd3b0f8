// SING's whole multi-tensor step in one call (and Lookahead's merge in
// another): per tensor the gradient standardisation, then the Adam part —
// moments, decoupled decay, the softplus denominator, the update — in one
// pass over the tensor's elements, where the JS path dispatches ~14 ATen
// kernels (each a pass over memory, four of them allocating).
//
// The pass computes what libtorch 1.13's kernels compute, element by element:
//   g ← g − mean_row(g)                   (≥ 2-d; the row means from ATen's mean, then sub_)
//   g ← g / (‖g‖₂ + eps)                  (ATen's reduce-last-dim norm, add, div_; written back)
//   m ← fma(g, 1−β1, m·β1)                (mul_, then add_'s vec::fmadd)
//   v ← fma((1−β2)·g, g, v·β2)            (mul_, then addcmul_)
//   p ← p·(1 − lr·wd)                     (≥ 2-d tensors, wd ≠ 0)
//   d ← √v / √(1−β2ᵗ)                     (sqrt, div_)
//   d ← βd > 20 ? d : log1p(exp(βd)) / β  (softplus: SLEEF's exp and log1p, as ATen's Vectorized<float>;
//                                          glibc's in each range's < 16-element tail, as ATen's scalar loop)
//   p ← p + (−lr/(1−β1ᵗ))·m / d           (addcdiv_)
// with every scalar rounded to float as ATen rounds it, and the ranges split
// as TensorIterator splits them across intra-op threads. The AVX-512 loop
// calls SLEEF's 16-wide functions, which give bitwise the results of the
// 8-wide ones that ATen's AVX2 kernels call (checked on every one of the 2³²
// float32 inputs for exp and log1p, SLEEF 3.5.1).
//
// Whether this libtorch computes the same is not assumed: the first call runs
// both on probe tensors (a softplus sweep over [0, 2] and whole updates with
// ranges of every kind, standardisation and softplus on and off) and uses the
// pass only if every bit matches; otherwise, and for float64, non-contiguous
// tensors, a CPU without AVX-512F, ATEN_CPU_CAPABILITY other than avx2 or no
// SLEEF in the process, each tensor takes the ATen ops themselves (still one
// call). `singKernel()` says which and why.
#include "keel.h"

#include <dlfcn.h>
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace keel {

namespace {

struct Hyper {
  double beta1, beta2, lr, weightDecay, eps, softplusBeta, threshold;
  bool softplus;
};

// The same update through ATen's own in-place ops (what the JS _foreach path
// dispatches, tensor by tensor).
void updateAten(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, const Hyper& h, double bc2Sqrt, double stepSize) {
  m.mul_(h.beta1);
  m.add_(g, 1 - h.beta1);
  v.mul_(h.beta2);
  v.addcmul_(g, g, 1 - h.beta2);
  if (h.weightDecay != 0 && p.dim() > 1) p.mul_(1 - h.lr * h.weightDecay);
  at::Tensor d = at::sqrt(v);
  d.div_(bc2Sqrt);
  if (h.softplus) at::softplus_out(d, d, h.softplusBeta, h.threshold);
  else d.add_(h.eps);
  p.addcdiv_(m, d, stepSize);
}

using Vec16Fn = __m512 (*)(__m512);
Vec16Fn sleefExp16 = nullptr;
Vec16Fn sleefLog1p16 = nullptr;

// every scalar as float, as ATen's kernels read them
struct Scalars {
  float beta1, alpha1, beta2, alpha2, decay, bc2Sqrt, stepSize, eps, spBeta, spThreshold;
  bool decayOn, softplus;
  bool scaleGrad = false;  // g ← g / gradNorm first (the standardisation's division), written back
  float gradNorm = 1;
};

Scalars scalarsFor(const Hyper& h, bool decayOn, double bc2Sqrt, double stepSize) {
  return {static_cast<float>(h.beta1), static_cast<float>(1 - h.beta1), static_cast<float>(h.beta2), static_cast<float>(1 - h.beta2),
          static_cast<float>(1 - h.lr * h.weightDecay), static_cast<float>(bc2Sqrt), static_cast<float>(stepSize),
          static_cast<float>(h.eps), static_cast<float>(h.softplusBeta), static_cast<float>(h.threshold), decayOn, h.softplus};
}

// One range [b, e) as one of ATen's vectorized loops sees it: blocks of 16
// (two AVX2 vectors there, one AVX-512 vector here) from b, the rest scalar.
// The blocks go 512 elements at a time through three tight loops (moments and
// denominator into a buffer on the stack; the softplus over the buffer; the
// update), so that no live value crosses SLEEF's calls, which clobber every
// vector register.
__attribute__((target("avx512f,avx2,fma"))) void updateRange(float* p, float* g, float* m, float* v, int64_t b, int64_t e, const Scalars& s) {
  constexpr int64_t kBlock = 512;
  alignas(64) float den[kBlock];
  int64_t i = b;
  const int64_t vecEnd = b + (e - b) / 16 * 16;
  while (i < vecEnd) {
    const int64_t n = std::min(kBlock, vecEnd - i);
    {
      const __m512 beta1 = _mm512_set1_ps(s.beta1), alpha1 = _mm512_set1_ps(s.alpha1), beta2 = _mm512_set1_ps(s.beta2), alpha2 = _mm512_set1_ps(s.alpha2);
      const __m512 bc2 = _mm512_set1_ps(s.bc2Sqrt), norm = _mm512_set1_ps(s.gradNorm);
      for (int64_t j = 0; j < n; j += 16) {
        __m512 gi = _mm512_loadu_ps(g + i + j);
        if (s.scaleGrad) {
          gi = _mm512_div_ps(gi, norm);
          _mm512_storeu_ps(g + i + j, gi);
        }
        const __m512 mi = _mm512_fmadd_ps(gi, alpha1, _mm512_mul_ps(_mm512_loadu_ps(m + i + j), beta1));
        const __m512 vi = _mm512_fmadd_ps(_mm512_mul_ps(alpha2, gi), gi, _mm512_mul_ps(_mm512_loadu_ps(v + i + j), beta2));
        _mm512_storeu_ps(m + i + j, mi);
        _mm512_storeu_ps(v + i + j, vi);
        _mm512_store_ps(den + j, _mm512_div_ps(_mm512_sqrt_ps(vi), bc2));
      }
    }
    if (s.softplus) {
      const __m512 spBeta = _mm512_set1_ps(s.spBeta), spThreshold = _mm512_set1_ps(s.spThreshold);
      for (int64_t j = 0; j < n; j += 16) {
        const __m512 d = _mm512_load_ps(den + j);
        const __m512 y = _mm512_mul_ps(d, spBeta);
        const __m512 r = _mm512_div_ps(sleefLog1p16(sleefExp16(y)), spBeta);
        _mm512_store_ps(den + j, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, spThreshold, _CMP_GT_OQ), r, d));
      }
    } else {
      const __m512 eps = _mm512_set1_ps(s.eps);
      for (int64_t j = 0; j < n; j += 16) _mm512_store_ps(den + j, _mm512_add_ps(_mm512_load_ps(den + j), eps));
    }
    {
      const __m512 decay = _mm512_set1_ps(s.decay), stepSize = _mm512_set1_ps(s.stepSize);
      for (int64_t j = 0; j < n; j += 16) {
        __m512 pi = _mm512_loadu_ps(p + i + j);
        if (s.decayOn) pi = _mm512_mul_ps(pi, decay);
        pi = _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(stepSize, _mm512_loadu_ps(m + i + j)), _mm512_load_ps(den + j)));
        _mm512_storeu_ps(p + i + j, pi);
      }
    }
    i += n;
  }
  for (; i < e; ++i) {
    float gi = g[i];
    if (s.scaleGrad) g[i] = gi = gi / s.gradNorm;
    const float mi = std::fma(gi, s.alpha1, m[i] * s.beta1);
    const float vi = std::fma(s.alpha2 * gi, gi, v[i] * s.beta2);
    float pi = p[i];
    if (s.decayOn) pi = pi * s.decay;
    float d = std::sqrt(vi) / s.bc2Sqrt;
    if (s.softplus) {
      const float y = d * s.spBeta;
      d = y > s.spThreshold ? d : std::log1p(std::exp(y)) / s.spBeta;
    } else {
      d = d + s.eps;
    }
    pi = pi + (s.stepSize * mi) / d;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
  }
}

// As TensorIterator splits n elements across intra-op threads: at::parallel_for
// with its grain, from the same header (the addon is built with -fopenmp, so
// the ranges run on libtorch's OpenMP team). The scalar tails must fall where
// ATen's do, so the ranges are always ATen's; below passGrain() elements a
// range they run one after another on this thread, as the addon's other passes
// do: under passive waiting a parallel region first wakes a sleeping worker,
// ~50 µs, more than a range of that size takes (docs/design-notes.md).
template <typename F>
void forEachRange(int64_t n, const F& f) {
  const int64_t threads = at::get_num_threads();
  if (n <= at::internal::GRAIN_SIZE || threads == 1 || at::in_parallel_region()) {
    f(0, n);
    return;
  }
  // invoke_parallel's split (ATen/ParallelOpenMP.h): min(threads, ⌈n / grain⌉) ranges of ⌈n / ranges⌉
  const int64_t chunk = at::divup(n, std::min(threads, at::divup(n, at::internal::GRAIN_SIZE)));
  if (chunk >= passGrain()) {
    at::parallel_for(0, n, at::internal::GRAIN_SIZE, f);
    return;
  }
  for (int64_t b = 0; b < n; b += chunk) f(b, std::min(n, b + chunk));
}

// g ← g − mean[row] over rows of `cols` elements (exact subtraction, as sub_'s
// fmadd(other, −1, self))
__attribute__((target("avx512f,avx2,fma"))) void centreRows(float* g, const float* mean, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = g + r * cols;
    const __m512 mu = _mm512_set1_ps(mean[r]);
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) _mm512_storeu_ps(row + c, _mm512_sub_ps(_mm512_loadu_ps(row + c), mu));
    for (; c < cols; ++c) row[c] = row[c] - mean[r];
  }
}

// ‖g‖₂ as ATen's norm kernel computes a whole float tensor's (the reduce-last-
// dim path): eight float lanes accumulating x·x (fused), the lanes summed in
// order, the < 8-element tail added to lane 0's total, sqrtf. One chain per
// lane, as there: bound by the FMA's latency, not by memory. How the tail's
// `buffer[0] += x * x` rounds is the compiler's choice in the libtorch build:
// Debian's GCC 12 build squares the tail four at a time (one rounded vmulps)
// and adds them in order, then fuses the rest (found against 1,000 random
// vectors of every length 1–19, each matching bit for bit). normTail() picks
// the form that matches this libtorch on a probe; none matching, the norm is
// ATen's own (frobenius_norm), as the per-op path's.
enum class NormTail { Fused, Rounded, QuadsRoundedThenFused, Aten };

__attribute__((target("avx512f,avx2,fma"))) float normTwo(const float* g, int64_t n, NormTail tail) {
  __m256 acc = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d < n - (n % 8); d += 8) {
    const __m256 x = _mm256_loadu_ps(g + d);
    acc = _mm256_fmadd_ps(x, x, acc);
  }
  alignas(32) float buffer[8];
  _mm256_store_ps(buffer, acc);
  for (int j = 1; j < 8; ++j) buffer[0] = buffer[0] + buffer[j];
  // the squares rounded on their own: the empty asm keeps GCC (-ffp-contract=fast) from fusing them into the adds
  if (tail == NormTail::QuadsRoundedThenFused) {
    for (; d + 4 <= n; d += 4) {
      const __m128 x = _mm_loadu_ps(g + d);
      __m128 q = _mm_mul_ps(x, x);
      asm("" : "+x"(q));
      alignas(16) float sq[4];
      _mm_store_ps(sq, q);
      for (float v : sq) buffer[0] = buffer[0] + v;
    }
  }
  if (tail == NormTail::Rounded) {
    for (; d < n; ++d) {
      __m128 q = _mm_set_ss(g[d]);
      q = _mm_mul_ss(q, q);
      asm("" : "+x"(q));
      buffer[0] = buffer[0] + _mm_cvtss_f32(q);
    }
  }
  for (; d < n; ++d) buffer[0] = std::fma(g[d], g[d], buffer[0]);
  return std::sqrt(buffer[0]);
}

// The tail form of this libtorch's norm: the first of the three that gives
// frobenius_norm's bits on vectors of every length 1–23 (every tail length,
// with and without full lanes) at scales over six orders of magnitude, else
// Aten. Decided once (a static local).
NormTail chooseNormTail() {
  at::NoGradGuard noGrad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(20240105);
  std::vector<at::Tensor> probes;
  for (int64_t n = 1; n <= 23; ++n)
    for (int k = 0; k < 48; ++k) probes.push_back(at::randn({n}, gen).mul_(at::pow(10.0, at::rand({n}, gen).mul_(6).sub_(4))).contiguous());
  for (NormTail t : {NormTail::QuadsRoundedThenFused, NormTail::Fused, NormTail::Rounded}) {
    bool all = true;
    for (const auto& x : probes) {
      const float ours = normTwo(x.data_ptr<float>(), x.numel(), t);
      const float aten = at::frobenius_norm(x, {}, /*keepdim=*/false).item<float>();
      if (std::memcmp(&ours, &aten, sizeof ours) != 0) {
        all = false;
        break;
      }
    }
    if (all) return t;
  }
  return NormTail::Aten;
}

NormTail normTail() {
  static const NormTail tail = chooseNormTail();
  return tail;
}

float normOf(const at::Tensor& g) {
  const NormTail tail = normTail();
  if (tail == NormTail::Aten) return at::frobenius_norm(g, {}, /*keepdim=*/false).item<float>();
  return normTwo(g.data_ptr<float>(), g.numel(), tail);
}

// the standardisation (native/optim.cc's ATen ops: mean, sub_, frobenius_norm,
// add, div_) with the centring's mean from ATen, the subtraction and the norm
// here, and the division left to the update pass (s.scaleGrad)
void standardizeFused(at::Tensor& g, bool centralize, bool normalize, double eps, Scalars& s) {
  float* gp = g.data_ptr<float>();
  const int64_t n = g.numel();
  if (centralize && g.dim() > 1 && n > 0) {
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < g.dim(); ++d) dims.push_back(d);
    const at::Tensor mean = at::mean(g, dims, /*keepdim=*/true).contiguous();
    centreRows(gp, mean.data_ptr<float>(), g.size(0), n / g.size(0));
    g.unsafeGetTensorImpl()->bump_version();
  }
  if (normalize) {
    s.scaleGrad = true;
    s.gradNorm = normOf(g) + static_cast<float>(eps);
  }
}

void updateFused(at::Tensor& p, at::Tensor& g, at::Tensor& m, at::Tensor& v, const Hyper& h, double bc2Sqrt, double stepSize,
                 bool centralize, bool normalize) {
  Scalars s = scalarsFor(h, h.weightDecay != 0 && p.dim() > 1, bc2Sqrt, stepSize);
  standardizeFused(g, centralize, normalize, h.eps, s);
  float* pp = p.data_ptr<float>();
  float* gp = g.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  forEachRange(p.numel(), [&](int64_t b, int64_t e) { updateRange(pp, gp, mp, vp, b, e, s); });
  // as the in-place ops would: autograd and the precision policy read versions
  for (at::Tensor* t : {&p, &m, &v}) t->unsafeGetTensorImpl()->bump_version();
  if (s.scaleGrad) g.unsafeGetTensorImpl()->bump_version();
}

// the same through ATen's ops
void updateWithAten(at::Tensor& p, at::Tensor& g, at::Tensor& m, at::Tensor& v, const Hyper& h, double bc2Sqrt, double stepSize,
                    bool centralize, bool normalize) {
  if (centralize || normalize) standardizeGradient(g, centralize, normalize, h.eps);
  updateAten(p, g, m, v, h, bc2Sqrt, stepSize);
}

// ---- whether the pass is this libtorch's numbers --------------------------

bool sameBits(const at::Tensor& a, const at::Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data_ptr(), b.data_ptr(), a.numel() * sizeof(float)) == 0;
}

std::string probe() {
  at::NoGradGuard noGrad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(20230524);
  // sizes with and without a tail, one above the grain (ranges split when > 1 thread)
  for (int64_t n : {int64_t{5}, int64_t{16 * 37 + 13}, int64_t{2 * 32768 + 1001}}) {
    for (bool softplus : {true, false}) {
      const bool centralize = softplus, normalize = n != 5 || softplus;
      const Hyper h{0.9, 0.999, 5e-2, 1e-2, 1e-8, 50, 20, softplus};
      at::Tensor p = at::randn({n / 5 > 0 ? 5 : 1, n / 5 > 0 ? n / 5 : n}, gen).contiguous();
      const int64_t numel = p.numel();
      // gradients over six orders of magnitude; moments already under way
      at::Tensor g = at::randn({numel}, gen).mul_(at::pow(10.0, at::rand({numel}, gen).mul_(6).sub_(5))).view(p.sizes());
      at::Tensor m = at::randn({numel}, gen).mul_(1e-2).view(p.sizes());
      at::Tensor v = at::rand({numel}, gen).mul_(at::pow(10.0, at::rand({numel}, gen).mul_(8).sub_(7))).view(p.sizes());
      at::Tensor p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
      const double bc2Sqrt = std::sqrt(1 - std::pow(0.999, 3)), stepSize = -5e-2 / (1 - std::pow(0.9, 3));
      at::Tensor g2 = g.clone();
      updateWithAten(p, g, m, v, h, bc2Sqrt, stepSize, centralize, normalize);
      updateFused(p2, g2, m2, v2, h, bc2Sqrt, stepSize, centralize, normalize);
      if (!sameBits(p, p2) || !sameBits(m, m2) || !sameBits(v, v2) || !sameBits(g, g2)) {
        return "the fused pass differs from ATen's ops on a probe (" + std::to_string(numel) + " elements, softplus " + (softplus ? "on" : "off") + ")";
      }
    }
  }
  // the softplus over a sweep of denominators, every 4,096th float32 in [0, 2]:
  // with β1 = β2 = 0, m = g and d = √(g²); p starts at 0, so p = −m / softplus(d)
  const int64_t sweep = (0x40000000 >> 12) + 7;
  at::Tensor g = at::arange(0, sweep, at::kInt).mul_(4096).view(at::kFloat).clone();
  const Hyper h{0, 0, 1, 0, 1e-8, 50, 20, true};
  at::Tensor p = at::zeros({sweep}), m = at::zeros({sweep}), v = at::zeros({sweep});
  at::Tensor p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
  updateAten(p, g, m, v, h, 1.0, -1.0);
  updateFused(p2, g, m2, v2, h, 1.0, -1.0, false, false);
  if (!sameBits(p, p2)) return "the fused softplus differs from ATen's on a sweep of [0, 2]";
  return "";
}

// which path, and why not the fused one: decided once per process (a static
// local: the first call from any thread decides, the others wait for it)
std::string chooseKernel() {
  const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    return "no AVX-512F / AVX2 / FMA on this CPU";
  }
  if (cap != nullptr && std::string(cap) != "avx2") return std::string("ATEN_CPU_CAPABILITY=") + cap + " (ATen's kernels are not the AVX2 ones)";
  void* lib = dlopen("libsleef.so.3", RTLD_NOW | RTLD_NOLOAD);
  sleefExp16 = reinterpret_cast<Vec16Fn>(lib ? dlsym(lib, "Sleef_expf16_u10") : dlsym(RTLD_DEFAULT, "Sleef_expf16_u10"));
  sleefLog1p16 = reinterpret_cast<Vec16Fn>(lib ? dlsym(lib, "Sleef_log1pf16_u10") : dlsym(RTLD_DEFAULT, "Sleef_log1pf16_u10"));
  if (sleefExp16 == nullptr || sleefLog1p16 == nullptr) return "libtorch's SLEEF (libsleef.so.3) is not loaded in this process";
  return probe();
}

const std::string& kernelChoice() {
  static const std::string reason = chooseKernel();
  return reason;
}

// singStep(ps, grads, expAvgs, expAvgSqs, bc2Sqrts, stepSizes,
//          [beta1, beta2, lr, weightDecay, eps, softplusBeta, threshold], softplus, centralize, normalize)
// bc2Sqrts[i] = √(1 − β2ᵗ), stepSizes[i] = −lr / (1 − β1ᵗ) for tensor i's step t.
napi_value SingStep(napi_env env, napi_callback_info info) {
  napi_value a[10];
  getArgs(env, info, 10, a);
  KEEL_GUARD(env, "singStep", {
    auto ps = argTensorList(env, a[0], "params");
    auto grads = argTensorList(env, a[1], "grads");
    auto ms = argTensorList(env, a[2], "expAvgs");
    auto vs = argTensorList(env, a[3], "expAvgSqs");
    const auto bc2 = argNumberList(env, a[4], "bc2Sqrts");
    const auto stepSizes = argNumberList(env, a[5], "stepSizes");
    const auto hp = argNumberList(env, a[6], "hyper");
    const bool softplus = argBool(env, a[7], "softplus");
    const bool centralize = argBool(env, a[8], "centralize");
    const bool normalize = argBool(env, a[9], "normalize");
    const size_t n = ps.size();
    if (grads.size() != n || ms.size() != n || vs.size() != n || bc2.size() != n || stepSizes.size() != n || hp.size() != 7) {
      throw ArgError("singStep: params, grads, expAvgs, expAvgSqs, bc2Sqrts and stepSizes must have one entry per tensor, hyper 7 numbers");
    }
    const Hyper h{hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6], softplus};
    const bool fused = kernelChoice().empty();
    at::NoGradGuard noGrad;
    for (size_t i = 0; i < n; ++i) {
      const int64_t numel = ps[i].numel();
      const bool apart = !ps[i].is_same(grads[i]) && !ps[i].is_same(ms[i]) && !ps[i].is_same(vs[i]) && !ms[i].is_same(vs[i]);
      if (fused && apart && plainFloat32(ps[i], numel) && plainFloat32(grads[i], numel) && plainFloat32(ms[i], numel) && plainFloat32(vs[i], numel)) {
        updateFused(ps[i], grads[i], ms[i], vs[i], h, bc2[i], stepSizes[i], centralize, normalize);
      } else {
        updateWithAten(ps[i], grads[i], ms[i], vs[i], h, bc2[i], stepSizes[i], centralize, normalize);
      }
    }
    return nullptr;
  })
}

// lookaheadMerge(fast, slow, alpha): per pair p ← p·α + (1 − α)·slow, slow ← p
// (mul_, add_'s fmadd, copy_), in one pass when the fused pass is used
__attribute__((target("avx512f,avx2,fma"))) void mergeRange(float* p, float* slow, int64_t b, int64_t e, float alpha, float rest) {
  const __m512 a = _mm512_set1_ps(alpha), r = _mm512_set1_ps(rest);
  int64_t i = b;
  for (; i + 16 <= e; i += 16) {
    const __m512 x = _mm512_fmadd_ps(_mm512_loadu_ps(slow + i), r, _mm512_mul_ps(_mm512_loadu_ps(p + i), a));
    _mm512_storeu_ps(p + i, x);
    _mm512_storeu_ps(slow + i, x);
  }
  for (; i < e; ++i) p[i] = slow[i] = std::fma(slow[i], rest, p[i] * alpha);
}

napi_value LookaheadMerge(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "lookaheadMerge", {
    auto fast = argTensorList(env, a[0], "fast");
    auto slow = argTensorList(env, a[1], "slow");
    const double alpha = argNumber(env, a[2], "alpha");
    if (fast.size() != slow.size()) throw ArgError("lookaheadMerge: fast and slow must have one entry per tensor");
    const bool fused = kernelChoice().empty();
    at::NoGradGuard noGrad;
    for (size_t i = 0; i < fast.size(); ++i) {
      at::Tensor& p = fast[i];
      at::Tensor& s = slow[i];
      const int64_t n = p.numel();
      if (fused && !p.is_same(s) && plainFloat32(p, n) && plainFloat32(s, n)) {
        float* pp = p.data_ptr<float>();
        float* sp = s.data_ptr<float>();
        const float fa = static_cast<float>(alpha), fr = static_cast<float>(1 - alpha);
        forEachRange(n, [&](int64_t b, int64_t e) { mergeRange(pp, sp, b, e, fa, fr); });
        p.unsafeGetTensorImpl()->bump_version();
        s.unsafeGetTensorImpl()->bump_version();
      } else {
        p.mul_(alpha);
        p.add_(s, 1 - alpha);
        s.copy_(p);
      }
    }
    return nullptr;
  })
}

// singKernel(): '' when the fused pass is used, else why each tensor takes ATen's ops
napi_value SingKernel(napi_env env, napi_callback_info) {
  KEEL_GUARD(env, "singKernel", { return jsString(env, kernelChoice()); })
}

}  // namespace

void registerSingFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "singStep", SingStep);
  defineFunction(env, exports, "singKernel", SingKernel);
  defineFunction(env, exports, "lookaheadMerge", LookaheadMerge);
}

}  // namespace keel
