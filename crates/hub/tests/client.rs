//! The hub client against a stand-in hub on 127.0.0.1 (test_support::hub_server): downloads land
//! in huggingface_hub's cache layout, are verified, resume after an interrupt, and work offline
//! afterwards; hostile answers (names that escape, sizes that lie, endless bodies, redirect
//! loops and redirects elsewhere, corrupted content) are clear errors that leave nothing behind.

use hub::{HfRef, Hub, HubConfig, Lookup, Repo, RepoKind};
use std::collections::BTreeMap;
use std::path::Path;
use test_support::hub_server::{etag_of, Hostile, HubServer, RepoSpec, LFS_FROM};

fn hub(endpoint: &str, cache: &Path, offline: bool, token: Option<&str>) -> Hub {
    Hub::new(HubConfig {
        endpoint: endpoint.into(),
        cache_dir: cache.into(),
        token: token.map(str::to_string),
        offline,
    })
}

fn files(entries: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(n, c)| (n.to_string(), c.clone()))
        .collect()
}

fn big(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn no_progress(_: u64) {}

#[test]
fn datasets_download_into_the_shared_layout_and_read_offline() {
    let server = HubServer::start();
    let lfs = big(LFS_FROM + 4321, 7);
    let spec = RepoSpec::new(
        files(&[
            ("README.md", b"# a dataset\n".to_vec()),
            ("data/train-0.jsonl", b"[\"a\", \"b\"]\n".to_vec()),
            ("data/train-1.jsonl", b"[\"c\", \"d\"]\n".to_vec()),
            ("data/big.jsonl.gz", lfs.clone()),
        ]),
        "set-v1",
    );
    let commit = spec.commit.clone();
    server.add_dataset("org/set", spec);
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");
    let h = hub(&server.endpoint, &cache, false, Some("secret"));

    let r = HfRef::parse("hf://datasets/org/set/data/*.jsonl")
        .unwrap()
        .unwrap();
    let snap = h.snapshot(&r.repo).unwrap();
    assert_eq!(snap.commit, commit);
    let names = r.select(snap.files.iter().map(|f| f.name.as_str()));
    assert_eq!(names, vec!["data/train-0.jsonl", "data/train-1.jsonl"]);
    let total = std::sync::atomic::AtomicU64::new(0);
    let count = |n: u64| {
        total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    for n in &names {
        let entry = snap.files.iter().find(|f| &f.name == n);
        let p = h
            .fetch(&r.repo, &commit, n, entry, &count)
            .unwrap()
            .unwrap();
        assert!(p.ends_with(format!("datasets--org--set/snapshots/{commit}/{n}")));
        assert!(std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 22);
    assert_eq!(
        std::fs::read_to_string(cache.join("datasets--org--set/refs/main")).unwrap(),
        commit
    );

    // An LFS file: the hub redirects to its storage on another host, which gets no token.
    let entry = snap
        .files
        .iter()
        .find(|f| f.name == "data/big.jsonl.gz")
        .unwrap();
    assert_eq!(entry.sha256.as_deref(), Some(etag_of(&lfs).as_str()));
    let p = h
        .fetch(
            &r.repo,
            &commit,
            "data/big.jsonl.gz",
            Some(entry),
            &no_progress,
        )
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), lfs);
    assert!(cache
        .join(format!("datasets--org--set/blobs/{}", etag_of(&lfs)))
        .is_file());
    let log = server.requests();
    let cdn_get = log
        .iter()
        .find(|l| l.starts_with("GET localhost") && l.contains("/lfs/"))
        .expect("the bytes came from the storage host");
    assert!(
        !cdn_get.ends_with(" auth"),
        "token sent to another host: {cdn_get}"
    );
    assert!(log
        .iter()
        .any(|l| l.starts_with("HEAD 127.0.0.1") && l.ends_with(" auth")));

    // A file the repository lacks: recorded as absent (huggingface_hub's marker), online once.
    assert_eq!(
        h.fetch(&r.repo, &commit, "data/none.jsonl", None, &no_progress)
            .unwrap(),
        None
    );
    assert!(cache
        .join(format!(
            "datasets--org--set/.no_exist/{commit}/data/none.jsonl"
        ))
        .is_file());

    // Offline, no server: the cache answers, the glob matches the snapshot's files.
    drop(server);
    let off = hub("http://127.0.0.1:9", &cache, true, None);
    let snap = off.snapshot(&r.repo).unwrap();
    assert_eq!(snap.commit, commit);
    assert_eq!(r.select(snap.files.iter().map(|f| f.name.as_str())), names);
    for n in &names {
        assert!(off
            .fetch(&r.repo, &commit, n, None, &no_progress)
            .unwrap()
            .is_some());
    }
    assert_eq!(
        off.fetch(&r.repo, &commit, "data/none.jsonl", None, &no_progress)
            .unwrap(),
        None
    );
    let e = off
        .fetch(&r.repo, &commit, "README.md", None, &no_progress)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HF_HUB_OFFLINE") && e.contains("README.md"),
        "{e}"
    );
    let other = Repo::new(RepoKind::Dataset, "org/other", "main").unwrap();
    let e = off.snapshot(&other).unwrap_err().to_string();
    assert!(e.contains("org/other") && e.contains("no snapshot"), "{e}");
}

#[test]
fn an_interrupted_download_resumes_and_a_corrupted_blob_is_caught() {
    let server = HubServer::start();
    let content = big(3 * LFS_FROM, 1);
    let small = b"{\"a\": 1}\n".repeat(1000);
    let mut spec = RepoSpec::new(
        files(&[
            ("model.safetensors", content.clone()),
            ("config.json", small.clone()),
        ]),
        "m",
    );
    spec.hostile
        .insert("model.safetensors".into(), Hostile::DropAfter(LFS_FROM + 5));
    let commit = spec.commit.clone();
    server.add_model("org/m", spec);
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");
    let h = hub(&server.endpoint, &cache, false, None);
    let repo = Repo::model("org/m").unwrap();
    let snap = h.snapshot(&repo).unwrap();
    let entry = snap.files.iter().find(|f| f.name == "model.safetensors");

    let e = h
        .fetch(&repo, &commit, "model.safetensors", entry, &no_progress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    let part = cache.join(format!(
        "models--org--m/blobs/{}.incomplete",
        etag_of(&content)
    ));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), LFS_FROM as u64 + 5);

    let p = h
        .fetch(&repo, &commit, "model.safetensors", entry, &no_progress)
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), content);
    assert!(!part.exists());
    let resumed = format!("bytes={}-", LFS_FROM + 5);
    assert!(
        server
            .requests()
            .iter()
            .any(|l| l.contains("/lfs/") && l.contains(&resumed)),
        "{:?}",
        server.requests()
    );

    // A blob damaged in the cache: verification names it; evicting and fetching repairs it.
    let c = h
        .fetch(&repo, &commit, "config.json", None, &no_progress)
        .unwrap()
        .unwrap();
    assert_eq!(
        h.verify_cached(&repo, &commit, "config.json").unwrap(),
        None
    );
    let blob = std::fs::canonicalize(&c).unwrap();
    std::fs::write(&blob, b"{\"a\": 2}").unwrap();
    let problem = h
        .verify_cached(&repo, &commit, "config.json")
        .unwrap()
        .unwrap();
    assert!(problem.contains("git sha1"), "{problem}");
    h.evict(&repo, &commit, "config.json").unwrap();
    let c = h
        .fetch(&repo, &commit, "config.json", None, &no_progress)
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(c).unwrap(), small);
}

/// Each hostile answer: a clear error naming what failed, nothing written outside the cache,
/// no blob or partial file left in it.
#[test]
fn hostile_answers_are_errors_that_leave_nothing() {
    let server = HubServer::start();
    let small = b"0123456789".repeat(100);
    let cases: Vec<(&str, Hostile, &str)> = vec![
        (
            "lies.bin",
            Hostile::AnnounceSize(100),
            "more than the 100 bytes",
        ),
        ("endless.bin", Hostile::EndlessBody, "more than the"),
        ("corrupt.bin", Hostile::Corrupt, "corrupted download"),
        ("loop.json", Hostile::RedirectLoop, "redirect loop"),
        ("away.json", Hostile::RedirectElsewhere, "another host"),
    ];
    let mut spec_files = BTreeMap::new();
    let mut spec_hostile = std::collections::HashMap::new();
    for (i, (name, how, _)) in cases.iter().enumerate() {
        // Distinct contents: the storage host finds LFS files by their hash.
        let c = if name.ends_with(".bin") {
            big(2 * LFS_FROM, i as u8)
        } else {
            small.clone()
        };
        spec_files.insert(name.to_string(), c);
        spec_hostile.insert(name.to_string(), how.clone());
    }
    let mut spec = RepoSpec::new(spec_files, "evil");
    spec.hostile = spec_hostile;
    let commit = spec.commit.clone();
    server.add_model("evil/model", spec);

    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");
    let h = hub(&server.endpoint, &cache, false, None);
    let repo = Repo::model("evil/model").unwrap();
    let snap = h.snapshot(&repo).unwrap();
    for (name, _, want) in &cases {
        let entry = snap.files.iter().find(|f| f.name == *name);
        let e = h
            .fetch(&repo, &commit, name, entry, &no_progress)
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    let left: Vec<_> = test_support::all_files(&cache)
        .into_iter()
        .filter(|p| {
            p.components()
                .any(|c| c.as_os_str() == "blobs" || c.as_os_str() == "snapshots")
        })
        .collect();
    assert!(left.is_empty(), "left in the cache: {left:?}");

    // A listing that names a path out of the repository: refused before anything is written.
    let mut spec = RepoSpec::new(files(&[("config.json", small.clone())]), "trav");
    spec.extra_listing = vec!["../../../../../../../../tmp/trav/escaped/config.json".into()];
    server.add_model("evil/trav", spec);
    let e = h
        .snapshot(&Repo::model("evil/trav").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("evil/trav") && e.contains("refusing the name") && e.contains(".."),
        "{e}"
    );
    // A file name handed straight to fetch: the same refusal.
    let e = h
        .fetch(&repo, &commit, "../escaped", None, &no_progress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refusing the name"), "{e}");
    let outside: Vec<_> = test_support::all_files(d.path())
        .into_iter()
        .filter(|p| !p.starts_with(&cache))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");

    // Unknown repository and revision: the hub's codes, said plainly.
    let e = h
        .snapshot(&Repo::model("org/nothing").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist, or it is private"), "{e}");
    let e = h
        .snapshot(&Repo::new(RepoKind::Model, "evil/model", "v9").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no revision \"v9\""), "{e}");
    // No server at all, online: says so and how to stay offline.
    let e = hub("http://127.0.0.1:9", &cache, false, None)
        .snapshot(&repo)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot reach") && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );
    assert!(matches!(
        h.cache.repo(&repo).lookup(&commit, "lies.bin").unwrap(),
        Lookup::Unknown
    ));
}
