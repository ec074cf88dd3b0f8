// Autograd entry points: backward, grad, grad mode, gradient hooks and custom
// functions whose backward is a JS function. On CPU the autograd engine runs
// graph nodes on the calling thread, so hooks and custom backward functions
// call straight back into JS (DESIGN.md measured this).
#include "keel.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/anomaly_mode.h>

namespace keel {

namespace {

using torch::autograd::Node;
using torch::autograd::variable_list;


std::vector<at::Tensor> optionalTensorList(napi_env env, napi_value v, const char* what) {
  std::vector<at::Tensor> out;
  if (isNullish(env, v)) return out;
  bool arr = false;
  napi_is_array(env, v, &arr);
  if (!arr) throw ArgError(std::string("argument '") + what + "' must be an array of tensors");
  uint32_t n;
  napi_get_array_length(env, v, &n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value e = elementAt(env, v, i);
    out.push_back(isNullish(env, e) ? at::Tensor() : argTensor(env, e, what));
  }
  return out;
}

bool optionalBool(napi_env env, napi_value v, const char* what, bool dflt) {
  return isNullish(env, v) ? dflt : argBool(env, v, what);
}

// backward(tensors, gradTensors?, retainGraph?, createGraph?, inputs?)
napi_value Backward(napi_env env, napi_callback_info info) {
  napi_value a[5];
  getArgs(env, info, 5, a);
  KEEL_GUARD(env, "backward", {
    auto tensors = argTensorList(env, a[0], "tensors");
    auto grads = optionalTensorList(env, a[1], "gradient");
    bool create = optionalBool(env, a[3], "createGraph", false);
    c10::optional<bool> retain;
    if (!isNullish(env, a[2])) retain = argBool(env, a[2], "retainGraph");
    auto inputs = optionalTensorList(env, a[4], "inputs");
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i].requires_grad())
        throw std::runtime_error("element " + std::to_string(i) +
                                 " of tensors does not require grad and does not have a grad_fn");
      bool hasGrad = i < grads.size() && grads[i].defined();
      if (!hasGrad && tensors[i].numel() != 1)
        throw std::runtime_error("grad can be implicitly created only for scalar outputs (got shape " +
                                 c10::str(tensors[i].sizes()) + "); pass a gradient");
    }
    torch::autograd::backward(tensors, grads, retain, create, inputs);
    return nullptr;
  })
}

// grad(outputs, inputs, gradOutputs?, retainGraph?, createGraph?, allowUnused?)
napi_value Grad(napi_env env, napi_callback_info info) {
  napi_value a[6];
  getArgs(env, info, 6, a);
  KEEL_GUARD(env, "autograd.grad", {
    auto outputs = argTensorList(env, a[0], "outputs");
    auto inputs = argTensorList(env, a[1], "inputs");
    auto gradOutputs = optionalTensorList(env, a[2], "gradOutputs");
    c10::optional<bool> retain;
    if (!isNullish(env, a[3])) retain = argBool(env, a[3], "retainGraph");
    bool create = optionalBool(env, a[4], "createGraph", false);
    bool allowUnused = optionalBool(env, a[5], "allowUnused", false);
    auto result = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, allowUnused);
    napi_value r;
    napi_create_array_with_length(env, result.size(), &r);
    for (size_t i = 0; i < result.size(); ++i) napi_set_element(env, r, i, jsTensor(env, result[i]));
    return r;
  })
}

napi_value SetGradEnabled(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "setGradEnabled", {
    bool prev = c10::GradMode::is_enabled();
    c10::GradMode::set_enabled(argBool(env, a[0], "enabled"));
    return jsBool(env, prev);
  })
}

napi_value IsGradEnabled(napi_env env, napi_callback_info) { return jsBool(env, c10::GradMode::is_enabled()); }

napi_value SetAnomalyEnabled(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "setAnomalyEnabled", {
    bool prev = torch::autograd::AnomalyMode::is_enabled();
    torch::autograd::AnomalyMode::set_enabled(argBool(env, a[0], "enabled"));
    return jsBool(env, prev);
  })
}

napi_value RequiresGrad(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "requiresGrad", { return jsBool(env, argTensor(env, a[0], "tensor").requires_grad()); })
}

napi_value SetRequiresGrad(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "requiresGrad_", {
    at::Tensor t = argTensor(env, a[0], "tensor");
    bool want = argBool(env, a[1], "requiresGrad");
    if (want && !at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type()))
      throw std::runtime_error(std::string("only floating-point tensors can require gradients, this one is ") +
                               c10::toString(t.scalar_type()));
    if (!t.is_leaf() && !want)
      throw std::runtime_error("requiresGrad can only be turned off on leaf tensors; use detach()");
    t.set_requires_grad(want);
    return nullptr;
  })
}

napi_value GetGrad(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "grad", { return jsTensor(env, argTensor(env, a[0], "tensor").grad()); })
}

napi_value SetGrad(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "grad", {
    at::Tensor t = argTensor(env, a[0], "tensor");
    if (isNullish(env, a[1])) {
      t.mutable_grad() = at::Tensor();
    } else {
      const at::Tensor& g = argTensor(env, a[1], "grad");
      if (g.sizes() != t.sizes())
        throw std::runtime_error("assigned grad has shape " + c10::str(g.sizes()) + " but the tensor has shape " +
                                 c10::str(t.sizes()));
      t.mutable_grad() = g;
    }
    return nullptr;
  })
}

napi_value RetainGrad(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "retainGrad", {
    argTensor(env, a[0], "tensor").retain_grad();
    return nullptr;
  })
}

napi_value IsLeaf(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "isLeaf", { return jsBool(env, argTensor(env, a[0], "tensor").is_leaf()); })
}

napi_value GradFnName(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "gradFn", {
    const auto& fn = argTensor(env, a[0], "tensor").grad_fn();
    return fn ? jsString(env, fn->name()) : jsNull(env);
  })
}

// Reads a tensor handle returned by a JS callback, then frees that handle:
// callbacks hand over fresh handles (see core/autograd.ts).
at::Tensor takeReturned(napi_env env, napi_value v, const char* what) {
  if (isNullish(env, v)) return at::Tensor();
  int32_t id = argTensorId(env, v, what);
  at::Tensor t = slot(id, what);
  release(env, id);
  return t;
}

// registerHook(tensor, fn): fn(gradHandle) returns a handle to a replacement
// gradient or null/undefined to keep it. Returns the hook's index.
napi_value RegisterHook(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "registerHook", {
    at::Tensor t = argTensor(env, a[0], "tensor");
    napi_valuetype ft;
    napi_typeof(env, a[1], &ft);
    if (ft != napi_function) throw ArgError("argument 'hook' must be a function");
    if (!t.requires_grad()) throw std::runtime_error("cannot register a hook on a tensor that does not require grad");
    auto fn = std::make_shared<JsFunctionRef>(env, a[1]);
    unsigned pos = t.register_hook([fn](at::Tensor grad) -> at::Tensor {
      napi_env env = mainEnv();
      napi_handle_scope scope;
      napi_open_handle_scope(env, &scope);
      at::Tensor replacement;
      try {
        napi_value arg = jsTensor(env, grad);
        napi_value r = fn->call(env, 1, &arg);
        replacement = takeReturned(env, r, "hook result");
      } catch (...) {
        napi_close_handle_scope(env, scope);
        throw;
      }
      napi_close_handle_scope(env, scope);
      if (replacement.defined() && replacement.sizes() != grad.sizes())
        throw std::runtime_error("hook returned a gradient of shape " + c10::str(replacement.sizes()) +
                                 " for a gradient of shape " + c10::str(grad.sizes()));
      return replacement;
    });
    return jsInt(env, pos);
  })
}

napi_value RemoveHook(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "removeHook", {
    argTensor(env, a[0], "tensor").remove_hook(static_cast<unsigned>(argInt(env, a[1], "handle")));
    return nullptr;
  })
}

// A graph node whose backward is a JS function: fn(gradOutputHandles[]) must
// return one handle (or null) per forward input. Its release function runs
// when libtorch frees the node, so JS can free what the context saved.
struct JsNode : Node {
  std::shared_ptr<JsFunctionRef> backwardFn;
  std::shared_ptr<JsFunctionRef> releaseFn;
  std::string label;
  std::vector<std::vector<int64_t>> inputShapes;

  variable_list apply(variable_list&& grads) override {
    napi_env env = mainEnv();
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    variable_list out;
    try {
      napi_value arr;
      napi_create_array_with_length(env, grads.size(), &arr);
      for (size_t i = 0; i < grads.size(); ++i) {
        at::Tensor g = grads[i];
        if (!g.defined()) g = input_metadata(i).zeros_like();  // materialize, as PyTorch does by default
        napi_set_element(env, arr, i, jsTensor(env, g));
      }
      napi_value r = backwardFn->call(env, 1, &arr);
      bool isArr = false;
      napi_is_array(env, r, &isArr);
      if (!isArr) throw std::runtime_error(label + ".backward must return an array of gradients");
      uint32_t n;
      napi_get_array_length(env, r, &n);
      if (n != num_outputs())
        throw std::runtime_error(label + ".backward returned " + std::to_string(n) + " gradients for " +
                                 std::to_string(num_outputs()) + " inputs");
      for (uint32_t i = 0; i < n; ++i) {
        napi_value e = elementAt(env, r, i);
        at::Tensor g = takeReturned(env, e, "gradient");
        if (g.defined() && g.sizes().vec() != inputShapes[i])
          throw std::runtime_error(label + ".backward returned a gradient of shape " + c10::str(g.sizes()) +
                                   " for input " + std::to_string(i) + " of shape " + c10::str(inputShapes[i]));
        out.push_back(g);
      }
    } catch (...) {
      napi_close_handle_scope(env, scope);
      throw;
    }
    napi_close_handle_scope(env, scope);
    return out;
  }

  std::string name() const override { return label; }

  // The engine calls this after running the node when the graph is not
  // retained: free what the context saved, so a second backward fails as
  // it does for built-in ops.
  void release_variables() override { runRelease(); }

  ~JsNode() override { runRelease(); }

  void runRelease() {
    if (!releaseFn || !envAlive()) return;
    auto fn_ = std::move(releaseFn);
    releaseFn.reset();
    napi_env env = mainEnv();
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value fn, recv, result;
    napi_get_reference_value(env, fn_->ref, &fn);
    napi_get_undefined(env, &recv);
    if (napi_call_function(env, recv, fn, 0, nullptr, &result) != napi_ok) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);  // never throw from a destructor
    }
    napi_close_handle_scope(env, scope);
  }
};

// customFunction(name, inputs, outputs, backwardFn, releaseFn) -> output handles.
// Outputs were computed by JS under no-grad; they get the new node as their
// grad_fn. An output that aliases an input is cloned first (its handle changes).
napi_value CustomFunction(napi_env env, napi_callback_info info) {
  napi_value a[5];
  getArgs(env, info, 5, a);
  KEEL_GUARD(env, "autograd.Function", {
    std::string label = argString(env, a[0], "name");
    auto inputs = argTensorList(env, a[1], "inputs");
    auto outputs = argTensorList(env, a[2], "outputs");
    napi_valuetype ft;
    napi_typeof(env, a[3], &ft);
    if (ft != napi_function) throw ArgError("argument 'backward' must be a function");
    bool anyRequiresGrad = false;
    for (const auto& t : inputs) anyRequiresGrad = anyRequiresGrad || (t.defined() && t.requires_grad());
    napi_value result;
    napi_create_array_with_length(env, outputs.size(), &result);
    if (!anyRequiresGrad || !c10::GradMode::is_enabled()) {
      for (size_t i = 0; i < outputs.size(); ++i) napi_set_element(env, result, i, jsTensor(env, outputs[i]));
      return result;
    }
    auto node = std::shared_ptr<JsNode>(new JsNode(), torch::autograd::deleteNode);
    node->label = label;
    node->backwardFn = std::make_shared<JsFunctionRef>(env, a[3]);
    if (!isNullish(env, a[4])) node->releaseFn = std::make_shared<JsFunctionRef>(env, a[4]);
    for (const auto& t : inputs) node->inputShapes.push_back(t.sizes().vec());
    node->set_next_edges(torch::autograd::collect_next_edges(inputs));
    for (size_t i = 0; i < outputs.size(); ++i) {
      at::Tensor out = outputs[i];
      bool aliases = out.is_view();
      for (const auto& in : inputs) aliases = aliases || out.is_alias_of(in);
      if (aliases) out = out.clone();
      if (at::isFloatingType(out.scalar_type()) || at::isComplexType(out.scalar_type()))
        torch::autograd::set_history(out, node);
      else
        node->add_input_metadata(Node::undefined_input());
      napi_set_element(env, result, i, jsTensor(env, out));
    }
    return result;
  })
}

}  // namespace

void registerAutogradFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "backward", Backward);
  defineFunction(env, exports, "grad", Grad);
  defineFunction(env, exports, "setGradEnabled", SetGradEnabled);
  defineFunction(env, exports, "isGradEnabled", IsGradEnabled);
  defineFunction(env, exports, "setAnomalyEnabled", SetAnomalyEnabled);
  defineFunction(env, exports, "requiresGrad", RequiresGrad);
  defineFunction(env, exports, "setRequiresGrad", SetRequiresGrad);
  defineFunction(env, exports, "getGrad", GetGrad);
  defineFunction(env, exports, "setGrad", SetGrad);
  defineFunction(env, exports, "retainGrad", RetainGrad);
  defineFunction(env, exports, "isLeaf", IsLeaf);
  defineFunction(env, exports, "gradFnName", GradFnName);
  defineFunction(env, exports, "registerHook", RegisterHook);
  defineFunction(env, exports, "removeHook", RemoveHook);
  defineFunction(env, exports, "customFunction", CustomFunction);
}

}  // namespace keel
