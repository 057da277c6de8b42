// AdamW (Loshchilov & Hutter, 2019) over every parameter in one launch, and the global gradient
// norm that clipping divides by, on the device: no copy to the host in a step. The update is
// train/src/optim.rs's, operation for operation in f32 with the same roundings (no fused
// multiply-adds: `__fmul_rn`/`__fadd_rn` keep nvcc from contracting), so a parameter moves by
// the same bits as on the CPU.
//
// The parameters are a list of tensors; a table of fixed-size chunks (chunk → tensor, offset),
// uploaded once, lets one grid cover them all.
#include "common.cuh"

struct AdamwTensor {
  float *p;
  const float *g; // null: no gradient this step (treated as zero, as on the CPU)
  float *m;
  float *v;
  u64 n;
  int decay;
};

#define ADAMW_CHUNK 4096

// Σ g² of each chunk, in f64 (each square exact), into partial[chunk].
extern "C" __global__ void grad_sq_sums(double *partial, const AdamwTensor *ts, const int *chunk_tensor,
                                        const u64 *chunk_start, int chunks) {
  EXTERN_SHARED(double, scratch);
  for (int c = blockIdx.x; c < chunks; c += gridDim.x) {
    const AdamwTensor &t = ts[chunk_tensor[c]];
    u64 start = chunk_start[c], end = start + ADAMW_CHUNK < t.n ? start + ADAMW_CHUNK : t.n;
    double s = 0.0;
    if (t.g)
      for (u64 i = start + threadIdx.x; i < end; i += blockDim.x) {
        double x = t.g[i];
        s += x * x;
      }
    s = warp_sum(s);
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    if (l == 0)
      scratch[w] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      double total = 0.0;
      for (int k = 0; k < (int)(blockDim.x / 32); k++)
        total += scratch[k];
      partial[c] = total;
    }
    __syncthreads();
  }
}

// norm = sqrt(Σ partial) (added in chunk order); coef = min(1, max_norm / (norm + 1e-6)) as the
// f32 factor clipping multiplies by (1 when max_norm ≤ 0). One thread: a few thousand adds.
extern "C" __global__ void grad_norm_finish(double *norm, float *coef, const double *partial, int chunks,
                                            double max_norm) {
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  double s = 0.0;
  for (int c = 0; c < chunks; c++)
    s += partial[c];
  double n = sqrt(s);
  *norm = n;
  double k = max_norm > 0.0 ? max_norm / (n + 1e-6) : 1.0;
  *coef = (float)(k < 1.0 ? k : 1.0);
}

// One AdamW step of every chunk. The scalars are those of optim.rs `Rounded`; `coef` is the
// clipping factor on the device.
extern "C" __global__ void adamw_step(const AdamwTensor *ts, const int *chunk_tensor, const u64 *chunk_start,
                                      int chunks, const float *coef, float keep_decay, float b1w, float b2,
                                      float omb2, float bc2_sqrt, float eps, float neg_step) {
  float k = *coef;
  for (int c = blockIdx.x; c < chunks; c += gridDim.x) {
    const AdamwTensor &t = ts[chunk_tensor[c]];
    u64 start = chunk_start[c], end = start + ADAMW_CHUNK < t.n ? start + ADAMW_CHUNK : t.n;
    float keep = t.decay ? keep_decay : 1.0f;
    for (u64 i = start + threadIdx.x; i < end; i += blockDim.x) {
      float gi = t.g ? t.g[i] : 0.0f;
      // Clipping, as `g · coef` is computed on the CPU (x·a + 0), skipped when the factor is 1.
      if (k != 1.0f)
        gi = __fadd_rn(__fmul_rn(gi, k), 0.0f);
      float mi0 = t.m[i], vi0 = t.v[i];
      float pi = __fadd_rn(__fmul_rn(t.p[i], keep), 0.0f);
      float mi = __fadd_rn(__fadd_rn(__fmul_rn(__fsub_rn(gi, mi0), b1w), 0.0f), mi0);
      float vi = __fadd_rn(__fadd_rn(__fmul_rn(vi0, b2), 0.0f), __fmul_rn(__fadd_rn(__fmul_rn(gi, omb2), 0.0f), gi));
      float denom = __fadd_rn(__fmul_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), 1.0f), eps);
      t.p[i] = __fadd_rn(pi, __fdiv_rn(__fadd_rn(__fmul_rn(mi, neg_step), 0.0f), denom));
      t.m[i] = mi;
      t.v[i] = vi;
    }
  }
}
