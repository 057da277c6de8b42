//! Which instruction sets pairtrain's own CPU kernels use: the best this CPU has, or at most the
//! level `PAIRTRAIN_ISA` names, so that one machine can measure (and test) every lower path.
//!
//! Levels, each including the ones below it:
//! - `amx`: bf16 multiplies on AMX tiles (Intel Xeon 4th generation and later);
//! - `avx512_bf16`: bf16 multiplies by VDPBF16PS (AMD Zen 4 and later, Intel Cooper Lake and
//!   later);
//! - `avx512`: the f32 row kernels in 16 lanes;
//! - `avx2`: the same kernels in 8 lanes (with FMA);
//! - `baseline`: whatever the compile target has (SSE2 on x86_64).
//!
//! The f32 matrix multiplies go through the `gemm` crate, which picks its own kernels (AVX-512 or
//! FMA) from the CPU and has no switch; a build without the `gemm-avx512` feature of the `model`
//! crate leaves its AVX-512 kernels out.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Baseline,
    Avx2,
    Avx512,
    Avx512Bf16,
    Amx,
}

impl Isa {
    pub const ALL: [Isa; 5] = [
        Isa::Baseline,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Bf16,
        Isa::Amx,
    ];

    /// The name `PAIRTRAIN_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512_bf16",
            Isa::Amx => "amx",
        }
    }

    fn parse(s: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// The best level this CPU (and kernel: AMX needs Linux to hand out the tile state) supports.
pub fn detected() -> Isa {
    static LEVEL: OnceLock<Isa> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    let avx512 =
        has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") && has!("fma");
    if !avx512 {
        return if has!("avx2") && has!("fma") {
            Isa::Avx2
        } else {
            Isa::Baseline
        };
    }
    if !has!("avx512bf16") {
        return Isa::Avx512;
    }
    if super::amx::request() {
        Isa::Amx
    } else {
        Isa::Avx512Bf16
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Baseline
}

/// The cap `PAIRTRAIN_ISA` sets (`PAIRTRAIN_AMX=0`, the older switch, means `avx512_bf16`), or an
/// error naming the values it takes.
fn requested() -> Result<Option<Isa>, String> {
    if let Some(v) = std::env::var_os("PAIRTRAIN_ISA") {
        let v = v.to_string_lossy();
        return match Isa::parse(&v) {
            Some(i) => Ok(Some(i)),
            None => Err(format!(
                "PAIRTRAIN_ISA={v:?} is not one of {}",
                Isa::ALL.map(Isa::name).join(", ")
            )),
        };
    }
    if std::env::var_os("PAIRTRAIN_AMX").is_some_and(|v| v == "0") {
        return Ok(Some(Isa::Avx512Bf16));
    }
    Ok(None)
}

/// Checks `PAIRTRAIN_ISA` (the CLI calls this first, so that a typo is an error rather than the
/// default).
pub fn check_env() -> Result<(), String> {
    requested().map(|_| ())
}

/// The level the kernels use: what the CPU has, capped by `PAIRTRAIN_ISA`. Decided once per
/// process.
pub fn active() -> Isa {
    static LEVEL: OnceLock<Isa> = OnceLock::new();
    *LEVEL.get_or_init(|| match requested() {
        Ok(Some(cap)) => cap.min(detected()),
        _ => detected(),
    })
}

/// The CPU's model name as the kernel reports it (`/proc/cpuinfo`), for benchmark reports.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::Isa;

    #[test]
    fn names_parse_back_and_levels_are_ordered() {
        for i in Isa::ALL {
            assert_eq!(Isa::parse(i.name()), Some(i));
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse"), None);
        assert!(Isa::Baseline < Isa::Avx2 && Isa::Avx512Bf16 < Isa::Amx);
    }
}
