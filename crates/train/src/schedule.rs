//! Learning-rate schedule: linear warmup from 0, then linear decay to 0 at the last step — the
//! semantics of transformers' `get_linear_schedule_with_warmup`.

/// The learning rate used by the optimizer step with 0-based index `step` (so the first step of a
/// run with warmup uses lr 0, and still counts as an Adam step).
pub fn linear_warmup_decay(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        peak * step as f64 / warmup.max(1) as f64
    } else {
        let left = total.saturating_sub(step) as f64;
        peak * (left / total.saturating_sub(warmup).max(1) as f64).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_transformers_schedule() {
        // get_linear_schedule_with_warmup(opt, 3, 12) with lr 1e-3, as in the parity reference.
        let want = [
            0.0, 3.333e-4, 6.667e-4, 1e-3, 8.889e-4, 7.778e-4, 6.667e-4, 5.556e-4, 4.444e-4,
            3.333e-4, 2.222e-4, 1.111e-4,
        ];
        for (k, w) in want.iter().enumerate() {
            assert!(
                (linear_warmup_decay(1e-3, k, 3, 12) - w).abs() < 1e-7,
                "step {k}"
            );
        }
        assert_eq!(linear_warmup_decay(1e-3, 12, 3, 12), 0.0);
        assert_eq!(linear_warmup_decay(2e-5, 0, 0, 10), 2e-5);
    }
}
