//! `pairtrain push` against the stand-in hub's upload API (test_support::hub_server): a model
//! folder comes back byte-identical through pairtrain's own hub client and loads; a second push
//! changes nothing; an interrupted push resumes without sending finished files again; a dataset
//! folder gets its card and object rows; bad input is refused before anything is sent.
//! The comparison with Python's huggingface_hub is in push_python.rs.

use sha2::Digest;
use std::process::{Command, Output};
use test_support::hub_server::HubServer;
use test_support::{files_by_path, push_fixture_model, shared_dir};

const TOKEN: &str = "hf_pairtrainWriteToken0123456789";

fn push(server: &HubServer, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pairtrain"));
    let home = tempfile::tempdir().unwrap();
    c.arg("push")
        .args(args)
        .arg("--quiet")
        .env("HF_ENDPOINT", &server.endpoint)
        .env("HF_HOME", home.path())
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_HUB_OFFLINE");
    match token {
        Some(t) => c.env("HF_TOKEN", t),
        None => c.env_remove("HF_TOKEN"),
    };
    let o = c.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if let Some(t) = token {
        assert!(!all.contains(t), "the token was printed: {all}");
    }
    o
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sha256(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// PUTs to the storage, by object id.
fn storage_puts(server: &HubServer) -> Vec<String> {
    server
        .writes()
        .iter()
        .filter(|w| w.method == "PUT" && w.path.starts_with("/lfs-upload/"))
        .map(|w| w.path["/lfs-upload/".len()..].to_string())
        .collect()
}

#[test]
fn a_pushed_model_comes_back_byte_identical_and_loads() {
    let d = tempfile::tempdir().unwrap();
    let model = push_fixture_model(d.path());
    let server = HubServer::start();
    server.require_tokens(&[TOKEN]);
    let o = push(
        &server,
        Some(TOKEN),
        &[model.to_str().unwrap(), "org/tiny", "--private"],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("/org/tiny: commit "), "{}", err(&o));
    let want = files_by_path(&model);
    assert_eq!(server.files("models", "org/tiny").unwrap(), want);
    assert!(server.is_private("models", "org/tiny"));
    // Both large files went to the storage, without the token (it goes to the hub alone).
    let puts = storage_puts(&server);
    assert_eq!(puts.len(), 2, "{puts:?}");
    for w in server.writes() {
        assert_eq!(
            w.authorized,
            !w.path.starts_with("/lfs-upload/"),
            "{}",
            w.path
        );
    }

    // Back through pairtrain's own client: the same bytes.
    let cache = d.path().join("cache");
    let hub = hub::Hub::new(hub::HubConfig {
        endpoint: server.endpoint.clone(),
        cache_dir: cache.clone(),
        token: Some(TOKEN.into()),
        offline: false,
    });
    let repo = hub::Repo::model("org/tiny").unwrap();
    let snap = hub.snapshot(&repo).unwrap();
    assert_eq!(snap.files.len(), want.len());
    for f in &snap.files {
        let p = hub
            .fetch(&repo, &snap.commit, &f.name, Some(f), &|_| {})
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), want[&f.name], "{}", f.name);
    }
    // And it loads and embeds as the folder pushed does.
    let texts = d.path().join("t.txt");
    std::fs::write(
        &texts,
        "How do I keep coffee fresh?\nGrind just before brewing.\n",
    )
    .unwrap();
    let embed = |model: &str, out: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_pairtrain"))
            .args(["encode", "--quiet", "--model", model, "--input"])
            .arg(&texts)
            .arg("--output")
            .arg(d.path().join(out))
            .env("HF_ENDPOINT", &server.endpoint)
            .env("HF_HUB_CACHE", &cache)
            .env("HF_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", err(&o));
        std::fs::read(d.path().join(out)).unwrap()
    };
    assert_eq!(
        embed("org/tiny", "hub.jsonl"),
        embed(model.to_str().unwrap(), "local.jsonl")
    );

    // Pushed again: nothing changed, nothing sent, no commit.
    let before = server.writes().len();
    let o = push(&server, Some(TOKEN), &[model.to_str().unwrap(), "org/tiny"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("nothing had changed, no commit"),
        "{}",
        err(&o)
    );
    let again: Vec<String> = server.writes()[before..]
        .iter()
        .map(|w| w.path.clone())
        .collect();
    assert!(
        again
            .iter()
            .all(|p| !p.contains("/commit/") && !p.starts_with("/lfs")),
        "{again:?}"
    );
}

#[test]
fn an_interrupted_push_resumes_without_sending_finished_files() {
    let d = tempfile::tempdir().unwrap();
    let model = push_fixture_model(d.path());
    let weights = sha256(&std::fs::read(model.join("model.safetensors")).unwrap());
    let extra = sha256(&std::fs::read(model.join("extra/weights.bin")).unwrap());
    let server = HubServer::start();
    // The second large file's upload fails: the first is on the storage already.
    server.fail_once(&format!("/lfs-upload/{weights}"));
    let o = push(&server, Some(TOKEN), &[model.to_str().unwrap(), "org/tiny"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("upload of model.safetensors: HTTP 500"),
        "{}",
        err(&o)
    );
    assert!(
        server.files("models", "org/tiny").unwrap().is_empty(),
        "a commit was made"
    );
    assert_eq!(storage_puts(&server), vec![extra.clone(), weights.clone()]);

    let o = push(&server, Some(TOKEN), &[model.to_str().unwrap(), "org/tiny"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("1 sent (3.8 MiB), 1 already on the hub"),
        "{}",
        err(&o)
    );
    // extra/weights.bin was sent once in all.
    let puts = storage_puts(&server);
    assert_eq!(puts.iter().filter(|p| **p == extra).count(), 1, "{puts:?}");
    assert_eq!(
        server.files("models", "org/tiny").unwrap(),
        files_by_path(&model)
    );

    // A failed commit, then the push again: no large file is sent twice.
    let server = HubServer::start();
    server.fail_once("/commit/");
    assert!(
        !push(&server, Some(TOKEN), &[model.to_str().unwrap(), "org/tiny"])
            .status
            .success()
    );
    assert!(
        push(&server, Some(TOKEN), &[model.to_str().unwrap(), "org/tiny"])
            .status
            .success()
    );
    assert_eq!(storage_puts(&server).len(), 2);
    assert_eq!(
        server.files("models", "org/tiny").unwrap(),
        files_by_path(&model)
    );
}

#[test]
fn large_files_go_in_parts_when_the_hub_asks() {
    let d = tempfile::tempdir().unwrap();
    let model = push_fixture_model(d.path());
    let server = HubServer::start();
    server.multipart(1 << 20);
    let o = push(&server, Some(TOKEN), &[model.to_str().unwrap(), "org/tiny"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        server.files("models", "org/tiny").unwrap(),
        files_by_path(&model)
    );
    let parts = storage_puts(&server);
    // 3.8 MiB in 4 parts, 2 MiB in 2.
    assert_eq!(
        parts.iter().filter(|p| p.contains("/part/")).count(),
        6,
        "{parts:?}"
    );
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    let d = tempfile::tempdir().unwrap();
    let model = push_fixture_model(d.path());
    let m = model.to_str().unwrap();
    let server = HubServer::start();
    server.require_tokens(&[TOKEN]);
    let fixtures = shared_dir().join("fixtures");
    let cases: Vec<(Option<&str>, Vec<&str>, &str)> = vec![
        (None, vec![m, "org/tiny"], "no token: set HF_TOKEN"),
        (Some(TOKEN), vec![m, "org/ti--ny"], "is not a repository id"),
        (
            Some(TOKEN),
            vec![m, "org/a/b"],
            "a repository id is `name` or `org/name`",
        ),
        (
            Some(TOKEN),
            vec![fixtures.to_str().unwrap(), "org/x"],
            "not a model folder",
        ),
    ];
    for (token, args, want) in cases {
        let o = push(&server, token, &args);
        assert!(!o.status.success(), "{args:?}");
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
        assert!(server.writes().is_empty(), "{args:?} sent something");
    }
    // A token the hub refuses: its answer, and nothing uploaded.
    let o = push(&server, Some("hf_wrong"), &[m, "org/tiny"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("creating the repository: HTTP 401: Invalid credentials")
            && err(&o).contains("the token is invalid or expired"),
        "{}",
        err(&o)
    );
    assert!(!err(&o).contains("hf_wrong"));
    assert!(storage_puts(&server).is_empty());
    assert!(server.files("models", "org/tiny").is_none());
}

/// Pairs mined from the StackExchange fixture, and a split folder: each kind of file is a
/// configuration, train/test files are splits, list rows become objects with the same texts.
#[test]
fn a_dataset_folder_gets_its_card_and_object_rows() {
    let d = tempfile::tempdir().unwrap();
    let data = test_support::push_fixture_dataset(env!("CARGO_BIN_EXE_pairtrain"), d.path());
    let server = HubServer::start();
    let o = push(
        &server,
        Some(TOKEN),
        &["--dataset", data.to_str().unwrap(), "org/pairs"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let files = server.files("datasets", "org/pairs").unwrap();
    let card = String::from_utf8(files["README.md"].clone()).unwrap();
    for want in [
        "license: cc-by-sa-4.0",
        "- config_name: \"title_body\"",
        "    - \"se/coffee.stackexchange.com-2015/title_body-00000.jsonl.gz\"",
        "- config_name: \"default\"",
        "  - split: \"test\"",
        "| title_body | train | 218 | 1 | anchor, positive |",
        "| default | test | 1 | 1 | as in the files |",
        "- records read: 592",
        "- rows written: ",
    ] {
        assert!(card.contains(want), "{want:?} not in\n{card}");
    }
    // The rows: the same texts, as objects.
    let orig = pairs::read_jsonl_rows(
        &data.join("se/coffee.stackexchange.com-2015/title_body-00000.jsonl.gz"),
    )
    .unwrap();
    let pushed_path = d.path().join("pushed.jsonl.gz");
    std::fs::write(
        &pushed_path,
        &files["se/coffee.stackexchange.com-2015/title_body-00000.jsonl.gz"],
    )
    .unwrap();
    let text = {
        let mut s = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(
                &files["se/coffee.stackexchange.com-2015/title_body-00000.jsonl.gz"][..],
            ),
            &mut s,
        )
        .unwrap();
        s
    };
    assert!(text.starts_with("{\"anchor\":"), "{}", &text[..80]);
    assert_eq!(pairs::read_jsonl_rows(&pushed_path).unwrap(), orig);
    // Object rows go as they are, byte for byte.
    assert_eq!(
        files["chat/train-00000.jsonl"],
        std::fs::read(data.join("chat/train-00000.jsonl")).unwrap()
    );
    // No scratch left behind.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".pairtrain-push-")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `[train] push_to`: the final model lands at the repository's root and each checkpoint in
/// `checkpoint-N/`; without a token the run stops before its first step.
#[test]
fn a_recipe_pushes_its_model_and_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let recipe =
        std::fs::read_to_string(test_support::repo_root().join("recipes/parity/mnrl_pairs.toml"))
            .unwrap()
            .replace("../shared/", &format!("{}/", shared_dir().display()))
            .replace(
                "steps = 12",
                "steps = 4\nsave_every = 2\npush_to = \"org/run\"\npush_checkpoints = true",
            )
            .replace(
                "output = \"runs/parity/mnrl_pairs\"",
                &format!("output = \"{}\"", d.path().join("out").display()),
            );
    let cfg = d.path().join("r.toml");
    std::fs::write(&cfg, recipe).unwrap();
    let server = HubServer::start();
    server.require_tokens(&[TOKEN]);
    let train = |token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pairtrain"));
        c.args(["--threads", "2", "train", "--quiet", "--config"])
            .arg(&cfg)
            .env("HF_ENDPOINT", &server.endpoint)
            .env("HF_HOME", d.path().join("hf"));
        match token {
            Some(t) => c.env("HF_TOKEN", t),
            None => c.env_remove("HF_TOKEN"),
        };
        c.output().unwrap()
    };
    let o = train(None);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("push_to = \"org/run\" needs a token"),
        "{}",
        err(&o)
    );
    assert!(!d.path().join("out/train_log.jsonl").exists(), "it trained");

    let o = train(Some(TOKEN));
    assert!(o.status.success(), "{}", err(&o));
    let files = server.files("models", "org/run").unwrap();
    let model = files_by_path(&d.path().join("out/model"));
    for (name, bytes) in &model {
        assert_eq!(files.get(name), Some(bytes), "{name}");
    }
    let ckpt = files_by_path(&d.path().join("out/checkpoints/step-00000002"));
    for (name, bytes) in &ckpt {
        assert_eq!(
            files.get(&format!("checkpoint-2/{name}")),
            Some(bytes),
            "{name}"
        );
    }
    assert!(err(&o).contains("pushed to "), "{}", err(&o));
}
