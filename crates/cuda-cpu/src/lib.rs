//! pairtrain's CUDA kernels (crates/model/src/ops/cuda/*.cu) run on the CPU, for tests: the same
//! sources compiled as C++ against a compatibility header (harness/cuda_cpu.h) whose runtime runs
//! every CUDA thread of a block as a fiber, with barriers that count arrivals, warp operations
//! that wait for exactly their lanes, NaN-filled shared memory, and threads ordered by a schedule
//! (forward, reverse, seeded random), so that a missing barrier or a wrong index shows up as a
//! wrong result or an error naming the place. Each kernel is `sys::cucpu_<name>(&launch, args…)`.
//!
//! Not reached: code for tensor cores (the kernels have none), and anything about speed.

use std::ffi::CStr;

/// A launch as CUDA takes it (grid, block, dynamic shared memory), and how the harness orders
/// the threads. Laid out as harness/runtime.h `Launch`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: usize,
    schedule: i32,
    seed: u64,
    /// Stack of each fiber (0: 64 KiB).
    pub stack_bytes: usize,
}

/// The order in which the harness runs the threads of a block (and the blocks of a grid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Forward,
    Reverse,
    Random(u64),
}

/// The schedules a kernel is tested under: a missing barrier shows under some of them only.
pub const SCHEDULES: [Schedule; 4] = [
    Schedule::Forward,
    Schedule::Reverse,
    Schedule::Random(1),
    Schedule::Random(2),
];

impl Launch {
    pub fn new(grid: [u32; 3], block: [u32; 3], shared_bytes: usize, schedule: Schedule) -> Self {
        let (schedule, seed) = match schedule {
            Schedule::Forward => (0, 0),
            Schedule::Reverse => (1, 0),
            Schedule::Random(s) => (2, s),
        };
        Self {
            grid,
            block,
            shared_bytes,
            schedule,
            seed,
            stack_bytes: 0,
        }
    }

    /// A 1-D grid of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32, shared_bytes: usize, schedule: Schedule) -> Self {
        Self::new([blocks, 1, 1], [threads, 1, 1], shared_bytes, schedule)
    }
}

/// A kernel's return code as a Result: the harness's message on failure (a barrier some threads
/// skip, lanes waiting with different masks, a deadlock, …).
pub fn result(rc: i32) -> Result<(), String> {
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the harness keeps a NUL-terminated message for this thread.
    Err(unsafe { CStr::from_ptr(sys::cucpu_last_error()) }
        .to_string_lossy()
        .into_owned())
}

/// One tensor of the multi-tensor AdamW kernels (adamw.cu `AdamwTensor`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdamwTensor {
    pub p: *mut f32,
    pub g: *const f32,
    pub m: *mut f32,
    pub v: *mut f32,
    pub n: u64,
    pub decay: i32,
}

/// The fixed chunk of adamw.cu (`ADAMW_CHUNK`).
pub const ADAMW_CHUNK: u64 = 4096;
/// attention.cu's tile of queries or keys per block (`ATT_TILE`).
pub const ATT_TILE: u32 = 64;

pub mod sys {
    use super::{AdamwTensor, Launch};
    use half::bf16;
    use std::ffi::c_char;

    macro_rules! attention {
        ($($fwd:ident, $dq:ident, $dkv:ident, $t:ty;)*) => {
            extern "C" {
                $(
                pub fn $fwd(l: *const Launch, out: *mut $t, lse: *mut f32, q: *const $t,
                    k: *const $t, v: *const $t, b: i32, len: i32, h: i32, heads: i32, scale: f32,
                    mask: *const f32, bias: *const f32, p: f32, keep: f32, seed: u64,
                    dropout: i32) -> i32;
                pub fn $dq(l: *const Launch, dq: *mut $t, dsum: *mut f32, q: *const $t,
                    k: *const $t, v: *const $t, o: *const $t, g: *const $t, lse: *const f32,
                    b: i32, len: i32, h: i32, heads: i32, scale: f32, mask: *const f32,
                    bias: *const f32, p: f32, keep: f32, seed: u64, dropout: i32) -> i32;
                pub fn $dkv(l: *const Launch, dk: *mut $t, dv: *mut $t, q: *const $t,
                    k: *const $t, v: *const $t, g: *const $t, lse: *const f32,
                    dsum: *const f32, b: i32, len: i32, h: i32, heads: i32, scale: f32,
                    mask: *const f32, bias: *const f32, p: f32, keep: f32, seed: u64,
                    dropout: i32) -> i32;
                )*
            }
        };
    }
    attention! {
        cucpu_attention_fwd_f32_d32, cucpu_attention_bwd_dq_f32_d32, cucpu_attention_bwd_dkv_f32_d32, f32;
        cucpu_attention_fwd_f32_d64, cucpu_attention_bwd_dq_f32_d64, cucpu_attention_bwd_dkv_f32_d64, f32;
        cucpu_attention_fwd_bf16_d32, cucpu_attention_bwd_dq_bf16_d32, cucpu_attention_bwd_dkv_bf16_d32, bf16;
        cucpu_attention_fwd_bf16_d64, cucpu_attention_bwd_dq_bf16_d64, cucpu_attention_bwd_dkv_bf16_d64, bf16;
    }

    extern "C" {
        pub fn cucpu_last_error() -> *const c_char;

        // The harness's own test kernels (harness/selftest.cu).
        pub fn cucpu_reduce_ok(l: *const Launch, out: *mut f32, x: *const f32) -> i32;
        pub fn cucpu_reduce_missing_barrier(l: *const Launch, out: *mut f32, x: *const f32) -> i32;
        pub fn cucpu_barriers_apart(l: *const Launch, out: *mut f32) -> i32;
        pub fn cucpu_shuffle_after_exit(l: *const Launch, out: *mut f32) -> i32;
        pub fn cucpu_warps_wait_forever(l: *const Launch, out: *mut f32) -> i32;
        pub fn cucpu_warp_ops(l: *const Launch, out: *mut f32) -> i32;

        pub fn cucpu_gelu_fwd_f32(l: *const Launch, y: *mut f32, x: *const f32, n: u64) -> i32;
        pub fn cucpu_gelu_fwd_bf16(l: *const Launch, y: *mut bf16, x: *const bf16, n: u64) -> i32;
        pub fn cucpu_gelu_bwd_f32(
            l: *const Launch,
            dx: *mut f32,
            x: *const f32,
            g: *const f32,
            n: u64,
        ) -> i32;
        pub fn cucpu_gelu_bwd_bf16(
            l: *const Launch,
            dx: *mut bf16,
            x: *const bf16,
            g: *const bf16,
            n: u64,
        ) -> i32;

        pub fn cucpu_dropout_f32(
            l: *const Launch,
            y: *mut f32,
            x: *const f32,
            n: u64,
            p: f32,
            keep: f32,
            seed: u64,
        ) -> i32;
        pub fn cucpu_dropout_bf16(
            l: *const Launch,
            y: *mut bf16,
            x: *const bf16,
            n: u64,
            p: f32,
            keep: f32,
            seed: u64,
        ) -> i32;
        pub fn cucpu_dropout_mask(
            l: *const Launch,
            m: *mut f32,
            n: u64,
            p: f32,
            keep: f32,
            seed: u64,
        ) -> i32;

        pub fn cucpu_layer_norm_fwd_f32(
            l: *const Launch,
            y: *mut f32,
            x: *const f32,
            w: *const f32,
            b: *const f32,
            rows: i32,
            n: i32,
            eps: f32,
        ) -> i32;
        pub fn cucpu_layer_norm_fwd_bf16(
            l: *const Launch,
            y: *mut bf16,
            x: *const bf16,
            w: *const bf16,
            b: *const bf16,
            rows: i32,
            n: i32,
            eps: f32,
        ) -> i32;
        pub fn cucpu_layer_norm_bwd_f32(
            l: *const Launch,
            dx: *mut f32,
            part: *mut f32,
            x: *const f32,
            w: *const f32,
            g: *const f32,
            rows: i32,
            n: i32,
            eps: f32,
        ) -> i32;
        pub fn cucpu_layer_norm_bwd_bf16(
            l: *const Launch,
            dx: *mut bf16,
            part: *mut f32,
            x: *const bf16,
            w: *const bf16,
            g: *const bf16,
            rows: i32,
            n: i32,
            eps: f32,
        ) -> i32;
        pub fn cucpu_column_sums_f32(
            l: *const Launch,
            out: *mut f32,
            part: *const f32,
            parts: i32,
            cols: i32,
            stride: i32,
        ) -> i32;
        pub fn cucpu_column_sums_bf16(
            l: *const Launch,
            out: *mut bf16,
            part: *const f32,
            parts: i32,
            cols: i32,
            stride: i32,
        ) -> i32;

        pub fn cucpu_grad_sq_sums(
            l: *const Launch,
            partial: *mut f64,
            ts: *const AdamwTensor,
            chunk_tensor: *const i32,
            chunk_start: *const u64,
            chunks: i32,
        ) -> i32;
        pub fn cucpu_grad_norm_finish(
            l: *const Launch,
            norm: *mut f64,
            coef: *mut f32,
            partial: *const f64,
            chunks: i32,
            max_norm: f64,
        ) -> i32;
        pub fn cucpu_adamw_step(
            l: *const Launch,
            ts: *const AdamwTensor,
            chunk_tensor: *const i32,
            chunk_start: *const u64,
            chunks: i32,
            coef: *const f32,
            keep_decay: f32,
            b1w: f32,
            b2: f32,
            omb2: f32,
            bc2_sqrt: f32,
            eps: f32,
            neg_step: f32,
        ) -> i32;
    }
}
