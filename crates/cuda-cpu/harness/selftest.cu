// Kernels that are right and kernels that are wrong in the ways the harness must catch: a block
// reduction with and without one of its barriers, barriers at two different places, a shuffle
// waiting for a lane that has exited, and warps waiting for each other forever.
#include "common.cuh"

template <bool BARRIER> __device__ void reduce(float *out, const float *x) {
  EXTERN_SHARED(float, s);
  int t = threadIdx.x;
  s[t] = x[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w)
      s[t] += s[t + w];
    if (BARRIER)
      __syncthreads();
  }
  if (t == 0)
    out[blockIdx.x] = s[0];
}
extern "C" __global__ void reduce_ok(float *out, const float *x) { reduce<true>(out, x); }
extern "C" __global__ void reduce_missing_barrier(float *out, const float *x) { reduce<false>(out, x); }

extern "C" __global__ void barriers_apart(float *out) {
  if (threadIdx.x < 16)
    __syncthreads();
  else
    __syncthreads();
  out[threadIdx.x] = 1.0f;
}

extern "C" __global__ void shuffle_after_exit(float *out) {
  if (threadIdx.x % 2)
    return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}

// Half a warp at a barrier, the other half in a shuffle that needs the first half: a hang.
extern "C" __global__ void warps_wait_forever(float *out) {
  if (threadIdx.x < 16)
    __syncthreads();
  else
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0);
}

// Warp shuffles with widths and a ballot, whose results the test knows.
extern "C" __global__ void warp_ops(float *out) {
  int t = threadIdx.x;
  float v = (float)t;
  out[t] = warp_sum(v);
  out[64 + t] = __shfl_down_sync(0xffffffffu, v, 3, 16);
  out[128 + t] = __shfl_up_sync(0xffffffffu, v, 1);
  out[192 + t] = (float)__ballot_sync(0xffffffffu, t % 3 == 0);
}
