//! Models by hub id against the stand-in hub on 127.0.0.1 (test_support::hub_server), serving
//! the tiny parity model the way the Hugging Face hub serves all-MiniLM-L6-v2 (its `2_Normalize`
//! module has no files), then from the filled cache with no server at all (`HF_HUB_OFFLINE`).

use model::hub::{resolve, HubConfig};
use std::path::Path;
use test_support::hub_server::{HubServer, RepoSpec};
use test_support::shared_dir;

fn config(endpoint: &str, cache: &Path, offline: bool) -> HubConfig {
    HubConfig {
        endpoint: endpoint.into(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline,
    }
}

fn embed(dir: &Path) -> Vec<Vec<f32>> {
    let m = model::SentenceModel::load(dir, &Default::default()).unwrap();
    m.encode(&["How do I keep coffee fresh?", "a"], 2, |_| {})
        .unwrap()
}

#[test]
fn download_then_offline_from_the_cache() {
    let tiny = shared_dir().join("reference/train-parity/model");
    let server = HubServer::start();
    let mut spec = RepoSpec::from_dir(&tiny, "tiny");
    // As on the hub: modules.json names 2_Normalize, which has no files.
    assert!(spec.files.remove("2_Normalize/config.json").is_some());
    let commit = spec.commit.clone();
    server.add_model("org/tiny", spec);
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");

    let dir = resolve("org/tiny", &config(&server.endpoint, &cache, false)).unwrap();
    // The cache layout the Python tools share.
    assert!(
        dir.ends_with(format!("models--org--tiny/snapshots/{commit}")),
        "{dir:?}"
    );
    assert_eq!(
        std::fs::read_to_string(cache.join("models--org--tiny/refs/main")).unwrap(),
        commit
    );
    assert!(dir.join("1_Pooling/config.json").is_file());
    // The absent module file is recorded as absent, as huggingface_hub records it.
    assert!(cache
        .join(format!(
            "models--org--tiny/.no_exist/{commit}/2_Normalize/config.json"
        ))
        .is_file());
    assert_eq!(embed(&dir), embed(&tiny));
    let requests = server.requests();
    assert!(
        requests[0].contains("/api/models/org/tiny/revision/main"),
        "{requests:?}"
    );

    // No server: offline, the cache alone answers, without a single request.
    let dead = "http://127.0.0.1:9";
    let n = server.requests().len();
    let again = resolve("org/tiny", &config(dead, &cache, true)).unwrap();
    assert_eq!(again, dir);
    assert_eq!(embed(&again), embed(&tiny));
    assert_eq!(server.requests().len(), n);
    // A revision by name or by commit, offline.
    let at_commit = resolve(&format!("org/tiny@{commit}"), &config(dead, &cache, true)).unwrap();
    assert_eq!(at_commit, dir);

    // Offline, a model that is not cached: the error names it and the cache.
    let e = resolve("org/other", &config(dead, &cache, true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("org/other") && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );
    // Online, the endpoint down: says so and how to stay offline.
    let e = resolve("org/other", &config(dead, &cache, false))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot reach") && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );
    // A path that exists is never a hub id.
    assert_eq!(
        resolve(tiny.to_str().unwrap(), &config(dead, &cache, false)).unwrap(),
        tiny
    );
}
