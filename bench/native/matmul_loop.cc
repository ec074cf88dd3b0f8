// The floor for bench/matmul.mjs: the same float32 matmul in a plain libtorch
// C++ loop, no JS. A worker: each stdin line {"n":N,"iters":K} runs K calls of
// torch::matmul on N×N float32 tensors and answers {"seconds":total}.
//   matmul_loop <threads>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <utility>

namespace {

long long field(const std::string& line, const char* name) {
  const std::string key = std::string("\"") + name + "\":";
  const size_t at = line.find(key);
  return at == std::string::npos ? -1 : std::atoll(line.c_str() + at + key.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <threads>   (then {\"n\":N,\"iters\":K} lines on stdin)\n", argv[0]);
    return 2;
  }
  at::set_num_threads(std::atoi(argv[1]));
  torch::manual_seed(0);
  std::map<long long, std::pair<torch::Tensor, torch::Tensor>> inputs;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const long long n = field(line, "n"), iters = field(line, "iters");
    if (n <= 0 || iters <= 0) {
      std::printf("{\"error\":\"bad request\"}\n");
      std::fflush(stdout);
      continue;
    }
    auto it = inputs.find(n);
    if (it == inputs.end()) {
      it = inputs.emplace(n, std::make_pair(torch::randn({n, n}, torch::kFloat32), torch::randn({n, n}, torch::kFloat32))).first;
    }
    const auto& [a, b] = it->second;
    const auto t0 = std::chrono::steady_clock::now();
    for (long long i = 0; i < iters; ++i) {
      auto c = torch::matmul(a, b);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"seconds\":%.9g,\"threads\":%d}\n", s, at::get_num_threads());
    std::fflush(stdout);
  }
  return 0;
}
