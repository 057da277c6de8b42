// The CUDA dialect pairtrain's kernels (crates/model/src/ops/cuda/*.cu) are written in, as plain
// C++ for the CPU: every CUDA thread of a block is a fiber, run by runtime.cpp until it reaches a
// point where CUDA threads wait for each other (__syncthreads, a warp shuffle or vote); the
// scheduler releases them when every thread that must arrive has arrived, and stops with an
// error naming the places when they cannot (a barrier some threads skip, two different barriers,
// a shuffle whose partners never come). Dynamic shared memory is filled with NaN at each block's
// start, and the threads run in the order a schedule says (forward, reverse, seeded random), so a
// missing barrier shows up as a wrong result under some schedule.
//
// Not modelled: tensor-core instructions (mma, ldmatrix, cp.async), clusters, textures, streams;
// kernels written for this harness use none of them.
#pragma once

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <math.h>
#include <cstdint>
#include <cstring>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace cucpu {

struct ThreadCtx {
  dim3 tid, bid, bdim, gdim;
};

// The context of the CUDA thread running now.
ThreadCtx *current();
void syncthreads(const char *site);
void syncwarp(unsigned mask, const char *site);
// Deposits this lane's value for a warp operation over `mask`, waits for the other lanes, and
// returns the 32 values of the warp as they were deposited (lanes outside the mask: unset).
const uint64_t *warp_exchange(unsigned mask, uint64_t value, const char *site);
unsigned lane();
void *dynamic_smem();
[[noreturn]] void fail(const char *msg, const char *site);

template <class T> uint64_t bits_of(T v) {
  static_assert(sizeof(T) <= 8, "warp shuffles move at most 64 bits");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T> T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
template <class T>
T shuffle_from(unsigned mask, T v, int src, int width, const char *site) {
  const uint64_t *all = warp_exchange(mask, bits_of(v), site);
  unsigned me = lane();
  // Lanes are grouped in segments of `width`; sources wrap within the segment, as in CUDA.
  unsigned seg = me / width * width;
  unsigned s = seg + ((unsigned)src % (unsigned)width);
  if (!(mask >> s & 1u))
    fail("warp shuffle reads a lane outside its mask", site);
  return from_bits<T>(all[s]);
}

} // namespace cucpu

#define CUCPU_STR2(x) #x
#define CUCPU_STR(x) CUCPU_STR2(x)
#define CUCPU_SITE __FILE__ ":" CUCPU_STR(__LINE__)

#define threadIdx (cucpu::current()->tid)
#define blockIdx (cucpu::current()->bid)
#define blockDim (cucpu::current()->bdim)
#define gridDim (cucpu::current()->gdim)
#define warpSize 32

#define __global__
#define __device__ inline
#define __host__
#define __forceinline__
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)

#define __syncthreads() cucpu::syncthreads(CUCPU_SITE)
// GNU `, ##__VA_ARGS__` drops the comma when an optional argument (a mask, a width) is left out.
#define __syncwarp(...) cucpu::syncwarp_at(CUCPU_SITE, ##__VA_ARGS__)

// The kernels declare their dynamic shared memory through this macro (plain `extern __shared__`
// under nvcc), so that the harness can hand each block a fresh NaN-filled buffer.
#define EXTERN_SHARED(T, name) T *name = reinterpret_cast<T *>(cucpu::dynamic_smem())

#define __shfl_sync(...) cucpu::shfl_idx(CUCPU_SITE, __VA_ARGS__)
#define __shfl_xor_sync(...) cucpu::shfl_xor(CUCPU_SITE, __VA_ARGS__)
#define __shfl_down_sync(...) cucpu::shfl_down(CUCPU_SITE, __VA_ARGS__)
#define __shfl_up_sync(...) cucpu::shfl_up(CUCPU_SITE, __VA_ARGS__)
#define __ballot_sync(mask, pred) cucpu::ballot(CUCPU_SITE, (mask), (pred))
#define __any_sync(mask, pred) (cucpu::ballot(CUCPU_SITE, (mask), (pred)) != 0u)
#define __all_sync(mask, pred) (cucpu::ballot(CUCPU_SITE, (mask), (pred)) == (unsigned)(mask))

namespace cucpu {
inline void syncwarp_at(const char *site, unsigned mask = 0xffffffffu) { syncwarp(mask, site); }
template <class T> T shfl_idx(const char *site, unsigned mask, T v, int src, int width = 32) {
  return shuffle_from(mask, v, src, width, site);
}
template <class T> T shfl_xor(const char *site, unsigned mask, T v, int lm, int width = 32) {
  return shuffle_from(mask, v, (int)(lane() % (unsigned)width) ^ lm, width, site);
}
// Shuffles down and up keep the caller's own value where the source is past its segment.
template <class T> T shfl_down(const char *site, unsigned mask, T v, unsigned d, int width = 32) {
  const uint64_t *all = warp_exchange(mask, bits_of(v), site);
  unsigned me = lane(), seg = me / width * width;
  unsigned s = me + d;
  if (s >= seg + (unsigned)width)
    return v;
  if (!(mask >> s & 1u))
    fail("warp shuffle reads a lane outside its mask", site);
  return from_bits<T>(all[s]);
}
template <class T> T shfl_up(const char *site, unsigned mask, T v, unsigned d, int width = 32) {
  const uint64_t *all = warp_exchange(mask, bits_of(v), site);
  unsigned me = lane(), seg = me / width * width;
  if (me < seg + d)
    return v;
  unsigned s = me - d;
  if (!(mask >> s & 1u))
    fail("warp shuffle reads a lane outside its mask", site);
  return from_bits<T>(all[s]);
}
inline unsigned ballot(const char *site, unsigned mask, bool pred) {
  const uint64_t *all = warp_exchange(mask, pred ? 1 : 0, site);
  unsigned r = 0;
  for (unsigned l = 0; l < 32; l++)
    if ((mask >> l & 1u) && all[l])
      r |= 1u << l;
  return r;
}
} // namespace cucpu

// Atomics: real atomic operations, so that the one-OS-thread-per-CUDA-thread mode is right too.
template <class T> inline T atomicAdd(T *p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange(p, &old, (T[]){old + v}, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
  }
  return old;
}
inline int atomicMax(int *p, int v) {
  int old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline unsigned atomicCAS(unsigned *p, unsigned cmp, unsigned v) {
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Device maths under their CUDA names.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return std::min(1.0f, std::max(0.0f, x)); }
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, 4);
  return i;
}

// bf16 as <cuda_bf16.h> has it: storage type and round-to-nearest-even conversions.
struct __nv_bfloat16 {
  uint16_t x;
};
inline float __bfloat162float(__nv_bfloat16 b) {
  uint32_t u = (uint32_t)b.x << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  __nv_bfloat16 b;
  if (std::isnan(f))
    b.x = (uint16_t)((u >> 16) | 0x40);
  else
    b.x = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
  return b;
}

// Correctly rounded single operations (what the kernels use where nvcc must not fuse).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
using std::max;
using std::min;
using std::sqrt;
