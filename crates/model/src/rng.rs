//! The project's seeded generator (defined in `pairs`, the lowest crate) and a counter-based
//! uniform for dropout masks.

pub use pairs::rng::Rng;

/// A uniform value in [0, 1) that depends only on `(seed, index)`: element `index` of a random
/// mask can be recomputed anywhere (a backward pass, a second GradCache pass, another thread)
/// without storing the mask.
#[inline(always)]
pub fn hash_uniform(seed: u64, index: u64) -> f32 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}
