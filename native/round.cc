// Rounding to a floating-point format in one pass (round half to even, the
// format's subnormals and overflow rule), for float32 and float64 tensors:
// the precision policy's hot path. Differentiable as a straight-through step
// whose gradient is rounded to the same format, as a C++ autograd node (no JS
// callback in backward). For the policy: an op's output rounded where it lies
// when nothing else holds it, with a C++ hook rounding its gradient; inputs
// rounded unless already in the format; tensors an op wrote into rounded in
// place; gradients rounded in place when only the engine holds them. The
// policy's memory is here too (which tensor handles hold a format's values,
// each run's rounded inputs), and its whole per-op work for an op called
// through dispatch.cc's callRounded (RoundedCall), which mirrors the JS
// interceptor in precision/policy.ts step for step.
#include "keel.h"

#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <sstream>
#include <unordered_map>
#include <type_traits>
#include <vector>
#include <algorithm>

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
  // selects by compare masks (one blend instruction each with AVX2)
  I r = af < minNormal ? sub : rounded;
  r = bitsOf<F>(r) > maxFinite ? I{} + overBits : r;  // NaN compares false
  I keepSign = negativeZero ? ~I{} : ~bitsOf<I>(bitsOf<F>(r) == T(0));
  r = r | (sign & keepSign);
  r = af != af ? v : r;
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
  at::parallel_for(0, n, passGrain(), [&](int64_t begin, int64_t end) {
    if (kHasAvx2) roundRangeAvx2<T, U>(in + begin, out + begin, end - begin, s, h, m, minNormal, magic, maxFinite, overBits, f.negativeZero);
    else roundRangeSse2<T, U>(in + begin, out + begin, end - begin, s, h, m, minNormal, magic, maxFinite, overBits, f.negativeZero);
  });
}

void checkRoundable(const at::Tensor& x, const char* what) {
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
    throw ArgError(std::string(what) + ": expected a float32 or float64 tensor, got " + c10::toString(x.scalar_type()));
  if (!x.device().is_cpu()) throw ArgError(std::string(what) + ": the one-pass rounding runs on CPU tensors");
}

// in → out (n values; out may be in)
void roundInto(const at::Tensor& in, at::Tensor& out, const Format& f) {
  if (in.scalar_type() == at::kFloat) roundBits<float, uint32_t, 23>(in.data_ptr<float>(), out.data_ptr<float>(), in.numel(), f);
  else roundBits<double, uint64_t, 52>(in.data_ptr<double>(), out.data_ptr<double>(), in.numel(), f);
}

at::Tensor roundValues(const at::Tensor& x, const Format& f) {
  checkRoundable(x, "round");
  at::Tensor in = x.detach().contiguous();
  at::Tensor out = at::empty_like(in, at::MemoryFormat::Contiguous);
  roundInto(in, out, f);
  return out;
}

// Some value of a differs from b's (NaN equal to NaN, −0 equal to +0): a and
// b contiguous, same size. Compared 16 bytes at a time (GCC does not
// vectorise the scalar loop at -O2), a block of 1024 values between exits.
template <typename T>
bool valuesDiffer(const T* a, const T* b, int64_t n) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  using F = typename Lanes<T, U, 16>::F;
  using I = typename Lanes<T, U, 16>::I;
  constexpr int kN = Lanes<T, U, 16>::kN;
  constexpr int64_t kBlock = 1024;
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    I differ = {};
    for (int64_t j = i; j < i + kBlock; j += kN) {
      F x, y;
      std::memcpy(&x, a + j, sizeof x);
      std::memcpy(&y, b + j, sizeof y);
      differ |= bitsOf<I>(x != y) & (bitsOf<I>(x == x) | bitsOf<I>(y == y));
    }
    for (int k = 0; k < kN; k++)
      if (differ[k]) return true;
  }
  for (; i < n; i++)
    if (a[i] != b[i] && (a[i] == a[i] || b[i] == b[i])) return true;
  return false;
}

// Some value of a differs from b's (contiguous float32 or float64 tensors of one size).
bool valuesDiffer(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() == at::kFloat) return valuesDiffer(a.data_ptr<float>(), b.data_ptr<float>(), a.numel());
  return valuesDiffer(a.data_ptr<double>(), b.data_ptr<double>(), a.numel());
}

// Every value of p[0..n) is already the format's: rounded a block at a time
// into a buffer on the stack, stopping at the first block that changes.
template <typename T, typename U, int kFraction>
bool holdsFormat(const T* p, int64_t n, const Format& f) {
  constexpr int64_t kBlock = 1024;
  T buf[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
    roundBits<T, U, kFraction>(p + i, buf, m, f);
    if (valuesDiffer(p + i, buf, m)) return false;
  }
  return true;
}

bool holdsFormat(const at::Tensor& x, const Format& f) {
  if (x.scalar_type() == at::kFloat) return holdsFormat<float, uint32_t, 23>(x.data_ptr<float>(), x.numel(), f);
  return holdsFormat<double, uint64_t, 52>(x.data_ptr<double>(), x.numel(), f);
}

at::Tensor roundDifferentiable(const at::Tensor& x, const Format& f);

// A gradient in backward rounded: where it lies when backward builds no graph
// and nothing but the engine holds it (`uses` references: the engine's list,
// and a hook's copy of it), as autograd's own InputBuffer accumulates in place
// only into a gradient it alone holds; else a rounded copy.
at::Tensor roundGradient(const at::Tensor& g, const Format& f, long uses) {
  if (!g.defined()) return g;
  if (!at::GradMode::is_enabled() && g.use_count() <= uses && g.has_storage() && g.storage().use_count() == 1 && g.is_contiguous() &&
      g.layout() == at::kStrided && g.device().is_cpu() && (g.scalar_type() == at::kFloat || g.scalar_type() == at::kDouble)) {
    at::Tensor r = g;
    roundInto(r, r, f);
    return r;
  }
  return roundDifferentiable(g, f);
}

// The gradient of a rounding: the incoming gradient, rounded to the same
// format (a straight-through step). A plain Node holding the format, not a
// torch::autograd::Function: no saved_data map to fill per call.
struct RoundBackward : public torch::autograd::Node {
  explicit RoundBackward(const Format& f) : format(f) {}
  std::string name() const override { return "RoundBackward"; }
  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    // create_graph: the rounding of the gradient is differentiable too (roundGradient copies then)
    return {roundGradient(grads[0], format, 1)};
  }
  Format format;
};

at::Tensor roundDifferentiable(const at::Tensor& x, const Format& f) {
  at::Tensor r = roundValues(x, f);
  if (at::GradMode::is_enabled() && x.requires_grad()) {
    auto node = std::shared_ptr<RoundBackward>(new RoundBackward(f), torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    torch::autograd::set_history(r, node);
  }
  return r;
}

// Formats are registered once (roundingFormat) and named by index in the hot calls.
std::vector<Format> g_formats;

const Format& formatById(napi_env env, napi_value v) {
  int64_t id = argInt(env, v, "format");
  if (id < 0 || static_cast<size_t>(id) >= g_formats.size()) throw ArgError("round: not a registered rounding format");
  return g_formats[id];
}

Format formatArg(napi_env env, napi_value* a) {
  Format f{argInt(env, a[0], "mantissaBits"), argInt(env, a[1], "minNormalExponent"), argNumber(env, a[2], "maxFinite"),
           argBool(env, a[3], "hasInfinity"), argBool(env, a[4], "saturate"), argBool(env, a[5], "negativeZero")};
  if (f.mantissaBits < 0 || f.mantissaBits > 52 || f.minNormalExponent < -1022 || !(f.maxFinite > 0))
    throw ArgError("round: not a floating-point format");
  return f;
}

// roundingFormat(mantissaBits, minNormalExponent, maxFinite, hasInfinity, saturate, negativeZero) -> format id
napi_value RoundingFormat(napi_env env, napi_callback_info info) {
  napi_value a[6];
  getArgs(env, info, 6, a);
  KEEL_GUARD(env, "roundingFormat", {
    Format f = formatArg(env, a);
    for (size_t i = 0; i < g_formats.size(); i++) {
      const Format& g = g_formats[i];
      if (g.mantissaBits == f.mantissaBits && g.minNormalExponent == f.minNormalExponent && g.maxFinite == f.maxFinite &&
          g.hasInfinity == f.hasInfinity && g.saturate == f.saturate && g.negativeZero == f.negativeZero)
        return jsInt(env, static_cast<int64_t>(i));
    }
    g_formats.push_back(f);
    return jsInt(env, static_cast<int64_t>(g_formats.size() - 1));
  })
}

// roundFormat(id, format, differentiable) -> id
napi_value RoundFormat(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "round", {
    const at::Tensor& x = argTensor(env, a[0], "x");
    const Format& f = formatById(env, a[1]);
    if (argBool(env, a[2], "differentiable")) return jsTensor(env, roundDifferentiable(x, f));
    return jsTensor(env, roundValues(x, f));
  })
}

// Nothing but this handle holds x or its memory: no view, no other handle,
// no autograd node that saved it (a saved output shares its storage).
bool exclusive(const at::Tensor& x) {
  return x.use_count() == 1 && x.has_storage() && x.storage().use_count() == 1 && x.is_contiguous() && x.layout() == at::kStrided;
}

// An op's output rounded where it lies when nothing else can see it or it
// already holds the format's values, with grad a C++ hook rounding its
// gradient: true then. x must be referred to only as the JS handle would
// (its slot, or the call's stack): the use counts say who else holds it.
// false: the caller takes a rounded copy (roundedOutput).
bool roundOutputInPlace(const at::Tensor& x, const Format& f) {
  const bool grad = at::GradMode::is_enabled() && x.requires_grad();
  // a saved output (relu's) that rounding leaves unchanged needs no copy either
  const bool own = exclusive(x);
  // the handle is kept only for the op's own new tensor (its storage may be
  // shared with a saved copy): never an input handed back (to, contiguous) or a view
  if (!((!grad || x.grad_fn() != nullptr) && x.is_contiguous() && x.layout() == at::kStrided &&
        (own || (x.use_count() == 1 && !x.is_view() && holdsFormat(x, f)))))
    return false;
  at::Tensor t = x;  // the same TensorImpl (the data is rounded, not the handle replaced)
  if (own) roundInto(t, t, f);
  if (grad) {
    Format kept = f;
    t.register_hook([kept](const at::Tensor& g) -> at::Tensor { return roundGradient(g, kept, 2); });
  }
  return true;
}

// A rounded copy of an op's output; with grad behind a RoundBackward node.
at::Tensor roundedOutput(const at::Tensor& x, const Format& f) {
  return at::GradMode::is_enabled() && x.requires_grad() ? roundDifferentiable(x, f) : roundValues(x, f);
}

// roundOutput(id, format, inPlace) -> id (-1 off the CPU: the caller rounds it): an op's output rounded, in place
// when nothing else can see it or it already holds the format's values (the
// handle comes back), else as a rounded copy (a new handle). With grad, backward rounds the gradient reaching it:
// a C++ hook on the output rounded in place, a RoundBackward node on a copy.
napi_value RoundOutput(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "round", {
    int32_t id = argTensorId(env, a[0], "x");
    const at::Tensor& x = slot(id, "x");
    const Format& f = formatById(env, a[1]);
    if (!x.device().is_cpu()) return jsInt(env, -1);
    checkRoundable(x, "round");
    if (argBool(env, a[2], "inPlace") && roundOutputInPlace(x, f)) return jsInt(env, id);
    return jsTensor(env, roundedOutput(x, f));
  })
}

// A tensor an op wrote into, rounded where it is (one version bump, as a copy_
// of the rounded values would make).
void roundWritten(at::Tensor& t, const Format& f) {
  at::NoGradGuard noGrad;
  if (t.is_contiguous() && t.layout() == at::kStrided) {
    roundInto(t, t, f);
    torch::autograd::impl::bump_version(t);
  } else {
    t.copy_(roundValues(t, f));
  }
}

// roundInPlace(ids, format): tensors an op wrote into, rounded where they are.
napi_value RoundInPlace(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "round", {
    std::vector<at::Tensor> ts = argTensorList(env, a[0], "tensors");
    const Format& f = formatById(env, a[1]);
    for (at::Tensor& t : ts) {
      checkRoundable(t, "round");
      roundWritten(t, f);
    }
    return nullptr;
  })
}

// ---- the policy's memory: which tensors hold a format's values, the rounded inputs of a run

// Per slot (one JS Tensor: its id and generation), the versions at which its
// tensor was known to hold a format's values, by format key (the format's id
// without saturation: the same values). What JS knew in a WeakMap per format,
// kept here so that an op's call reads it without a JS call per input.
constexpr int kKnownFormats = 4;
struct Knowledge {
  uint32_t generation = 0;
  int32_t keys[kKnownFormats] = {-1, -1, -1, -1};
  int64_t versions[kKnownFormats] = {};
  uint8_t next = 0;  // the entry the next new format takes (the oldest)
};
std::vector<Knowledge> g_known;

bool isKnown(int32_t id, const at::Tensor& t, int32_t key) {
  if (id < 0 || static_cast<size_t>(id) >= g_known.size()) return false;
  const Knowledge& k = g_known[id];
  if (k.generation != slotGeneration(id)) return false;
  for (int i = 0; i < kKnownFormats; i++)
    if (k.keys[i] == key) return k.versions[i] == static_cast<int64_t>(t._version());
  return false;
}

void setKnown(int32_t id, const at::Tensor& t, int32_t key) {
  if (id < 0) return;
  if (static_cast<size_t>(id) >= g_known.size()) g_known.resize(static_cast<size_t>(id) + 1024);
  Knowledge& k = g_known[id];
  const uint32_t generation = slotGeneration(id);
  if (k.generation != generation) k = Knowledge{generation};
  int i = 0;
  while (i < kKnownFormats && k.keys[i] != key) i++;
  if (i == kKnownFormats) {  // a fifth format on one tensor forgets the oldest (a later input re-checks it)
    i = k.next;
    k.next = static_cast<uint8_t>((k.next + 1) % kKnownFormats);
    k.keys[i] = key;
  }
  k.versions[i] = static_cast<int64_t>(t._version());
}

// A rounded input, made once per run, source and version (a second use shares
// its RoundBackward node: backward sums the uses' gradients, then rounds once).
struct RoundedEntry {
  uint32_t generation;
  int64_t version;
  bool grad;
  at::Tensor rounded;
};

// One withPrecision run (the innermost is the last).
struct PrecisionRun {
  int32_t format;
  int32_t key;  // knowledge key
  bool narrowsFloat32, narrowsFloat64;
  std::unordered_map<int32_t, RoundedEntry> entries;  // by the source's slot
};
std::vector<PrecisionRun> g_runs;

PrecisionRun& innermostRun() {
  if (g_runs.empty()) throw std::runtime_error("round: no precision run is open (roundingRunBegin)");
  return g_runs.back();
}

bool narrows(const PrecisionRun& run, const at::Tensor& t) {
  const auto dt = t.scalar_type();
  return dt == at::kFloat ? run.narrowsFloat32 : dt == at::kDouble && run.narrowsFloat64;
}

// Source t (slot id, version v) as an op's input under the run: a rounded copy
// (with grad, behind a RoundBackward node), or, without grad, none when t
// already holds the format's values (then known). fresh: made by this call.
c10::optional<at::Tensor> roundedInput(PrecisionRun& run, int32_t id, const at::Tensor& t, int64_t v, bool grad, bool* fresh = nullptr) {
  const uint32_t generation = slotGeneration(id);
  auto it = run.entries.find(id);
  if (it != run.entries.end()) {
    const RoundedEntry& e = it->second;
    if (e.generation == generation && e.version == v && e.grad == grad) {
      if (fresh) *fresh = false;
      return e.rounded;
    }
    run.entries.erase(it);
  }
  const Format& f = g_formats[run.format];
  at::Tensor r;
  if (grad) {
    r = roundDifferentiable(t, f);
  } else {
    at::Tensor in = t.detach().contiguous();
    r = at::empty_like(in, at::MemoryFormat::Contiguous);
    roundInto(in, r, f);
    if (!valuesDiffer(in, r)) {
      setKnown(id, t, run.key);
      return c10::nullopt;
    }
  }
  run.entries.emplace(id, RoundedEntry{generation, v, grad, r});
  if (fresh) *fresh = true;
  return r;
}

// roundingRunBegin(format, key, narrowsFloat32, narrowsFloat64): a withPrecision run opens (innermost from now).
napi_value RoundingRunBegin(napi_env env, napi_callback_info info) {
  napi_value a[4];
  getArgs(env, info, 4, a);
  KEEL_GUARD(env, "withPrecision", {
    formatById(env, a[0]);
    formatById(env, a[1]);
    g_runs.push_back(PrecisionRun{static_cast<int32_t>(argInt(env, a[0], "format")), static_cast<int32_t>(argInt(env, a[1], "key")),
                                  argBool(env, a[2], "narrowsFloat32"), argBool(env, a[3], "narrowsFloat64"), {}});
    return nullptr;
  })
}

// roundingRunEnd(): the innermost run ends; its rounded inputs are let go (the graph holds its own references).
napi_value RoundingRunEnd(napi_env env, napi_callback_info info) {
  KEEL_GUARD(env, "withPrecision", {
    innermostRun();
    g_runs.pop_back();
    return nullptr;
  })
}

// roundingEntry(id, grad) -> [id, fresh], null or -1: tensor id as an op's
// input under the innermost run (roundedInput); -1 off the CPU (the caller
// rounds it another way). The JS interceptor's way to the run's entries.
napi_value RoundingEntry(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "round", {
    int32_t id = argTensorId(env, a[0], "x");
    const at::Tensor& x = slot(id, "x");
    PrecisionRun& run = innermostRun();
    if (!x.device().is_cpu()) return jsInt(env, -1);
    checkRoundable(x, "round");
    bool fresh = false;
    auto r = roundedInput(run, id, x, static_cast<int64_t>(x._version()), argBool(env, a[1], "grad"), &fresh);
    if (!r) return jsNull(env);
    napi_value pair;
    napi_create_array_with_length(env, 2, &pair);
    napi_set_element(env, pair, 0, jsTensor(env, *r));
    napi_set_element(env, pair, 1, jsBool(env, fresh));
    return pair;
  })
}

// roundingKnown(id, key) -> the tensor held the format's values at its present version
napi_value RoundingKnown(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "round", {
    int32_t id = argTensorId(env, a[0], "x");
    return jsBool(env, isKnown(id, slot(id, "x"), static_cast<int32_t>(argInt(env, a[1], "key"))));
  })
}

// markRoundingKnown(id, key): the tensor holds the format's values at its present version
napi_value MarkRoundingKnown(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "round", {
    int32_t id = argTensorId(env, a[0], "x");
    setKnown(id, slot(id, "x"), static_cast<int32_t>(argInt(env, a[1], "key")));
    return nullptr;
  })
}

// representable(id, format) -> every value is the format's (NaN counts)
napi_value Representable(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "isRepresentable", {
    const at::Tensor& x = argTensor(env, a[0], "x");
    const Format& f = formatById(env, a[1]);
    if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
      throw ArgError(std::string("isRepresentable: expected a float32 or float64 tensor, got ") + c10::toString(x.scalar_type()));
    // the one rounding algorithm, then a comparison (NaN equal to NaN)
    at::Tensor in = x.detach().contiguous();
    return jsBool(env, !valuesDiffer(in, roundValues(in, f)));
  })
}

}  // namespace

RoundedOpInfo roundedOpInfo(const c10::FunctionSchema& schema) {
  RoundedOpInfo info;
  for (const c10::Argument& a : schema.arguments()) {
    c10::TypePtr t = a.real_type();
    if (t->kind() == c10::TypeKind::OptionalType) t = t->castRaw<c10::OptionalType>()->getElementType();
    uint8_t kind = 0;
    if (t->kind() == c10::TypeKind::TensorType) {
      kind = 1;
    } else if (t->kind() == c10::TypeKind::ListType) {
      c10::TypePtr e = t->castRaw<c10::ListType>()->getElementType();
      if (e->kind() == c10::TypeKind::OptionalType) e = e->castRaw<c10::OptionalType>()->getElementType();
      if (e->kind() == c10::TypeKind::TensorType) kind = 2;
    }
    info.tensorArgs.push_back(kind);
    const bool writes = a.alias_info() != nullptr && a.alias_info()->isWrite();
    info.writes.push_back(writes);
    info.anyWrites = info.anyWrites || writes;
  }
  // as precision/policy.ts's isAliasingOp reads the printed schema: a return
  // annotated (a) or (a -> *), none written (!)
  std::ostringstream printed;
  printed << schema;
  const std::string sig = printed.str();
  const std::string ret = sig.substr(sig.rfind("->"));
  static const std::regex aliased("\\([a-z](?: -> \\*)?\\)");
  info.aliasing = std::regex_search(ret, aliased) && ret.find('!') == std::string::npos;
  return info;
}

namespace {

// Calls fn(tensor, k, i) on each defined tensor argument in the stack's
// arguments (k: its index in the call's ids, where None counts too; i: the
// argument), schema order, a list's elements in order; fn returns a
// replacement or nullopt.
template <typename Fn>
void eachTensorArg(const RoundedOpInfo& op, torch::jit::Stack& stack, Fn fn) {
  size_t k = 0;
  const size_t first = stack.size() - op.tensorArgs.size();
  for (size_t i = 0; i < op.tensorArgs.size(); i++) {
    c10::IValue& v = stack[first + i];
    if (op.tensorArgs[i] == 1) {
      if (v.isTensor()) {
        if (auto r = fn(v.toTensor(), k, i)) v = c10::IValue(std::move(*r));
      }
      k++;
    } else if (op.tensorArgs[i] == 2) {
      if (v.isTensorList()) {
        c10::List<at::Tensor> list = v.toTensorList();  // shares the stack's list
        for (size_t j = 0; j < list.size(); j++, k++)
          if (auto r = fn(list.get(j), k, i)) list.set(j, std::move(*r));
      } else if (v.isList()) {  // Tensor?[]
        c10::impl::GenericList list = v.toList();
        for (size_t j = 0; j < list.size(); j++, k++) {
          c10::IValue e = list.get(j);
          if (!e.isTensor()) continue;
          if (auto r = fn(e.toTensor(), k, i)) list.set(j, c10::IValue(std::move(*r)));
        }
      }
    }
  }
}

}  // namespace

RoundedCall::RoundedCall(const RoundedOpInfo& op, const std::vector<int32_t>& ids) : op_(op), ids_(ids) {}

// As the interceptor's before(): each input not known to hold the format
// replaced by the run's rounded copy; a leaf (parameter) or a tensor from
// outside the policy that needs a gradient takes one behind a RoundBackward
// node, so that its gradient is rounded too.
bool RoundedCall::before(torch::jit::Stack& stack) {
  PrecisionRun& run = innermostRun();
  bool offCpu = false;
  bool needsGrad = false;
  eachTensorArg(op_, stack, [&](const at::Tensor& t, size_t, size_t) -> c10::optional<at::Tensor> {
    offCpu = offCpu || !t.device().is_cpu();
    needsGrad = needsGrad || t.requires_grad();
    return c10::nullopt;
  });
  for (const c10::IValue& v : stack)
    if (v.isDevice() && !v.toDevice().is_cpu()) offCpu = true;
  if (offCpu) return false;
  if (op_.anyWrites) {
    // an op that writes into an input gets its inputs as they are; what it wrote is rounded after it
    eachTensorArg(op_, stack, [&](const at::Tensor& t, size_t k, size_t i) -> c10::optional<at::Tensor> {
      if (op_.writes[i]) written_.emplace_back(ids_[k], t);
      return c10::nullopt;
    });
    return true;
  }
  needsGrad = needsGrad && at::GradMode::is_enabled();
  replaced_.assign(ids_.size(), false);
  eachTensorArg(op_, stack, [&](const at::Tensor& t, size_t k, size_t) -> c10::optional<at::Tensor> {
    if (!narrows(run, t)) return c10::nullopt;
    const int32_t id = ids_[k];
    const bool known = isKnown(id, t, run.key);
    c10::optional<at::Tensor> r;
    if (needsGrad && t.requires_grad() && (!known || t.is_leaf())) r = roundedInput(run, id, t, t._version(), true);
    else if (!known) r = roundedInput(run, id, t, t._version(), false);
    if (r) replaced_[k] = true;
    return r;
  });
  if (op_.aliasing) {
    // views of inputs that all hold the format stay views (not rounded copies)
    bool any = false, all = true;
    eachTensorArg(op_, stack, [&](const at::Tensor& t, size_t k, size_t) -> c10::optional<at::Tensor> {
      if (t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble) return c10::nullopt;
      any = true;
      all = all && narrows(run, t) && (replaced_[k] || isKnown(ids_[k], t, run.key));
      return c10::nullopt;
    });
    viewsKnownInputs_ = any && all;
  }
  return true;
}

// As the interceptor's after(): each output rounded (in place when nothing
// else holds it, else a rounded copy), or, for an op that wrote into its
// inputs, what it wrote rounded where it lies, unless that would corrupt a
// recorded graph.
void RoundedCall::after(torch::jit::Stack& stack) {
  PrecisionRun& run = innermostRun();
  const Format& f = g_formats[run.format];
  const bool gradMode = at::GradMode::is_enabled();
  size_t outputs = 0;
  auto output = [&](at::Tensor o, size_t index, int64_t element) -> at::Tensor {
    if (!o.defined()) return o;
    outputs++;
    if (!narrows(run, o)) return o;
    for (auto& w : written_) {
      if (!w.second.is_same(o)) continue;
      if (!(gradMode && o.requires_grad())) {
        roundWritten(o, f);
        setKnown(w.first, o, run.key);
      }
      return o;
    }
    if (!viewsKnownInputs_ && !roundOutputInPlace(o, f)) o = roundedOutput(o, f);
    known_.emplace_back(index, element);
    return o;
  };
  // the outputs JS wraps as tensors: one, the elements of one list, or the tensors of a tuple
  results_ = stack.size();
  if (results_ == 1 && stack[0].isTensorList()) {
    list_ = true;
    c10::List<at::Tensor> list = stack[0].toTensorList();
    for (size_t j = 0; j < list.size(); j++) {
      at::Tensor o = list.extract(j);  // alone: the use counts say whether anything else holds it
      list.set(j, output(std::move(o), 0, static_cast<int64_t>(j)));
    }
  } else {
    for (size_t j = 0; j < results_; j++) {
      if (!stack[j].isTensor()) continue;
      at::Tensor o = std::move(stack[j]).toTensor();
      stack[j] = output(std::move(o), j, -1);
    }
  }
  if (outputs > 0 || !op_.anyWrites) return;
  // an op that wrote into its arguments and returned nothing (the _foreach_*_ ops)
  for (auto& w : written_) {
    at::Tensor& t = w.second;
    if (!t.defined() || !narrows(run, t) || (gradMode && t.requires_grad())) continue;
    roundWritten(t, f);
    setKnown(w.first, t, run.key);
  }
}

void RoundedCall::noteKnown(napi_env env, napi_value result) {
  const int32_t key = innermostRun().key;
  for (const auto& [index, element] : known_) {
    napi_value v = result;
    if (list_) NAPI_OK(napi_get_element(env, result, static_cast<uint32_t>(element), &v));
    else if (results_ > 1) NAPI_OK(napi_get_element(env, result, static_cast<uint32_t>(index), &v));
    int32_t id;
    NAPI_OK(napi_get_value_int32(env, v, &id));
    setKnown(id, slot(id, "output"), key);
  }
}

void registerRoundFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "roundingFormat", RoundingFormat);
  defineFunction(env, exports, "roundFormat", RoundFormat);
  defineFunction(env, exports, "roundOutput", RoundOutput);
  defineFunction(env, exports, "roundInPlace", RoundInPlace);
  defineFunction(env, exports, "representable", Representable);
  defineFunction(env, exports, "roundingRunBegin", RoundingRunBegin);
  defineFunction(env, exports, "roundingRunEnd", RoundingRunEnd);
  defineFunction(env, exports, "roundingEntry", RoundingEntry);
  defineFunction(env, exports, "roundingKnown", RoundingKnown);
  defineFunction(env, exports, "markRoundingKnown", MarkRoundingKnown);
}

}  // namespace keel
