// Debian ships libtorch's c10d headers but not Gloo's (libgloo-dev is not a
// dependency of libtorch-dev). ProcessGroupGloo.hpp names Gloo's types only
// through pointers, except for the base of its GlooStore helper, which Keel
// never instantiates. These declarations are enough to include that header;
// every Gloo object is made and used inside libtorch_cpu.so.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace gloo {
class Context;
namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport
namespace rendezvous {
class Store {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::seconds(30);
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) { wait(keys); }
};
}  // namespace rendezvous
}  // namespace gloo
