// LayerNorm over the last dimension with affine weight and bias (ops/layer_norm.rs): statistics
// in f32 whatever the input type, one block per row. The backward writes dx per row and each
// block's sums of g·x̂ and g over its rows (`part`, [blocks, 2, n]); `column_sums` adds those
// partial sums in block order, so dw and db do not depend on timing.
#include "common.cuh"

// Columns one thread keeps running sums for in the backward: n ≤ LN_MAX_COLS·blockDim.x.
#define LN_MAX_COLS 16

template <class T>
__device__ void ln_fwd(T *y, const T *x, const T *w, const T *b, int rows, int n, float eps) {
  EXTERN_SHARED(float, scratch);
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const T *xr = x + (u64)row * n;
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      s += to_f32(xr[i]);
    float mean = block_sum(s, scratch) / n;
    float v = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      float d = to_f32(xr[i]) - mean;
      v += d * d;
    }
    float rstd = rsqrtf(block_sum(v, scratch) / n + eps);
    T *yr = y + (u64)row * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      yr[i] = from_f32<T>((to_f32(xr[i]) - mean) * rstd * to_f32(w[i]) + to_f32(b[i]));
  }
}

template <class T>
__device__ void ln_bwd(T *dx, float *part, const T *x, const T *w, const T *g, int rows, int n,
                       float eps) {
  EXTERN_SHARED(float, scratch);
  float dw[LN_MAX_COLS], db[LN_MAX_COLS];
  for (int c = 0; c < LN_MAX_COLS; c++)
    dw[c] = db[c] = 0.0f;
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const T *xr = x + (u64)row * n;
    const T *gr = g + (u64)row * n;
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      s += to_f32(xr[i]);
    float mean = block_sum(s, scratch) / n;
    float v = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      float d = to_f32(xr[i]) - mean;
      v += d * d;
    }
    float rstd = rsqrtf(block_sum(v, scratch) / n + eps);
    // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·w.
    float sg = 0.0f, sgx = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      float xh = (to_f32(xr[i]) - mean) * rstd;
      float gh = to_f32(gr[i]) * to_f32(w[i]);
      sg += gh;
      sgx += gh * xh;
    }
    float mg = block_sum(sg, scratch) / n;
    float mgx = block_sum(sgx, scratch) / n;
    T *dxr = dx + (u64)row * n;
    int c = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x, c++) {
      float xh = (to_f32(xr[i]) - mean) * rstd;
      float gi = to_f32(gr[i]);
      dxr[i] = from_f32<T>(rstd * (gi * to_f32(w[i]) - mg - xh * mgx));
      dw[c] += gi * xh;
      db[c] += gi;
    }
  }
  float *pw = part + (u64)blockIdx.x * 2 * n;
  int c = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x, c++) {
    pw[i] = dw[c];
    pw[n + i] = db[c];
  }
}

extern "C" __global__ void layer_norm_fwd_f32(float *y, const float *x, const float *w, const float *b,
                                              int rows, int n, float eps) {
  ln_fwd(y, x, w, b, rows, n, eps);
}
extern "C" __global__ void layer_norm_fwd_bf16(bf16 *y, const bf16 *x, const bf16 *w, const bf16 *b,
                                               int rows, int n, float eps) {
  ln_fwd(y, x, w, b, rows, n, eps);
}
extern "C" __global__ void layer_norm_bwd_f32(float *dx, float *part, const float *x, const float *w,
                                              const float *g, int rows, int n, float eps) {
  ln_bwd(dx, part, x, w, g, rows, n, eps);
}
extern "C" __global__ void layer_norm_bwd_bf16(bf16 *dx, float *part, const bf16 *x, const bf16 *w,
                                               const bf16 *g, int rows, int n, float eps) {
  ln_bwd(dx, part, x, w, g, rows, n, eps);
}

// out[c] = Σ_r part[r·stride + c] over `parts` rows, in row order; c < cols. Written in the
// output type T (dw and db have the weight's type).
template <class T> __device__ void column_sums(T *out, const float *part, int parts, int cols, int stride) {
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
    float s = 0.0f;
    for (int r = 0; r < parts; r++)
      s += part[(u64)r * stride + c];
    out[c] = from_f32<T>(s);
  }
}
extern "C" __global__ void column_sums_f32(float *out, const float *part, int parts, int cols, int stride) {
  column_sums(out, part, parts, cols, stride);
}
extern "C" __global__ void column_sums_bf16(bf16 *out, const float *part, int parts, int cols, int stride) {
  column_sums(out, part, parts, cols, stride);
}
