// Multi-head attention without the [B, heads, L, L] scores in device memory (the flash-attention
// scheme of Dao et al., 2022): softmax(scale·Q·Kᵀ + bias + mask)·V with dropout on the
// probabilities, as ops/attention.rs computes it on the CPU. q, k, v, out: [B, L, H], head h in
// columns h·DH …; mask: [B, L] (0 = padding, for keys); bias: [heads, L, L] or null (MPNet's
// relative positions); dropout element (b, h, i, j) is that of the [B, heads, L, L] mask.
//
// Forward: a block per (query tile, head, batch), one thread per query; key and value tiles pass
// through shared memory and the softmax is accumulated online. It also writes each row's
// log-sum-exp, from which the backward recomputes the probabilities. Backward: `attention_bwd_dq`
// (a thread per query: dQ, and D = rowsum(dO∘O)), then `attention_bwd_dkv` (a thread per key:
// dK and dV over query tiles). No atomics: the results do not depend on timing.
//
// A row whose keys are all padding gets uniform probabilities, as the CPU kernel and PyTorch give
// it (every score is then the most negative float); its gradients flow as the CPU kernel's do.
#include "common.cuh"

#define ATT_TILE 64

struct AttnArgs {
  int B, L, H, heads;
  float scale;
  const float *mask;
  const float *bias;
  float p, keep;
  u64 seed;
  int dropout;
};

// Whether batch element b has any real key (block-wide; every thread gets it).
__device__ __forceinline__ bool any_real_key(const AttnArgs &a, int b, int *flag) {
  if (threadIdx.x == 0)
    *flag = 0;
  __syncthreads();
  for (int j = threadIdx.x; j < a.L; j += blockDim.x)
    if (a.mask[(u64)b * a.L + j] != 0.0f)
      atomicMax(flag, 1);
  __syncthreads();
  bool r = *flag != 0;
  __syncthreads();
  return r;
}

__device__ __forceinline__ float drop(const AttnArgs &a, int b, int h, int i, int j) {
  if (!a.dropout)
    return 1.0f;
  u64 idx = (((u64)b * a.heads + h) * a.L + i) * a.L + j;
  return keep_factor(a.seed, idx, a.p, a.keep);
}

template <class T, int DH>
__device__ void attn_fwd(T *out, float *lse, const T *q, const T *k, const T *v, AttnArgs a) {
  EXTERN_SHARED(float, sm);
  float *ks = sm, *vs = sm + ATT_TILE * DH, *ms = vs + ATT_TILE * DH;
  int *flag = reinterpret_cast<int *>(ms + ATT_TILE);
  int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * ATT_TILE + threadIdx.x;
  bool valid = i < a.L;
  bool real = any_real_key(a, b, flag);
  u64 row = ((u64)b * a.L + (valid ? i : 0)) * a.H + (u64)h * DH;
  float qr[DH], acc[DH];
  for (int d = 0; d < DH; d++) {
    qr[d] = valid ? to_f32(q[row + d]) : 0.0f;
    acc[d] = 0.0f;
  }
  float m = -__int_as_float(0x7f800000), l = 0.0f;
  for (int t0 = 0; t0 < a.L; t0 += ATT_TILE) {
    for (int e = threadIdx.x; e < ATT_TILE * DH; e += blockDim.x) {
      int j = t0 + e / DH, d = e % DH;
      u64 at = ((u64)b * a.L + j) * a.H + (u64)h * DH + d;
      ks[e] = j < a.L ? to_f32(k[at]) : 0.0f;
      vs[e] = j < a.L ? to_f32(v[at]) : 0.0f;
    }
    for (int e = threadIdx.x; e < ATT_TILE; e += blockDim.x)
      ms[e] = t0 + e < a.L ? a.mask[(u64)b * a.L + t0 + e] : 0.0f;
    __syncthreads();
    if (valid) {
      int n = min(ATT_TILE, a.L - t0);
      for (int jj = 0; jj < n; jj++) {
        int j = t0 + jj;
        float s;
        if (real) {
          if (ms[jj] == 0.0f)
            continue;
          s = 0.0f;
          for (int d = 0; d < DH; d++)
            s += qr[d] * ks[jj * DH + d];
          s *= a.scale;
          if (a.bias)
            s += a.bias[((u64)h * a.L + i) * a.L + j];
        } else {
          s = 0.0f;
        }
        float mn = fmaxf(m, s);
        float corr = expf(m - mn), e = expf(s - mn);
        float pe = e * drop(a, b, h, i, j);
        l = l * corr + e;
        for (int d = 0; d < DH; d++)
          acc[d] = acc[d] * corr + pe * vs[jj * DH + d];
        m = mn;
      }
    }
    __syncthreads();
  }
  if (valid) {
    float inv = 1.0f / l;
    for (int d = 0; d < DH; d++)
      out[row + d] = from_f32<T>(acc[d] * inv);
    lse[((u64)b * a.heads + h) * a.L + i] = m + logf(l);
  }
}

// dQ (and D = rowsum(dO∘O), which dK/dV need): one thread per query, keys through shared memory.
template <class T, int DH>
__device__ void attn_bwd_dq(T *dq, float *dsum, const T *q, const T *k, const T *v, const T *o,
                            const T *g, const float *lse, AttnArgs a) {
  EXTERN_SHARED(float, sm);
  float *ks = sm, *vs = sm + ATT_TILE * DH, *ms = vs + ATT_TILE * DH;
  int *flag = reinterpret_cast<int *>(ms + ATT_TILE);
  int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * ATT_TILE + threadIdx.x;
  bool valid = i < a.L;
  bool real = any_real_key(a, b, flag);
  u64 row = ((u64)b * a.L + (valid ? i : 0)) * a.H + (u64)h * DH;
  float qr[DH], gr[DH], acc[DH];
  float D = 0.0f;
  for (int d = 0; d < DH; d++) {
    qr[d] = valid ? to_f32(q[row + d]) : 0.0f;
    gr[d] = valid ? to_f32(g[row + d]) : 0.0f;
    D += valid ? gr[d] * to_f32(o[row + d]) : 0.0f;
    acc[d] = 0.0f;
  }
  float ls = valid ? lse[((u64)b * a.heads + h) * a.L + i] : 0.0f;
  for (int t0 = 0; t0 < a.L; t0 += ATT_TILE) {
    for (int e = threadIdx.x; e < ATT_TILE * DH; e += blockDim.x) {
      int j = t0 + e / DH, d = e % DH;
      u64 at = ((u64)b * a.L + j) * a.H + (u64)h * DH + d;
      ks[e] = j < a.L ? to_f32(k[at]) : 0.0f;
      vs[e] = j < a.L ? to_f32(v[at]) : 0.0f;
    }
    for (int e = threadIdx.x; e < ATT_TILE; e += blockDim.x)
      ms[e] = t0 + e < a.L ? a.mask[(u64)b * a.L + t0 + e] : 0.0f;
    __syncthreads();
    if (valid) {
      int n = min(ATT_TILE, a.L - t0);
      for (int jj = 0; jj < n; jj++) {
        int j = t0 + jj;
        if (real && ms[jj] == 0.0f)
          continue;
        float s = 0.0f;
        if (real) {
          for (int d = 0; d < DH; d++)
            s += qr[d] * ks[jj * DH + d];
          s *= a.scale;
          if (a.bias)
            s += a.bias[((u64)h * a.L + i) * a.L + j];
        }
        float pr = expf(s - ls);
        float dpd = 0.0f;
        for (int d = 0; d < DH; d++)
          dpd += gr[d] * vs[jj * DH + d];
        float ds = pr * (dpd * drop(a, b, h, i, j) - D) * a.scale;
        for (int d = 0; d < DH; d++)
          acc[d] += ds * ks[jj * DH + d];
      }
    }
    __syncthreads();
  }
  if (valid) {
    for (int d = 0; d < DH; d++)
      dq[row + d] = from_f32<T>(acc[d]);
    dsum[((u64)b * a.heads + h) * a.L + i] = D;
  }
}

// dK and dV: one thread per key, queries (with dO, their log-sum-exp and D) through shared memory.
template <class T, int DH>
__device__ void attn_bwd_dkv(T *dk, T *dv, const T *q, const T *k, const T *v, const T *g,
                             const float *lse, const float *dsum, AttnArgs a) {
  EXTERN_SHARED(float, sm);
  float *qs = sm, *gs = sm + ATT_TILE * DH, *ls = gs + ATT_TILE * DH, *ds_ = ls + ATT_TILE;
  int *flag = reinterpret_cast<int *>(ds_ + ATT_TILE);
  int b = blockIdx.z, h = blockIdx.y, j = blockIdx.x * ATT_TILE + threadIdx.x;
  bool valid = j < a.L;
  bool real = any_real_key(a, b, flag);
  bool key = valid && (!real || a.mask[(u64)b * a.L + j] != 0.0f);
  u64 row = ((u64)b * a.L + (valid ? j : 0)) * a.H + (u64)h * DH;
  float kr[DH], vr[DH], dkacc[DH], dvacc[DH];
  for (int d = 0; d < DH; d++) {
    kr[d] = valid ? to_f32(k[row + d]) : 0.0f;
    vr[d] = valid ? to_f32(v[row + d]) : 0.0f;
    dkacc[d] = dvacc[d] = 0.0f;
  }
  for (int t0 = 0; t0 < a.L; t0 += ATT_TILE) {
    for (int e = threadIdx.x; e < ATT_TILE * DH; e += blockDim.x) {
      int i = t0 + e / DH, d = e % DH;
      u64 at = ((u64)b * a.L + i) * a.H + (u64)h * DH + d;
      qs[e] = i < a.L ? to_f32(q[at]) : 0.0f;
      gs[e] = i < a.L ? to_f32(g[at]) : 0.0f;
    }
    for (int e = threadIdx.x; e < ATT_TILE; e += blockDim.x) {
      u64 at = ((u64)b * a.heads + h) * a.L + t0 + e;
      ls[e] = t0 + e < a.L ? lse[at] : 0.0f;
      ds_[e] = t0 + e < a.L ? dsum[at] : 0.0f;
    }
    __syncthreads();
    if (key) {
      int n = min(ATT_TILE, a.L - t0);
      for (int ii = 0; ii < n; ii++) {
        int i = t0 + ii;
        float s = 0.0f;
        if (real) {
          for (int d = 0; d < DH; d++)
            s += qs[ii * DH + d] * kr[d];
          s *= a.scale;
          if (a.bias)
            s += a.bias[((u64)h * a.L + i) * a.L + j];
        }
        float pr = expf(s - ls[ii]);
        float m = drop(a, b, h, i, j);
        float dpd = 0.0f;
        for (int d = 0; d < DH; d++) {
          dvacc[d] += pr * m * gs[ii * DH + d];
          dpd += gs[ii * DH + d] * vr[d];
        }
        float ds = pr * (dpd * m - ds_[ii]) * a.scale;
        for (int d = 0; d < DH; d++)
          dkacc[d] += ds * qs[ii * DH + d];
      }
    }
    __syncthreads();
  }
  if (valid)
    for (int d = 0; d < DH; d++) {
      dk[row + d] = from_f32<T>(dkacc[d]);
      dv[row + d] = from_f32<T>(dvacc[d]);
    }
}

#define ATT_ARGS                                                                                 \
  int B, int L, int H, int heads, float scale, const float *mask, const float *bias, float p,     \
      float keep, u64 seed, int dropout
#define ATT_PACK AttnArgs{B, L, H, heads, scale, mask, bias, p, keep, seed, dropout}

#define ATT_KERNELS(T, SUF, DH)                                                                  \
  extern "C" __global__ void attention_fwd_##SUF##_d##DH(T *out, float *lse, const T *q, const T *k, \
                                                         const T *v, ATT_ARGS) {                \
    attn_fwd<T, DH>(out, lse, q, k, v, ATT_PACK);                                                \
  }                                                                                              \
  extern "C" __global__ void attention_bwd_dq_##SUF##_d##DH(                                     \
      T *dq, float *dsum, const T *q, const T *k, const T *v, const T *o, const T *g,            \
      const float *lse, ATT_ARGS) {                                                              \
    attn_bwd_dq<T, DH>(dq, dsum, q, k, v, o, g, lse, ATT_PACK);                                  \
  }                                                                                              \
  extern "C" __global__ void attention_bwd_dkv_##SUF##_d##DH(                                    \
      T *dk, T *dv, const T *q, const T *k, const T *v, const T *g, const float *lse,            \
      const float *dsum, ATT_ARGS) {                                                             \
    attn_bwd_dkv<T, DH>(dk, dv, q, k, v, g, lse, dsum, ATT_PACK);                                \
  }

ATT_KERNELS(float, f32, 32)
ATT_KERNELS(float, f32, 64)
ATT_KERNELS(bf16, bf16, 32)
ATT_KERNELS(bf16, bf16, 64)
