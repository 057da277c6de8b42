//! Compiles the CUDA kernels of crates/model/src/ops/cuda as C++ with the harness (harness/), with
//! the system's C++ compiler. Test-only: the pairtrain binary does not depend on this crate.
fn main() {
    let kernels = "../model/src/ops/cuda";
    println!("cargo:rerun-if-changed=harness");
    println!("cargo:rerun-if-changed={kernels}");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        // The kernels' arithmetic as written: no contraction into fused multiply-adds, which would
        // change roundings that tests compare bit for bit.
        .flag("-ffp-contract=off")
        .flag_if_supported("-Wno-unused-parameter")
        .include("harness")
        .include(kernels)
        .file("harness/runtime.cpp")
        .file("harness/kernels.cpp")
        .include("harness")
        .compile("cucpu");
}
