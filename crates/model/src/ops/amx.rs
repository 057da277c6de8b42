//! Intel AMX (Advanced Matrix Extensions) for bf16 matrix multiplies on the CPU.
//!
//! One TDPBF16PS instruction multiplies a 16×32 bf16 tile by a 32×16 one into a 16×16 f32 tile:
//! 8,192 multiply-adds, about sixteen times what AVX-512 FMAs do in the same cycles. Rust has
//! no stable AMX intrinsics, so the kernel is inline assembly; and Linux hands the 8 KiB of tile
//! state only to a process that asks for it (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), so `available`
//! asks once and everything falls back to the next path (`isa`) when the CPU or kernel says no.
//!
//! Products of two bf16 values are exact in f32, and the instruction accumulates in f32 with
//! round-to-nearest, so results differ from an f32 multiply of the same bf16-rounded inputs only
//! in summation order (and in flushing denormals, which TDPBF16PS always does).

/// Whether AMX bf16 tiles can be used in this process: the CPU has them, Linux granted the tile
/// state, and `PAIRTRAIN_ISA` (or `PAIRTRAIN_AMX=0`) does not turn them off.
pub(super) fn available() -> bool {
    super::isa::active() >= super::isa::Isa::Amx
}

/// Asks Linux for the tile state (once, from `isa::detected`); false where the CPU or the
/// kernel says no.
pub(super) fn request() -> bool {
    imp::request()
}

/// Rows, and bf16 columns, of one A tile: the block edge every packed dimension is padded to.
pub(super) const TILE_K: usize = 32;
/// Output rows and columns one `Tiles::block` call computes (2×2 tiles of 16×16).
pub(super) const BLOCK: usize = 32;

/// The tile configuration loaded on the current thread for as long as this lives: eight 16-row
/// tiles of 64 bytes (four f32 accumulators, two A and two B operands). Dropping it releases the
/// tile state, so the thread's context switches stop saving 8 KiB.
pub(super) struct Tiles(());

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use std::arch::asm;

    /// The 64-byte operand of LDTILECFG (palette 1).
    #[repr(C, align(64))]
    struct Config {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    pub(super) fn request() -> bool {
        // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        if __cpuid(0).eax < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with these arguments only changes which state the kernel saves for
        // this process; it fails cleanly (non-zero) on kernels or VMs without AMX support.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    impl super::Tiles {
        /// Loads the configuration on this thread. Callers check `available()` first.
        pub(in crate::ops) fn configure() -> super::Tiles {
            debug_assert!(super::available());
            let mut cfg = Config {
                palette: 1,
                start_row: 0,
                reserved: [0; 14],
                colsb: [0; 16],
                rows: [0; 16],
            };
            for t in 0..8 {
                cfg.colsb[t] = 64;
                cfg.rows[t] = 16;
            }
            // SAFETY: `available()` said the process may use tiles; the configuration is valid
            // for palette 1 (8 tiles of at most 16 rows × 64 bytes).
            unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly)) };
            super::Tiles(())
        }

        /// C[32×32] (f32, row stride `ldc` bytes) += A[32×32k] · B, where A is bf16 row-major
        /// (row stride `lda` bytes) and B is `kblocks` pairs of 1 KiB tiles in the VNNI layout
        /// `linear_bf16` packs: for each 32-deep slice of k, the tile of output columns 0–15, then
        /// that of 16–31, each 16 rows (k pairs) × 16 columns × 2 bf16.
        ///
        /// # Safety
        /// A must hold 32 rows of `32·kblocks` bf16 at stride `lda`, B `2048·kblocks` bytes and C
        /// 32 rows of 32 f32 at stride `ldc`; `kblocks` ≥ 1.
        #[inline]
        pub(in crate::ops) unsafe fn block(
            &self,
            a: *const u16,
            lda: usize,
            b: *const u16,
            c: *mut f32,
            ldc: usize,
            kblocks: usize,
        ) {
            debug_assert!(kblocks >= 1);
            // SAFETY: the caller's contract covers every address the tile loads and stores touch.
            unsafe {
                asm!(
                    "tileloadd tmm0, [{c} + {ldc}*1]",
                    "tileloadd tmm1, [{c} + {ldc}*1 + 64]",
                    "tileloadd tmm2, [{c16} + {ldc}*1]",
                    "tileloadd tmm3, [{c16} + {ldc}*1 + 64]",
                    "2:",
                    "tileloadd tmm4, [{a} + {lda}*1]",
                    "tileloadd tmm5, [{a16} + {lda}*1]",
                    "tileloadd tmm6, [{b} + {s64}*1]",
                    "tileloadd tmm7, [{b} + {s64}*1 + 1024]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    "add {a}, 64",
                    "add {a16}, 64",
                    "add {b}, 2048",
                    "dec {k}",
                    "jnz 2b",
                    "tilestored [{c} + {ldc}*1], tmm0",
                    "tilestored [{c} + {ldc}*1 + 64], tmm1",
                    "tilestored [{c16} + {ldc}*1], tmm2",
                    "tilestored [{c16} + {ldc}*1 + 64], tmm3",
                    a = inout(reg) a => _,
                    a16 = inout(reg) a.byte_add(16 * lda) => _,
                    b = inout(reg) b => _,
                    k = inout(reg) kblocks => _,
                    c = in(reg) c,
                    c16 = in(reg) c.byte_add(16 * ldc),
                    ldc = in(reg) ldc,
                    lda = in(reg) lda,
                    s64 = in(reg) 64usize,
                    options(nostack)
                );
            }
        }
    }

    impl Drop for super::Tiles {
        fn drop(&mut self) {
            // SAFETY: releases the configuration this value loaded.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    pub(super) fn request() -> bool {
        false
    }

    impl super::Tiles {
        pub(in crate::ops) fn configure() -> super::Tiles {
            unreachable!("AMX tiles are only configured where available() is true")
        }

        /// # Safety
        /// Never called: `available()` is false on this platform.
        pub(in crate::ops) unsafe fn block(
            &self,
            _a: *const u16,
            _lda: usize,
            _b: *const u16,
            _c: *mut f32,
            _ldc: usize,
            _kblocks: usize,
        ) {
            unreachable!("AMX tiles are only used where available() is true")
        }
    }
}
