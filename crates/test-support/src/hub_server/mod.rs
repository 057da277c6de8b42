//! A stand-in for the Hugging Face hub's HTTP API on 127.0.0.1, for tests: model and dataset
//! repositories at commits and branches, the revision API (`?blobs=true` sizes and LFS hashes),
//! `resolve/` with HEAD, ranges, ETags and `X-Repo-Commit`, large files answered as the hub
//! answers LFS files (`X-Linked-Etag`/`X-Linked-Size` and a redirect to another host serving the
//! bytes), 404s with the hub's `X-Error-Code`. Each repository can also misbehave the ways a
//! hostile or broken server does (`Hostile`), and every request is logged. The upload API
//! (repository creation, preupload, LFS batch and storage, commit) is in `upload`.

mod upload;
pub use upload::Write as WriteRequest;

use sha1::Digest;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Files at or above this size are served as LFS files (sha256 ETag, stored on the "CDN").
pub const LFS_FROM: usize = 1 << 20;

/// Ways one file of a repository misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// The listing and HEAD announce this many bytes; the body carries the whole file.
    AnnounceSize(u64),
    /// The body never ends (the announced size is the real one).
    EndlessBody,
    /// The body is cut after this many bytes, once; later requests are served whole.
    DropAfter(usize),
    /// Every byte is served, but one is flipped: the content does not match its ETag.
    Corrupt,
    /// `resolve/` redirects to itself forever.
    RedirectLoop,
    /// `resolve/` redirects to another host although the file is not an LFS file.
    RedirectElsewhere,
}

#[derive(Clone, Debug, Default)]
pub struct RepoSpec {
    pub commit: String,
    /// Branch or tag → commit (`main` → `commit` is implied).
    pub refs: BTreeMap<String, String>,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Names the listing shows beside the real files (which `resolve/` does not serve).
    pub extra_listing: Vec<String>,
    pub hostile: HashMap<String, Hostile>,
}

impl RepoSpec {
    /// A repository of `files` at a commit derived from its name.
    pub fn new(files: BTreeMap<String, Vec<u8>>, commit_seed: &str) -> Self {
        let h = sha1::Sha1::digest(commit_seed.as_bytes());
        Self {
            commit: h.iter().map(|b| format!("{b:02x}")).collect(),
            files,
            ..Self::default()
        }
    }

    /// Every file under `dir`, by its `/`-separated relative path.
    pub fn from_dir(dir: &std::path::Path, commit_seed: &str) -> Self {
        fn walk(root: &std::path::Path, d: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(dir, dir, &mut files);
        Self::new(files, commit_seed)
    }
}

/// The hub's name for a file's content: git's blob sha1, or sha256 for LFS files.
pub fn etag_of(content: &[u8]) -> String {
    if content.len() >= LFS_FROM {
        sha2::Sha256::digest(content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    } else {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", content.len()).as_bytes());
        h.update(content);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Default)]
struct State {
    /// ("models" | "datasets", "org/name") → repository.
    repos: HashMap<(String, String), RepoSpec>,
    /// Files whose `DropAfter` has fired.
    dropped: Vec<String>,
    /// What the upload API keeps and how it behaves (see `upload`).
    uploads: upload::Uploads,
}

/// One request as it arrived.
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub host: String,
    pub range: Option<String>,
    /// The bearer token sent, if any.
    pub token: Option<String>,
    pub content_type: String,
    pub chunked: bool,
    pub body: Vec<u8>,
}

/// A running stand-in hub. Dropping it stops answering (the port is closed).
pub struct HubServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The same server under another host name: where LFS redirects point.
    pub cdn: String,
    pub log: Arc<Mutex<Vec<String>>>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl HubServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, l2, st2) = (state.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, l) = (s2.clone(), l2.clone());
                std::thread::spawn(move || serve(conn, port, &s, &l));
            }
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            cdn: format!("http://localhost:{port}"),
            log,
            state,
            stop,
            port,
        }
    }

    pub fn add_model(&self, id: &str, spec: RepoSpec) {
        self.add("models", id, spec)
    }

    pub fn add_dataset(&self, id: &str, spec: RepoSpec) {
        self.add("datasets", id, spec)
    }

    fn add(&self, kind: &str, id: &str, spec: RepoSpec) {
        self.state
            .lock()
            .unwrap()
            .repos
            .insert((kind.into(), id.into()), spec);
    }

    /// The requests so far ("METHOD host/path range", and " auth" when a token was sent).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn respond(s: &mut TcpStream, status: &str, headers: &[String], body: &[u8], head: bool) {
    let mut r = format!("HTTP/1.1 {status}\r\n");
    if !headers.iter().any(|h| h.starts_with("Content-Length")) {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    let _ = s.write_all(r.as_bytes());
    if !head {
        let _ = s.write_all(body);
    }
}

fn not_found(s: &mut TcpStream, code: &str, head: bool) {
    respond(
        s,
        "404 Not Found",
        &[format!("X-Error-Code: {code}")],
        code.as_bytes(),
        head,
    );
}

fn serve(mut s: TcpStream, port: u16, state: &Mutex<State>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut range, mut host, mut token) = (None, String::new(), None);
        let (mut length, mut chunked, mut content_type) = (0usize, false, String::new());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            let value = || h.split_once(':').map(|(_, v)| v.trim().to_string());
            if let Some(r) = lower.strip_prefix("range:") {
                range = Some(r.trim().to_string());
            }
            if let Some(r) = lower.strip_prefix("host:") {
                host = r.trim().to_string();
            }
            if lower.starts_with("authorization:") {
                token = value().map(|v| v.trim_start_matches("Bearer ").to_string());
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if let Some(v) = lower.strip_prefix("transfer-encoding:") {
                chunked = v.contains("chunked");
            }
            if let Some(v) = lower.strip_prefix("content-type:") {
                content_type = v.trim().to_string();
            }
        }
        let body = if chunked {
            match upload::read_chunked(&mut reader) {
                Some(b) => b,
                None => return,
            }
        } else {
            let mut b = vec![0u8; length];
            if reader.read_exact(&mut b).is_err() {
                return;
            }
            b
        };
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let head = method == "HEAD";
        log.lock().unwrap().push(format!(
            "{method} {host}{target} {}{}",
            range.clone().unwrap_or_default(),
            if token.is_some() { " auth" } else { "" }
        ));
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let req = Request {
            path: percent_decode(path),
            method,
            host,
            range,
            token,
            content_type,
            chunked,
            body,
        };
        if req.method == "POST" || req.method == "PUT" {
            upload::answer(&mut s, &req, port, state);
            continue;
        }
        if !answer(
            &mut s,
            &req.path,
            query,
            &req.host,
            port,
            req.range.as_deref(),
            head,
            state,
        ) {
            return;
        }
    }
}

/// Answers one request; false when the connection must be closed.
#[allow(clippy::too_many_arguments)]
fn answer(
    s: &mut TcpStream,
    path: &str,
    query: &str,
    host: &str,
    port: u16,
    range: Option<&str>,
    head: bool,
    state: &Mutex<State>,
) -> bool {
    // The "CDN": LFS content by sha256, on another host name.
    if let Some(sha) = path.strip_prefix("/lfs/") {
        let st = state.lock().unwrap();
        let found = st.repos.values().find_map(|r| {
            r.files
                .iter()
                .find(|(_, c)| etag_of(c) == sha)
                .map(|(n, c)| (n.clone(), c.clone(), r.hostile.get(n).cloned()))
        });
        drop(st);
        return match found {
            Some((name, content, hostile)) => {
                send_content(s, &name, &content, hostile, range, head, vec![], state)
            }
            None => {
                not_found(s, "EntryNotFound", head);
                true
            }
        };
    }
    if let Some(rest) = path.strip_prefix("/api/") {
        let (kind, rest) = rest.split_once('/').unwrap_or(("", ""));
        if let Some((id, rev)) = rest.split_once("/tree/") {
            return tree(s, kind, id, rev, query, head, state);
        }
        // `/api/models/ID` (model_info without a revision) is the main branch.
        let (id, rev) = rest.split_once("/revision/").unwrap_or((rest, "main"));
        let st = state.lock().unwrap();
        let Some(repo) = st.repos.get(&(kind.to_string(), id.to_string())) else {
            not_found(s, "RepoNotFound", head);
            return true;
        };
        let Some(commit) = resolve_rev(repo, rev) else {
            not_found(s, "RevisionNotFound", head);
            return true;
        };
        let mut siblings: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|(n, c)| {
                let size = match repo.hostile.get(n) {
                    Some(Hostile::AnnounceSize(a)) => *a,
                    _ => c.len() as u64,
                };
                let mut e = serde_json::json!({"rfilename": n, "size": size});
                if c.len() >= LFS_FROM {
                    // As the hub lists an LFS file: its content's hash and the pointer's size.
                    e["lfs"] =
                        serde_json::json!({"sha256": etag_of(c), "size": size, "pointerSize": 134});
                    e["blobId"] = serde_json::json!(etag_of(&c[..64]));
                } else {
                    e["blobId"] = serde_json::json!(etag_of(c));
                }
                e
            })
            .collect();
        for extra in &repo.extra_listing {
            siblings.push(serde_json::json!({"rfilename": extra, "size": 1}));
        }
        let body = serde_json::json!({"id": id, "sha": commit, "siblings": siblings}).to_string();
        respond(
            s,
            "200 OK",
            &["Content-Type: application/json".into()],
            body.as_bytes(),
            head,
        );
        return true;
    }
    let (kind, rest) = match path.strip_prefix("/datasets/") {
        Some(r) => ("datasets", r),
        None => ("models", path.trim_start_matches('/')),
    };
    let Some((id, rest)) = rest.split_once("/resolve/") else {
        not_found(s, "RepoNotFound", head);
        return true;
    };
    let Some((rev, file)) = split_rev(rest, state, kind, id) else {
        not_found(s, "RevisionNotFound", head);
        return true;
    };
    let st = state.lock().unwrap();
    let Some(repo) = st.repos.get(&(kind.to_string(), id.to_string())) else {
        not_found(s, "RepoNotFound", head);
        return true;
    };
    let Some(commit) = resolve_rev(repo, &rev) else {
        not_found(s, "RevisionNotFound", head);
        return true;
    };
    let hostile = repo.hostile.get(&file).cloned();
    let Some(content) = repo.files.get(&file).cloned() else {
        drop(st);
        // As the hub does: the commit travels with the 404, so that the absence is recorded
        // for that commit.
        respond(
            s,
            "404 Not Found",
            &[
                "X-Error-Code: EntryNotFound".into(),
                format!("X-Repo-Commit: {commit}"),
            ],
            b"EntryNotFound",
            head,
        );
        return true;
    };
    drop(st);
    let etag = etag_of(&content);
    let mut headers = vec![format!("X-Repo-Commit: {commit}")];
    match hostile {
        Some(Hostile::RedirectLoop) => {
            respond(
                s,
                "302 Found",
                &[format!("Location: {path}"), headers[0].clone()],
                b"",
                head,
            );
            return true;
        }
        Some(Hostile::RedirectElsewhere) => {
            respond(
                s,
                "302 Found",
                &[
                    format!("Location: http://localhost:{port}/lfs/{etag}"),
                    format!("ETag: \"{etag}\""),
                    headers[0].clone(),
                ],
                b"",
                head,
            );
            return true;
        }
        _ => {}
    }
    let announced = match &hostile {
        Some(Hostile::AnnounceSize(a)) => *a,
        _ => content.len() as u64,
    };
    if content.len() >= LFS_FROM && !host.starts_with("localhost") {
        // As the hub answers for an LFS file: its own hash and size, and where the bytes are.
        headers.extend([
            format!("X-Linked-Etag: \"{etag}\""),
            format!("X-Linked-Size: {announced}"),
            "ETag: \"cdn-object\"".into(),
            format!("Location: http://localhost:{port}/lfs/{etag}"),
        ]);
        respond(s, "302 Found", &headers, b"", head);
        return true;
    }
    headers.push(format!("ETag: \"{etag}\""));
    send_content(s, &file, &content, hostile, range, head, headers, state)
}

/// The tree API (`/api/{kind}/{id}/tree/{rev}`, recursive): every file and folder, as
/// huggingface_hub 1.x and later list a repository before a snapshot download.
/// The tree API: `REV[/FOLDER]`, everything below it with `recursive=true` (or 1), else its
/// direct children (as `datasets` lists a folder).
fn tree(
    s: &mut TcpStream,
    kind: &str,
    id: &str,
    rev_and_folder: &str,
    query: &str,
    head: bool,
    state: &Mutex<State>,
) -> bool {
    let st = state.lock().unwrap();
    let Some(repo) = st.repos.get(&(kind.to_string(), id.to_string())) else {
        not_found(s, "RepoNotFound", head);
        return true;
    };
    let (rev, folder) = match resolve_rev(repo, rev_and_folder) {
        Some(_) => (rev_and_folder, ""),
        None => rev_and_folder
            .split_once('/')
            .unwrap_or((rev_and_folder, "")),
    };
    if resolve_rev(repo, rev).is_none() {
        not_found(s, "RevisionNotFound", head);
        return true;
    }
    let folder = folder.trim_end_matches('/');
    let recursive = query
        .split('&')
        .any(|kv| kv == "recursive=true" || kv == "recursive=True" || kv == "recursive=1");
    // Whether `p` is listed: below the folder, and a direct child unless recursive.
    let listed = |p: &str| {
        let rest = if folder.is_empty() {
            Some(p)
        } else {
            p.strip_prefix(folder).and_then(|r| r.strip_prefix('/'))
        };
        rest.is_some_and(|r| !r.is_empty() && (recursive || !r.contains('/')))
    };
    let filtered = |entries: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        entries
            .into_iter()
            .filter(|e| listed(e["path"].as_str().unwrap_or_default()))
            .collect()
    };
    let mut folders = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    for (n, c) in &repo.files {
        let mut parts: Vec<&str> = n.split('/').collect();
        parts.pop();
        for i in 1..=parts.len() {
            folders.insert(parts[..i].join("/"));
        }
        let mut e =
            serde_json::json!({"type": "file", "path": n, "size": c.len(), "oid": etag_of(c)});
        if c.len() >= LFS_FROM {
            e["lfs"] = serde_json::json!({"oid": etag_of(c), "size": c.len(), "pointerSize": 134});
            e["oid"] = serde_json::json!(etag_of(&c[..64]));
        }
        entries.push(e);
    }
    for f in folders {
        entries.push(
            serde_json::json!({"type": "directory", "path": f, "oid": etag_of(f.as_bytes())}),
        );
    }
    // Without a folder or `recursive`, the listing stays whole, as earlier tests expect.
    let entries = if folder.is_empty() && !query.contains("recursive=") {
        entries
    } else {
        filtered(entries)
    };
    let body = serde_json::Value::Array(entries).to_string();
    drop(st);
    respond(
        s,
        "200 OK",
        &["Content-Type: application/json".into()],
        body.as_bytes(),
        head,
    );
    true
}

/// Serves a file's bytes (with its range and misbehaviour); false when the connection must close.
#[allow(clippy::too_many_arguments)]
fn send_content(
    s: &mut TcpStream,
    name: &str,
    content: &[u8],
    hostile: Option<Hostile>,
    range: Option<&str>,
    head: bool,
    mut headers: Vec<String>,
    state: &Mutex<State>,
) -> bool {
    let total = content.len();
    let announced = match &hostile {
        Some(Hostile::AnnounceSize(a)) => *a as usize,
        _ => total,
    };
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0)
        .min(total);
    let status = if range.is_some() {
        headers.push(format!(
            "Content-Range: bytes {start}-{}/{announced}",
            total.saturating_sub(1)
        ));
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let mut body = content[start..].to_vec();
    match hostile {
        Some(Hostile::EndlessBody) if !head => {
            // Chunked, with no end: only the client's own limit stops it.
            let _ = s.write_all(head_of(status, &headers, "Transfer-Encoding: chunked").as_bytes());
            let chunk = vec![b'x'; 1 << 16];
            for _ in 0..(1 << 14) {
                if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .is_err()
                    || s.write_all(&chunk).is_err()
                    || s.write_all(b"\r\n").is_err()
                {
                    break;
                }
            }
            return false;
        }
        Some(Hostile::AnnounceSize(a)) => {
            // HEAD announces the lie; the body is the whole file.
            let len = if head { a as usize } else { body.len() };
            headers.push(format!("Content-Length: {len}"));
        }
        Some(Hostile::Corrupt) => {
            if let Some(b) = body.last_mut() {
                *b ^= 0xff;
            }
        }
        Some(Hostile::DropAfter(n)) if !head => {
            let mut st = state.lock().unwrap();
            if !st.dropped.contains(&name.to_string()) {
                st.dropped.push(name.to_string());
                drop(st);
                let length = format!("Content-Length: {}", body.len());
                let _ = s.write_all(head_of(status, &headers, &length).as_bytes());
                let _ = s.write_all(&body[..n.min(body.len())]);
                return false;
            }
        }
        _ => {}
    }
    respond(s, status, &headers, &body, head);
    true
}

/// A response's status line and headers (with `extra`), up to the blank line.
fn head_of(status: &str, headers: &[String], extra: &str) -> String {
    let mut r = format!("HTTP/1.1 {status}\r\n{extra}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

fn resolve_rev(repo: &RepoSpec, rev: &str) -> Option<String> {
    if rev == repo.commit || rev == "main" {
        return Some(repo.commit.clone());
    }
    repo.refs.get(rev).cloned()
}

/// Splits `REV/FILE` where REV may itself contain `/` (refs/pr/1, sent encoded and decoded here).
fn split_rev(rest: &str, state: &Mutex<State>, kind: &str, id: &str) -> Option<(String, String)> {
    let st = state.lock().unwrap();
    let repo = st.repos.get(&(kind.to_string(), id.to_string()));
    if let Some(repo) = repo {
        for r in repo.refs.keys() {
            if let Some(f) = rest.strip_prefix(&format!("{r}/")) {
                return Some((r.clone(), f.to_string()));
            }
        }
    }
    let (rev, file) = rest.split_once('/')?;
    Some((rev.to_string(), file.to_string()))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a whole response to `GET url` (for tests that check what the server serves).
pub fn http_get(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest.split_once('/').unwrap();
    let mut s = TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}
