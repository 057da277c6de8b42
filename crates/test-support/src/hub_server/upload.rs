//! The stand-in hub's upload API, as huggingface_hub uses it: `POST /api/repos/create`,
//! `POST /api/{models,datasets}/ID/preupload/REV`, the LFS batch API
//! (`POST /[datasets/]ID.git/info/lfs/objects/batch`), the storage it points to (on the other
//! host name, like the hub's S3: one PUT, or numbered parts and a completion), the LFS verify
//! call, and `POST /api/{models,datasets}/ID/commit/REV` (NDJSON). A commit makes a new commit of
//! the repository whose files `resolve/` then serves. Tests can require a token, make one
//! request fail once, ask for multipart uploads, and read back every write request as it came.

use super::{etag_of, respond, HubServer, RepoSpec, Request, State, LFS_FROM};
use base64::Engine;
use sha1::Digest;
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::net::TcpStream;
use std::sync::Mutex;

#[derive(Default)]
pub(super) struct Uploads {
    /// LFS content by sha256.
    lfs: HashMap<String, Vec<u8>>,
    /// Parts of multipart uploads: (sha256, part) → bytes.
    parts: HashMap<(String, u64), Vec<u8>>,
    /// Tokens the write API takes; None: any request.
    tokens: Option<Vec<String>>,
    /// Path fragments whose next write request fails (HTTP 500), once each.
    fail_once: Vec<String>,
    /// Part size asked for in LFS batch answers; None: one PUT.
    chunk: Option<usize>,
    /// (kind, id) of repositories created private.
    private: Vec<(String, String)>,
    writes: Vec<Write>,
}

/// A write request as it arrived.
#[derive(Clone, Debug)]
pub struct Write {
    pub method: String,
    /// Path without the host, e.g. `/api/models/org/name/commit/main`.
    pub path: String,
    pub host: String,
    pub content_type: String,
    pub authorized: bool,
    pub body: Vec<u8>,
}

impl HubServer {
    /// The write API answers 401 unless one of `tokens` is sent.
    pub fn require_tokens(&self, tokens: &[&str]) {
        self.state.lock().unwrap().uploads.tokens =
            Some(tokens.iter().map(|t| t.to_string()).collect());
    }

    /// The next write request whose path contains `fragment` fails with HTTP 500.
    pub fn fail_once(&self, fragment: &str) {
        self.state
            .lock()
            .unwrap()
            .uploads
            .fail_once
            .push(fragment.into());
    }

    /// LFS batch answers ask for parts of `chunk` bytes.
    pub fn multipart(&self, chunk: usize) {
        self.state.lock().unwrap().uploads.chunk = Some(chunk);
    }

    /// Every write request so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.state.lock().unwrap().uploads.writes.clone()
    }

    /// The files of a repository now ("models" or "datasets").
    pub fn files(&self, kind: &str, id: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let st = self.state.lock().unwrap();
        st.repos
            .get(&(kind.to_string(), id.to_string()))
            .map(|r| r.files.clone())
    }

    /// Whether the repository was created private.
    pub fn is_private(&self, kind: &str, id: &str) -> bool {
        let st = self.state.lock().unwrap();
        st.uploads.private.contains(&(kind.into(), id.into()))
    }
}

/// A chunked request body (`Transfer-Encoding: chunked`).
pub(super) fn read_chunked(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let n = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
        if n == 0 {
            let mut end = String::new();
            r.read_line(&mut end).ok()?;
            return Some(out);
        }
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).ok()?;
        out.extend_from_slice(&buf);
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).ok()?;
    }
}

fn json(s: &mut TcpStream, status: &str, v: serde_json::Value, extra: &[String]) {
    let mut headers = vec!["Content-Type: application/json".to_string()];
    headers.extend_from_slice(extra);
    respond(s, status, &headers, v.to_string().as_bytes(), false);
}

fn error(s: &mut TcpStream, status: &str, msg: &str) {
    json(s, status, serde_json::json!({ "error": msg }), &[]);
}

fn sha256(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `org/name` and the revision from `ID/VERB/REV` (ids have one `/` at most).
fn id_and_rev<'a>(rest: &'a str, verb: &str) -> Option<(&'a str, &'a str)> {
    let (id, rev) = rest.split_once(&format!("/{verb}/"))?;
    Some((id, rev))
}

pub(super) fn answer(s: &mut TcpStream, req: &Request, port: u16, state: &Mutex<State>) {
    let mut st = state.lock().unwrap();
    let up = &mut st.uploads;
    up.writes.push(Write {
        method: req.method.clone(),
        path: req.path.clone(),
        host: req.host.clone(),
        content_type: req.content_type.clone(),
        authorized: req.token.is_some(),
        body: req.body.clone(),
    });
    if let Some(i) = up
        .fail_once
        .iter()
        .position(|f| req.path.contains(f.as_str()))
    {
        up.fail_once.remove(i);
        drop(st);
        return error(s, "500 Internal Server Error", "injected failure");
    }
    let storage = req.path.starts_with("/lfs-upload/");
    if !storage {
        if let Some(tokens) = &up.tokens {
            if !req.token.as_ref().is_some_and(|t| tokens.contains(t)) {
                drop(st);
                return error(
                    s,
                    "401 Unauthorized",
                    "Invalid credentials in Authorization header",
                );
            }
        }
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let cdn = format!("http://localhost:{port}");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();

    if req.path == "/api/repos/create" {
        let (Some(name), org) = (body["name"].as_str(), body["organization"].as_str()) else {
            drop(st);
            return error(s, "400 Bad Request", "no name");
        };
        let id = org.map_or(name.to_string(), |o| format!("{o}/{name}"));
        let kind = match body["type"].as_str() {
            None | Some("model") => "models",
            Some("dataset") => "datasets",
            Some(_) => {
                drop(st);
                return error(s, "400 Bad Request", "unknown type");
            }
        };
        let key = (kind.to_string(), id.clone());
        if st.repos.contains_key(&key) {
            drop(st);
            return error(s, "409 Conflict", "You already created this repo");
        }
        if body["visibility"] == "private" || body["private"] == true {
            st.uploads.private.push(key.clone());
        }
        st.repos
            .insert(key, RepoSpec::new(BTreeMap::new(), &format!("{kind}/{id}")));
        drop(st);
        let url = match kind {
            "models" => format!("{endpoint}/{id}"),
            _ => format!("{endpoint}/datasets/{id}"),
        };
        return json(s, "200 OK", serde_json::json!({ "url": url }), &[]);
    }

    if req.path == "/api/validate-yaml" {
        drop(st);
        // The front matter of a card must be closed; what is inside is not checked here.
        let content = body["content"].as_str().unwrap_or_default();
        let closed = !content.starts_with("---")
            || content[3..].contains("\n---\n")
            || content.ends_with("\n---");
        return if closed {
            json(
                s,
                "200 OK",
                serde_json::json!({"errors": [], "warnings": []}),
                &[],
            )
        } else {
            json(
                s,
                "400 Bad Request",
                serde_json::json!({"errors": [{"message": "the metadata block is not closed"}]}),
                &[],
            )
        };
    }

    if let Some(rest) = req.path.strip_prefix("/api/") {
        let (kind, rest) = rest.split_once('/').unwrap_or(("", ""));
        let kind = kind.to_string();
        if let Some((id, _rev)) = id_and_rev(rest, "preupload") {
            let Some(repo) = st.repos.get(&(kind.clone(), id.to_string())) else {
                drop(st);
                return error(s, "404 Not Found", "Repository not found");
            };
            let mut files = Vec::new();
            for f in body["files"].as_array().into_iter().flatten() {
                let path = f["path"].as_str().unwrap_or_default();
                let sample = base64::engine::general_purpose::STANDARD
                    .decode(f["sample"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                let size = f["size"].as_u64().unwrap_or(0) as usize;
                // As the hub: binary content and large files go through LFS.
                let lfs = size >= LFS_FROM || sample.contains(&0);
                let oid = repo
                    .files
                    .get(path)
                    .map(|c| if lfs { sha256(c) } else { etag_of(c) });
                files.push(serde_json::json!({
                    "path": path,
                    "uploadMode": if lfs { "lfs" } else { "regular" },
                    "shouldIgnore": false,
                    "oid": oid,
                }));
            }
            drop(st);
            return json(s, "200 OK", serde_json::json!({ "files": files }), &[]);
        }
        if let Some((id, rev)) = id_and_rev(rest, "commit") {
            return commit(s, st, &kind, id, rev, &req.body, &endpoint);
        }
        drop(st);
        return error(s, "404 Not Found", "no such API");
    }

    if req.path.ends_with(".git/info/lfs/objects/batch") {
        let mut objects = Vec::new();
        for o in body["objects"].as_array().into_iter().flatten() {
            let oid = o["oid"].as_str().unwrap_or_default().to_string();
            let size = o["size"].as_u64().unwrap_or(0);
            let mut e = serde_json::json!({ "oid": oid, "size": size });
            if !st.uploads.lfs.contains_key(&oid) {
                let href = format!("{cdn}/lfs-upload/{oid}");
                let header = match st.uploads.chunk {
                    None => serde_json::json!({}),
                    Some(c) => {
                        let mut h = serde_json::json!({ "chunk_size": c.to_string() });
                        for n in 1..=size.div_ceil(c as u64).max(1) {
                            h[n.to_string()] = format!("{cdn}/lfs-upload/{oid}/part/{n}").into();
                        }
                        h
                    }
                };
                let upload = if st.uploads.chunk.is_some() {
                    // Parts go to the storage; the completion to the hub.
                    serde_json::json!({"href": format!("{endpoint}/lfs-complete/{oid}"), "header": header})
                } else {
                    serde_json::json!({"href": href, "header": header})
                };
                e["actions"] = serde_json::json!({
                    "upload": upload,
                    "verify": {"href": format!("{endpoint}/lfs-verify/{oid}")},
                });
            }
            objects.push(e);
        }
        drop(st);
        let v = serde_json::json!({"transfer": "basic", "objects": objects});
        return respond(
            s,
            "200 OK",
            &["Content-Type: application/vnd.git-lfs+json".into()],
            v.to_string().as_bytes(),
            false,
        );
    }

    if let Some(rest) = req.path.strip_prefix("/lfs-upload/") {
        // The storage, like S3, wants the length up front.
        if req.chunked {
            drop(st);
            return error(
                s,
                "501 Not Implemented",
                "chunked uploads are not supported",
            );
        }
        if let Some((oid, n)) = rest.split_once("/part/") {
            let n: u64 = n.parse().unwrap_or(0);
            let etag = sha256(&req.body);
            st.uploads
                .parts
                .insert((oid.to_string(), n), req.body.clone());
            drop(st);
            return respond(s, "200 OK", &[format!("ETag: \"{etag}\"")], b"", false);
        }
        if sha256(&req.body) != rest {
            drop(st);
            return error(s, "400 Bad Request", "content does not match its oid");
        }
        st.uploads.lfs.insert(rest.to_string(), req.body.clone());
        drop(st);
        return respond(s, "200 OK", &[], b"", false);
    }

    if let Some(oid) = req.path.strip_prefix("/lfs-complete/") {
        let mut all = Vec::new();
        let parts = body["parts"].as_array().cloned().unwrap_or_default();
        for (i, p) in parts.iter().enumerate() {
            let n = p["partNumber"].as_u64().unwrap_or(0);
            let Some(bytes) = st.uploads.parts.get(&(oid.to_string(), n)) else {
                drop(st);
                return error(s, "400 Bad Request", "missing part");
            };
            if n != i as u64 + 1 || p["etag"].as_str() != Some(&format!("\"{}\"", sha256(bytes))) {
                drop(st);
                return error(s, "400 Bad Request", "bad part list");
            }
            all.extend_from_slice(bytes);
        }
        if sha256(&all) != oid {
            drop(st);
            return error(s, "400 Bad Request", "parts do not make the object");
        }
        st.uploads.lfs.insert(oid.to_string(), all);
        drop(st);
        return json(s, "200 OK", serde_json::json!({}), &[]);
    }

    if let Some(oid) = req.path.strip_prefix("/lfs-verify/") {
        let ok = st.uploads.lfs.contains_key(oid) && body["oid"] == oid;
        drop(st);
        return if ok {
            json(s, "200 OK", serde_json::json!({}), &[])
        } else {
            error(s, "404 Not Found", "object not uploaded")
        };
    }
    drop(st);
    error(s, "404 Not Found", "no such endpoint")
}

fn commit(
    s: &mut TcpStream,
    mut st: std::sync::MutexGuard<'_, State>,
    kind: &str,
    id: &str,
    rev: &str,
    body: &[u8],
    endpoint: &str,
) {
    let key = (kind.to_string(), id.to_string());
    if !st.repos.contains_key(&key) {
        drop(st);
        return error(s, "404 Not Found", "Repository not found");
    }
    let mut adds = Vec::new();
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            drop(st);
            return error(s, "400 Bad Request", "a line is not JSON");
        };
        let value = &v["value"];
        let path = value["path"].as_str().unwrap_or_default().to_string();
        match v["key"].as_str() {
            Some("header") => {}
            Some("file") => {
                let Ok(content) = base64::engine::general_purpose::STANDARD
                    .decode(value["content"].as_str().unwrap_or_default())
                else {
                    drop(st);
                    return error(s, "400 Bad Request", "bad base64");
                };
                adds.push((path, content));
            }
            Some("lfsFile") => {
                let oid = value["oid"].as_str().unwrap_or_default();
                let Some(content) = st.uploads.lfs.get(oid) else {
                    drop(st);
                    return error(s, "422 Unprocessable Entity", "LFS object not uploaded");
                };
                adds.push((path, content.clone()));
            }
            _ => {
                drop(st);
                return error(s, "400 Bad Request", "unknown operation");
            }
        }
    }
    let repo = st.repos.get_mut(&key).unwrap();
    let mut h = sha1::Sha1::new();
    h.update(repo.commit.as_bytes());
    h.update(body);
    let commit: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    for (path, content) in adds {
        repo.files.insert(path, content);
    }
    // One set of files for every branch: enough for tests that push to one.
    if rev == "main" {
        repo.commit = commit.clone();
    } else {
        repo.refs.insert(rev.to_string(), commit.clone());
    }
    drop(st);
    let prefix = if kind == "datasets" { "datasets/" } else { "" };
    json(
        s,
        "200 OK",
        serde_json::json!({
            "success": true,
            "commitOid": commit,
            "commitUrl": format!("{endpoint}/{prefix}{id}/commit/{commit}"),
        }),
        &[],
    );
}
