// GELU, x·Φ(x) with the exact erf (BERT's `gelu`), and its backward, grad·(Φ(x) + x·φ(x)), as
// ops/gelu.rs computes them on the CPU. Elementwise over a grid-stride loop.
#include "common.cuh"

template <class T> __device__ void gelu_fwd(T *y, const T *x, u64 n) {
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    float v = to_f32(x[i]);
    y[i] = from_f32<T>(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
  }
}

template <class T> __device__ void gelu_bwd(T *dx, const T *x, const T *g, u64 n) {
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    float v = to_f32(x[i]);
    float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
    dx[i] = from_f32<T>(to_f32(g[i]) * (cdf + v * pdf));
  }
}

extern "C" __global__ void gelu_fwd_f32(float *y, const float *x, u64 n) { gelu_fwd(y, x, n); }
extern "C" __global__ void gelu_fwd_bf16(bf16 *y, const bf16 *x, u64 n) { gelu_fwd(y, x, n); }
extern "C" __global__ void gelu_bwd_f32(float *dx, const float *x, const float *g, u64 n) {
  gelu_bwd(dx, x, g, n);
}
extern "C" __global__ void gelu_bwd_bf16(bf16 *dx, const bf16 *x, const bf16 *g, u64 n) {
  gelu_bwd(dx, x, g, n);
}
