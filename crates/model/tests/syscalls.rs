//! No system call per op in steady state: encoding a batch must not read files (the thread count
//! used to be found by reading /proc/cpuinfo for every op and every multiply, ~4,600 times per
//! batch of 32: half of the wall time went to the kernel on an AMD EPYC).
//!
//! Counted with the process's own read/write system call counters (/proc/self/io), so the test
//! needs no tracer. It is alone in its binary: nothing else runs in the process meanwhile.

use model::{LoadOptions, SentenceModel};
use test_support::{golden, minilm_dir};

/// (read calls, write calls) made by this process so far.
fn io_calls() -> (u64, u64) {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    let field = |name: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/io"))
    };
    (field("syscr:"), field("syscw:"))
}

#[test]
fn encoding_makes_no_read_or_write_calls_in_steady_state() {
    let m = SentenceModel::load(&minilm_dir(), &LoadOptions::default()).unwrap();
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    // Warm up: thread pools start, first-use detection (CPU features, thread count) runs.
    m.encode(&texts, 32, |_| {}).unwrap();
    let before = io_calls();
    for _ in 0..3 {
        m.encode(&texts, 32, |_| {}).unwrap();
    }
    let after = io_calls();
    // Reading /proc/self/io is itself a few reads; a file read per op would be thousands.
    let reads = after.0 - before.0;
    let writes = after.1 - before.1;
    assert!(
        reads <= 16 && writes == 0,
        "3 encodes of {} texts made {reads} read and {writes} write system calls",
        texts.len()
    );
}
