// The harness's launch interface, shared by runtime.cpp and the generated kernel wrappers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

namespace cucpu {

enum { SCHEDULE_FORWARD = 0, SCHEDULE_REVERSE = 1, SCHEDULE_RANDOM = 2 };

// What a kernel launch says (grid, block, dynamic shared memory) and how the harness runs it.
// Laid out as crates/cuda-cpu/src/lib.rs `Launch`.
struct Launch {
  unsigned grid[3];
  unsigned block[3];
  size_t shared_bytes;
  int schedule;
  uint64_t seed;
  size_t stack_bytes;
};

int run(const Launch &l, const std::function<void()> &body);

} // namespace cucpu

#define CUCPU_UNPAREN(...) __VA_ARGS__
// A C entry point `cucpu_<name>(launch, params…)` that runs kernel `name` under the harness;
// 0 on success, else cucpu_last_error() says why.
#define CUCPU_EXPORT(name, params, args)                                                         \
  extern "C" int cucpu_##name(const cucpu::Launch *l, CUCPU_UNPAREN params) {                    \
    return cucpu::run(*l, [&] { name args; });                                                   \
  }
