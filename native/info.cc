// What this libtorch is and how it runs: version, location, CUDA, the BLAS that
// really serves sgemm_, threads and the default generator.
#include "keel.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include <dlfcn.h>

namespace keel {

namespace {


std::string fileOf(const void* addr) {
  Dl_info info;
  if (addr && dladdr(addr, &info) && info.dli_fname) return info.dli_fname;
  return "";
}

// at::show_config() says "generic" for Debian's build and OpenBLAS may be
// mapped while reference BLAS answers sgemm_: resolve the symbol itself.
std::string sgemmProvider() {
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  if (!sym) {
    void* h = dlopen(nullptr, RTLD_NOW);
    if (h) sym = dlsym(h, "sgemm_");
  }
  return fileOf(sym);
}

// The kernels OpenBLAS picked when it loaded ('Haswell', 'SkylakeX', …, or
// those OPENBLAS_CORETYPE named; `keel doctor` reports them), or '' when no
// OpenBLAS is loaded.
std::string openblasCore() {
  using CoreName = char* (*)();
  auto f = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = f ? f() : nullptr;
  return name ? name : "";
}

napi_value Info(napi_env env, napi_callback_info) {
  KEEL_GUARD(env, "info", {
    napi_value o;
    napi_create_object(env, &o);
    napi_set_named_property(env, o, "version", jsString(env, TORCH_VERSION));
    napi_set_named_property(env, o, "library", jsString(env, fileOf(reinterpret_cast<const void*>(&at::get_num_threads))));
    napi_set_named_property(env, o, "cuda", jsBool(env, torch::cuda::is_available()));
    napi_set_named_property(env, o, "cudaDevices", jsInt(env, torch::cuda::is_available() ? torch::cuda::device_count() : 0));
    napi_set_named_property(env, o, "sgemm", jsString(env, sgemmProvider()));
    napi_set_named_property(env, o, "blasCore", jsString(env, openblasCore()));
    napi_set_named_property(env, o, "threads", jsInt(env, at::get_num_threads()));
    napi_set_named_property(env, o, "interopThreads", jsInt(env, at::get_num_interop_threads()));
    napi_set_named_property(env, o, "config", jsString(env, at::show_config()));
    napi_set_named_property(env, o, "parallel", jsString(env, at::get_parallel_info()));
    return o;
  })
}

napi_value SetNumThreads(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "setNumThreads", {
    int64_t n = argInt(env, a[0], "threads");
    if (n < 1) throw ArgError("argument 'threads' must be at least 1, got " + std::to_string(n));
    at::set_num_threads(static_cast<int>(n));
    // libtorch sizes only its own pool; OpenBLAS keeps its own thread count
    // (measured: a 2048² matmul still used 2 threads at set_num_threads(1)).
    using SetThreads = void (*)(int);
    if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(static_cast<int>(n));
    return nullptr;
  })
}

napi_value GetNumThreads(napi_env env, napi_callback_info) { return jsInt(env, at::get_num_threads()); }

napi_value ManualSeed(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "manualSeed", {
    int64_t seed = argInt(env, a[0], "seed");
    torch::manual_seed(static_cast<uint64_t>(seed));
    return nullptr;
  })
}

napi_value GetRngState(napi_env env, napi_callback_info) {
  KEEL_GUARD(env, "getRngState", {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return jsTensor(env, gen.get_state());
  })
}

napi_value SetRngState(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "setRngState", {
    const at::Tensor& state = argTensor(env, a[0], "state");
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
    return nullptr;
  })
}

}  // namespace

void registerInfoFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "info", Info);
  defineFunction(env, exports, "setNumThreads", SetNumThreads);
  defineFunction(env, exports, "getNumThreads", GetNumThreads);
  defineFunction(env, exports, "manualSeed", ManualSeed);
  defineFunction(env, exports, "getRngState", GetRngState);
  defineFunction(env, exports, "setRngState", SetRngState);
}

}  // namespace keel
