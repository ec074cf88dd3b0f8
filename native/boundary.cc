// The boundary itself: the slot table of tensors, error translation, JS value
// helpers and the module's entry point.
#include <algorithm>
#include "keel.h"

#include <cstdlib>
#include <cstring>
#include <malloc.h>

namespace keel {

// ---- errors ---------------------------------------------------------------

static napi_ref g_savedJsError = nullptr;

void rethrowPendingJs(napi_env env) {
  napi_value err;
  if (napi_get_and_clear_last_exception(env, &err) == napi_ok) {
    if (g_savedJsError) napi_delete_reference(env, g_savedJsError);
    // N-API 8 references objects only: hold the thrown value (which may be a
    // string or a number) in a holder object.
    napi_value holder;
    napi_create_object(env, &holder);
    napi_set_named_property(env, holder, "value", err);
    napi_create_reference(env, holder, 1, &g_savedJsError);
  }
  throw JsError();
}

void throwJs(napi_env env, const std::string& context, const std::exception& e) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;  // N-API already holds the exception to report
  if (g_savedJsError) {
    // A JS callback (hook, custom backward) threw inside libtorch: rethrow
    // the original JS exception, whatever libtorch wrapped it in.
    napi_value holder, err;
    napi_get_reference_value(env, g_savedJsError, &holder);
    napi_get_named_property(env, holder, "value", &err);
    napi_delete_reference(env, g_savedJsError);
    g_savedJsError = nullptr;
    napi_throw(env, err);
    return;
  }
  if (dynamic_cast<const ArgError*>(&e)) {
    napi_throw_type_error(env, nullptr, (context + ": " + e.what()).c_str());
    return;
  }
  std::string msg = e.what();
  if (auto ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
  // "Could not run ... with arguments from the 'CPU' backend" goes on to list
  // every registered kernel: keep the first paragraph of such long messages.
  size_t para = msg.find("\n\n");
  if (msg.size() > 1000 && para != std::string::npos) msg = msg.substr(0, para) + " (…)";
  std::string text = context + ": " + msg;
  napi_value jsMsg, err;
  napi_create_string_utf8(env, text.c_str(), text.size(), &jsMsg);
  napi_create_error(env, nullptr, jsMsg, &err);
  napi_value op;
  napi_create_string_utf8(env, context.c_str(), context.size(), &op);
  napi_set_named_property(env, err, "op", op);
  napi_throw(env, err);
}

// ---- tensor slots ---------------------------------------------------------

namespace {
std::vector<at::Tensor> g_slots;
std::vector<int64_t> g_slotBytes;
// bumped each time a slot takes a new tensor: what native code remembers per
// slot (the precision policy's knowledge) is valid for one generation
std::vector<uint32_t> g_slotGenerations;
std::vector<int32_t> g_freeSlots;
int64_t g_live = 0;
int64_t g_bytes = 0;
int64_t g_reportedBytes = 0;
napi_env g_env = nullptr;
bool g_alive = false;

constexpr int64_t kReportQuantum = 1 << 20;  // batch V8 external-memory updates
// V8 aborts the process (a failed CHECK, SIGTRAP) when one adjustment passes
// 2^60 bytes: a view such as broadcast_to([5, 5, 2^53 - 1]) counts as
// numel × element size, so cap what one tensor counts and what is reported.
constexpr int64_t kMaxTensorBytes = int64_t{1} << 40;
constexpr int64_t kMaxReportedBytes = int64_t{1} << 50;

void reportExternal(napi_env env) {
  int64_t target = std::min(std::max(g_bytes, int64_t{0}), kMaxReportedBytes);
  int64_t delta = target - g_reportedBytes;
  if (delta > kReportQuantum || delta < -kReportQuantum) {
    int64_t result;
    napi_adjust_external_memory(env, delta, &result);
    g_reportedBytes = target;
  }
}

int64_t tensorBytes(const at::Tensor& t) {
  if (!t.defined()) return 0;
  const int64_t n = static_cast<int64_t>(t.numel());
  const int64_t size = static_cast<int64_t>(t.element_size());
  // saturating: numel × element size of a huge view can overflow int64
  return size > 0 && n > kMaxTensorBytes / size ? kMaxTensorBytes : n * size;
}
}  // namespace

bool envAlive() { return g_alive; }
napi_env mainEnv() { return g_env; }
int64_t liveTensors() { return g_live; }
uint32_t slotGeneration(int32_t id) {
  return id >= 0 && static_cast<size_t>(id) < g_slotGenerations.size() ? g_slotGenerations[id] : 0;
}
int64_t liveBytes() { return g_bytes; }

int32_t store(napi_env env, at::Tensor t) {
  int32_t id;
  if (!g_freeSlots.empty()) {
    id = g_freeSlots.back();
    g_freeSlots.pop_back();
    g_slots[id] = std::move(t);
  } else {
    id = static_cast<int32_t>(g_slots.size());
    g_slots.push_back(std::move(t));
    g_slotBytes.push_back(0);
    g_slotGenerations.push_back(0);
  }
  ++g_slotGenerations[id];
  int64_t b = tensorBytes(g_slots[id]);
  g_slotBytes[id] = b;
  g_bytes += b;
  ++g_live;
  reportExternal(env);
  return id;
}

const at::Tensor& slot(int32_t id, const char* what) {
  if (id < 0 || static_cast<size_t>(id) >= g_slots.size() || !g_slots[id].defined())
    throw ArgError(std::string("argument '") + what + "' is not a live tensor (disposed or invalid handle " +
                   std::to_string(id) + ")");
  return g_slots[id];
}

void release(napi_env env, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= g_slots.size() || !g_slots[id].defined()) return;
  g_bytes -= g_slotBytes[id];
  g_slotBytes[id] = 0;
  --g_live;
  // Move out first: destroying the tensor may free an autograd graph whose
  // nodes call back into JS, which may store new tensors into g_slots.
  at::Tensor dying = std::move(g_slots[id]);
  g_slots[id] = at::Tensor();
  g_freeSlots.push_back(id);
  dying.reset();
  reportExternal(env);
}

// ---- JS value helpers --------------------------------------------------------

size_t getArgs(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (size_t i = argc; i < want; ++i) argv[i] = undef;
  return argc;
}

napi_value elementAt(napi_env env, napi_value arr, uint32_t i) {
  napi_value e;
  if (napi_get_element(env, arr, i, &e) != napi_ok) throw JsError();
  return e;
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

static std::string typeName(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  switch (t) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: {
      bool arr = false;
      napi_is_array(env, v, &arr);
      return arr ? "array" : "object";
    }
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

static ArgError expected(napi_env env, napi_value v, const char* what, const char* kind) {
  return ArgError(std::string("argument '") + what + "' must be " + kind + ", got " + typeName(env, v));
}

int32_t argTensorId(napi_env env, napi_value v, const char* what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) throw expected(env, v, what, "a tensor handle");
  int32_t id;
  napi_get_value_int32(env, v, &id);
  return id;
}

const at::Tensor& argTensor(napi_env env, napi_value v, const char* what) {
  return slot(argTensorId(env, v, what), what);
}

static uint32_t arrayLength(napi_env env, napi_value v, const char* what, const char* kind) {
  bool arr = false;
  napi_is_array(env, v, &arr);
  if (!arr) throw expected(env, v, what, kind);
  uint32_t n;
  napi_get_array_length(env, v, &n);
  return n;
}

std::vector<at::Tensor> argTensorList(napi_env env, napi_value v, const char* what) {
  uint32_t n = arrayLength(env, v, what, "an array of tensors");
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value e = elementAt(env, v, i);
    out.push_back(argTensor(env, e, what));
  }
  return out;
}

double argNumber(napi_env env, napi_value v, const char* what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) throw expected(env, v, what, "a number");
  double d;
  napi_get_value_double(env, v, &d);
  return d;
}

int64_t argInt(napi_env env, napi_value v, const char* what) {
  double d = argNumber(env, v, what);
  if (!(d <= 9007199254740991.0 && d >= -9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw ArgError(std::string("argument '") + what + "' must be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

std::vector<double> argNumberList(napi_env env, napi_value arr, const char* what) {
  bool isArray = false;
  NAPI_OK(napi_is_array(env, arr, &isArray));
  if (!isArray) throw ArgError(std::string(what) + " must be an array of numbers");
  uint32_t n = 0;
  NAPI_OK(napi_get_array_length(env, arr, &n));
  std::vector<double> out(n);
  for (uint32_t i = 0; i < n; ++i) out[i] = argNumber(env, elementAt(env, arr, i), what);
  return out;
}

std::vector<int64_t> argIntList(napi_env env, napi_value v, const char* what) {
  uint32_t n = arrayLength(env, v, what, "an array of integers");
  std::vector<int64_t> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value e = elementAt(env, v, i);
    out[i] = argInt(env, e, what);
  }
  return out;
}

bool argBool(napi_env env, napi_value v, const char* what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_boolean) throw expected(env, v, what, "a boolean");
  bool b;
  napi_get_value_bool(env, v, &b);
  return b;
}

c10::Scalar argScalar(napi_env env, napi_value v, const char* what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_boolean) return c10::Scalar(argBool(env, v, what));
  double d = argNumber(env, v, what);
  // JS cannot tell 1 from 1.0; integral values travel as int Scalars so that
  // integer tensors stay integer, as PyTorch does for Python ints.
  // (range first: casting NaN, ±inf or |d| >= 2^63 to int64 is undefined)
  if (d < 9007199254740992.0 && d > -9007199254740992.0 && d == static_cast<double>(static_cast<int64_t>(d)))
    return c10::Scalar(static_cast<int64_t>(d));
  return c10::Scalar(d);
}

std::string argString(napi_env env, napi_value v, const char* what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_string) throw expected(env, v, what, "a string");
  size_t len;
  napi_get_value_string_utf8(env, v, nullptr, 0, &len);
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  return s;
}

napi_value jsInt(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}
napi_value jsNumber(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}
napi_value jsBool(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}
napi_value jsString(napi_env env, const std::string& s) {
  napi_value r;
  napi_create_string_utf8(env, s.c_str(), s.size(), &r);
  return r;
}
napi_value jsUndefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}
napi_value jsNull(napi_env env) {
  napi_value r;
  napi_get_null(env, &r);
  return r;
}
napi_value jsTensor(napi_env env, at::Tensor t) {
  if (!t.defined()) return jsNull(env);
  napi_value r;
  napi_create_int32(env, store(env, std::move(t)), &r);
  return r;
}

JsFunctionRef::JsFunctionRef(napi_env env, napi_value fn) { NAPI_OK(napi_create_reference(env, fn, 1, &ref)); }
JsFunctionRef::~JsFunctionRef() {
  if (g_alive && ref) napi_delete_reference(g_env, ref);
}
napi_value JsFunctionRef::call(napi_env env, size_t argc, const napi_value* argv) const {
  napi_value fn, recv, result;
  napi_get_reference_value(env, ref, &fn);
  napi_get_undefined(env, &recv);
  if (napi_call_function(env, recv, fn, argc, argv, &result) != napi_ok) rethrowPendingJs(env);
  return result;
}

void defineFunction(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn);
  napi_set_named_property(env, exports, name, fn);
}

static void onEnvCleanup(void*) {
  // After this, destructors of tensors (and the graph nodes they keep) must
  // not call into JS.
  g_alive = false;
}

}  // namespace keel

NAPI_MODULE_INIT() {
  // glibc's dynamic mmap threshold follows the sizes freed; the order in which
  // tensors are freed sometimes leaves every training step mapping and
  // unmapping its buffers (2-5x slower steps, 4-8x the page faults). Fixed
  // thresholds, as MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ would set,
  // unless the user set those.
  // (KEEL_MALLOPT=0 keeps glibc's defaults: bench/malloc.mjs measures both.)
  const char* keelMallopt = std::getenv("KEEL_MALLOPT");
  bool tune = !(keelMallopt && std::string(keelMallopt) == "0");
  if (tune && !std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 64 << 20);
  if (tune && !std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // No fastbins (tcache, 7 chunks a size, still serves a loop that frees as
  // it goes). A scope that frees many tensors at once freed each small chunk
  // into a fastbin and each larger one into a free region past 64 KiB, which
  // makes glibc consolidate every fastbin on every such free: measured, 1e5
  // `a.add(a)` in one scope took ~1.25x the time of the same loop with
  // dispose(); without fastbins ~1.05x, and dispose() itself no slower.
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tune && !(tunables && std::strstr(tunables, "mxfast"))) mallopt(M_MXFAST, 0);
  keel::g_env = env;
  keel::g_alive = true;
  napi_add_env_cleanup_hook(env, keel::onEnvCleanup, nullptr);
  keel::registerTensorFunctions(env, exports);
  keel::registerDispatchFunctions(env, exports);
  keel::registerAutogradFunctions(env, exports);
  keel::registerInfoFunctions(env, exports);
  keel::registerAmpFunctions(env, exports);
  keel::registerRoundFunctions(env, exports);
  keel::registerDistributedFunctions(env, exports);
  keel::registerGuardFunctions(env, exports);
  keel::registerFastOpFunctions(env, exports);
  keel::registerOptimFunctions(env, exports);
  keel::registerAdamFunctions(env, exports);
  keel::registerSgdFunctions(env, exports);
  keel::registerSingFunctions(env, exports);
  return exports;
}
