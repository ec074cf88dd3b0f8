// Unboxed calls for the hottest overloads. `call` (dispatch.cc) builds a
// boxed IValue stack and goes through callBoxed: per op that is a stack of
// IValues (a refcount bump per tensor argument, a copy of each default) and
// the boxing adapter in front of the Autograd kernel. For the overloads here
// the argument kinds are fixed, so each entry reads int32 handles and calls
// the at:: function, which enters the same c10::Dispatcher (unboxed): the
// Autograd, Autocast and every other dispatch key behave exactly as through
// `call`. The TS side (core/dispatch.ts `direct`) takes these only when no
// interceptor is installed and every argument is an ordinary live tensor
// (or a JS number/boolean for the Scalar ones); anything else goes the
// general way. The codes are the index in each table: core/dispatch.ts
// lists the same names in the same order, and `fastOps()` returns the
// labels so that a test can check the two agree.
#include "keel.h"

namespace keel {

namespace {

using T = at::Tensor;
using S = c10::Scalar;

struct UnaryOp {
  const char* label;
  T (*fn)(const T&);
};
struct BinaryOp {
  const char* label;
  const char* other;  // the second argument's schema name, for errors
  T (*fn)(const T&, const T&);
};
struct ScalarOp {
  const char* label;
  T (*fn)(const T&, const S&);
};

const UnaryOp kUnary[] = {
    {"aten::relu", [](const T& a) { return at::relu(a); }},
    {"aten::neg", [](const T& a) { return at::neg(a); }},
    {"aten::abs", [](const T& a) { return at::abs(a); }},
    {"aten::exp", [](const T& a) { return at::exp(a); }},
    {"aten::log", [](const T& a) { return at::log(a); }},
    {"aten::sqrt", [](const T& a) { return at::sqrt(a); }},
    {"aten::rsqrt", [](const T& a) { return at::rsqrt(a); }},
    {"aten::square", [](const T& a) { return at::square(a); }},
    {"aten::sigmoid", [](const T& a) { return at::sigmoid(a); }},
    {"aten::tanh", [](const T& a) { return at::tanh(a); }},
    {"aten::sin", [](const T& a) { return at::sin(a); }},
    {"aten::cos", [](const T& a) { return at::cos(a); }},
    {"aten::reciprocal", [](const T& a) { return at::reciprocal(a); }},
    {"aten::sign", [](const T& a) { return at::sign(a); }},
    {"aten::clone", [](const T& a) { return at::clone(a); }},
    {"aten::detach", [](const T& a) { return at::detach(a); }},
    {"aten::t", [](const T& a) { return at::t(a); }},
    {"aten::sum", [](const T& a) { return at::sum(a); }},
    {"aten::mean", [](const T& a) { return at::mean(a); }},
};

const BinaryOp kBinary[] = {
    {"aten::add.Tensor", "other", [](const T& a, const T& b) { return at::add(a, b); }},
    {"aten::sub.Tensor", "other", [](const T& a, const T& b) { return at::sub(a, b); }},
    {"aten::mul.Tensor", "other", [](const T& a, const T& b) { return at::mul(a, b); }},
    {"aten::div.Tensor", "other", [](const T& a, const T& b) { return at::div(a, b); }},
    {"aten::matmul", "other", [](const T& a, const T& b) { return at::matmul(a, b); }},
    {"aten::mm", "mat2", [](const T& a, const T& b) { return at::mm(a, b); }},
    {"aten::bmm", "mat2", [](const T& a, const T& b) { return at::bmm(a, b); }},
    {"aten::maximum", "other", [](const T& a, const T& b) { return at::maximum(a, b); }},
    {"aten::minimum", "other", [](const T& a, const T& b) { return at::minimum(a, b); }},
    {"aten::pow.Tensor_Tensor", "exponent", [](const T& a, const T& b) { return at::pow(a, b); }},
    {"aten::eq.Tensor", "other", [](const T& a, const T& b) { return at::eq(a, b); }},
    {"aten::ne.Tensor", "other", [](const T& a, const T& b) { return at::ne(a, b); }},
    {"aten::lt.Tensor", "other", [](const T& a, const T& b) { return at::lt(a, b); }},
    {"aten::le.Tensor", "other", [](const T& a, const T& b) { return at::le(a, b); }},
    {"aten::gt.Tensor", "other", [](const T& a, const T& b) { return at::gt(a, b); }},
    {"aten::ge.Tensor", "other", [](const T& a, const T& b) { return at::ge(a, b); }},
};

const ScalarOp kScalar[] = {
    {"aten::add.Scalar", [](const T& a, const S& b) { return at::add(a, b); }},
    {"aten::sub.Scalar", [](const T& a, const S& b) { return at::sub(a, b); }},
    {"aten::mul.Scalar", [](const T& a, const S& b) { return at::mul(a, b); }},
    {"aten::div.Scalar", [](const T& a, const S& b) { return at::div(a, b); }},
    {"aten::pow.Tensor_Scalar", [](const T& a, const S& b) { return at::pow(a, b); }},
    {"aten::eq.Scalar", [](const T& a, const S& b) { return at::eq(a, b); }},
    {"aten::ne.Scalar", [](const T& a, const S& b) { return at::ne(a, b); }},
    {"aten::lt.Scalar", [](const T& a, const S& b) { return at::lt(a, b); }},
    {"aten::le.Scalar", [](const T& a, const S& b) { return at::le(a, b); }},
    {"aten::gt.Scalar", [](const T& a, const S& b) { return at::gt(a, b); }},
    {"aten::ge.Scalar", [](const T& a, const S& b) { return at::ge(a, b); }},
};

template <typename Op, size_t N>
const Op* pick(napi_env env, napi_value code, const Op (&table)[N], const char* entry) {
  int32_t c = -1;
  if (napi_get_value_int32(env, code, &c) != napi_ok || c < 0 || static_cast<size_t>(c) >= N) {
    napi_throw_type_error(env, nullptr, (std::string(entry) + ": the first argument must be a fast-op code").c_str());
    return nullptr;
  }
  return &table[c];
}

// A tensor handle argument: an int32 (JS checked it); anything else is a TypeError.
int32_t handleOf(napi_env env, napi_value v, const char* what) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok)
    throw ArgError(std::string("argument '") + what + "' must be a tensor handle");
  return id;
}

napi_value Unary(napi_env env, napi_callback_info info) {
  napi_value a[2];
  // a missing argument is undefined: refused below as not a code or not a handle
  getArgs(env, info, 2, a);
  const UnaryOp* op = pick(env, a[0], kUnary, "unary");
  if (op == nullptr) return nullptr;
  KEEL_GUARD(env, op->label, { return jsTensor(env, op->fn(slot(handleOf(env, a[1], "self"), "self"))); })
}

napi_value Binary(napi_env env, napi_callback_info info) {
  napi_value a[3];
  // a missing argument is undefined: refused below as not a code or not a handle
  getArgs(env, info, 3, a);
  const BinaryOp* op = pick(env, a[0], kBinary, "binary");
  if (op == nullptr) return nullptr;
  KEEL_GUARD(env, op->label, {
    const T& x = slot(handleOf(env, a[1], "self"), "self");
    const T& y = slot(handleOf(env, a[2], op->other), op->other);
    return jsTensor(env, op->fn(x, y));
  })
}

napi_value BinaryScalar(napi_env env, napi_callback_info info) {
  napi_value a[3];
  // a missing argument is undefined: refused below as not a code or not a handle
  getArgs(env, info, 3, a);
  const ScalarOp* op = pick(env, a[0], kScalar, "binaryScalar");
  if (op == nullptr) return nullptr;
  KEEL_GUARD(env, op->label, {
    const T& x = slot(handleOf(env, a[1], "self"), "self");
    return jsTensor(env, op->fn(x, argScalar(env, a[2], "other")));
  })
}

template <typename Op, size_t N>
napi_value labels(napi_env env, const Op (&table)[N]) {
  napi_value r;
  napi_create_array_with_length(env, N, &r);
  for (size_t i = 0; i < N; ++i) napi_set_element(env, r, i, jsString(env, table[i].label));
  return r;
}

// fastOps(): { unary, binary, scalar }: each table's labels, in code order.
napi_value FastOps(napi_env env, napi_callback_info info) {
  KEEL_GUARD(env, "fastOps", {
    napi_value r;
    napi_create_object(env, &r);
    napi_set_named_property(env, r, "unary", labels(env, kUnary));
    napi_set_named_property(env, r, "binary", labels(env, kBinary));
    napi_set_named_property(env, r, "scalar", labels(env, kScalar));
    return r;
  })
}

}  // namespace

void registerFastOpFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "unary", Unary);
  defineFunction(env, exports, "binary", Binary);
  defineFunction(env, exports, "binaryScalar", BinaryScalar);
  defineFunction(env, exports, "fastOps", FastOps);
}

}  // namespace keel
