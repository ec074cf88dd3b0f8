// The generic operator call: any registered ATen operator, by schema, through
// c10::Dispatcher::callBoxed. Handles are resolved once per overload and
// cached in a table that JS indexes by an int; a call builds the boxed stack
// in schema order (keyword-only arguments too), filling what JS left
// undefined from the schema's defaults.
#include "keel.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <sstream>
#include <unordered_map>

namespace keel {

namespace {

enum class Kind : uint8_t {
  Tensor, TensorList, OptTensorList, Int, Float, Bool, Scalar, String,
  ScalarType, Layout, MemoryFormat, Device, IntList, FloatList, BoolList, Generator, ScalarList, Unsupported,
};

const char* kindName(Kind k) {
  switch (k) {
    case Kind::Tensor: return "Tensor";
    case Kind::TensorList: return "TensorList";
    case Kind::OptTensorList: return "OptionalTensorList";
    case Kind::Int: return "Int";
    case Kind::Float: return "Float";
    case Kind::Bool: return "Bool";
    case Kind::Scalar: return "Scalar";
    case Kind::String: return "String";
    case Kind::ScalarType: return "ScalarType";
    case Kind::Layout: return "Layout";
    case Kind::MemoryFormat: return "MemoryFormat";
    case Kind::Device: return "Device";
    case Kind::IntList: return "IntList";
    case Kind::FloatList: return "FloatList";
    case Kind::BoolList: return "BoolList";
    case Kind::Generator: return "Generator";
    case Kind::ScalarList: return "ScalarList";
    case Kind::Unsupported: return "Unsupported";
  }
  return "Unsupported";
}

Kind classify(c10::TypePtr t, bool& optional) {
  optional = false;
  if (t->kind() == c10::TypeKind::OptionalType) {
    optional = true;
    t = t->castRaw<c10::OptionalType>()->getElementType();
  }
  switch (t->kind()) {
    case c10::TypeKind::TensorType: return Kind::Tensor;
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: return Kind::Int;
    case c10::TypeKind::FloatType: return Kind::Float;
    case c10::TypeKind::BoolType: return Kind::Bool;
    case c10::TypeKind::NumberType: return Kind::Scalar;
    case c10::TypeKind::StringType: return Kind::String;
    case c10::TypeKind::ScalarTypeType: return Kind::ScalarType;
    case c10::TypeKind::LayoutType: return Kind::Layout;
    case c10::TypeKind::MemoryFormatType: return Kind::MemoryFormat;
    case c10::TypeKind::DeviceObjType: return Kind::Device;
    case c10::TypeKind::GeneratorType: return Kind::Generator;
    case c10::TypeKind::ListType: {
      auto e = t->castRaw<c10::ListType>()->getElementType();
      switch (e->kind()) {
        case c10::TypeKind::TensorType: return Kind::TensorList;
        case c10::TypeKind::IntType:
        case c10::TypeKind::SymIntType: return Kind::IntList;
        case c10::TypeKind::FloatType: return Kind::FloatList;
        case c10::TypeKind::BoolType: return Kind::BoolList;
        case c10::TypeKind::NumberType: return Kind::ScalarList;
        case c10::TypeKind::OptionalType:
          if (e->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::TensorType)
            return Kind::OptTensorList;
          return Kind::Unsupported;
        default: return Kind::Unsupported;
      }
    }
    default: return Kind::Unsupported;
  }
}

struct ArgSpec {
  std::string name;
  Kind kind;
  bool optional;
  int n;  // fixed list length (int[2]) or 0
  c10::optional<c10::IValue> def;
};

struct Op {
  c10::OperatorHandle handle;
  std::string label;  // aten::name.overload, for errors
  std::vector<ArgSpec> args;
  std::shared_ptr<const RoundedOpInfo> rounding;  // read from the schema on the first callRounded
};

std::vector<Op> g_ops;
std::unordered_map<std::string, int32_t> g_opIndex;

std::string qualified(const c10::OperatorName& n) {
  return n.overload_name.empty() ? n.name : n.name + "." + n.overload_name;
}

std::vector<ArgSpec> specsOf(const c10::FunctionSchema& s, std::string* unsupported) {
  std::vector<ArgSpec> specs;
  for (const auto& a : s.arguments()) {
    ArgSpec spec;
    spec.name = a.name();
    spec.kind = classify(a.real_type(), spec.optional);
    spec.n = a.N() ? *a.N() : 0;
    spec.def = a.default_value();
    if (spec.kind == Kind::Unsupported && unsupported && unsupported->empty())
      *unsupported = a.name() + ": " + a.real_type()->annotation_str();
    specs.push_back(std::move(spec));
  }
  return specs;
}

// ---- JS → IValue ------------------------------------------------------------

c10::IValue scalarOf(napi_env env, napi_value v, const char* what) { return c10::IValue(argScalar(env, v, what)); }

c10::IValue convert(napi_env env, napi_value v, const ArgSpec& spec) {
  const char* what = spec.name.c_str();
  switch (spec.kind) {
    case Kind::Tensor: return c10::IValue(argTensor(env, v, what));
    case Kind::TensorList: return c10::IValue(argTensorList(env, v, what));
    case Kind::OptTensorList: {
      bool arr = false;
      napi_is_array(env, v, &arr);
      if (!arr) throw ArgError(std::string("argument '") + what + "' must be an array of tensors or nulls");
      uint32_t n;
      napi_get_array_length(env, v, &n);
      c10::List<c10::optional<at::Tensor>> list;
      for (uint32_t i = 0; i < n; ++i) {
        napi_value e = elementAt(env, v, i);
        if (isNullish(env, e)) list.push_back(c10::nullopt);
        else list.push_back(argTensor(env, e, what));
      }
      return c10::IValue(list);
    }
    case Kind::Int: return c10::IValue(argInt(env, v, what));
    case Kind::Float: return c10::IValue(argNumber(env, v, what));
    case Kind::Bool: return c10::IValue(argBool(env, v, what));
    case Kind::Scalar: return scalarOf(env, v, what);
    case Kind::String: return c10::IValue(argString(env, v, what));
    case Kind::ScalarType: {
      int64_t code = argInt(env, v, what);
      if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions))
        throw ArgError(std::string("argument '") + what + "' is not a dtype code: " + std::to_string(code));
      return c10::IValue(code);
    }
    case Kind::Layout:
    case Kind::MemoryFormat: return c10::IValue(argInt(env, v, what));
    case Kind::Device: return c10::IValue(c10::Device(argString(env, v, what)));
    case Kind::IntList: {
      napi_valuetype t;
      napi_typeof(env, v, &t);
      if (t == napi_number)  // int[2] accepts one int, as in PyTorch
        return c10::IValue(std::vector<int64_t>(spec.n > 0 ? spec.n : 1, argInt(env, v, what)));
      auto list = argIntList(env, v, what);
      // Kernels index fixed-size lists (int[2], int[3]) without checking
      // their length: one value expands, as PyTorch's parser does; an empty
      // list passes only where the schema's own default is empty (e.g.
      // max_pool2d's stride=[]); any other length is an error here.
      if (spec.n >= 2 && static_cast<int>(list.size()) != spec.n) {
        bool emptyDefault = spec.def && spec.def->isIntList() && spec.def->toIntList().empty();
        if (list.size() == 1) list.assign(spec.n, list[0]);
        else if (!(list.empty() && emptyDefault))
          throw ArgError(std::string("argument '") + what + "' needs " + std::to_string(spec.n) + " integers (or one), got " +
                         std::to_string(list.size()));
      }
      return c10::IValue(list);
    }
    case Kind::FloatList: {
      napi_valuetype t;
      napi_typeof(env, v, &t);
      if (t == napi_number) return c10::IValue(std::vector<double>(spec.n > 0 ? spec.n : 1, argNumber(env, v, what)));
      bool arr = false;
      napi_is_array(env, v, &arr);
      if (!arr) throw ArgError(std::string("argument '") + what + "' must be an array of numbers");
      uint32_t n;
      napi_get_array_length(env, v, &n);
      std::vector<double> out(n);
      for (uint32_t i = 0; i < n; ++i) {
        napi_value e = elementAt(env, v, i);
        out[i] = argNumber(env, e, what);
      }
      return c10::IValue(out);
    }
    case Kind::BoolList: {
      bool arr = false;
      napi_is_array(env, v, &arr);
      if (!arr) throw ArgError(std::string("argument '") + what + "' must be an array of booleans");
      uint32_t n;
      napi_get_array_length(env, v, &n);
      c10::List<bool> list;
      for (uint32_t i = 0; i < n; ++i) {
        napi_value e = elementAt(env, v, i);
        list.push_back(argBool(env, e, what));
      }
      return c10::IValue(list);
    }
    case Kind::ScalarList: {
      bool arr = false;
      napi_is_array(env, v, &arr);
      if (!arr) throw ArgError(std::string("argument '") + what + "' must be an array of numbers");
      uint32_t n;
      napi_get_array_length(env, v, &n);
      c10::impl::GenericList list(c10::NumberType::get());
      for (uint32_t i = 0; i < n; ++i) {
        napi_value e = elementAt(env, v, i);
        list.push_back(scalarOf(env, e, what));
      }
      return c10::IValue(list);
    }
    case Kind::Generator:
      throw ArgError(std::string("argument '") + what + "': explicit generators are not supported; use manualSeed");
    case Kind::Unsupported: break;
  }
  throw ArgError(std::string("argument '") + what + "' has a type Keel cannot pass");
}

// ---- IValue → JS ------------------------------------------------------------

napi_value toJs(napi_env env, const c10::IValue& v) {
  if (v.isTensor()) return jsTensor(env, v.toTensor());
  if (v.isNone()) return jsNull(env);
  if (v.isInt()) return jsInt(env, v.toInt());
  if (v.isDouble()) return jsNumber(env, v.toDouble());
  if (v.isBool()) return jsBool(env, v.toBool());
  if (v.isString()) return jsString(env, v.toStringRef());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    napi_value r;
    napi_create_array_with_length(env, list.size(), &r);
    for (size_t i = 0; i < list.size(); ++i) napi_set_element(env, r, i, jsTensor(env, list.get(i)));
    return r;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    napi_value r;
    napi_create_array_with_length(env, list.size(), &r);
    for (size_t i = 0; i < list.size(); ++i) napi_set_element(env, r, i, toJs(env, list[i]));
    return r;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    napi_value r;
    napi_create_array_with_length(env, elems.size(), &r);
    for (size_t i = 0; i < elems.size(); ++i) napi_set_element(env, r, i, toJs(env, elems[i]));
    return r;
  }
  if (v.isScalar()) return jsNumber(env, v.toScalar().toDouble());
  if (v.isDevice()) return jsString(env, v.toDevice().str());
  throw std::runtime_error(std::string("cannot return a value of type ") + v.tagKind() + " to JavaScript");
}

// ---- entry points -------------------------------------------------------------

// resolveOp(name, overload) -> int handle for call().
napi_value ResolveOp(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  KEEL_GUARD(env, "resolveOp", {
    if (argc < 2) throw ArgError("resolveOp(name, overload) needs two strings");
    std::string name = argString(env, a[0], "name");
    std::string overload = argString(env, a[1], "overload");
    if (name.find("::") == std::string::npos) name = "aten::" + name;
    std::string key = overload.empty() ? name : name + "." + overload;
    auto it = g_opIndex.find(key);
    if (it != g_opIndex.end()) return jsInt(env, it->second);
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle) throw std::runtime_error("no operator " + key + " in this libtorch");
    std::string unsupported;
    Op op{*handle, key, specsOf(handle->schema(), &unsupported)};
    if (!unsupported.empty()) throw std::runtime_error("operator " + key + " has an argument Keel cannot pass (" + unsupported + ")");
    int32_t idx = static_cast<int32_t>(g_ops.size());
    g_ops.push_back(std::move(op));
    g_opIndex.emplace(key, idx);
    return jsInt(env, idx);
  })
}

constexpr size_t kMaxArgs = 64;

// What callRounded returns when the precision policy's JS interceptor must
// take the op (a tensor off the CPU): nothing was done.
napi_ref g_declined = nullptr;

// The tensor handles in a JS array (a tensor list argument), -1 for null.
void appendIds(napi_env env, napi_value arr, std::vector<int32_t>& ids) {
  uint32_t n = 0;
  napi_get_array_length(env, arr, &n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value e = elementAt(env, arr, i);
    int32_t id = -1;
    if (!isNullish(env, e)) napi_get_value_int32(env, e, &id);
    ids.push_back(id);
  }
}

// call(handle, ...args): positional arguments in schema order; undefined or
// null takes the schema default (or None for optionals). callRounded: the
// same under the innermost precision run (RoundedCall in native/round.cc).
napi_value callOp(napi_env env, napi_callback_info info, bool rounded) {
  size_t argc = kMaxArgs;
  napi_value argv[kMaxArgs];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t idx = -1;
  if (argc > 0) napi_get_value_int32(env, argv[0], &idx);
  if (idx < 0 || static_cast<size_t>(idx) >= g_ops.size()) {
    napi_throw_type_error(env, nullptr, "call: the first argument must be an operator handle from resolveOp");
    return nullptr;
  }
  Op& op = g_ops[idx];
  KEEL_GUARD(env, op.label, {
    // One stack reused by every call (the addon is single-threaded; a
    // thread_local would cost a TLS lookup per call in a shared library). A
    // call made while another is building its stack (a JS getter on an
    // argument array calling an op) gets a stack of its own.
    static torch::jit::Stack shared;
    static std::vector<int32_t> sharedIds;
    static int depth = 0;
    torch::jit::Stack local;
    std::vector<int32_t> localIds;
    torch::jit::Stack& stack = depth == 0 ? shared : local;
    std::vector<int32_t>& ids = depth == 0 ? sharedIds : localIds;  // rounded: each tensor argument's handle
    struct Depth {
      int& d;
      explicit Depth(int& d) : d(d) { ++d; }
      ~Depth() { --d; }
    } guard(depth);
    stack.clear();
    ids.clear();
    size_t given = argc - 1;
    if (given > op.args.size())
      throw ArgError("takes at most " + std::to_string(op.args.size()) + " arguments, got " + std::to_string(given));
    for (size_t i = 0; i < op.args.size(); ++i) {
      const ArgSpec& spec = op.args[i];
      napi_valuetype t = napi_undefined;
      if (i < given) napi_typeof(env, argv[i + 1], &t);
      if (t == napi_undefined || t == napi_null) {
        if (spec.def) stack.push_back(*spec.def);
        else if (spec.optional) stack.emplace_back();
        else throw ArgError("missing required argument '" + spec.name + "'");
        if (rounded && spec.kind == Kind::Tensor) ids.push_back(-1);
        continue;
      }
      if (spec.kind == Kind::Tensor && t == napi_number) {  // the hot case: a tensor handle
        int32_t id;
        napi_get_value_int32(env, argv[i + 1], &id);
        stack.emplace_back(slot(id, spec.name.c_str()));
        if (rounded) ids.push_back(id);
        continue;
      }
      stack.push_back(convert(env, argv[i + 1], spec));
      if (rounded && (spec.kind == Kind::TensorList || spec.kind == Kind::OptTensorList)) appendIds(env, argv[i + 1], ids);
    }
    struct ClearOnExit {  // a failed call must not keep its argument tensors alive
      torch::jit::Stack& s;
      ~ClearOnExit() { s.clear(); }
    } clearOnExit{stack};
    c10::optional<RoundedCall> policy;
    if (rounded) {
      if (!op.rounding) op.rounding = std::make_shared<const RoundedOpInfo>(roundedOpInfo(op.handle.schema()));
      policy.emplace(*op.rounding, ids);
      if (!policy->before(stack)) {
        napi_value declined;
        NAPI_OK(napi_get_reference_value(env, g_declined, &declined));
        return declined;
      }
    }
    op.handle.callBoxed(&stack);
    if (policy) policy->after(stack);
    napi_value result;
    if (stack.empty()) {
      result = jsUndefined(env);
    } else if (stack.size() == 1) {
      result = toJs(env, stack[0]);
    } else {
      napi_create_array_with_length(env, stack.size(), &result);
      for (size_t i = 0; i < stack.size(); ++i) napi_set_element(env, result, i, toJs(env, stack[i]));
    }
    stack.clear();
    if (policy) policy->noteKnown(env, result);
    return result;
  })
}

napi_value Call(napi_env env, napi_callback_info info) { return callOp(env, info, false); }
napi_value CallRounded(napi_env env, napi_callback_info info) { return callOp(env, info, true); }

napi_value describeArgument(napi_env env, const c10::Argument& a) {
  napi_value o;
  napi_create_object(env, &o);
  bool optional;
  Kind k = classify(a.real_type(), optional);
  napi_set_named_property(env, o, "name", jsString(env, a.name()));
  napi_set_named_property(env, o, "type", jsString(env, a.real_type()->annotation_str()));
  napi_set_named_property(env, o, "kind", jsString(env, kindName(k)));
  napi_set_named_property(env, o, "optional", jsBool(env, optional));
  if (a.N()) napi_set_named_property(env, o, "n", jsInt(env, *a.N()));
  if (a.default_value()) {
    std::ostringstream ss;
    ss << *a.default_value();
    napi_set_named_property(env, o, "default", jsString(env, ss.str()));
  }
  napi_set_named_property(env, o, "kwargOnly", jsBool(env, a.kwarg_only()));
  napi_set_named_property(env, o, "mutable", jsBool(env, a.alias_info() && a.alias_info()->isWrite()));
  // The alias set ('a' in Tensor(a!)): a return in the same set as a written
  // argument is that argument (out= and in-place overloads).
  if (a.alias_info() && a.alias_info()->beforeSets().size() == 1 && !a.alias_info()->isWildcardBefore())
    napi_set_named_property(env, o, "alias", jsString(env, a.alias_info()->beforeSet().toUnqualString()));
  return o;
}

// schemas(): every aten operator registered with the dispatcher, for the
// ops/ generator.
napi_value Schemas(napi_env env, napi_callback_info info) {
  KEEL_GUARD(env, "schemas", {
    auto names = c10::Dispatcher::singleton().getAllOpNames();
    std::sort(names.begin(), names.end(), [](const c10::OperatorName& x, const c10::OperatorName& y) {
      return x.name != y.name ? x.name < y.name : x.overload_name < y.overload_name;
    });
    napi_value out;
    napi_create_array(env, &out);
    uint32_t n = 0;
    for (const auto& name : names) {
      if (name.name.rfind("aten::", 0) != 0) continue;
      auto handle = c10::Dispatcher::singleton().findSchema(name);
      if (!handle || !handle->hasSchema()) continue;
      const auto& s = handle->schema();
      napi_value o, args, rets;
      napi_create_object(env, &o);
      napi_set_named_property(env, o, "name", jsString(env, name.name.substr(6)));
      napi_set_named_property(env, o, "overload", jsString(env, name.overload_name));
      std::ostringstream sig;
      sig << s;
      napi_set_named_property(env, o, "schema", jsString(env, sig.str()));
      napi_create_array(env, &args);
      for (size_t i = 0; i < s.arguments().size(); ++i)
        napi_set_element(env, args, i, describeArgument(env, s.arguments()[i]));
      napi_create_array(env, &rets);
      for (size_t i = 0; i < s.returns().size(); ++i)
        napi_set_element(env, rets, i, describeArgument(env, s.returns()[i]));
      napi_set_named_property(env, o, "arguments", args);
      napi_set_named_property(env, o, "returns", rets);
      napi_set_named_property(env, o, "vararg", jsBool(env, s.is_vararg() || s.is_varret()));
      napi_set_element(env, out, n++, o);
    }
    return out;
  })
}

}  // namespace

void registerDispatchFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "resolveOp", ResolveOp);
  defineFunction(env, exports, "call", Call);
  defineFunction(env, exports, "callRounded", CallRounded);
  napi_value declined;
  napi_create_symbol(env, jsString(env, "keel.declined"), &declined);
  napi_create_reference(env, declined, 1, &g_declined);
  napi_set_named_property(env, exports, "callDeclined", declined);
  defineFunction(env, exports, "schemas", Schemas);
}

}  // namespace keel
