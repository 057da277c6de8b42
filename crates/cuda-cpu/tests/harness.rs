//! The harness catches what it is there to catch: a missing barrier (a wrong sum under some
//! schedule, the right one under all with the barrier), barriers at two places, a shuffle that
//! waits for an exited lane, lanes that wait for each other forever; and warp operations give
//! CUDA's results.

use cuda_cpu::{result, sys, Launch, Schedule, SCHEDULES};

fn reduce(missing_barrier: bool, schedule: Schedule) -> Vec<f32> {
    let x: Vec<f32> = (0..4 * 128).map(|i| (i % 7) as f32).collect();
    let mut out = vec![f32::NAN; 4];
    let l = Launch::linear(4, 128, 128 * 4, schedule);
    let f = if missing_barrier {
        sys::cucpu_reduce_missing_barrier
    } else {
        sys::cucpu_reduce_ok
    };
    // SAFETY: x holds grid × block floats, out one per block.
    result(unsafe { f(&l, out.as_mut_ptr(), x.as_ptr()) }).unwrap();
    out
}

#[test]
fn a_missing_barrier_gives_a_wrong_sum_under_some_schedule() {
    let want: Vec<f32> = (0..4)
        .map(|b| (0..128).map(|i| ((b * 128 + i) % 7) as f32).sum())
        .collect();
    for s in SCHEDULES {
        assert_eq!(reduce(false, s), want, "{s:?}");
    }
    let wrong = SCHEDULES
        .iter()
        .filter(|&&s| reduce(true, s) != want)
        .count();
    assert!(
        wrong > 0,
        "the missing barrier went unnoticed under every schedule"
    );
}

#[test]
fn broken_synchronisation_is_an_error_naming_the_place() {
    let mut out = vec![0f32; 64];
    let l = Launch::linear(1, 64, 0, Schedule::Forward);
    let e = result(unsafe { sys::cucpu_barriers_apart(&l, out.as_mut_ptr()) }).unwrap_err();
    assert!(
        e.contains("two different __syncthreads") && e.contains("selftest.cu:"),
        "{e}"
    );
    let e = result(unsafe { sys::cucpu_shuffle_after_exit(&l, out.as_mut_ptr()) }).unwrap_err();
    assert!(e.contains("has exited"), "{e}");
    let e = result(unsafe { sys::cucpu_warps_wait_forever(&l, out.as_mut_ptr()) }).unwrap_err();
    assert!(
        e.contains("cannot go on") && e.contains("__syncthreads"),
        "{e}"
    );
}

#[test]
fn warp_operations_give_cudas_results() {
    for s in SCHEDULES {
        let mut out = vec![f32::NAN; 256];
        let l = Launch::linear(1, 64, 0, s);
        result(unsafe { sys::cucpu_warp_ops(&l, out.as_mut_ptr()) }).unwrap();
        for t in 0..64usize {
            let warp = t / 32 * 32;
            assert_eq!(out[t], (warp..warp + 32).sum::<usize>() as f32);
            // Down by 3 within segments of 16: lanes past the segment keep their own value.
            let lane = t % 32;
            let down = if lane % 16 + 3 < 16 { t + 3 } else { t };
            assert_eq!(out[64 + t], down as f32, "{t}");
            let up = if lane >= 1 { t - 1 } else { t };
            assert_eq!(out[128 + t], up as f32, "{t}");
            let ballot: u32 = (0..32u32)
                .filter(|l| (warp as u32 + l).is_multiple_of(3))
                .map(|l| 1 << l)
                .sum();
            assert_eq!(out[192 + t], ballot as f32, "{t}");
        }
    }
}
