//! With the `cuda` feature: compiles the kernels of src/ops/cuda to PTX with nvcc (scripts/build-cuda
//! puts the pinned CUDA 13.0 nvcc on PATH and in $NVCC), once for compute capability 8.0
//! (A100) and once for 9.0 (H100, H200); ops/cuda.rs loads the one the GPU runs best. Without the
//! feature nothing is built: the default binary needs no CUDA toolkit.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let kernels = Path::new("src/ops/cuda");
    println!("cargo:rerun-if-changed={}", kernels.display());
    println!("cargo:rerun-if-env-changed=NVCC");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let mut sources: Vec<PathBuf> = std::fs::read_dir(kernels)
        .expect("src/ops/cuda")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();
    for src in sources {
        let stem = src
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a .cu name");
        for cc in ["80", "90"] {
            let ptx = out.join(format!("{stem}.sm{cc}.ptx"));
            let status = Command::new(&nvcc)
                .args(["--ptx", "-std=c++17", "-O3"])
                .arg(format!("-arch=compute_{cc}"))
                .arg("-I")
                .arg(kernels)
                .arg("-o")
                .arg(&ptx)
                .arg(&src)
                .status()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {nvcc} (build with scripts/build-cuda, which provides it): {e}"
                    )
                });
            assert!(
                status.success(),
                "{nvcc} failed on {} for compute_{cc}",
                src.display()
            );
        }
    }
}
