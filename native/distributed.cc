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

#include <chrono>
#include <functional>
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

void destroy() {
  // Outstanding works first: they hold the group's threads' attention.
  g_work.clear();
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

void onCleanup(void*) {
  try {
    destroy();
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
}

}  // namespace keel
