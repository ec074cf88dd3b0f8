// Autocast: libtorch's own (the AutocastCPU / AutocastCUDA dispatch keys and
// their op lists, as PyTorch 1.13's torch.autocast switches them). The state
// is thread-local in libtorch; Keel runs ops on the JS thread only.
#include "keel.h"

#include <ATen/autocast_mode.h>

namespace keel {

namespace {

bool isCuda(napi_env env, napi_value v) {
  std::string device = argString(env, v, "device");
  if (device == "cpu") return false;
  if (device == "cuda") return true;
  throw ArgError("autocast: device must be 'cpu' or 'cuda', got '" + device + "'");
}

// autocastEnter(device, dtypeCode, cacheEnabled, enabled) -> [wasEnabled, previousDtype, previousCache]
napi_value AutocastEnter(napi_env env, napi_callback_info info) {
  napi_value a[4];
  getArgs(env, info, 4, a);
  KEEL_GUARD(env, "autocast", {
    bool cuda = isCuda(env, a[0]);
    auto dtype = static_cast<at::ScalarType>(argInt(env, a[1], "dtype"));
    if (dtype != at::kBFloat16 && dtype != at::kHalf && dtype != at::kFloat)
      throw ArgError(std::string("autocast: dtype must be bfloat16 or float16, got ") + c10::toString(dtype));
    if (cuda && !torch::cuda::is_available()) throw std::runtime_error("autocast: this libtorch has no CUDA (or no GPU is visible)");
    bool cache = argBool(env, a[2], "cacheEnabled");
    bool enabled = argBool(env, a[3], "enabled");
    bool was = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    at::ScalarType prev = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    bool prevCache = at::autocast::is_autocast_cache_enabled();
    if (cuda) {
      at::autocast::set_enabled(enabled);
      at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
      at::autocast::set_cpu_enabled(enabled);
      at::autocast::set_autocast_cpu_dtype(dtype);
    }
    at::autocast::set_autocast_cache_enabled(cache);
    at::autocast::increment_nesting();
    napi_value r;
    napi_create_array_with_length(env, 3, &r);
    napi_set_element(env, r, 0, jsBool(env, was));
    napi_set_element(env, r, 1, jsInt(env, static_cast<int>(prev)));
    napi_set_element(env, r, 2, jsBool(env, prevCache));
    return r;
  })
}

// autocastExit(device, wasEnabled, previousDtype, previousCache): as torch.autocast.__exit__
napi_value AutocastExit(napi_env env, napi_callback_info info) {
  napi_value a[4];
  getArgs(env, info, 4, a);
  KEEL_GUARD(env, "autocast", {
    bool cuda = isCuda(env, a[0]);
    bool was = argBool(env, a[1], "wasEnabled");
    auto prev = static_cast<at::ScalarType>(argInt(env, a[2], "previousDtype"));
    // the cached casts of leaf tensors live until the outermost autocast exits
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    if (cuda) {
      at::autocast::set_enabled(was);
      at::autocast::set_autocast_gpu_dtype(prev);
    } else {
      at::autocast::set_cpu_enabled(was);
      at::autocast::set_autocast_cpu_dtype(prev);
    }
    at::autocast::set_autocast_cache_enabled(argBool(env, a[3], "previousCache"));
    return jsUndefined(env);
  })
}

// autocastState() -> { cpu, cpuDtype, cuda, cudaDtype }
napi_value AutocastState(napi_env env, napi_callback_info) {
  KEEL_GUARD(env, "autocast", {
    napi_value o;
    napi_create_object(env, &o);
    napi_set_named_property(env, o, "cpu", jsBool(env, at::autocast::is_cpu_enabled()));
    napi_set_named_property(env, o, "cpuDtype", jsInt(env, static_cast<int>(at::autocast::get_autocast_cpu_dtype())));
    napi_set_named_property(env, o, "cuda", jsBool(env, at::autocast::is_enabled()));
    napi_set_named_property(env, o, "cudaDtype", jsInt(env, static_cast<int>(at::autocast::get_autocast_gpu_dtype())));
    return o;
  })
}

}  // namespace

void registerAmpFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "autocastEnter", AutocastEnter);
  defineFunction(env, exports, "autocastExit", AutocastExit);
  defineFunction(env, exports, "autocastState", AutocastState);
}

}  // namespace keel
