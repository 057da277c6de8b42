// Every kernel of crates/model/src/ops/cuda, compiled as C++ for the harness, with a C entry point
// each (the Rust side declares the same signatures in src/lib.rs).
#include "runtime.h"

#include "adamw.cu"
#include "attention.cu"
#include "dropout.cu"
#include "gelu.cu"
#include "layer_norm.cu"
#include "selftest.cu"

CUCPU_EXPORT(gelu_fwd_f32, (float *y, const float *x, u64 n), (y, x, n))
CUCPU_EXPORT(gelu_fwd_bf16, (bf16 *y, const bf16 *x, u64 n), (y, x, n))
CUCPU_EXPORT(gelu_bwd_f32, (float *dx, const float *x, const float *g, u64 n), (dx, x, g, n))
CUCPU_EXPORT(gelu_bwd_bf16, (bf16 *dx, const bf16 *x, const bf16 *g, u64 n), (dx, x, g, n))

CUCPU_EXPORT(dropout_f32, (float *y, const float *x, u64 n, float p, float keep, u64 seed),
             (y, x, n, p, keep, seed))
CUCPU_EXPORT(dropout_bf16, (bf16 *y, const bf16 *x, u64 n, float p, float keep, u64 seed),
             (y, x, n, p, keep, seed))
CUCPU_EXPORT(dropout_mask, (float *m, u64 n, float p, float keep, u64 seed), (m, n, p, keep, seed))

#define LN_FWD(SUF, T)                                                                           \
  CUCPU_EXPORT(layer_norm_fwd_##SUF,                                                             \
               (T * y, const T *x, const T *w, const T *b, int rows, int n, float eps),          \
               (y, x, w, b, rows, n, eps))                                                       \
  CUCPU_EXPORT(layer_norm_bwd_##SUF,                                                             \
               (T * dx, float *part, const T *x, const T *w, const T *g, int rows, int n,        \
                float eps),                                                                      \
               (dx, part, x, w, g, rows, n, eps))                                                \
  CUCPU_EXPORT(column_sums_##SUF, (T * out, const float *part, int parts, int cols, int stride), \
               (out, part, parts, cols, stride))
LN_FWD(f32, float)
LN_FWD(bf16, bf16)

#define ATT_PARAMS                                                                               \
  int B, int L, int H, int heads, float scale, const float *mask, const float *bias, float p,     \
      float keep, u64 seed, int dropout
#define ATT_NAMES B, L, H, heads, scale, mask, bias, p, keep, seed, dropout
#define ATT_EXPORTS(T, SUF, DH)                                                                  \
  CUCPU_EXPORT(attention_fwd_##SUF##_d##DH,                                                      \
               (T * out, float *lse, const T *q, const T *k, const T *v, ATT_PARAMS),            \
               (out, lse, q, k, v, ATT_NAMES))                                                   \
  CUCPU_EXPORT(attention_bwd_dq_##SUF##_d##DH,                                                   \
               (T * dq, float *dsum, const T *q, const T *k, const T *v, const T *o, const T *g, \
                const float *lse, ATT_PARAMS),                                                   \
               (dq, dsum, q, k, v, o, g, lse, ATT_NAMES))                                        \
  CUCPU_EXPORT(attention_bwd_dkv_##SUF##_d##DH,                                                  \
               (T * dk, T *dv, const T *q, const T *k, const T *v, const T *g, const float *lse, \
                const float *dsum, ATT_PARAMS),                                                  \
               (dk, dv, q, k, v, g, lse, dsum, ATT_NAMES))
ATT_EXPORTS(float, f32, 32)
ATT_EXPORTS(float, f32, 64)
ATT_EXPORTS(bf16, bf16, 32)
ATT_EXPORTS(bf16, bf16, 64)

CUCPU_EXPORT(grad_sq_sums,
             (double *partial, const AdamwTensor *ts, const int *chunk_tensor, const u64 *chunk_start,
              int chunks),
             (partial, ts, chunk_tensor, chunk_start, chunks))
CUCPU_EXPORT(grad_norm_finish, (double *norm, float *coef, const double *partial, int chunks, double max_norm),
             (norm, coef, partial, chunks, max_norm))
CUCPU_EXPORT(adamw_step,
             (const AdamwTensor *ts, const int *chunk_tensor, const u64 *chunk_start, int chunks,
              const float *coef, float keep_decay, float b1w, float b2, float omb2, float bc2_sqrt,
              float eps, float neg_step),
             (ts, chunk_tensor, chunk_start, chunks, coef, keep_decay, b1w, b2, omb2, bc2_sqrt, eps,
              neg_step))

CUCPU_EXPORT(reduce_ok, (float *out, const float *x), (out, x))
CUCPU_EXPORT(reduce_missing_barrier, (float *out, const float *x), (out, x))
CUCPU_EXPORT(barriers_apart, (float *out), (out))
CUCPU_EXPORT(shuffle_after_exit, (float *out), (out))
CUCPU_EXPORT(warps_wait_forever, (float *out), (out))
CUCPU_EXPORT(warp_ops, (float *out), (out))
