//! The linear layer x·Wᵀ + b with bf16 inputs and f32 accumulation, for inference on the CPU
//! (`--dtype bf16`): the weight is rounded to bf16 and packed once, the activations are rounded
//! on the way in, and everything around the multiply (LayerNorm, softmax, GELU, the residuals)
//! stays in f32 — what PyTorch's CPU autocast does for linear layers.
//!
//! The multiply runs on AMX tiles (`super::amx`) where the CPU has them, else by AVX512-BF16 dot
//! products (`super::avx512_bf16`), both from one packing of the weight. A CPU with neither
//! multiplies bf16 no faster than f32 (rounding to bf16 and back only adds passes), so there the
//! layer stays in f32: the same speed and better numbers than bf16 would give.

use super::amx::{self, Tiles, BLOCK, TILE_K};
use super::avx512_bf16;
use super::kernel::{contiguous, vectorized, Elem, Vectorized};
use super::pool::{par_chunks_mut, par_for};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::slice::HalfFloatSliceExt;

/// A linear layer's weight [out, in], rounded to bf16 and laid out for the multiply this
/// machine runs.
#[derive(Debug)]
pub struct Bf16Weight {
    n: usize,
    k: usize,
    packed: Packed,
}

#[derive(Debug)]
enum Packed {
    /// bf16 pairs of k in the layout of AMX's B tiles (`Tiles::block`), n and k padded with
    /// zeros to multiples of 32, and the kernel that multiplies by them.
    Pairs(Vec<u16>, PairKernel),
    /// No bf16 dot products on this CPU: the f32 weight, for the f32 kernel.
    F32(Tensor),
}

/// The kernels that multiply bf16 rows by a `Packed::Pairs` weight, one 32×32 block at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PairKernel {
    Amx,
    Avx512Bf16,
}

impl PairKernel {
    /// The fastest kernel this process may use, if any.
    fn best() -> Option<Self> {
        if amx::available() {
            Some(Self::Amx)
        } else if avx512_bf16::available() {
            Some(Self::Avx512Bf16)
        } else {
            None
        }
    }

    /// Readies this thread for `Session::block` (AMX loads its tile configuration).
    fn begin(self) -> Session {
        match self {
            Self::Amx => Session::Amx(Tiles::configure()),
            Self::Avx512Bf16 => Session::Avx512Bf16,
        }
    }
}

/// A `PairKernel` in use on this thread.
enum Session {
    Amx(Tiles),
    Avx512Bf16,
}

impl Session {
    /// C[32×32] += A·B; the operands and contract of `Tiles::block`.
    ///
    /// # Safety
    /// As `Tiles::block`.
    #[inline]
    unsafe fn block(
        &self,
        a: *const u16,
        lda: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        kblocks: usize,
    ) {
        // SAFETY: the caller's contract; each kernel was chosen because the CPU runs it.
        unsafe {
            match self {
                Session::Amx(t) => t.block(a, lda, b, c, ldc, kblocks),
                Session::Avx512Bf16 => avx512_bf16::block(a, lda, b, c, ldc, kblocks),
            }
        }
    }
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

impl Bf16Weight {
    /// Packs `w` [out, in] (f32, CPU) for the fastest multiply available here.
    pub fn pack(w: &Tensor) -> Result<Self> {
        Self::pack_for(w, PairKernel::best())
    }

    fn pack_for(w: &Tensor, kernel: Option<PairKernel>) -> Result<Self> {
        let (n, k) = w.dims2()?;
        let packed = match kernel {
            Some(kernel) => {
                let v = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                Packed::Pairs(pack_tiles(&v, n, k), kernel)
            }
            None => Packed::F32(w.to_dtype(DType::F32)?),
        };
        Ok(Self { n, k, packed })
    }

    /// Which multiply this weight goes through: "amx", "avx512_bf16", or "f32" (no bf16 dot
    /// products on this CPU).
    pub fn kernel_name(&self) -> &'static str {
        match self.packed {
            Packed::Pairs(_, PairKernel::Amx) => "amx",
            Packed::Pairs(_, PairKernel::Avx512Bf16) => "avx512_bf16",
            Packed::F32(_) => "f32",
        }
    }
}

/// W [n, k] as AMX B operands: for each block of 32 output columns and each 32-deep slice of k,
/// two 16-row tiles (columns 0–15, then 16–31) whose row p holds (W[c][2p], W[c][2p+1]) for
/// each column c — TDPBF16PS's pairs-of-k layout.
fn pack_tiles(w: &[f32], n: usize, k: usize) -> Vec<u16> {
    let (np, kp) = (round_up(n, BLOCK), round_up(k, TILE_K));
    let kblocks = kp / TILE_K;
    let mut out = vec![0u16; np * kp];
    for nb in 0..np / BLOCK {
        for kb in 0..kblocks {
            for half in 0..2 {
                let tile = ((nb * kblocks + kb) * 2 + half) * 512;
                for p in 0..TILE_K / 2 {
                    for col in 0..16 {
                        let row = nb * BLOCK + half * 16 + col;
                        for j in 0..2 {
                            let kk = kb * TILE_K + 2 * p + j;
                            if row < n && kk < k {
                                out[tile + p * 32 + col * 2 + j] = to_bf16(w[row * k + kk]);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// f32 → bf16 by round-to-nearest-even (NaN stays NaN), as PyTorch converts.
#[inline(always)]
fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        ((b >> 16) | 0x40) as u16
    } else {
        ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// Rows of `x` (length k) into bf16 rows of length `kp` (zero padded).
struct RowsToBf16<'a> {
    x: &'a [f32],
    k: usize,
    dst: &'a mut [u16],
    kp: usize,
}

impl Vectorized for RowsToBf16<'_> {
    #[inline(always)]
    fn run(&mut self) {
        for (src, dst) in self.x.chunks(self.k).zip(self.dst.chunks_mut(self.kp)) {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = to_bf16(s);
            }
        }
    }
}

/// Problems smaller than this many multiply-adds run on one thread.
const PAR_MIN_MACS: usize = 1 << 20;
/// Inputs smaller than this many elements are converted to bf16 on one thread.
const PAR_MIN_CONVERT: usize = 1 << 15;

/// `x·Wᵀ + b` over the last dimension of `x` (CPU, any rank; f32, or bf16 as `apply_gelu`
/// returns it); b is [out] in f32. Returns f32.
pub(super) fn apply(x: &Tensor, w: &Bf16Weight, b: &Tensor) -> Result<Tensor> {
    run(x, w, b, Epilogue::None)
}

/// `gelu(x·Wᵀ + b)` for a feed-forward's first layer, whose output only feeds the second
/// layer's bf16 multiply. The GELU runs on each 32×32 block while it is in cache and the result
/// is stored in bf16 (as the second layer would round it); without bf16 dot products it is the
/// f32 GELU of the f32 layer.
pub(super) fn apply_gelu(x: &Tensor, w: &Bf16Weight, b: &Tensor) -> Result<Tensor> {
    match &w.packed {
        Packed::F32(_) => super::gelu::apply(&apply(x, w, b)?),
        Packed::Pairs(..) => run(x, w, b, Epilogue::GeluBf16),
    }
}

/// What happens to the f32 results of the multiply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Epilogue {
    /// Stored as they are (f32).
    None,
    /// GELU, then stored in bf16.
    GeluBf16,
}

fn run(x: &Tensor, w: &Bf16Weight, b: &Tensor, epilogue: Epilogue) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let k = *dims.last().unwrap_or(&0);
    if k != w.k || b.dims() != [w.n] {
        candle_core::bail!(
            "linear (bf16): input {:?}, weight [{}, {}], bias {:?}",
            dims,
            w.n,
            w.k,
            b.dims()
        );
    }
    let mut out_dims = dims;
    *out_dims.last_mut().expect("k was read from it") = w.n;
    let b = b.to_dtype(DType::F32)?.contiguous()?;
    match &w.packed {
        Packed::F32(wf) => {
            super::linear::apply(&x.to_dtype(DType::F32)?, wf, &b)?.reshape(out_dims)
        }
        Packed::Pairs(tiles, kernel) => {
            let x = match x.dtype() {
                DType::BF16 | DType::F32 => x.contiguous()?,
                _ => x.to_dtype(DType::F32)?.contiguous()?,
            };
            let op = TilesLinear {
                w,
                tiles,
                kernel: *kernel,
                epilogue,
            };
            x.apply_op2_no_bwd(&b, &op)?.reshape(out_dims)
        }
    }
}

/// The bf16 multiply as a candle op over (x, b), so that both are read in place.
struct TilesLinear<'a> {
    w: &'a Bf16Weight,
    tiles: &'a [u16],
    kernel: PairKernel,
    epilogue: Epilogue,
}

impl CustomOp2 for TilesLinear<'_> {
    fn name(&self) -> &'static str {
        "pt-linear-bf16"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let rows = match s1 {
            CpuStorage::BF16(v) => {
                let (start, end) = l1
                    .contiguous_offsets()
                    .ok_or(candle_core::Error::RequiresContiguous { op: name })?;
                Rows::Bf16(v[start..end].reinterpret_cast())
            }
            _ => Rows::F32(contiguous::<f32>(s1, l1, name)?),
        };
        let b = contiguous::<f32>(s2, l2, name)?;
        let (n, k) = (self.w.n, self.w.k);
        let m = l1.shape().elem_count() / k.max(1);
        let kernel = self.kernel;
        let y = with_a_operand(rows, m, k, |a| match self.epilogue {
            Epilogue::None => CpuStorage::F32(tiles_multiply(kernel, a, self.tiles, b, (m, n, k))),
            Epilogue::GeluBf16 => {
                CpuStorage::BF16(tiles_multiply_gelu(kernel, a, self.tiles, b, (m, n, k)))
            }
        });
        Ok((y, Shape::from((m, n))))
    }
}

/// The rows of x as the multiply receives them.
#[derive(Clone, Copy)]
enum Rows<'a> {
    F32(&'a [f32]),
    /// Already rounded (a previous `apply_gelu`), as bf16 bits.
    Bf16(&'a [u16]),
}

/// Calls `f` with x as the A operand: bf16 rows of kp elements, mp rows, zero padded. bf16
/// input that is already so shaped is passed as it is; anything else goes through a buffer kept
/// per thread (a fresh one per call costs more in page faults and zeroing than the multiply).
fn with_a_operand<R>(x: Rows, m: usize, k: usize, f: impl FnOnce(&[u16]) -> R) -> R {
    let (mp, kp) = (round_up(m, BLOCK), round_up(k, TILE_K));
    if let Rows::Bf16(v) = x {
        if mp == m && kp == k {
            return f(v);
        }
    }
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|a| {
        if a.len() < mp * kp {
            a.resize(mp * kp, 0);
        }
        let a = &mut a[..mp * kp];
        // Only the padding needs zeros: the rows of x overwrite the rest.
        if kp != k {
            a.chunks_mut(kp).for_each(|r| r[k..].fill(0));
        }
        a[m * kp..].fill(0);
        match x {
            // Row chunks in parallel: the conversion is memory-bound, and one thread left the
            // other core idle for an eighth of the run.
            Rows::F32(x) if x.len() >= PAR_MIN_CONVERT => {
                let rows = (PAR_MIN_CONVERT / 4 / k.max(1)).max(1);
                par_chunks_mut(&mut a[..m * kp], rows * kp, |c, dst| {
                    let x = &x[c * rows * k..][..dst.len() / kp * k];
                    vectorized(&mut RowsToBf16 { x, k, dst, kp })
                });
            }
            Rows::F32(x) => vectorized(&mut RowsToBf16 { x, k, dst: a, kp }),
            Rows::Bf16(x) => {
                for (src, dst) in x.chunks(k).zip(a.chunks_mut(kp)) {
                    dst[..k].copy_from_slice(src);
                }
            }
        }
        f(a)
    })
}

/// Runs `column_block(nb)` for every block of 32 output columns, in parallel when the multiply
/// is big enough. One task per column block: its weights (kp × 32 bf16) stay in cache while every
/// row block streams past, and no two tasks write the same output element.
fn for_column_blocks((m, n, k): (usize, usize, usize), column_block: impl Fn(usize) + Sync + Send) {
    let blocks = round_up(n, BLOCK) / BLOCK;
    if m * n * k >= PAR_MIN_MACS {
        par_for(blocks, column_block);
    } else {
        (0..blocks).for_each(column_block);
    }
}

/// `a` (bf16 rows of x, padded) times the packed weight, plus `b`; returns [m, n].
fn tiles_multiply(
    kernel: PairKernel,
    a: &[u16],
    tiles: &[u16],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
) -> Vec<f32> {
    let (mp, np, kp) = (round_up(m, BLOCK), round_up(n, BLOCK), round_up(k, TILE_K));
    // The bias is where every accumulator starts; padded rows and columns are cut off below.
    let mut y = Vec::with_capacity(mp * np);
    for _ in 0..mp {
        y.extend_from_slice(b);
        y.resize(y.len() + np - n, 0.0);
    }
    let kblocks = kp / TILE_K;
    let (a_ptr, y_ptr) = (a.as_ptr() as usize, y.as_mut_ptr() as usize);
    for_column_blocks((m, n, k), |nb| {
        let t = kernel.begin();
        let b_ptr = tiles[nb * kblocks * 2 * 512..].as_ptr();
        for mb in 0..mp / BLOCK {
            // SAFETY: A has mp rows of kp bf16, the weight block kblocks pairs of 512-element
            // tiles, and Y mp rows of np f32; block (mb, nb) lies inside all three, and tasks
            // write disjoint column blocks of Y.
            unsafe {
                t.block(
                    (a_ptr as *const u16).add(mb * BLOCK * kp),
                    kp * 2,
                    b_ptr,
                    (y_ptr as *mut f32).add(mb * BLOCK * np + nb * BLOCK),
                    np * 4,
                    kblocks,
                );
            }
        }
    });
    y.truncate(m * np);
    if np != n {
        y = y.chunks(np).flat_map(|r| &r[..n]).copied().collect();
    }
    y
}

/// `gelu(a·Wᵀ + b)` in bf16, [m, n]: each 32×32 block is computed into a buffer on the stack,
/// then goes through GELU and rounding while it is in L1, so the f32 result never reaches memory.
fn tiles_multiply_gelu(
    kernel: PairKernel,
    a: &[u16],
    tiles: &[u16],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
) -> Vec<half::bf16> {
    let kp = round_up(k, TILE_K);
    let mut y = vec![half::bf16::ZERO; m * n];
    let kblocks = kp / TILE_K;
    let y_ptr = y.as_mut_ptr() as usize;
    for_column_blocks((m, n, k), |nb| {
        vectorized(&mut GeluColumnBlock {
            kernel,
            a,
            w: &tiles[nb * kblocks * 2 * 512..],
            b,
            y: y_ptr as *mut half::bf16,
            nb,
            dims: (m, n, kblocks),
        })
    });
    y
}

/// One task of `tiles_multiply_gelu`: output columns nb·32 .. nb·32 + 32 of every row. Run
/// through `vectorized` as a whole so that the GELU loop is compiled for AVX-512.
struct GeluColumnBlock<'a> {
    kernel: PairKernel,
    a: &'a [u16],
    w: &'a [u16],
    b: &'a [f32],
    y: *mut half::bf16,
    nb: usize,
    /// (m, n, kblocks)
    dims: (usize, usize, usize),
}

impl Vectorized for GeluColumnBlock<'_> {
    #[inline(always)]
    fn run(&mut self) {
        let (m, n, kblocks) = self.dims;
        let kp = kblocks * TILE_K;
        let t = self.kernel.begin();
        let col0 = self.nb * BLOCK;
        let cols = BLOCK.min(n - col0);
        let mut bias = [0f32; BLOCK];
        bias[..cols].copy_from_slice(&self.b[col0..col0 + cols]);
        let mut c = [0f32; BLOCK * BLOCK];
        for mb in 0..round_up(m, BLOCK) / BLOCK {
            c.chunks_mut(BLOCK).for_each(|r| r.copy_from_slice(&bias));
            // SAFETY: A has mp rows of kp bf16 and w kblocks pairs of 512-element tiles; C is 32
            // rows of 32 f32 (stride 128 bytes).
            unsafe {
                t.block(
                    self.a[mb * BLOCK * kp..].as_ptr(),
                    kp * 2,
                    self.w.as_ptr(),
                    c.as_mut_ptr(),
                    BLOCK * 4,
                    kblocks,
                );
            }
            let rows = BLOCK.min(m - mb * BLOCK);
            for (r, src) in c.chunks(BLOCK).take(rows).enumerate() {
                // SAFETY: row mb·32 + r < m and columns col0 .. col0 + cols ≤ n of Y [m, n],
                // which only this task writes.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(self.y.add((mb * BLOCK + r) * n + col0), cols)
                };
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = half::bf16::from_bits(to_bf16(<f32 as Elem>::gelu(s)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn seeded(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// x·Wᵀ + b in f64 from the bf16-rounded inputs: what both paths must equal up to f32
    /// summation order.
    fn exact(x: &[f32], w: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let r = |v: f32| f32::from_bits((to_bf16(v) as u32) << 16) as f64;
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = b[j] as f64
                    + (0..k)
                        .map(|t| r(x[i * k + t]) * r(w[j * k + t]))
                        .sum::<f64>();
            }
        }
        y
    }

    /// The pair kernels this machine runs (each tested where it runs; say which are not).
    fn kernels_here() -> Vec<PairKernel> {
        let mut ks = Vec::new();
        if amx::available() {
            ks.push(PairKernel::Amx);
        } else {
            eprintln!("no AMX here (or PAIRTRAIN_ISA below amx): the tile kernel is untested");
        }
        if avx512_bf16::available() {
            ks.push(PairKernel::Avx512Bf16);
        } else {
            eprintln!("no AVX512-BF16 here (or PAIRTRAIN_ISA below it): VDPBF16PS is untested");
        }
        ks
    }

    fn check(kernel: PairKernel, m: usize, n: usize, k: usize) {
        let dev = Device::Cpu;
        let (x, w, b) = (seeded(m * k, 1), seeded(n * k, 2), seeded(n, 3));
        let want = exact(&x, &w, &b, m, n, k);
        let wt = Tensor::from_vec(w, (n, k), &dev).unwrap();
        let packed = Bf16Weight::pack_for(&wt, Some(kernel)).unwrap();
        let xt = Tensor::from_vec(x, (m, k), &dev).unwrap();
        let bt = Tensor::from_vec(b, n, &dev).unwrap();
        let got = apply(&xt, &packed, &bt).unwrap();
        assert_eq!(got.dims(), [m, n]);
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            // |sum| ≤ k terms of magnitude ≤ 1: f32 accumulation error stays below k·2⁻²³·k.
            assert!(
                (*g as f64 - e).abs() < 1e-6 * k as f64,
                "{kernel:?} {m}x{n}x{k} element {i}: {g} vs {e}"
            );
        }
    }

    /// Without bf16 dot products the layer is the f32 linear layer, exactly.
    #[test]
    fn without_bf16_dot_products_the_layer_is_f32() {
        let dev = Device::Cpu;
        for (m, n, k) in [(1, 1, 1), (7, 5, 3), (40, 384, 384), (33, 70, 100)] {
            let (x, w, b) = (seeded(m * k, 1), seeded(n * k, 2), seeded(n, 3));
            let wt = Tensor::from_vec(w, (n, k), &dev).unwrap();
            let xt = Tensor::from_vec(x, (m, k), &dev).unwrap();
            let bt = Tensor::from_vec(b, n, &dev).unwrap();
            let packed = Bf16Weight::pack_for(&wt, None).unwrap();
            assert_eq!(packed.kernel_name(), "f32");
            let got = apply(&xt, &packed, &bt).unwrap();
            let want = super::super::linear::apply(&xt, &wt, &bt).unwrap();
            let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        }
    }

    #[test]
    fn pair_kernels_give_the_bf16_rounded_product() {
        // Aligned shapes, ragged edges in every dimension, and one big enough to go parallel.
        for kernel in kernels_here() {
            for (m, n, k) in [
                (32, 32, 32),
                (1, 1, 1),
                (7, 5, 3),
                (33, 70, 100),
                (512, 384, 384),
                (100, 1536, 384),
                (64, 384, 1536),
            ] {
                check(kernel, m, n, k);
            }
        }
    }

    #[test]
    fn gelu_epilogue_and_bf16_input() {
        let dev = Device::Cpu;
        for kernel in kernels_here() {
            for (m, n, k) in [(7, 5, 3), (33, 70, 100), (64, 1536, 384)] {
                let (x, w, b) = (seeded(m * k, 4), seeded(n * k, 5), seeded(n, 6));
                let want = exact(&x, &w, &b, m, n, k);
                let w = Tensor::from_vec(w, (n, k), &dev).unwrap();
                let w = Bf16Weight::pack_for(&w, Some(kernel)).unwrap();
                let xt = Tensor::from_vec(x, (m, k), &dev).unwrap();
                let bt = Tensor::from_vec(b, n, &dev).unwrap();
                let h = apply_gelu(&xt, &w, &bt).unwrap();
                assert_eq!((h.dtype(), h.dims()), (DType::BF16, &[m, n][..]));
                let got = h.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
                for (g, e) in got.to_vec1::<f32>().unwrap().iter().zip(&want) {
                    let e = 0.5 * e * (1.0 + candle_core::cpu::erf::erf_f64(e / 2f64.sqrt()));
                    // One bf16 rounding (2⁻⁹ relative) over the f32 product's error.
                    assert!(
                        (*g as f64 - e).abs() <= e.abs() / 256.0 + 1e-6 * k as f64,
                        "{kernel:?} {m}x{n}x{k}: {g} vs gelu {e}"
                    );
                }
                // A bf16 input is the same numbers as its f32 widening: the same result exactly,
                // whether it is used in place (rows a multiple of 32) or copied with padding.
                let w2 = Tensor::from_vec(seeded(3 * n, 7), (3, n), &dev).unwrap();
                let w2 = Bf16Weight::pack_for(&w2, Some(kernel)).unwrap();
                let b2 = Tensor::zeros(3, DType::F32, &dev).unwrap();
                let from_bf16 = apply(&h, &w2, &b2).unwrap();
                let from_f32 = apply(&h.to_dtype(DType::F32).unwrap(), &w2, &b2).unwrap();
                let diff = (from_bf16 - from_f32)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap();
                assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2⁻⁸ is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(f32::from_bits((to_bf16(f32::NAN) as u32) << 16).is_nan());
        assert_eq!(to_bf16(f32::INFINITY), 0x7f80);
    }
}
