//! Every recipe shipped in `recipes/` parses and passes the recipe checks (unknown keys are
//! errors, so a renamed setting breaks this test rather than a user's run).

use test_support::repo_root;

#[test]
fn shipped_recipes_are_valid() {
    let mut n = 0;
    let mut dirs = vec![repo_root().join("recipes")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                train::Recipe::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
    }
    assert!(n >= 5, "{n} recipes");
}

/// What a user can type but cannot mean is refused before a run starts, naming the setting.
#[test]
fn nonsense_settings_are_refused_with_the_setting_named() {
    let d = tempfile::tempdir().unwrap();
    let base = "[model]\nbase = \"m\"\n[[data]]\npath = \"d.jsonl\"\n";
    let check = |extra: &str, needle: &str| {
        let p = d.path().join("r.toml");
        std::fs::write(&p, format!("{base}{extra}")).unwrap();
        let e = train::Recipe::load(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "{extra:?}: {e}");
        assert!(e.contains("r.toml"), "the error names the file: {e}");
    };
    let train = |kv: &str| format!("[train]\nbatch_size = 8\nsteps = 10\noutput = \"o\"\n{kv}\n");
    check(&train("lr = 0"), "lr must be above 0");
    check(&train("lr = -1e-5"), "lr must be above 0");
    check(
        &train("warmup_steps = 11"),
        "warmup_steps (11) is more than steps (10)",
    );
    check(
        &train("device = \"tpu\""),
        "device \"tpu\" is not one of cpu, cuda",
    );
    check(
        &train("dtype = \"fp8\""),
        "dtype \"fp8\" is not one of f32, bf16",
    );
    check(
        "[train]\nbatch_size = 8\nsteps = 0\noutput = \"o\"\n",
        "steps must be at least 1",
    );
    check(
        "[train]\nbatch_size = 8\nsteps = 3\n",
        "[train] output (the run's folder) is required",
    );
    check(
        &format!("[loss]\nscale = 0\n{}", train("")),
        "scale must be above 0",
    );
    check(
        &format!(
            "[loss]\nkind = \"cached-mnrl\"\nmini_batch_size = 16\n{}",
            train("")
        ),
        "mini_batch_size (16) must be between 1 and [train] batch_size (8)",
    );
    check(
        &format!("[loss]\nkind = \"mnrl-sym\"\n{}", train("")),
        "[loss] kind \"mnrl-sym\" is not one of mnrl, mnrl-symmetric, cached-mnrl",
    );
    check(
        &format!("[loss]\nsimilarity = \"l2\"\n{}", train("")),
        "similarity \"l2\" is not one of cos, dot",
    );
    check(
        &format!("{}[[eval]]\nkind = \"nli\"\npath = \"x\"\n", train("")),
        "evaluation kind \"nli\" is not one of sts, retrieval",
    );
    let pooled = "[model]\nbase = \"m\"\npooling = \"avg\"\n[[data]]\npath = \"d.jsonl\"\n";
    let p = d.path().join("p.toml");
    std::fs::write(&p, format!("{pooled}{}", train(""))).unwrap();
    let e = train::Recipe::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("pooling \"avg\" is not one of mean, cls, max"),
        "{e}"
    );
}

/// A data-only recipe (what `pairtrain data bench` reads) needs no steps or output.
#[test]
fn data_only_recipes_need_only_what_the_loader_reads() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("data.toml");
    std::fs::write(
        &p,
        "[model]\nbase = \"m\"\n[train]\nbatch_size = 64\n[[data]]\npath = \"d.jsonl\"\n",
    )
    .unwrap();
    train::Recipe::load_data_only(&p).unwrap();
    assert!(train::Recipe::load(&p).is_err());
}
