// What pairtrain's CUDA kernels share: the CUDA dialect (nvcc's own headers on a GPU build, the CPU
// harness's cuda_cpu.h under `cargo test`), bf16 loads and stores with f32 arithmetic, warp and
// block sums, and the counter-based dropout hash of crates/model/src/rng.rs, bit for bit.
//
// Conventions every kernel here follows, so that the harness can run it: dynamic shared memory
// only, declared with EXTERN_SHARED; block sizes a multiple of 32; no tensor-core instructions.
#pragma once

#ifdef __CUDACC__
#include <cuda_bf16.h>
#define EXTERN_SHARED(T, name)                                                                   \
  extern __shared__ __align__(16) unsigned char name##_bytes[];                                  \
  T *name = reinterpret_cast<T *>(name##_bytes)
#else
#include "cuda_cpu.h"
#endif

typedef __nv_bfloat16 bf16;
typedef unsigned long long u64;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16(x); }

// Sum over the 32 lanes of a warp; every lane gets it.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over a block (blockDim.x a multiple of 32, 1-D); every thread gets it. `scratch` holds 32
// floats of shared memory, free again when this returns.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
  v = warp_sum(v);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  if (l == 0)
    scratch[w] = v;
  __syncthreads();
  int warps = blockDim.x / 32;
  if (w == 0) {
    v = l < warps ? scratch[l] : 0.0f;
    v = warp_sum(v);
    if (l == 0)
      scratch[0] = v;
  }
  __syncthreads();
  float r = scratch[0];
  __syncthreads();
  return r;
}

// crates/model/src/rng.rs `hash_uniform`: splitmix64 of (seed, index), top 24 bits as a float in
// [0, 1). The same bits on every device, so a dropout mask can be drawn anywhere.
__device__ __forceinline__ float hash_uniform(u64 seed, u64 index) {
  u64 z = seed ^ (index * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

// Dropout's scaled keep-mask value of element `index` (crates/model/src/ops/dropout.rs `Mask`).
__device__ __forceinline__ float keep_factor(u64 seed, u64 index, float p, float keep) {
  return hash_uniform(seed, index) >= p ? keep : 0.0f;
}
