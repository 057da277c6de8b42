//! bf16 matrix multiplies by AVX512-BF16's VDPBF16PS, for CPUs with bf16 dot products but no AMX
//! tiles (AMD Zen 4 and later; Intel Cooper Lake).
//!
//! One VDPBF16PS multiplies 16 pairs of bf16 by 16 pairs and adds each pair's two products to an
//! f32 lane: 32 multiply-adds, twice an f32 FMA's 16 in the same register width. The operands
//! are those of the AMX kernel (`super::amx`): the weight packed in the pairs-of-k layout that
//! TDPBF16PS reads, where one 64-byte tile row is the 16 columns × 2 k that one VDPBF16PS takes,
//! and the activations as bf16 rows. So `linear_bf16` packs once for either kernel.
//!
//! Products of two bf16 values are exact in f32 and each is added with round-to-nearest; like
//! TDPBF16PS, the instruction treats denormal inputs as zero and flushes denormal results. The
//! results differ from an f32 multiply of the same bf16-rounded inputs only in summation order.

use super::amx::{BLOCK, TILE_K};
use super::isa::{self, Isa};

/// Whether VDPBF16PS may be used here (the CPU has it, and `PAIRTRAIN_ISA` allows it).
pub(super) fn available() -> bool {
    isa::active() >= Isa::Avx512Bf16
}

/// Rows of C kept in registers at once: 8 rows × 32 columns are 16 accumulators, beside the
/// two weight registers and the broadcast activation pair.
const ROWS: usize = 8;

/// C[32×32] (f32, row stride `ldc` bytes) += A[32×32k] · B, with the operands and contract of
/// `Tiles::block`: A bf16 row-major (row stride `lda` bytes), B `kblocks` pairs of 1 KiB tiles
/// (for each 32-deep slice of k, output columns 0–15 then 16–31, each 16 k pairs × 16 columns ×
/// 2 bf16).
///
/// # Safety
/// `available()` is true; A holds 32 rows of `32·kblocks` bf16 at stride `lda`, B
/// `2048·kblocks` bytes and C 32 rows of 32 f32 at stride `ldc`.
#[inline]
pub(super) unsafe fn block(
    a: *const u16,
    lda: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    kblocks: usize,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract.
    unsafe {
        imp::block(a, lda, b, c, ldc, kblocks)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!(
        "VDPBF16PS is only used where available() is true: {a:?} {lda} {b:?} {c:?} {ldc} {kblocks}"
    )
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::{BLOCK, ROWS, TILE_K};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block(
        a: *const u16,
        lda: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        kblocks: usize,
    ) {
        for r0 in (0..BLOCK).step_by(ROWS) {
            // SAFETY: rows r0 .. r0 + ROWS lie inside the 32 rows of A and C.
            unsafe {
                rows(
                    a.byte_add(r0 * lda),
                    lda,
                    b,
                    c.byte_add(r0 * ldc),
                    ldc,
                    kblocks,
                )
            };
        }
    }

    /// `ROWS` rows of the block: accumulators in registers across the whole of k.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn rows(
        a: *const u16,
        lda: usize,
        b: *const u16,
        c: *mut f32,
        ldc: usize,
        kblocks: usize,
    ) {
        // SAFETY (whole body): every address is inside the operands the caller's contract
        // describes; loads and stores are unaligned forms.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = c.byte_add(r * ldc);
                acc[0] = _mm512_loadu_ps(row);
                acc[1] = _mm512_loadu_ps(row.add(16));
            }
            for kb in 0..kblocks {
                // Two 512-element tiles per 32-deep slice: columns 0–15, then 16–31.
                let tiles = b.add(kb * 2 * 512);
                let a_k = a.add(kb * TILE_K);
                for p in 0..TILE_K / 2 {
                    let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                        tiles.add(p * 32) as *const __m512i
                    ));
                    let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                        tiles.add(512 + p * 32) as *const __m512i,
                    ));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        // The pair (A[r][2p], A[r][2p+1]) in every lane.
                        let pair =
                            (a_k.byte_add(r * lda).add(2 * p) as *const i32).read_unaligned();
                        let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                        acc[0] = _mm512_dpbf16_ps(acc[0], x, w0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], x, w1);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let row = c.byte_add(r * ldc);
                _mm512_storeu_ps(row, acc[0]);
                _mm512_storeu_ps(row.add(16), acc[1]);
            }
        }
    }
}
