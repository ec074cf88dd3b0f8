// Tensor handles: lifetime, metadata, and the bytes in and out.
#include "keel.h"

#include <cstring>

namespace keel {

namespace {

// The tensor as a dense, contiguous CPU tensor whose bytes can be read: every
// kind libtorch hands back is either materialised here or refused with an
// Error that says what to do (no null data pointer is ever read).
at::Tensor readable(const at::Tensor& in) {
  if (!in.defined()) throw std::runtime_error("the tensor is undefined");
  if (in.is_meta()) throw std::runtime_error("a meta tensor has a shape but no values to read");
  if (in.is_nested()) throw std::runtime_error("a nested tensor cannot be read as one array; unbind() it first");
  if (in.is_quantized())
    throw std::runtime_error(std::string("a quantized tensor (") + c10::toString(in.scalar_type()) +
                             ") cannot be read directly; dequantize() it first");
  if (in.is_sparse() || in.is_sparse_csr())
    throw std::runtime_error("a sparse tensor cannot be read directly; call toDense() first");
  at::Tensor t = in.detach();
  if (t.is_mkldnn()) t = t.to_dense();
  // An efficient zero tensor (e.g. the gradient of sgn) has no storage.
  if (t._is_zerotensor()) return at::zeros(t.sizes(), at::TensorOptions().dtype(t.scalar_type()));
  if (!t.device().is_cpu()) t = t.cpu();
  // Conjugate and negative views keep a bit instead of the values.
  t = t.resolve_conj().resolve_neg();
  return t.contiguous();
}


napi_value Free(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  int32_t id;
  // the hot case (every dispose): an int32 handle, read without a type check first
  if (argc == 1 && napi_get_value_int32(env, a[0], &id) == napi_ok) {
    KEEL_GUARD(env, "dispose", {
      release(env, id);
      return nullptr;
    })
  }
  if (argc < 1) getArgs(env, info, 1, a);
  KEEL_GUARD(env, "dispose", {
    release(env, argTensorId(env, a[0], "tensor"));
    return nullptr;
  })
}

// A second handle to the same tensor (same TensorImpl).
napi_value Share(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "share", { return jsTensor(env, argTensor(env, a[0], "tensor")); })
}

napi_value Memory(napi_env env, napi_callback_info info) {
  KEEL_GUARD(env, "memory", {
    napi_value r;
    napi_create_object(env, &r);
    napi_set_named_property(env, r, "tensors", jsInt(env, liveTensors()));
    napi_set_named_property(env, r, "bytes", jsInt(env, liveBytes()));
    return r;
  })
}

napi_value Shape(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "shape", {
    const at::Tensor& t = argTensor(env, a[0], "tensor");
    napi_value r;
    auto sizes = t.sizes();
    napi_create_array_with_length(env, sizes.size(), &r);
    for (size_t i = 0; i < sizes.size(); ++i) napi_set_element(env, r, i, jsInt(env, sizes[i]));
    return r;
  })
}

napi_value Strides(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "strides", {
    const at::Tensor& t = argTensor(env, a[0], "tensor");
    napi_value r;
    auto st = t.strides();
    napi_create_array_with_length(env, st.size(), &r);
    for (size_t i = 0; i < st.size(); ++i) napi_set_element(env, r, i, jsInt(env, st[i]));
    return r;
  })
}

napi_value Dtype(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "dtype", { return jsInt(env, static_cast<int>(argTensor(env, a[0], "tensor").scalar_type())); })
}

napi_value Device(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "device", { return jsString(env, argTensor(env, a[0], "tensor").device().str()); })
}

napi_value Numel(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "numel", { return jsInt(env, argTensor(env, a[0], "tensor").numel()); })
}

napi_value Item(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "item", {
    const at::Tensor& in = argTensor(env, a[0], "tensor");
    if (in.numel() != 1)
      throw std::runtime_error("a tensor with " + std::to_string(in.numel()) +
                               " elements cannot be converted to a number (item() needs exactly one)");
    c10::Scalar s = readable(in).item();
    if (s.isBoolean()) return jsBool(env, s.toBool());
    if (s.isComplex()) throw std::runtime_error("complex tensors cannot be converted to a JS number");
    return jsNumber(env, s.toDouble());
  })
}

// fromData(typedArray, dtype, shape): a new CPU tensor holding a copy of the bytes.
napi_value FromData(napi_env env, napi_callback_info info) {
  napi_value a[3];
  getArgs(env, info, 3, a);
  KEEL_GUARD(env, "tensor", {
    bool isTyped = false;
    napi_is_typedarray(env, a[0], &isTyped);
    if (!isTyped) throw ArgError("argument 'data' must be a typed array");
    napi_typedarray_type ta;
    size_t length, offset;
    void* data;
    napi_value ab;
    napi_get_typedarray_info(env, a[0], &ta, &length, &data, &ab, &offset);
    size_t elem = 1;
    switch (ta) {
      case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: elem = 1; break;
      case napi_int16_array: case napi_uint16_array: elem = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
      default: elem = 8;
    }
    auto dtype = static_cast<at::ScalarType>(argInt(env, a[1], "dtype"));
    auto shape = argIntList(env, a[2], "shape");
    for (auto d : shape)
      if (d < 0) throw ArgError("argument 'shape' has a negative dimension");
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (nbytes != length * elem)
      throw ArgError("argument 'data' holds " + std::to_string(length * elem) + " bytes but shape " +
                     c10::str(t.sizes()) + " of " + c10::toString(dtype) + " needs " + std::to_string(nbytes));
    if (nbytes) std::memcpy(t.data_ptr(), data, nbytes);
    return jsTensor(env, std::move(t));
  })
}

// toBuffer(id): the tensor's values as a new ArrayBuffer (contiguous, CPU).
napi_value ToBuffer(napi_env env, napi_callback_info info) {
  napi_value a[1];
  getArgs(env, info, 1, a);
  KEEL_GUARD(env, "data", {
    at::Tensor t = readable(argTensor(env, a[0], "tensor"));
    size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    void* dst;
    napi_value ab;
    NAPI_OK(napi_create_arraybuffer(env, nbytes, &dst, &ab));
    if (nbytes) std::memcpy(dst, t.data_ptr(), nbytes);
    return ab;
  })
}

napi_value SameTensor(napi_env env, napi_callback_info info) {
  napi_value a[2];
  getArgs(env, info, 2, a);
  KEEL_GUARD(env, "sameTensor", {
    return jsBool(env, argTensor(env, a[0], "a").unsafeGetTensorImpl() ==
                           argTensor(env, a[1], "b").unsafeGetTensorImpl());
  })
}

}  // namespace

void registerTensorFunctions(napi_env env, napi_value exports) {
  defineFunction(env, exports, "free", Free);
  defineFunction(env, exports, "share", Share);
  defineFunction(env, exports, "memory", Memory);
  defineFunction(env, exports, "shape", Shape);
  defineFunction(env, exports, "strides", Strides);
  defineFunction(env, exports, "dtype", Dtype);
  defineFunction(env, exports, "device", Device);
  defineFunction(env, exports, "numel", Numel);
  defineFunction(env, exports, "item", Item);
  defineFunction(env, exports, "fromData", FromData);
  defineFunction(env, exports, "toBuffer", ToBuffer);
  defineFunction(env, exports, "sameTensor", SameTensor);
}

}  // namespace keel
