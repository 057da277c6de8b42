//! Models by hub id against a small server on 127.0.0.1 that serves the tiny parity model the way
//! the Hugging Face hub does (the revision API, `resolve/` with ranges, ETags and the commit
//! header), then from the filled cache with no server at all (`HF_HUB_OFFLINE`).

use model::hub::{resolve, HubConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use test_support::shared_dir;

const COMMIT: &str = "4f7e2b0c9d1a3e5f7a9b0c2d4e6f8a0b1c3d5e7f";

fn files_of(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_of(root, &p, out);
        } else {
            out.push(
                p.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

/// Serves `root` as the model `org/tiny`; records every request line with its Range header.
fn serve(root: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let (root, log) = (root.clone(), l2.clone());
            std::thread::spawn(move || handle(s, &root, &log));
        }
    });
    (format!("http://{addr}"), log)
}

fn respond(s: &mut TcpStream, status: &str, headers: &[String], body: &[u8]) {
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    let _ = s.write_all(r.as_bytes());
    let _ = s.write_all(body);
}

fn handle(mut s: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut range = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some(r) = h.to_ascii_lowercase().strip_prefix("range:") {
                range = Some(r.trim().to_string());
            }
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        log.lock()
            .unwrap()
            .push(format!("{path} {}", range.clone().unwrap_or_default()));
        if path == "/api/models/org/tiny/revision/main" {
            let mut files = Vec::new();
            files_of(root, root, &mut files);
            let siblings: Vec<_> = files
                .iter()
                .map(|f| serde_json::json!({ "rfilename": f }))
                .collect();
            let body = serde_json::json!({"sha": COMMIT, "siblings": siblings}).to_string();
            respond(
                &mut s,
                "200 OK",
                &["Content-Type: application/json".into()],
                body.as_bytes(),
            );
            continue;
        }
        let Some(file) = path.strip_prefix("/org/tiny/resolve/main/") else {
            respond(&mut s, "404 Not Found", &[], b"Repository not found");
            continue;
        };
        let Ok(content) = std::fs::read(root.join(file)) else {
            respond(
                &mut s,
                "404 Not Found",
                &["X-Error-Code: EntryNotFound".into()],
                b"",
            );
            continue;
        };
        let total = content.len();
        let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
            Some(r) => {
                let (a, b) = r.split_once('-').unwrap();
                let a: usize = a.parse().unwrap();
                let b = if b.is_empty() {
                    total - 1
                } else {
                    b.parse().unwrap()
                };
                (a, b.min(total - 1))
            }
            None => (0, total - 1),
        };
        let etag = format!("\"{:016x}\"", pairs::dedup::hash_bytes(&content));
        let headers = vec![
            format!("ETag: {etag}"),
            format!("X-Repo-Commit: {COMMIT}"),
            format!("Content-Range: bytes {start}-{end}/{total}"),
        ];
        let status = if range.is_some() {
            "206 Partial Content"
        } else {
            "200 OK"
        };
        respond(&mut s, status, &headers, &content[start..=end]);
    }
}

fn config(endpoint: &str, cache: &Path, offline: bool) -> HubConfig {
    HubConfig {
        endpoint: endpoint.into(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline,
        revision: "main".into(),
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
    let (endpoint, log) = serve(tiny.clone());
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");

    let dir = resolve("org/tiny", &config(&endpoint, &cache, false)).unwrap();
    // The cache layout the Python tools share.
    assert!(
        dir.ends_with(format!("models--org--tiny/snapshots/{COMMIT}")),
        "{dir:?}"
    );
    assert_eq!(
        std::fs::read_to_string(cache.join("models--org--tiny/refs/main")).unwrap(),
        COMMIT
    );
    assert!(dir.join("1_Pooling/config.json").is_file());
    assert_eq!(embed(&dir), embed(&tiny));
    let requests = log.lock().unwrap().clone();
    assert_eq!(requests[0], "/api/models/org/tiny/revision/main ");
    assert!(requests
        .iter()
        .any(|r| r == "/org/tiny/resolve/main/model.safetensors bytes=0-0"));
    assert!(requests
        .iter()
        .any(|r| r == "/org/tiny/resolve/main/model.safetensors bytes=0-"));

    // No server: offline, the cache alone answers, without a single request.
    let dead = "http://127.0.0.1:9";
    let n = log.lock().unwrap().len();
    let again = resolve("org/tiny", &config(dead, &cache, true)).unwrap();
    assert_eq!(again, dir);
    assert_eq!(embed(&again), embed(&tiny));
    assert_eq!(log.lock().unwrap().len(), n);

    // Offline, a model that is not cached: the error names the missing file.
    let e = resolve("org/other", &config(dead, &cache, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json is not in the cache"), "{e}");
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
