//! Multi-head scaled dot-product attention (Vaswani et al., 2017) per (batch, head) block:
//! softmax(scale · Q·Kᵀ + bias + mask)·V without materialising the [B, heads, L, L] scores or
//! transposing Q, K and V; keys past the padding are skipped. A packed batch (the real tokens
//! of every sequence one after another, `crate::packing`) attends within each sequence and
//! spends nothing on padding at all.

use super::dropout::Mask;
use super::gemm::{gemm, Operand};
use super::kernel::{
    contiguous, cpu_op3, lanes_dot, lanes_map_sum, lanes_max, softmax_row, vectorized, Elem,
    SharedMut, Vectorized,
};
use super::pool::par_for;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor};

// ---------------------------------------------------------------------------------------------
// Multi-head attention: softmax(scale · Q·Kᵀ + mask bias)·V per head, without materialising the
// [B, heads, L, L] score tensor or transposing Q, K and V.

pub(super) struct Attention {
    pub(super) heads: usize,
    pub(super) scale: f64,
    /// Added to the scaled scores: [heads, L, L], the same for every batch element (MPNet's
    /// relative position bias). Treated as a constant: no gradient flows to it.
    pub(super) bias: Option<Vec<f32>>,
    /// Dropout on the attention probabilities: (p, mask seed). The mask of element
    /// [b, head, i, j] is `super::dropout::mask_tensor`'s for the full [B, heads, L, L] shape.
    pub(super) dropout: Option<(f64, u64)>,
    /// [B, L] attention mask (1 = real token), the same for queries and keys.
    pub(super) mask: Vec<f32>,
    /// For a packed batch (q [1, T, H]): where each sequence starts, B + 1 offsets ending at T,
    /// and the padded length L the bias and the dropout mask are laid out for.
    pub(super) packed: Option<(Vec<usize>, usize)>,
    /// `max L` ones: the mask of a packed sequence's keys, all real.
    pub(super) ones: Vec<f32>,
    /// Local attention: query i sees keys j with |i − j| ≤ this (ModernBERT's sliding window).
    pub(super) window: Option<usize>,
}

/// Query rows per tile: a block's probabilities are computed `TILE` rows at a time, so that its
/// scratch is TILE × keys, not keys² (8,192 tokens: 8 MiB instead of 256 MiB per block), and a
/// local window needs only the keys near the tile. Sequences up to TILE tokens are one tile.
const TILE: usize = 256;

/// The keys `[k0, k1)` that query rows `[r0, r1)` of a block with `keys` keys may see.
fn key_range(window: Option<usize>, (r0, r1): (usize, usize), keys: usize) -> (usize, usize) {
    match window {
        Some(w) => (r0.saturating_sub(w).min(keys), (r1 + w).min(keys)),
        None => (0, keys),
    }
}

/// Where one (sequence, head) block lies: its first row in q/k/v/out (as rows of H), its query
/// rows, its keys and their mask, and the padded length `stride` that lays out its bias rows
/// and dropout mask as in the padded batch.
struct Block<'a> {
    row0: usize,
    rows: usize,
    keys: usize,
    mask: &'a [f32],
    /// Every key of `mask` is real.
    all_real: bool,
    stride: usize,
}

impl CustomOp3 for Attention {
    cpu_op3!("pt-attention", Attention, attention_fwd);

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let bwd = AttentionBwd {
            fwd: self,
            grad: grad.contiguous()?,
        };
        let d = q
            .contiguous()?
            .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &bwd)?;
        Ok((Some(d.get(0)?), Some(d.get(1)?), Some(d.get(2)?)))
    }
}

impl Attention {
    /// (B, L, H) of q ([1, T, H] when packed), once every other input (k and v; the gradient
    /// in the backward) has q's shape and the mask or the offsets fit.
    fn shape(
        &self,
        op: &str,
        q: &Layout,
        others: &[(&str, &Layout)],
    ) -> Result<(usize, usize, usize)> {
        let (b, l, h) = q.shape().dims3()?;
        // The bias is laid out for the padded length: L itself, or the packing's.
        let (fits, stride) = match &self.packed {
            None => (self.mask.len() == b * l, l),
            Some((offsets, max_len)) => (
                b == 1
                    && offsets.first() == Some(&0)
                    && offsets.last() == Some(&l)
                    && offsets
                        .windows(2)
                        .all(|w| w[0] < w[1] && w[1] - w[0] <= *max_len),
                *max_len,
            ),
        };
        let bias_fits = self
            .bias
            .as_ref()
            .is_none_or(|bias| bias.len() == self.heads * stride * stride);
        if others.iter().any(|(_, o)| o.dims() != q.dims())
            || !fits
            || !bias_fits
            || self.heads == 0
            || h % self.heads != 0
        {
            let others: String = others
                .iter()
                .map(|(name, o)| format!(", {name} {:?}", o.dims()))
                .collect();
            return Err(candle_core::Error::Msg(format!(
                "{op}: q {:?}{others}, {} heads, mask of {} values, packed {:?} tokens, bias of \
                 {:?} values",
                q.dims(),
                self.heads,
                self.mask.len(),
                self.packed.as_ref().and_then(|(o, _)| o.last()),
                self.bias.as_ref().map(Vec::len)
            )));
        }
        Ok((b, l, h))
    }

    /// The number of (sequence, head) blocks of a q [b, l, H].
    fn tasks(&self, b: usize) -> usize {
        self.heads
            * match &self.packed {
                Some((offsets, _)) => offsets.len() - 1,
                None => b,
            }
    }

    /// Block `task` (sequence `task / heads`) of a q [_, l, H].
    fn block(&self, task: usize, l: usize) -> Block<'_> {
        let bi = task / self.heads;
        match &self.packed {
            Some((offsets, stride)) => {
                let n = offsets[bi + 1] - offsets[bi];
                Block {
                    row0: offsets[bi],
                    rows: n,
                    keys: n,
                    mask: &self.ones[..n],
                    all_real: true,
                    stride: *stride,
                }
            }
            None => {
                let mask = &self.mask[bi * l..(bi + 1) * l];
                let (kl, prefix) = real_keys(mask);
                Block {
                    row0: bi * l,
                    rows: l,
                    keys: kl,
                    mask: &mask[..kl],
                    all_real: prefix,
                    stride: l,
                }
            }
        }
    }
}

/// The number of keys a (batch, head) block attends to: with right padding (the usual case) only
/// the first `kl` keys are real, and the padded ones would get probability 0, so they are
/// skipped outright. Also whether the mask is such a prefix.
fn real_keys(mask: &[f32]) -> (usize, bool) {
    let real = mask.iter().filter(|&&m| m != 0.0).count();
    let prefix = real > 0 && mask[..real].iter().all(|&m| m != 0.0);
    (if prefix { real } else { mask.len() }, prefix)
}

/// The forward kernel of `Attention`.
fn attention_fwd<T: Elem>(
    op: &Attention,
    (q, l1): (&[T], &Layout),
    (k, l2): (&[T], &Layout),
    (v, l3): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    let (b, l, h) = op.shape("attention", l1, &[("k", l2), ("v", l3)])?;
    let dh = h / op.heads;
    let mut out = vec![T::zero(); b * l * h];
    let out_ptr = SharedMut(out.as_mut_ptr());
    par_for(op.tasks(b), |task| {
        let blk = op.block(task, l);
        for r0 in (0..blk.rows).step_by(TILE) {
            let rows = (r0, (r0 + TILE).min(blk.rows));
            let (k0, k1) = key_range(op.window, rows, blk.keys);
            if k0 == k1 {
                continue;
            }
            let p = block_probabilities(op, (q, k), h, task, &blk, (rows, (k0, k1)), op.dropout);
            let base = blk.row0 * h + (task % op.heads) * dh;
            // SAFETY: the block's rows lie inside v and out ([rows, h] row-major); this task is
            // the only writer of out's. O = P·V.
            unsafe {
                gemm(
                    (rows.1 - r0, dh, k1 - k0),
                    Operand::rows(p.as_ptr(), k1 - k0),
                    Operand::rows(v.as_ptr().add(base + k0 * h), h),
                    (out_ptr.get().add(base + r0 * h), h),
                    false,
                    false,
                );
            }
        }
    });
    Ok((T::wrap(out), l1.shape().clone()))
}

/// The attention probabilities of query rows `[r0, r1)` of block `task` (head `task % heads`)
/// over its keys `[k0, k1)`: [r1 − r0, k1 − k0], after `dropout` when given (the backward wants
/// them before).
fn block_probabilities<T: Elem>(
    op: &Attention,
    (q, k): (&[T], &[T]),
    h: usize,
    task: usize,
    blk: &Block,
    ((r0, r1), (k0, k1)): ((usize, usize), (usize, usize)),
    dropout: Option<(f64, u64)>,
) -> Vec<T> {
    let dh = h / op.heads;
    let base = blk.row0 * h + (task % op.heads) * dh;
    let (rows, keys) = (r1 - r0, k1 - k0);
    let mut p = vec![T::zero(); rows * keys];
    // SAFETY: the block's rows lie inside q and k ([rows, h] row-major); p holds rows×keys.
    // P = Q·Kᵀ reads K's rows as columns.
    unsafe {
        gemm(
            (rows, keys, dh),
            Operand::rows(q.as_ptr().add(base + r0 * h), h),
            Operand::transposed(k.as_ptr().add(base + k0 * h), h),
            (p.as_mut_ptr(), keys),
            false,
            false,
        );
    }
    vectorized(&mut Probabilities {
        p: &mut p,
        op,
        dropout,
        mask: &blk.mask[k0..k1],
        all_real: blk.all_real,
        scale: T::from(op.scale).unwrap_or(T::one()),
        l: blk.stride,
        first: (r0, k0),
        kl: keys,
        hi: task % op.heads,
        task,
    });
    p
}

/// The attention probabilities of one (sequence, head) block, in place over its scores `p`
/// [rows, kl]: masked softmax with the optional bias, then dropout.
struct Probabilities<'a, T> {
    p: &'a mut [T],
    op: &'a Attention,
    /// The op's dropout, or None for the probabilities before it (the backward).
    dropout: Option<(f64, u64)>,
    mask: &'a [f32],
    /// Every key of `mask` is real (mask 1).
    all_real: bool,
    scale: T,
    /// The padded length: the stride of the bias rows and of the dropout mask.
    l: usize,
    /// The block's row and key of `p`'s first element.
    first: (usize, usize),
    kl: usize,
    hi: usize,
    task: usize,
}

impl<T: Elem> Vectorized for Probabilities<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        let (l, kl, op) = (self.l, self.kl, self.op);
        let (r0, k0) = self.first;
        let mut row = vec![T::zero(); kl];
        for (i, r) in self.p.chunks_mut(kl).enumerate() {
            let i = r0 + i;
            // The tile's keys are the union of its rows' windows: this row's own are [a, b).
            let (a, b) = match op.window {
                Some(w) => {
                    let a = i.saturating_sub(w).clamp(k0, k0 + kl) - k0;
                    (a, ((i + w + 1).clamp(k0, k0 + kl) - k0).max(a))
                }
                None => (0, kl),
            };
            r[..a].fill(T::zero());
            r[b..].fill(T::zero());
            let (r, mask) = (&mut r[a..b], &self.mask[a..b]);
            if r.is_empty() {
                continue;
            }
            let brow = op.bias.as_ref().map(|bias| {
                let start = (self.hi * l + i) * l + k0;
                &bias[start + a..start + b]
            });
            if self.all_real && brow.is_none() && self.scale > T::zero() {
                // Nothing to mask or add: one pass fewer and no copy. The same numbers, since
                // scale·max(x) is the max of the scaled scores when the scale is positive.
                let (scale, max) = (self.scale, lanes_max(r) * self.scale);
                let inv = T::one() / lanes_map_sum(r, |v| (v * scale - max).exp_fast());
                r.iter_mut().for_each(|v| *v = *v * inv);
            } else {
                let row = &mut row[..r.len()];
                row.copy_from_slice(r);
                softmax_row(row, r, mask, self.scale, brow);
            }
            if let Some((dp, seed)) = self.dropout {
                let mask = Mask::new(seed, dp);
                let keep = T::from(mask.keep).unwrap_or(T::one());
                let base = ((self.task * l + i) * l + k0 + a) as u64;
                for (j, v) in r.iter_mut().enumerate() {
                    *v = if mask.kept(base + j as u64) {
                        *v * keep
                    } else {
                        T::zero()
                    };
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Its backward, per (batch, head) block as well: the probabilities are computed again from Q and
// K (not stored), then dV = P̃ᵀ·dO, dP = (dO·Vᵀ)∘M, dS = P∘(dP − rowsum(dP∘P))·scale, dQ = dS·K and
// dK = dSᵀ·Q, where M is the dropout's scaled keep-mask and P̃ = P∘M.

/// The backward of `Attention` for the incoming gradient `grad`: [3, B, L, H] = (dQ, dK, dV).
struct AttentionBwd<'a> {
    fwd: &'a Attention,
    grad: Tensor,
}

impl CustomOp3 for AttentionBwd<'_> {
    cpu_op3!("pt-attention-bwd", AttentionBwd, attention_bwd);
}

/// The forward kernel of `AttentionBwd`.
fn attention_bwd<T: Elem>(
    bwd: &AttentionBwd,
    (q, l1): (&[T], &Layout),
    (k, l2): (&[T], &Layout),
    (v, l3): (&[T], &Layout),
) -> Result<(CpuStorage, Shape)> {
    let (storage, gl) = bwd.grad.storage_and_layout();
    let g: &[T] = match &*storage {
        Storage::Cpu(s) => contiguous(s, gl, "attention_bwd")?,
        _ => {
            return Err(candle_core::Error::Msg(
                "attention_bwd: gradient not on the CPU".into(),
            ))
        }
    };
    let op = bwd.fwd;
    let others = [("k", l2), ("v", l3), ("gradient", gl)];
    let (b, l, h) = op.shape("attention_bwd", l1, &others)?;
    let scale = T::from(op.scale).unwrap_or(T::one());
    let dh = h / op.heads;
    let n = b * l * h;
    let mut out = vec![T::zero(); 3 * n];
    let out_ptr = SharedMut(out.as_mut_ptr());
    par_for(op.tasks(b), |task| {
        let blk = op.block(task, l);
        for r0 in (0..blk.rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(blk.rows);
            let (k0, k1) = key_range(op.window, (r0, r1), blk.keys);
            if k0 == k1 {
                continue;
            }
            let (rows, kl) = (r1 - r0, k1 - k0);
            let p = block_probabilities(op, (q, k), h, task, &blk, ((r0, r1), (k0, k1)), None);
            let base = blk.row0 * h + (task % op.heads) * dh;
            let (qb, kb) = (base + r0 * h, base + k0 * h);
            let mut ds = vec![T::zero(); rows * kl];
            let mut pd = vec![T::zero(); if op.dropout.is_some() { rows * kl } else { 0 }];
            // SAFETY (all gemm calls below): the tile's rows and keys lie inside q/k/v/g and out
            // (each [rows, h] row-major, out three of them); this task is the only writer of its
            // block of out. dO·Vᵀ reads V's rows as columns.
            unsafe {
                gemm(
                    (rows, kl, dh),
                    Operand::rows(g.as_ptr().add(qb), h),
                    Operand::transposed(v.as_ptr().add(kb), h),
                    (ds.as_mut_ptr(), kl),
                    false,
                    false,
                );
            }
            vectorized(&mut SoftmaxBwd {
                p: &p,
                ds: &mut ds,
                pd: &mut pd,
                dropout: op.dropout,
                scale,
                l: blk.stride,
                first: (r0, k0),
                rows,
                kl,
                task,
            });
            let pd = if op.dropout.is_some() { &pd } else { &p };
            let out = out_ptr.get();
            // dK and dV sum over the tiles of queries: accumulated into the zeroed output.
            unsafe {
                // dQ = dS·K
                gemm(
                    (rows, dh, kl),
                    Operand::rows(ds.as_ptr(), kl),
                    Operand::rows(k.as_ptr().add(kb), h),
                    (out.add(qb), h),
                    false,
                    false,
                );
                // dK = dSᵀ·Q
                gemm(
                    (kl, dh, rows),
                    Operand::transposed(ds.as_ptr(), kl),
                    Operand::rows(q.as_ptr().add(qb), h),
                    (out.add(n + kb), h),
                    true,
                    false,
                );
                // dV = P̃ᵀ·dO
                gemm(
                    (kl, dh, rows),
                    Operand::transposed(pd.as_ptr(), kl),
                    Operand::rows(g.as_ptr().add(qb), h),
                    (out.add(2 * n + kb), h),
                    true,
                    false,
                );
            }
        }
    });
    Ok((T::wrap(out), Shape::from((3, b, l, h))))
}

/// The softmax backward of one block, in place: `ds` holds dO·Vᵀ on entry and dS on return; `pd`
/// receives P∘M when there is dropout.
struct SoftmaxBwd<'a, T> {
    p: &'a [T],
    ds: &'a mut [T],
    pd: &'a mut [T],
    dropout: Option<(f64, u64)>,
    scale: T,
    /// The padded length: the stride of the dropout mask.
    l: usize,
    /// The block's row and key of the tile's first element.
    first: (usize, usize),
    rows: usize,
    kl: usize,
    task: usize,
}

impl<T: Elem> Vectorized for SoftmaxBwd<'_, T> {
    #[inline(always)]
    fn run(&mut self) {
        let (l, kl) = (self.l, self.kl);
        let (r0, k0) = self.first;
        for i in 0..self.rows {
            let p = &self.p[i * kl..(i + 1) * kl];
            let ds = &mut self.ds[i * kl..(i + 1) * kl];
            if let Some((dp, seed)) = self.dropout {
                // The mask the forward drew for this row (see `Probabilities`).
                let mask = Mask::new(seed, dp);
                let keep = T::from(mask.keep).unwrap_or(T::one());
                let base = ((self.task * l + r0 + i) * l + k0) as u64;
                let pd = &mut self.pd[i * kl..(i + 1) * kl];
                for (j, (d, (&pj, pdj))) in ds.iter_mut().zip(p.iter().zip(pd)).enumerate() {
                    let m = if mask.kept(base + j as u64) {
                        keep
                    } else {
                        T::zero()
                    };
                    *d = *d * m;
                    *pdj = pj * m;
                }
            }
            let dot = lanes_dot(ds, p);
            for (d, &pj) in ds.iter_mut().zip(p) {
                *d = pj * (*d - dot) * self.scale;
            }
        }
    }
}

/// The kernel on CPU tensors.
pub(super) fn apply(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spec: &super::AttentionSpec,
) -> Result<Tensor> {
    let host = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
    let op = Attention {
        heads: spec.heads,
        scale: spec.scale,
        mask: host(spec.mask)?,
        bias: spec.bias.map(host).transpose()?,
        dropout: spec.dropout,
        packed: spec.packing.map(|pk| (pk.offsets().to_vec(), pk.max_len())),
        ones: vec![1.0; spec.packing.map_or(0, |pk| pk.max_len())],
        window: spec.window,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// The CUDA form (ops/cuda/attention.cu): the same op with its mask and bias on the device, the
/// forward's log-sum-exp kept for the backward (which recomputes the probabilities from it).
#[cfg(feature = "cuda")]
pub(super) mod on_gpu {
    use super::super::cuda::{
        alloc, by_dtype, func, launched, suffix, view, with_tensor, Elem, Module,
    };
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
    use candle_core::{CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
    use std::sync::Mutex;

    /// attention.cu's ATT_TILE: queries (forward, dQ) or keys (dK/dV) per block, one a thread.
    const TILE: usize = 64;

    /// Whether the kernels take this head size.
    pub(in crate::ops) fn supports(head_dim: usize) -> bool {
        matches!(head_dim, 32 | 64)
    }

    struct GpuAttention {
        heads: usize,
        scale: f64,
        mask: Tensor,
        bias: Option<Tensor>,
        dropout: Option<(f64, u64)>,
        /// [B, heads, L] log-sum-exp of each row of scores, from the forward.
        lse: Mutex<Option<CudaSlice<f32>>>,
    }

    /// (B, L, H, head dim) of q, checked against the other inputs.
    fn dims(op: &GpuAttention, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (b, len, h) = l.shape().dims3()?;
        if h % op.heads != 0 || op.mask.dims() != [b, len] {
            candle_core::bail!(
                "attention: q {:?} for {} heads, mask {:?}",
                l.dims(),
                op.heads,
                op.mask.dims()
            );
        }
        Ok((b, len, h, h / op.heads))
    }

    fn config(len: usize, heads: usize, b: usize, smem: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (len.div_ceil(TILE) as u32, heads as u32, b as u32),
            block_dim: (TILE as u32, 1, 1),
            shared_mem_bytes: smem as u32,
        }
    }

    /// The scalars every attention kernel takes after its tensors.
    struct Scalars {
        b: i32,
        len: i32,
        h: i32,
        heads: i32,
        scale: f32,
        p: f32,
        keep: f32,
        seed: u64,
        dropout: i32,
    }

    fn scalars(op: &GpuAttention, (b, len, h): (usize, usize, usize)) -> Scalars {
        let (p, seed) = op.dropout.unwrap_or((0.0, 0));
        Scalars {
            b: b as i32,
            len: len as i32,
            h: h as i32,
            heads: op.heads as i32,
            scale: op.scale as f32,
            p: p as f32,
            keep: (1.0 / (1.0 - p)) as f32,
            seed,
            dropout: op.dropout.is_some() as i32,
        }
    }

    impl CustomOp3 for GpuAttention {
        fn name(&self) -> &'static str {
            "pt-attention-cuda"
        }

        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &Layout,
            _: &candle_core::CpuStorage,
            _: &Layout,
            _: &candle_core::CpuStorage,
            _: &Layout,
        ) -> Result<(candle_core::CpuStorage, Shape)> {
            candle_core::bail!("pt-attention-cuda runs on CUDA tensors only")
        }

        fn cuda_fwd(
            &self,
            sq: &CudaStorage,
            lq: &Layout,
            sk: &CudaStorage,
            lk: &Layout,
            sv: &CudaStorage,
            lv: &Layout,
        ) -> Result<(CudaStorage, Shape)> {
            fn run<T: Elem>(
                op: &GpuAttention,
                (sq, lq): (&CudaStorage, &Layout),
                (sk, lk): (&CudaStorage, &Layout),
                (sv, lv): (&CudaStorage, &Layout),
            ) -> Result<CudaStorage> {
                let dev = sq.device();
                let (b, len, h, dh) = dims(op, lq)?;
                let (q, k, v) = (
                    view::<T>(sq, lq, "attention")?,
                    view::<T>(sk, lk, "attention")?,
                    view::<T>(sv, lv, "attention")?,
                );
                let mut out = alloc::<T>(dev, b * len * h)?;
                let mut lse = alloc::<f32>(dev, b * op.heads * len)?;
                let name = format!("attention_fwd_{}_d{dh}", suffix(sq.dtype(), "attention")?);
                let f = func(dev, Module::Attention, &name)?;
                let s = scalars(op, (b, len, h));
                let smem = (2 * TILE * dh + TILE) * 4 + 4;
                with_tensor::<f32, _>(&op.mask, "attention", |mask| {
                    let mut run = |bias: Option<
                        &candle_core::cuda_backend::cudarc::driver::CudaView<f32>,
                    >| {
                        let null = 0u64;
                        let mut lb = f.builder();
                        lb.arg(&mut out).arg(&mut lse).arg(&q).arg(&k).arg(&v);
                        lb.arg(&s.b)
                            .arg(&s.len)
                            .arg(&s.h)
                            .arg(&s.heads)
                            .arg(&s.scale)
                            .arg(&mask);
                        match bias {
                            Some(bias) => lb.arg(bias),
                            None => lb.arg(&null),
                        };
                        lb.arg(&s.p).arg(&s.keep).arg(&s.seed).arg(&s.dropout);
                        // SAFETY: the parameters of attention_fwd_<T>_d<dh> in this order; smem
                        // as attn_fwd lays it out.
                        launched(
                            unsafe { lb.launch(config(len, op.heads, b, smem)) },
                            "attention",
                        )
                        .map(|_| ())
                    };
                    match &op.bias {
                        Some(bias) => {
                            with_tensor::<f32, _>(bias, "attention", |bias| run(Some(&bias)))
                        }
                        None => run(None),
                    }
                })?;
                *op.lse.lock().expect("attention lse") = Some(lse);
                Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
            }
            let shape = lq.shape().clone();
            let out = by_dtype!(
                sq.dtype(),
                "attention",
                run(self, (sq, lq), (sk, lk), (sv, lv))
            )?;
            Ok((out, shape))
        }

        fn bwd(
            &self,
            q: &Tensor,
            k: &Tensor,
            v: &Tensor,
            res: &Tensor,
            grad: &Tensor,
        ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let bwd = GpuAttentionBwd {
                fwd: self,
                out: res.contiguous()?,
                grad: grad.contiguous()?,
            };
            let d = q
                .contiguous()?
                .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &bwd)?;
            Ok((Some(d.get(0)?), Some(d.get(1)?), Some(d.get(2)?)))
        }
    }

    /// The backward: [3, B, L, H] = (dQ, dK, dV), from q, k, v, the forward's output and lse,
    /// and the incoming gradient.
    struct GpuAttentionBwd<'a> {
        fwd: &'a GpuAttention,
        out: Tensor,
        grad: Tensor,
    }

    impl CustomOp3 for GpuAttentionBwd<'_> {
        fn name(&self) -> &'static str {
            "pt-attention-cuda-bwd"
        }

        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &Layout,
            _: &candle_core::CpuStorage,
            _: &Layout,
            _: &candle_core::CpuStorage,
            _: &Layout,
        ) -> Result<(candle_core::CpuStorage, Shape)> {
            candle_core::bail!("pt-attention-cuda-bwd runs on CUDA tensors only")
        }

        fn cuda_fwd(
            &self,
            sq: &CudaStorage,
            lq: &Layout,
            sk: &CudaStorage,
            lk: &Layout,
            sv: &CudaStorage,
            lv: &Layout,
        ) -> Result<(CudaStorage, Shape)> {
            fn run<T: Elem>(
                bw: &GpuAttentionBwd,
                (sq, lq): (&CudaStorage, &Layout),
                (sk, lk): (&CudaStorage, &Layout),
                (sv, lv): (&CudaStorage, &Layout),
            ) -> Result<CudaStorage> {
                let op = bw.fwd;
                let dev = sq.device();
                let (b, len, h, dh) = dims(op, lq)?;
                let n = b * len * h;
                let guard = op.lse.lock().expect("attention lse");
                let Some(lse) = guard.as_ref() else {
                    candle_core::bail!("attention backward: the forward's log-sum-exp is missing")
                };
                let (q, k, v) = (
                    view::<T>(sq, lq, "attention_bwd")?,
                    view::<T>(sk, lk, "attention_bwd")?,
                    view::<T>(sv, lv, "attention_bwd")?,
                );
                let mut d = alloc::<T>(dev, 3 * n)?;
                let mut dsum = alloc::<f32>(dev, b * op.heads * len)?;
                let sfx = suffix(sq.dtype(), "attention_bwd")?;
                let fdq = func(
                    dev,
                    Module::Attention,
                    &format!("attention_bwd_dq_{sfx}_d{dh}"),
                )?;
                let fdkv = func(
                    dev,
                    Module::Attention,
                    &format!("attention_bwd_dkv_{sfx}_d{dh}"),
                )?;
                let s = scalars(op, (b, len, h));
                let null = 0u64;
                with_tensor::<T, _>(&bw.out, "attention_bwd", |o| {
                    with_tensor::<T, _>(&bw.grad, "attention_bwd", |g| {
                        with_tensor::<f32, _>(&op.mask, "attention_bwd", |mask| {
                            let bias_t = op.bias.as_ref();
                            let mut go = |bias: Option<
                                &candle_core::cuda_backend::cudarc::driver::CudaView<f32>,
                            >|
                             -> Result<()> {
                                {
                                    let mut dq = d.slice_mut(0..n);
                                    let mut lb = fdq.builder();
                                    lb.arg(&mut dq)
                                        .arg(&mut dsum)
                                        .arg(&q)
                                        .arg(&k)
                                        .arg(&v)
                                        .arg(&o)
                                        .arg(&g)
                                        .arg(lse);
                                    lb.arg(&s.b)
                                        .arg(&s.len)
                                        .arg(&s.h)
                                        .arg(&s.heads)
                                        .arg(&s.scale)
                                        .arg(&mask);
                                    match bias {
                                        Some(bias) => lb.arg(bias),
                                        None => lb.arg(&null),
                                    };
                                    lb.arg(&s.p).arg(&s.keep).arg(&s.seed).arg(&s.dropout);
                                    let smem = (2 * TILE * dh + TILE) * 4 + 4;
                                    // SAFETY: attention_bwd_dq's parameters in order.
                                    launched(
                                        unsafe { lb.launch(config(len, op.heads, b, smem)) },
                                        "attention_bwd",
                                    )?;
                                }
                                let (mut dk, mut dv) = d.split_at_mut(2 * n);
                                let mut dk = dk.slice_mut(n..2 * n);
                                let mut lb = fdkv.builder();
                                lb.arg(&mut dk)
                                    .arg(&mut dv)
                                    .arg(&q)
                                    .arg(&k)
                                    .arg(&v)
                                    .arg(&g)
                                    .arg(lse)
                                    .arg(&dsum);
                                lb.arg(&s.b)
                                    .arg(&s.len)
                                    .arg(&s.h)
                                    .arg(&s.heads)
                                    .arg(&s.scale)
                                    .arg(&mask);
                                match bias {
                                    Some(bias) => lb.arg(bias),
                                    None => lb.arg(&null),
                                };
                                lb.arg(&s.p).arg(&s.keep).arg(&s.seed).arg(&s.dropout);
                                let smem = (2 * TILE * dh + 2 * TILE) * 4 + 4;
                                // SAFETY: attention_bwd_dkv's parameters in order.
                                launched(
                                    unsafe { lb.launch(config(len, op.heads, b, smem)) },
                                    "attention_bwd",
                                )
                                .map(|_| ())
                            };
                            match bias_t {
                                Some(bias) => {
                                    with_tensor::<f32, _>(bias, "attention_bwd", |bias| {
                                        go(Some(&bias))
                                    })
                                }
                                None => go(None),
                            }
                        })
                    })
                })?;
                Ok(CudaStorage::wrap_cuda_slice(d, dev.clone()))
            }
            let (b, len, h) = lq.shape().dims3()?;
            let d = by_dtype!(
                sq.dtype(),
                "attention_bwd",
                run(self, (sq, lq), (sk, lk), (sv, lv))
            )?;
            Ok((d, Shape::from((3, b, len, h))))
        }
    }

    /// The op on CUDA tensors (f32 or bf16; head size 32 or 64; a constant bias).
    pub(in crate::ops) fn apply(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        spec: &super::super::AttentionSpec,
    ) -> Result<Tensor> {
        let op = GpuAttention {
            heads: spec.heads,
            scale: spec.scale,
            mask: spec.mask.to_dtype(DType::F32)?.contiguous()?,
            bias: spec
                .bias
                .map(|b| b.detach().to_dtype(DType::F32)?.contiguous())
                .transpose()?,
            dropout: spec.dropout,
            lse: Mutex::new(None),
        };
        q.contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
    }
}
