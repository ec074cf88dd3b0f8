// Keel's native boundary: shared declarations of the addon's parts.
//
// Tensors live in a slot table; JS holds an int32 slot id (no N-API object per
// tensor, no finalizer per call: DESIGN.md measured those as the boundary's
// main cost). Every entry point runs inside KEEL_GUARD, which turns any C++
// exception into a JS Error; nothing thrown in C++ may reach N-API.
#pragma once

#include <ATen/core/function_schema.h>
#include <ATen/core/stack.h>
#include <node_api.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace keel {

// ---- errors ---------------------------------------------------------------

// A wrong JS argument: becomes a TypeError.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A JS exception is already pending (or was saved from a JS callback that
// ran inside libtorch): rethrown as the original JS value.
struct JsError : std::exception {
  const char* what() const noexcept override { return "JavaScript callback threw"; }
};

void throwJs(napi_env env, const std::string& context, const std::exception& e);
// Saves the pending JS exception (after a failed call into JS from C++) so the
// boundary can rethrow it, then throws JsError.
[[noreturn]] void rethrowPendingJs(napi_env env);

#define KEEL_GUARD(env, context, ...)          \
  try {                                        \
    __VA_ARGS__                                \
  } catch (const std::exception& e) {          \
    ::keel::throwJs(env, context, e);          \
    return nullptr;                            \
  }

#define NAPI_OK(call)                                              \
  do {                                                             \
    if ((call) != napi_ok) throw ::keel::JsError();                \
  } while (0)

// ---- tensor slots -----------------------------------------------------------

int32_t store(napi_env env, at::Tensor t);
const at::Tensor& slot(int32_t id, const char* what);
void release(napi_env env, int32_t id);
// Counts the tensors a slot has held: a slot id and its generation name one JS Tensor.
uint32_t slotGeneration(int32_t id);
int64_t liveTensors();
int64_t liveBytes();
bool envAlive();
napi_env mainEnv();

// ---- JS value helpers --------------------------------------------------------

// The first `want` arguments of a call into argv, undefined where not given;
// returns how many were given.
size_t getArgs(napi_env env, napi_callback_info info, size_t want, napi_value* argv);

int32_t argTensorId(napi_env env, napi_value v, const char* what);
const at::Tensor& argTensor(napi_env env, napi_value v, const char* what);
std::vector<at::Tensor> argTensorList(napi_env env, napi_value v, const char* what);
std::vector<int64_t> argIntList(napi_env env, napi_value v, const char* what);
std::vector<double> argNumberList(napi_env env, napi_value v, const char* what);
double argNumber(napi_env env, napi_value v, const char* what);
int64_t argInt(napi_env env, napi_value v, const char* what);
bool argBool(napi_env env, napi_value v, const char* what);
// A JS number or boolean as a Scalar: integral numbers travel as int (as PyTorch does for Python ints).
c10::Scalar argScalar(napi_env env, napi_value v, const char* what);
std::string argString(napi_env env, napi_value v, const char* what);
bool isNullish(napi_env env, napi_value v);
// arr[i]; a throwing getter becomes a pending JS exception (JsError), never an unset value.
napi_value elementAt(napi_env env, napi_value arr, uint32_t i);

napi_value jsInt(napi_env env, int64_t v);
napi_value jsNumber(napi_env env, double v);
napi_value jsBool(napi_env env, bool v);
napi_value jsString(napi_env env, const std::string& s);
napi_value jsUndefined(napi_env env);
napi_value jsNull(napi_env env);
// A tensor handle for JS: a slot id, or null for an undefined tensor.
napi_value jsTensor(napi_env env, at::Tensor t);

// A persistent reference to a JS function, deleted on the JS thread when the
// last owner goes (hooks and custom backward nodes own these).
struct JsFunctionRef {
  napi_ref ref = nullptr;
  JsFunctionRef(napi_env env, napi_value fn);
  ~JsFunctionRef();
  napi_value call(napi_env env, size_t argc, const napi_value* argv) const;
};

// ---- the parts ----------------------------------------------------------------

void registerTensorFunctions(napi_env env, napi_value exports);
void registerDispatchFunctions(napi_env env, napi_value exports);
void registerAutogradFunctions(napi_env env, napi_value exports);
void registerInfoFunctions(napi_env env, napi_value exports);
void registerAmpFunctions(napi_env env, napi_value exports);
void registerRoundFunctions(napi_env env, napi_value exports);
void registerDistributedFunctions(napi_env env, napi_value exports);
void registerGuardFunctions(napi_env env, napi_value exports);
void registerFastOpFunctions(napi_env env, napi_value exports);
void registerOptimFunctions(napi_env env, napi_value exports);
void registerAdamFunctions(napi_env env, napi_value exports);
void registerSgdFunctions(napi_env env, napi_value exports);
void registerSingFunctions(napi_env env, napi_value exports);

// One gradient's SING standardisation, ATen ops in place (native/optim.cc; native/sing.cc's fallback).
void standardizeGradient(at::Tensor& g, bool centralize, bool normalize, double eps);
// What the optimizers' fused passes read through a float*: a CPU float32
// strided contiguous tensor of numel elements, no neg/conj bit (native/optim.cc).
bool plainFloat32(const at::Tensor& t, int64_t numel);
// Elements per thread below which the addon's memory-bound passes (Adam's
// and SGD's, the guard's sums and copies, the rounding) stay on one thread
// (native/optim.cc). SING's pass keeps ATen's split on purpose: its scalar
// tails (glibc's exp and log1p, not SLEEF's) must fall where ATen's do. Under passive OpenMP waiting, Keel's default, a parallel
// region first wakes a sleeping worker (~50 µs on a shared 2-core VM: Adam's
// pass over 65,536 floats took 81 µs on 2 threads, 35 µs on 1), so ATen's
// grain of 32,768 loses below ~0.5M elements; with OMP_WAIT_POLICY=ACTIVE
// the workers spin and ATen's grain stands.
int64_t passGrain();

// ---- the precision policy inside an op's call (native/round.cc) --------------
//
// dispatch.cc's callRounded runs an op under the innermost precision run JS
// opened (roundingRunBegin): its inputs and outputs rounded as the policy's
// interceptor in precision/policy.ts does, with no JS call per tensor.

// Per operator, read once from its schema.
struct RoundedOpInfo {
  std::vector<uint8_t> tensorArgs;  // per argument: 0 not a tensor, 1 a Tensor (or None), 2 a list of tensors
  std::vector<bool> writes;         // per argument: the op writes into it
  bool anyWrites = false;
  bool aliasing = false;  // its outputs view an input (and it writes none)
};
RoundedOpInfo roundedOpInfo(const c10::FunctionSchema& schema);

// One op's call under the run. ids: the slot of each tensor argument in
// schema order (-1 for None), a list's elements in order.
class RoundedCall {
 public:
  RoundedCall(const RoundedOpInfo& op, const std::vector<int32_t>& ids);
  // The inputs in the stack rounded; false (nothing done) when a tensor or a
  // device is off the CPU: the JS interceptor takes the op then.
  bool before(torch::jit::Stack& stack);
  // The outputs in the stack rounded (the op has run).
  void after(torch::jit::Stack& stack);
  // The outputs known to hold the format, noted by the slots call returned in result.
  void noteKnown(napi_env env, napi_value result);

 private:
  const RoundedOpInfo& op_;
  const std::vector<int32_t>& ids_;
  std::vector<bool> replaced_;  // per id: the op got a rounded copy (known to hold the format)
  std::vector<std::pair<int32_t, at::Tensor>> written_;  // an op that writes: the slots and tensors it writes into
  bool viewsKnownInputs_ = false;  // an aliasing op's inputs all hold the format: its outputs stay views
  std::vector<std::pair<size_t, int64_t>> known_;  // outputs to note: stack index, list element (-1: none)
  size_t results_ = 0;
  bool list_ = false;  // the op returned one list
};

void defineFunction(napi_env env, napi_value exports, const char* name, napi_callback cb);

}  // namespace keel
