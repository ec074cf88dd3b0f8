// Rounding to a floating-point format in one pass (round half to even, the
// format's subnormals and overflow rule), for float32 and float64 tensors:
// the precision policy's hot path. Differentiable as a straight-through step
// whose gradient is rounded to the same format, as a C++ autograd node (no JS
// callback in backward).
#include "keel.h"

#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace keel {

namespace {

struct Format {
  int64_t mantissaBits;
  int64_t minNormalExponent;
  double maxFinite;
  bool hasInfinity;
  bool saturate;
  bool negativeZero;  // false for the fnuz formats: −0 rounds to +0
};

// Round half to even at the format's ulp, by the bits, a vector register of
// values at a time (GCC vector types: 32 bytes where the CPU has AVX2, else
// 16, the x86-64 baseline), with no branch: one pass costs about a copy.
// In the format's normal range, drop the low fraction bits (a carry into the
// exponent is the right answer); below it, add and subtract a power of two
// whose ulp is the format's subnormal ulp (IEEE addition rounds half to even).
// Both are computed for every value and one is selected by a mask. Compares
// are done on the floats: SSE2 has no unsigned or 64-bit integer compare.
template <typename T, typename U, int kBytes>
struct Lanes {
  static constexpr int kN = kBytes / sizeof(T);
  typedef T F __attribute__((vector_size(kBytes)));
  typedef U I __attribute__((vector_size(kBytes)));
};

template <typename To, typename From>
inline __attribute__((always_inline)) To bitsOf(From from) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

template <typename T, typename U, int kBytes>
inline __attribute__((always_inline)) void roundBlock(const T* src, T* dst, int shift, U half, U fractionMask, T minNormal, T magic,
                                                       T maxFinite, U overBits, bool negativeZero) {
  using I = typename Lanes<T, U, kBytes>::I;
  using F = typename Lanes<T, U, kBytes>::F;
  const U signBit = U(1) << (sizeof(U) * 8 - 1);
  I v;
  std::memcpy(&v, src, sizeof v);
  I sign = v & signBit;
  I a = v & ~signBit;
  F af = bitsOf<F>(a);
  I rounded = (a + half + ((a >> shift) & 1)) & ~fractionMask;
  I sub = bitsOf<I>((af + magic) - magic);  // no -ffast-math: never reassociated
  I isSub = bitsOf<I>(af < minNormal);
  I r = (sub & isSub) | (rounded & ~isSub);
  I isOver = bitsOf<I>(bitsOf<F>(r) > maxFinite);  // NaN compares false
  r = (overBits & isOver) | (r & ~isOver);
  I keepSign = negativeZero ? ~I{} : ~bitsOf<I>(bitsOf<F>(r) == T(0));
  r = r | (sign & keepSign);
  I isNan = bitsOf<I>(af != af);
  r = (v & isNan) | (r & ~isNan);
  std::memcpy(dst, &r, sizeof r);
}

template <typename T, typename U, int kBytes>
inline __attribute__((always_inline)) void roundRange(const T* in, T* out, int64_t n, int shift, U half, U fractionMask, T minNormal,
                                                       T magic, T maxFinite, U overBits, bool negativeZero) {
  constexpr int kN = Lanes<T, U, kBytes>::kN;
  int64_t i = 0;
  for (; i + kN <= n; i += kN) roundBlock<T, U, kBytes>(in + i, out + i, shift, half, fractionMask, minNormal, magic, maxFinite, overBits, negativeZero);
  if (i < n) {
    T a[kN] = {}, b[kN];
    std::memcpy(a, in + i, (n - i) * sizeof(T));
    roundBlock<T, U, kBytes>(a, b, shift, half, fractionMask, minNormal, magic, maxFinite, overBits, negativeZero);
    std::memcpy(out + i, b, (n - i) * sizeof(T));
  }
}

template <typename T, typename U>
__attribute__((target("avx2"))) void roundRangeAvx2(const T* in, T* out, int64_t n, int shift, U half, U fractionMask, T minNormal,
                                                     T magic, T maxFinite, U overBits, bool negativeZero) {
  roundRange<T, U, 32>(in, out, n, shift, half, fractionMask, minNormal, magic, maxFinite, overBits, negativeZero);
}

template <typename T, typename U>
void roundRangeSse2(const T* in, T* out, int64_t n, int shift, U half, U fractionMask, T minNormal, T magic, T maxFinite, U overBits,
                    bool negativeZero) {
  roundRange<T, U, 16>(in, out, n, shift, half, fractionMask, minNormal, magic, maxFinite, overBits, negativeZero);
}

// KEEL_NO_AVX2=1 takes the SSE2 path (tests compare the two)
const bool kHasAvx2 = __builtin_cpu_supports("avx2") && std::getenv("KEEL_NO_AVX2") == nullptr;

template <typename T, typename U, int kFraction>
void roundBits(const T* in, T* out, int64_t n, const Format& f) {
  const int shift = kFraction - static_cast<int>(f.mantissaBits);
  const U one = 1;
  // |x| below this (the format's smallest normal) rounds on the subnormal grid
  const T minNormal = std::ldexp(static_cast<T>(1), static_cast<int>(f.minNormalExponent));
  const T magic = std::ldexp(static_cast<T>(1), static_cast<int>(f.minNormalExponent - f.mantissaBits + kFraction));
  const T maxFinite = static_cast<T>(f.maxFinite);
  const T over = f.saturate ? maxFinite : (f.hasInfinity ? static_cast<T>(INFINITY) : static_cast<T>(NAN));
  // shift 0 (the format holds every value of T's fraction): half and mask are 0 and (u >> 0) & 1 would add a bit
  const int s = shift > 0 ? shift : static_cast<int>(sizeof(U) * 8 - 1);
  const U m = shift > 0 ? (one << shift) - 1 : 0;
  const U h = shift > 0 ? (one << (shift - 1)) - 1 : 0;
  const U overBits = bitsOf<U>(over);
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    if (kHasAvx2) roundRangeAvx2<T, U>(in + begin, out + begin, end - begin, s, h, m, minNormal, magic, maxFinite, overBits, f.negativeZero);
    else roundRangeSse2<T, U>(in + begin, out + begin, end - begin, s, h, m, minNormal, magic, maxFinite, overBits, f.negativeZero);
  });
}

at::Tensor roundValues(const at::Tensor& x, const Format& f) {
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
    throw ArgError(std::string("round: expected a float32 or float64 tensor, got ") + c10::toString(x.scalar_type()));
  if (!x.device().is_cpu()) throw ArgError("round: the one-pass rounding runs on CPU tensors");
  at::Tensor in = x.detach().contiguous();
  at::Tensor out = at::empty_like(in, at::MemoryFormat::Contiguous);
  if (in.scalar_type() == at::kFloat) roundBits<float, uint32_t, 23>(in.data_ptr<float>(), out.data_ptr<float>(), in.numel(), f);
  else roundBits<double, uint64_t, 52>(in.data_ptr<double>(), out.data_ptr<double>(), in.numel(), f);
  return out;
}

struct RoundFunction : public torch::autograd::Function<RoundFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t m, int64_t e, double max,
                            bool inf, bool sat, bool nz) {
    ctx->saved_data["nz"] = nz;
    ctx->saved_data["m"] = m;
    ctx->saved_data["e"] = e;
    ctx->saved_data["max"] = max;
    ctx->saved_data["inf"] = inf;
    ctx->saved_data["sat"] = sat;
    return roundValues(x, Format{m, e, max, inf, sat, nz});
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list g) {
    int64_t m = ctx->saved_data["m"].toInt(), e = ctx->saved_data["e"].toInt();
    double max = ctx->saved_data["max"].toDouble();
    bool inf = ctx->saved_data["inf"].toBool(), sat = ctx->saved_data["sat"].toBool(), nz = ctx->saved_data["nz"].toBool();
    at::Tensor grad = g[0].defined() ? RoundFunction::apply(g[0], m, e, max, inf, sat, nz) : at::Tensor();
    return {grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

Format formatArg(napi_env env, napi_value* a) {
  Format f{argInt(env, a[0], "mantissaBits"), argInt(env, a[1], "minNormalExponent"), argNumber(env, a[2], "maxFinite"),
           argBool(env, a[3], "hasInfinity"), argBool(env, a[4], "saturate"), argBool(env, a[5], "negativeZero")};
  if (f.mantissaBits < 0 || f.mantissaBits > 52 || f.minNormalExponent < -1022 || !(f.maxFinite > 0))
    throw ArgError("round: not a floating-point format");
  return f;
}

// roundFormat(id, mantissaBits, minNormalExponent, maxFinite, hasInfinity, saturate, negativeZero, differentiable) -> id
napi_value RoundFormat(napi_env env, napi_callback_info info) {
  napi_value a[8];
  getArgs(env, info, 8, a);
  KEEL_GUARD(env, "round", {
    const at::Tensor& x = argTensor(env, a[0], "x");
    Format f = formatArg(env, a + 1);
    if (argBool(env, a[7], "differentiable") && x.requires_grad() && at::GradMode::is_enabled())
      return jsTensor(env, RoundFunction::apply(x, f.mantissaBits, f.minNormalExponent, f.maxFinite, f.hasInfinity, f.saturate, f.negativeZero));
    return jsTensor(env, roundValues(x, f));
  })
}

// representable(id, mantissaBits, minNormalExponent, maxFinite, hasInfinity, saturate, negativeZero) -> every value is the format's (NaN counts)
napi_value Representable(napi_env env, napi_callback_info info) {
  napi_value a[7];
  getArgs(env, info, 7, a);
  KEEL_GUARD(env, "isRepresentable", {
    const at::Tensor& x = argTensor(env, a[0], "x");
    Format f = formatArg(env, a + 1);
    if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
      throw ArgError(std::string("isRepresentable: expected a float32 or float64 tensor, got ") + c10::toString(x.scalar_type()));
    // the one rounding algorithm, then a comparison (NaN equal to NaN)
    at::Tensor in = x.detach();
    at::Tensor r = roundValues(in, f);
    bool all = at::logical_or(r.eq(in), at::logical_and(r.isnan(), in.isnan())).all().item<bool>();
    return jsBool(env, all);
  })
}

}  // namespace

void registerRoundFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "roundFormat", RoundFormat);
  defineFunction(env, exports, "representable", Representable);
}

}  // namespace keel
