// Dropout with the counter-based mask of ops/dropout.rs: element i is kept (and scaled by `keep`
// = 1/(1-p) as rounded there) when hash_uniform(seed, i) >= p. The backward is the same map of
// the gradient; `dropout_mask` writes the mask itself (what the composed reference multiplies by),
// so every path draws the CPU's masks.
#include "common.cuh"

template <class T> __device__ void dropout(T *y, const T *x, u64 n, float p, float keep, u64 seed) {
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
    // x·mask, as the CPU kernel multiplies (so a dropped negative value is -0 there too).
    y[i] = from_f32<T>(to_f32(x[i]) * keep_factor(seed, i, p, keep));
}

extern "C" __global__ void dropout_f32(float *y, const float *x, u64 n, float p, float keep, u64 seed) {
  dropout(y, x, n, p, keep, seed);
}
extern "C" __global__ void dropout_bf16(bf16 *y, const bf16 *x, u64 n, float p, float keep, u64 seed) {
  dropout(y, x, n, p, keep, seed);
}
extern "C" __global__ void dropout_mask(float *m, u64 n, float p, float keep, u64 seed) {
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
    m[i] = keep_factor(seed, i, p, keep);
}
