// c10d process groups: the TCPStore rendezvous, one Gloo process group per
// process, the collectives on Keel tensors and their work handles.
//
// Every wait is bounded by the group's timeout (the store's connect and
// worker wait, Gloo's rendezvous and every collective): a peer that dies or
// never comes gives an Error, never a hang.
#define USE_C10D_GLOO 1
#include "keel.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupWrapper.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>

namespace keel {

namespace {

using Ms = std::chrono::milliseconds;

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  // the Gloo group itself, and (when collectives are checked) c10d's
  // ProcessGroupWrapper around it, which first compares each collective's
  // kind, shapes and dtypes across ranks on a second Gloo group: a mismatch
  // is an Error on every rank instead of an abort inside Gloo's I/O thread
  c10::intrusive_ptr<c10d::ProcessGroup> raw;
  c10::intrusive_ptr<c10d::ProcessGroup> checked;
  int rank = 0;
  int world = 1;
  Ms timeout{30000};
};

// One default group per process (as torch.distributed's WORLD).
Group* g_group = nullptr;

// A launched collective: the c10d work, and what to do once it is done
// (average, copy a chunk out) before the caller sees the tensors.
struct Pending {
  c10::intrusive_ptr<c10d::Work> work;
  const char* name;
  std::function<void()> then;
  bool done = false;
};
std::unordered_map<int32_t, Pending> g_work;
int32_t g_nextWork = 1;

Group& group(const char* what) {
  if (!g_group)
    throw std::runtime_error(std::string(what) +
                             ": no process group; call keel.distributed.initProcessGroup() first");
  return *g_group;
}

// Waits for a work within the timeout; a failed or timed-out collective
// becomes an Error that says which one and what to look at.
// `named`: say which collective (a work handle's wait; a blocking call's
// Error already starts with its name).
void finish(Pending& p, bool named, Ms timeout) {
  if (p.done) return;
  try {
    p.work->wait(timeout);
  } catch (const std::exception& e) {
    p.done = true;
    std::string msg = c10::GetExceptionString(e);
    if (auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
    throw std::runtime_error(std::string(named ? p.name : "") + (named ? " failed" : "failed") + " on rank " + std::to_string(g_group ? g_group->rank : -1) +
                             " (a peer died, never arrived, or called a different collective; timeout " +
                             std::to_string(timeout.count()) + " ms): " + msg);
  }
  p.done = true;
  if (p.then) p.then();
}

// The group a call goes to: checked unless the caller opted out.
c10d::ProcessGroup& pgFor(Group& g, napi_env env, napi_value check) {
  bool want = isNullish(env, check) ? true : argBool(env, check, "check");
  return want && g.checked ? *g.checked : *g.raw;
}

// Starts a collective; an exception while starting it (the cross-rank check
// found a mismatch, or a peer is gone) reads as a failed collective.
template <typename F>
c10::intrusive_ptr<c10d::Work> start(Group& g, F&& f) {
  try {
    return f();
  } catch (const ArgError&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
    throw std::runtime_error("failed on rank " + std::to_string(g.rank) +
                             " (a peer died, never arrived, or called a different collective or shape; timeout " +
                             std::to_string(g.timeout.count()) + " ms): " + msg);
  }
}

c10d::ReduceOp reduceOp(const std::string& op) {
  if (op == "sum" || op == "avg") return c10d::ReduceOp::SUM;  // Gloo has no AVG: sum, then divide
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  throw ArgError("argument 'op' must be one of 'sum', 'avg', 'max', 'min', 'product', got '" + op + "'");
}

// A tensor a collective may write into: dense, contiguous, on the CPU.
const at::Tensor& collectiveTensor(napi_env env, napi_value v, const char* what) {
  const at::Tensor& t = argTensor(env, v, what);
  if (!t.device().is_cpu())
    throw ArgError(std::string("argument '") + what + "': the Gloo process group takes CPU tensors, got one on " +
                   t.device().str());
  if (t.layout() != at::kStrided) throw ArgError(std::string("argument '") + what + "' must be a dense tensor");
  if (!t.is_contiguous()) throw ArgError(std::string("argument '") + what + "' must be contiguous (call contiguous() first)");
  if (t.requires_grad() && t.is_leaf())
    throw ArgError(std::string("argument '") + what +
                   "' is a leaf that requires grad: a collective writes in place; pass its detach() or run it under noGrad");
  return t;
}

// Returns a work id (async) or waits now and returns undefined.
napi_value launch(napi_env env, c10::intrusive_ptr<c10d::Work> work, std::function<void()> then, bool async,
                  const char* what) {
  Pending p{std::move(work), what, std::move(then), false};
  if (!async) {
    finish(p, false, group(what).timeout);
    return jsUndefined(env);
  }
  int32_t id = g_nextWork++;
  g_work.emplace(id, std::move(p));
  return jsInt(env, id);
}

std::shared_ptr<::gloo::transport::Device> device(const std::string& addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (addr == "127.0.0.1" || addr == "localhost" || addr == "::1")
    return c10d::ProcessGroupGloo::createDeviceForHostname(addr == "localhost" ? "127.0.0.1" : addr);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

void dropReducerWorks();

void destroy() {
  // Outstanding works first: they hold the group's threads' attention.
  g_work.clear();
  dropReducerWorks();
  if (!g_group) return;
  Group* g = g_group;
  g_group = nullptr;
  g->checked.reset();
  g->raw.reset();
  g->store.reset();
  delete g;
}

// initProcessGroup(backend, rank, worldSize, addr, port, timeoutMs)
napi_value Init(napi_env env, napi_callback_info info) {
  napi_value a[7];
  getArgs(env, info, 7, a);
  KEEL_GUARD(env, "initProcessGroup", {
    std::string backend = argString(env, a[0], "backend");
    int64_t rank = argInt(env, a[1], "rank");
    int64_t world = argInt(env, a[2], "worldSize");
    std::string addr = argString(env, a[3], "masterAddr");
    int64_t port = argInt(env, a[4], "masterPort");
    int64_t timeoutMs = argInt(env, a[5], "timeoutMs");
    bool check = isNullish(env, a[6]) ? true : argBool(env, a[6], "checkCollectives");
    if (backend == "nccl")
      throw std::runtime_error(
          "backend 'nccl' needs a CUDA build of libtorch with NCCL; this libtorch is CPU-only "
          "(use backend 'gloo')");
    if (backend != "gloo") throw ArgError("argument 'backend' must be 'gloo' or 'nccl', got '" + backend + "'");
    if (world < 1) throw ArgError("argument 'worldSize' must be at least 1, got " + std::to_string(world));
    if (rank < 0 || rank >= world)
      throw ArgError("argument 'rank' must be in [0, worldSize - 1] = [0, " + std::to_string(world - 1) + "], got " +
                     std::to_string(rank));
    if (port < 1 || port > 65535) throw ArgError("argument 'masterPort' must be in [1, 65535], got " + std::to_string(port));
    if (timeoutMs < 1) throw ArgError("argument 'timeoutMs' must be positive, got " + std::to_string(timeoutMs));
    if (g_group) throw std::runtime_error("a process group already exists; call destroyProcessGroup() first");

    Ms timeout(timeoutMs);
    auto g = std::make_unique<Group>();
    g->rank = static_cast<int>(rank);
    g->world = static_cast<int>(world);
    g->timeout = timeout;
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<size_t>(world);
    so.waitWorkers = false;  // counted below, within the timeout
    so.timeout = timeout;
    auto unmet = [&](const std::exception& e, const char* where) {
      std::string msg = e.what();
      if (auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
      return std::runtime_error("rank " + std::to_string(rank) + " could not meet the other " +
                                std::to_string(world - 1) + " rank(s) at " + addr + ":" + std::to_string(port) +
                                " within " + std::to_string(timeoutMs) + " ms (" + where + "; " +
                                (rank == 0 ? "did every rank start, with the same worldSize and masterPort?"
                                           : "is rank 0 up, and the master address reachable?") +
                                "): " + msg);
    };
    auto start = std::chrono::steady_clock::now();
    try {
      g->store = c10::make_intrusive<c10d::TCPStore>(addr, so);
    } catch (const std::exception& e) {
      throw unmet(e, "the TCPStore rendezvous");
    }
    {
      // every rank counts itself in and waits for the others, within what is
      // left of the timeout (libtorch 1.13's own wait for workers stops at
      // its timeout without saying so)
      int64_t joined = 0;
      try {
        joined = g->store->add("keel/joined", 1);
        while (joined < world && std::chrono::steady_clock::now() - start < timeout) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          joined = g->store->add("keel/joined", 0);
        }
      } catch (const std::exception& e) {
        throw unmet(e, "the TCPStore rendezvous");
      }
      if (joined < world)
        throw unmet(std::runtime_error(std::to_string(joined) + " of " + std::to_string(world) + " ranks reached the store"),
                    "the TCPStore rendezvous");
    }
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(device(addr));
    opts->threads = 2;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("default_pg", g->store);
    try {
      auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, g->rank, g->world, opts);
      g->raw = gloo;
      if (check) {
        auto copts = c10d::ProcessGroupGloo::Options::create(timeout);
        copts->devices.push_back(opts->devices[0]);
        copts->threads = 1;
        auto helper = c10::make_intrusive<c10d::ProcessGroupGloo>(
            c10::make_intrusive<c10d::PrefixStore>("keel_check", g->store), g->rank, g->world, copts);
        g->checked = c10::make_intrusive<c10d::ProcessGroupWrapper>(g->raw, helper);
      }
    } catch (const std::exception& e) {
      throw unmet(e, "Gloo's connections");
    }
    g_group = g.release();
    return jsUndefined(env);
  })
}

napi_value Destroy(napi_env env, napi_callback_info) {
  KEEL_GUARD(env, "destroyProcessGroup", {
    destroy();
    return jsUndefined(env);
  })
}

napi_value State(napi_env env, napi_callback_info) {
  KEEL_GUARD(env, "processGroup", {
    if (!g_group) return jsNull(env);
    napi_value o;
    napi_create_object(env, &o);
    napi_set_named_property(env, o, "rank", jsInt(env, g_group->rank));
    napi_set_named_property(env, o, "worldSize", jsInt(env, g_group->world));
    napi_set_named_property(env, o, "backend", jsString(env, g_group->raw->getBackendName()));
    napi_set_named_property(env, o, "timeoutMs", jsInt(env, g_group->timeout.count()));
    napi_set_named_property(env, o, "checkCollectives", jsBool(env, static_cast<bool>(g_group->checked)));
    return o;
  })
}

// allReduce(tensors, op, async)
napi_value AllReduce(napi_env env, napi_callback_info info) {
  napi_value a[4];
  getArgs(env, info, 4, a);
  KEEL_GUARD(env, "allReduce", {
    Group& g = group("allReduce");
    std::vector<at::Tensor> ts{collectiveTensor(env, a[0], "tensor")};
    std::string op = argString(env, a[1], "op");
    c10d::AllreduceOptions o;
    o.reduceOp = reduceOp(op);
    o.timeout = g.timeout;
    if (op == "avg" && !at::isFloatingType(ts[0].scalar_type()))
      throw ArgError("allReduce: op 'avg' needs a floating tensor, got " + std::string(c10::toString(ts[0].scalar_type())));
    auto& pg = pgFor(g, env, a[3]);
    auto work = start(g, [&] { return pg.allreduce(ts, o); });
    std::function<void()> then;
    if (op == "avg") {
      at::Tensor t = ts[0];
      int world = g.world;
      then = [t, world]() mutable { at::NoGradGuard ng; t.div_(world); };
    }
    return launch(env, work, then, argBool(env, a[2], "async"), "allReduce");
  })
}

// broadcast(tensor, src, async)
napi_value Broadcast(napi_env env, napi_callback_info info) {
  napi_value a[4];
  getArgs(env, info, 4, a);
  KEEL_GUARD(env, "broadcast", {
    Group& g = group("broadcast");
    std::vector<at::Tensor> ts{collectiveTensor(env, a[0], "tensor")};
    int64_t src = argInt(env, a[1], "src");
    if (src < 0 || src >= g.world)
      throw ArgError("broadcast: argument 'src' must be a rank in [0, " + std::to_string(g.world - 1) + "], got " +
                     std::to_string(src));
    c10d::BroadcastOptions o;
    o.rootRank = src;
    o.timeout = g.timeout;
    auto& pg = pgFor(g, env, a[3]);
    return launch(env, start(g, [&] { return pg.broadcast(ts, o); }), nullptr, argBool(env, a[2], "async"), "broadcast");
  })
}

// allGather(outputs, input, async): outputs[i] receives rank i's input
napi_value AllGather(napi_env env, napi_callback_info info) {
  napi_value a[4];
  getArgs(env, info, 4, a);
  KEEL_GUARD(env, "allGather", {
    Group& g = group("allGather");
    std::vector<at::Tensor> in{collectiveTensor(env, a[1], "input")};
    std::vector<at::Tensor> outs = argTensorList(env, a[0], "outputs");
    if (static_cast<int>(outs.size()) != g.world)
      throw ArgError("allGather: needs one output per rank (" + std::to_string(g.world) + "), got " +
                     std::to_string(outs.size()));
    for (auto& t : outs)
      if (t.sizes() != in[0].sizes() || t.scalar_type() != in[0].scalar_type() || !t.is_contiguous())
        throw ArgError("allGather: every output must be contiguous with the input's shape and dtype");
    std::vector<std::vector<at::Tensor>> o{outs};
    c10d::AllgatherOptions opt;
    opt.timeout = g.timeout;
    auto& pg = pgFor(g, env, a[3]);
    return launch(env, start(g, [&] { return pg.allgather(o, in, opt); }), nullptr, argBool(env, a[2], "async"), "allGather");
  })
}

// reduceScatter(output, input, op, async): input is world × output's shape
// (flattened along dim 0); rank r gets the reduction of every rank's chunk r.
// Gloo has no reduce_scatter in libtorch 1.13: an all-reduce of the whole
// input, then this rank's chunk.
napi_value ReduceScatter(napi_env env, napi_callback_info info) {
  napi_value a[5];
  getArgs(env, info, 5, a);
  KEEL_GUARD(env, "reduceScatter", {
    Group& g = group("reduceScatter");
    at::Tensor out = collectiveTensor(env, a[0], "output");
    const at::Tensor& in = argTensor(env, a[1], "input");
    std::string op = argString(env, a[2], "op");
    if (in.numel() != out.numel() * g.world || in.scalar_type() != out.scalar_type())
      throw ArgError("reduceScatter: the input must hold worldSize (" + std::to_string(g.world) +
                     ") × the output's elements, of the output's dtype; got " + std::to_string(in.numel()) + " for " +
                     std::to_string(out.numel()));
    at::Tensor buf;
    {
      at::NoGradGuard ng;
      buf = in.detach().contiguous().clone();
    }
    std::vector<at::Tensor> ts{buf};
    c10d::AllreduceOptions o;
    o.reduceOp = reduceOp(op);
    o.timeout = g.timeout;
    int rank = g.rank, world = g.world;
    bool avg = op == "avg";
    auto then = [out, buf, rank, world, avg]() mutable {
      at::NoGradGuard ng;
      auto chunk = buf.reshape({-1}).narrow(0, rank * out.numel(), out.numel()).view(out.sizes());
      out.copy_(chunk);
      if (avg) out.div_(world);
    };
    auto& pg = pgFor(g, env, a[4]);
    return launch(env, start(g, [&] { return pg.allreduce(ts, o); }), then, argBool(env, a[3], "async"), "reduceScatter");
  })
}

napi_value Barrier(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "barrier", {
    Group& g = group("barrier");
    c10d::BarrierOptions o;
    o.timeout = g.timeout;
    auto& pg = pgFor(g, env, a[1]);
    return launch(env, start(g, [&] { return pg.barrier(o); }), nullptr, argBool(env, a[0], "async"), "barrier");
  })
}

// workWait(id, timeoutMs | null): waits, then frees the handle's entry.
napi_value WorkWait(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "wait", {
    int64_t id = argInt(env, a[0], "work");
    auto it = g_work.find(static_cast<int32_t>(id));
    if (it == g_work.end()) return jsBool(env, false);  // already waited for (or the group was destroyed)
    Ms timeout = isNullish(env, a[1]) ? group("wait").timeout : Ms(argInt(env, a[1], "timeoutMs"));
    Pending p = std::move(it->second);
    g_work.erase(it);
    finish(p, true, timeout);
    return jsBool(env, true);
  })
}

napi_value WorkDone(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "isCompleted", {
    auto it = g_work.find(static_cast<int32_t>(argInt(env, a[0], "work")));
    if (it == g_work.end()) return jsBool(env, true);
    return jsBool(env, it->second.work->isCompleted());
  })
}

// broadcastCoalesced(tensors, src): rank src's tensors into every rank's, one
// broadcast per dtype (the tensors flattened into one buffer, as PyTorch's
// DDP syncs its buffers before a forward), unchecked: the caller compared the
// shapes once. Blocking.
napi_value BroadcastCoalesced(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "broadcastCoalesced", {
    Group& g = group("broadcastCoalesced");
    std::vector<at::Tensor> ts = argTensorList(env, a[0], "tensors");
    int64_t src = argInt(env, a[1], "src");
    if (src < 0 || src >= g.world)
      throw ArgError("broadcastCoalesced: argument 'src' must be a rank in [0, " + std::to_string(g.world - 1) + "], got " +
                     std::to_string(src));
    for (auto& t : ts)
      if (!t.device().is_cpu() || t.layout() != at::kStrided || !t.is_contiguous())
        throw ArgError("broadcastCoalesced: every tensor must be a contiguous CPU tensor");
    at::NoGradGuard ng;
    // one flat buffer per dtype, in the order the dtypes first appear
    std::vector<std::vector<size_t>> groups;
    std::vector<at::ScalarType> types;
    for (size_t i = 0; i < ts.size(); ++i) {
      size_t k = 0;
      while (k < types.size() && types[k] != ts[i].scalar_type()) ++k;
      if (k == types.size()) {
        types.push_back(ts[i].scalar_type());
        groups.emplace_back();
      }
      groups[k].push_back(i);
    }
    const bool root = g.rank == src;
    std::vector<at::Tensor> flats;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    c10d::BroadcastOptions o;
    o.rootRank = static_cast<int>(src);
    o.timeout = g.timeout;
    for (size_t k = 0; k < groups.size(); ++k) {
      int64_t n = 0;
      for (size_t i : groups[k]) n += ts[i].numel();
      at::Tensor flat = at::empty({n}, ts[groups[k][0]].options());
      if (root) {
        int64_t off = 0;
        for (size_t i : groups[k]) {
          flat.narrow(0, off, ts[i].numel()).copy_(ts[i].reshape({-1}));
          off += ts[i].numel();
        }
      }
      flats.push_back(flat);
      std::vector<at::Tensor> one{flat};
      works.push_back(start(g, [&] { return g.raw->broadcast(one, o); }));
    }
    for (size_t k = 0; k < groups.size(); ++k) {
      Pending p{works[k], "broadcastCoalesced", nullptr, false};
      finish(p, false, g.timeout);
      if (root) continue;
      int64_t off = 0;
      for (size_t i : groups[k]) {
        ts[i].view({-1}).copy_(flats[k].narrow(0, off, ts[i].numel()));
        off += ts[i].numel();
      }
    }
    return jsUndefined(env);
  })
}

// ---- DDP's reducer ----------------------------------------------------------
//
// Gradient hooks in C++ (no call into JS per gradient): each copies its
// parameter's incoming gradient (plus .grad, from noSync steps) into its
// bucket's slice already divided by the world size, noting whether every
// value was finite (the guard's per-rank verdict from before the average), in
// one pass; a complete bucket's all-reduce starts at once, in bucket order.
// JS is called once per backward (the first gradient of an armed pass) to
// queue the finish after backward: wait for the buckets, copy the averages
// into .grad.

const bool kAvx2 = __builtin_cpu_supports("avx2") && std::getenv("KEEL_NO_AVX2") == nullptr;

// out ← (a + b)·s (a may be null: out ← b·s); false when a value of out is not finite.
template <typename T>
bool scaleIntoPortable(T* out, const T* a, const T* b, int64_t n, T s) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    const T v = (a ? a[i] + b[i] : b[i]) * s;
    out[i] = v;
    ok &= std::isfinite(v);
  }
  return ok;
}

// x - x is 0 for a finite x and NaN for ±inf and NaN: one unordered compare finds both
__attribute__((target("avx2"))) bool scaleIntoAvx2(float* out, const float* a, const float* b, int64_t n, float s) {
  const __m256 vs = _mm256_set1_ps(s);
  __m256 bad = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(b + i);
    if (a) x = _mm256_add_ps(_mm256_loadu_ps(a + i), x);
    x = _mm256_mul_ps(x, vs);
    _mm256_storeu_ps(out + i, x);
    const __m256 z = _mm256_sub_ps(x, x);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(z, z, _CMP_UNORD_Q));
  }
  const bool ok = _mm256_movemask_ps(bad) == 0;
  return scaleIntoPortable(out + i, a ? a + i : nullptr, b + i, n - i, s) && ok;
}

__attribute__((target("avx2"))) bool scaleIntoAvx2(double* out, const double* a, const double* b, int64_t n, double s) {
  const __m256d vs = _mm256_set1_pd(s);
  __m256d bad = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d x = _mm256_loadu_pd(b + i);
    if (a) x = _mm256_add_pd(_mm256_loadu_pd(a + i), x);
    x = _mm256_mul_pd(x, vs);
    _mm256_storeu_pd(out + i, x);
    const __m256d z = _mm256_sub_pd(x, x);
    bad = _mm256_or_pd(bad, _mm256_cmp_pd(z, z, _CMP_UNORD_Q));
  }
  const bool ok = _mm256_movemask_pd(bad) == 0;
  return scaleIntoPortable(out + i, a ? a + i : nullptr, b + i, n - i, s) && ok;
}

template <typename T>
bool scaleIntoRange(T* out, const T* a, const T* b, int64_t n, T s) {
  if (kAvx2) return scaleIntoAvx2(out, a, b, n, s);
  return scaleIntoPortable(out, a, b, n, s);
}

// slice ← (acc + g)·s, or g·s without acc; whether every value is finite.
// slice: a contiguous 1-d range of a bucket; acc and g have the parameter's shape.
bool scaleInto(at::Tensor& slice, const at::Tensor& acc, const at::Tensor& g, double s) {
  const auto st = slice.scalar_type();
  const bool fast = (st == at::kFloat || st == at::kDouble) && g.scalar_type() == st && g.is_contiguous() &&
                    g.layout() == at::kStrided && g.device().is_cpu() && g.numel() == slice.numel() &&
                    (!acc.defined() || (acc.scalar_type() == st && acc.is_contiguous() && acc.layout() == at::kStrided &&
                                        acc.device().is_cpu() && acc.numel() == slice.numel()));
  if (!fast) {
    at::Tensor v = slice.view(g.sizes());
    if (acc.defined())
      at::add_out(v, acc, g);
    else
      v.copy_(g);
    if (s != 1) v.mul_(s);
    return at::isfinite(v).all().item<bool>();
  }
  const int64_t n = slice.numel();
  std::atomic<bool> ok{true};
  constexpr int64_t kGrain = int64_t{1} << 16;
  AT_DISPATCH_FLOATING_TYPES(st, "scaleInto", [&] {
    scalar_t* out = slice.data_ptr<scalar_t>();
    const scalar_t* pa = acc.defined() ? acc.data_ptr<scalar_t>() : nullptr;
    const scalar_t* pb = g.data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
      if (!scaleIntoRange(out + i0, pa ? pa + i0 : nullptr, pb + i0, i1 - i0, static_cast<scalar_t>(s)))
        ok.store(false, std::memory_order_relaxed);
    });
  });
  return ok.load();
}

struct Reducer {
  struct Param {
    at::Tensor var;
    size_t bucket;
    int64_t offset;
    int64_t numel;
    unsigned hook;
    bool ready = false;
  };
  struct Bucket {
    at::Tensor flat;
    std::vector<size_t> params;
    size_t nReady = 0;
    bool finite = true;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Param> params;
  std::vector<Bucket> buckets;
  std::shared_ptr<JsFunctionRef> onStart;
  double scale = 1;
  bool armed = false;    // the last forward armed gradient sync (and no localOnly now)
  bool started = false;  // a backward of this pass has begun syncing (finish queued)
  size_t next = 0;       // the next bucket to launch

  void reset() {
    for (auto& p : params) p.ready = false;
    for (auto& b : buckets) {
      b.nReady = 0;
      b.finite = true;
      b.work.reset();
    }
    started = false;
    next = 0;
  }

  void launchReady() {
    while (next < buckets.size() && buckets[next].nReady == buckets[next].params.size()) {
      Bucket& b = buckets[next++];
      Group& g = group("DistributedDataParallel");
      std::vector<at::Tensor> ts{b.flat};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = g.timeout;
      b.work = start(g, [&] { return g.raw->allreduce(ts, o); });
    }
  }

  void onGrad(size_t i, const at::Tensor& grad) {
    if (!armed) return;
    if (!started) {
      started = true;
      napi_env env = mainEnv();
      napi_handle_scope hs;
      napi_open_handle_scope(env, &hs);
      try {
        onStart->call(env, 0, nullptr);
      } catch (...) {
        napi_close_handle_scope(env, hs);
        throw;
      }
      napi_close_handle_scope(env, hs);
    }
    Param& p = params[i];
    if (p.ready) return;
    Bucket& b = buckets[p.bucket];
    at::NoGradGuard ng;
    at::Tensor slice = b.flat.narrow(0, p.offset, p.numel);
    if (!scaleInto(slice, p.var.grad(), grad, scale)) b.finite = false;
    p.ready = true;
    b.nReady++;
    launchReady();
  }
};

std::unordered_map<int32_t, std::shared_ptr<Reducer>> g_reducers;
int32_t g_nextReducer = 1;

void dropReducerWorks() {
  for (auto& kv : g_reducers) kv.second->reset();
}

Reducer& reducerArg(napi_env env, napi_value v) {
  auto it = g_reducers.find(static_cast<int32_t>(argInt(env, v, "reducer")));
  if (it == g_reducers.end()) throw std::runtime_error("DistributedDataParallel: this reducer was disposed");
  return *it->second;
}

// reducerNew(params, bucketSizes, onStart): params in bucket order (bucket k
// holds the next bucketSizes[k] of them, one dtype each); the hooks go on now.
napi_value ReducerNew(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "DistributedDataParallel", {
    Group& g = group("DistributedDataParallel");
    std::vector<at::Tensor> ps = argTensorList(env, a[0], "params");
    std::vector<int64_t> sizes = argIntList(env, a[1], "bucketSizes");
    napi_valuetype ft;
    napi_typeof(env, a[2], &ft);
    if (ft != napi_function) throw ArgError("argument 'onStart' must be a function");
    int64_t total = 0;
    for (int64_t s : sizes) {
      if (s < 1) throw ArgError("bucket sizes must be positive");
      total += s;
    }
    if (total != static_cast<int64_t>(ps.size())) throw ArgError("bucket sizes must add up to the number of parameters");
    auto r = std::make_shared<Reducer>();
    r->scale = 1.0 / g.world;
    r->onStart = std::make_shared<JsFunctionRef>(env, a[2]);
    size_t i = 0;
    for (int64_t s : sizes) {
      Reducer::Bucket b;
      int64_t n = 0;
      for (int64_t k = 0; k < s; ++k, ++i) {
        const at::Tensor& p = ps[i];
        if (!p.requires_grad() || !p.is_leaf()) throw ArgError("DistributedDataParallel: parameters must be leaves that require grad");
        if (!p.device().is_cpu() || p.layout() != at::kStrided)
          throw ArgError("DistributedDataParallel: the Gloo process group takes dense CPU parameters");
        if (p.scalar_type() != ps[i - k].scalar_type()) throw ArgError("a bucket's parameters must share one dtype");
        r->params.push_back(Reducer::Param{p, r->buckets.size(), n, p.numel(), 0, false});
        b.params.push_back(i);
        n += p.numel();
      }
      b.flat = at::zeros({n}, ps[i - s].options().requires_grad(false));
      r->buckets.push_back(std::move(b));
    }
    std::weak_ptr<Reducer> weak = r;
    for (size_t j = 0; j < r->params.size(); ++j) {
      r->params[j].hook = r->params[j].var.register_hook([weak, j](const at::Tensor& grad) {
        if (auto rp = weak.lock()) rp->onGrad(j, grad);
      });
    }
    int32_t id = g_nextReducer++;
    g_reducers.emplace(id, std::move(r));
    return jsInt(env, id);
  })
}

// reducerArm(id, armed): a forward armed (or disarmed) gradient sync; a pass
// a failed backward left half done is dropped.
napi_value ReducerArm(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "DistributedDataParallel", {
    Reducer& r = reducerArg(env, a[0]);
    if (argBool(env, a[2], "forward") && r.started) r.reset();
    r.armed = argBool(env, a[1], "armed");
    return jsUndefined(env);
  })
}

// reducerFinish(id, allowUnused): after backward. Parameters that got no
// gradient: without allowUnused, their indices (nothing is waited for: the
// caller throws); with it, their slices are .grad·s (or 0) and their buckets
// launch. Then every bucket is waited for, its average copied into .grad;
// returns whether this rank's gradients were all finite before the average.
napi_value ReducerFinish(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "DistributedDataParallel", {
    Reducer& r = reducerArg(env, a[0]);
    bool allowUnused = argBool(env, a[1], "allowUnused");
    struct Reset {
      Reducer& r;
      ~Reset() { r.reset(); }
    } resetAtEnd{r};
    std::vector<size_t> unused;
    for (size_t i = 0; i < r.params.size(); ++i)
      if (!r.params[i].ready) unused.push_back(i);
    if (!unused.empty() && !allowUnused) {
      napi_value arr;
      napi_create_array_with_length(env, unused.size(), &arr);
      for (size_t k = 0; k < unused.size(); ++k) napi_set_element(env, arr, static_cast<uint32_t>(k), jsInt(env, static_cast<int64_t>(unused[k])));
      return arr;
    }
    at::NoGradGuard ng;
    for (size_t i : unused) {
      auto& p = r.params[i];
      auto& b = r.buckets[p.bucket];
      at::Tensor slice = b.flat.narrow(0, p.offset, p.numel);
      const at::Tensor& acc = p.var.grad();
      if (acc.defined()) {
        if (!scaleInto(slice, at::Tensor(), acc, r.scale)) b.finite = false;
      } else {
        slice.zero_();
      }
      p.ready = true;
      b.nReady++;
    }
    r.launchReady();
    Group& g = group("DistributedDataParallel");
    bool finite = true;
    for (auto& b : r.buckets) {
      Pending p{b.work, "DistributedDataParallel's gradient all-reduce", nullptr, false};
      finish(p, true, g.timeout);
      finite = finite && b.finite;
    }
    for (auto& p : r.params) {
      at::Tensor avg = r.buckets[p.bucket].flat.narrow(0, p.offset, p.numel).view(p.var.sizes());
      at::Tensor& grad = p.var.mutable_grad();
      if (grad.defined())
        grad.copy_(avg);
      else
        grad = avg.clone();
    }
    return jsBool(env, finite);
  })
}

// reducerFree(id): removes the hooks, frees the buckets.
napi_value ReducerFree(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "DistributedDataParallel", {
    auto it = g_reducers.find(static_cast<int32_t>(argInt(env, a[0], "reducer")));
    if (it == g_reducers.end()) return jsUndefined(env);
    for (auto& p : it->second->params) p.var.remove_hook(p.hook);
    g_reducers.erase(it);
    return jsUndefined(env);
  })
}

void onCleanup(void*) {
  try {
    destroy();
    g_reducers.clear();
  } catch (...) {
  }
}

}  // namespace

void registerDistributedFunctions(napi_env env, napi_value exports) {
  napi_add_env_cleanup_hook(env, onCleanup, nullptr);
  defineFunction(env, exports, "distInit", Init);
  defineFunction(env, exports, "distDestroy", Destroy);
  defineFunction(env, exports, "distState", State);
  defineFunction(env, exports, "distAllReduce", AllReduce);
  defineFunction(env, exports, "distBroadcast", Broadcast);
  defineFunction(env, exports, "distAllGather", AllGather);
  defineFunction(env, exports, "distReduceScatter", ReduceScatter);
  defineFunction(env, exports, "distBarrier", Barrier);
  defineFunction(env, exports, "distWait", WorkWait);
  defineFunction(env, exports, "distIsCompleted", WorkDone);
  defineFunction(env, exports, "distBroadcastCoalesced", BroadcastCoalesced);
  defineFunction(env, exports, "distReducerNew", ReducerNew);
  defineFunction(env, exports, "distReducerArm", ReducerArm);
  defineFunction(env, exports, "distReducerFinish", ReducerFinish);
  defineFunction(env, exports, "distReducerFree", ReducerFree);
}

}  // namespace keel
