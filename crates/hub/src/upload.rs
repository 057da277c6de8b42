//! Publishing to the hub: a folder's files in one commit, as huggingface_hub's `upload_folder`
//! sends them. The repository is created if needed (`/api/repos/create`); a README.md's metadata
//! is checked by the hub (`/api/validate-yaml`) before anything is uploaded; `preupload` says which
//! files go through LFS and what the repository already holds; large files go to the storage the
//! LFS batch API names (one PUT, or parts and a completion when it asks for parts), then one
//! commit (`/api/{models,datasets}/ID/commit/REV`, NDJSON) adds them all.
//!
//! Resuming is the protocol's own: the LFS batch API answers without an upload action for
//! content it already holds, so a push interrupted after some large files were sent sends only
//! the others again; files whose content equals the repository's are left out of the commit, and
//! a push that changes nothing makes no commit.
//!
//! The token goes to the endpoint's host only, never to the storage; it is never printed. What
//! the server answers (upload addresses, part counts, sizes) is checked before it is used.

use crate::client::{header, origin, Hub, MAX_JSON};
use crate::error::{Error, Result};
use crate::names;
use crate::repo::{encode, RepoKind};
use base64::Engine;
use sha2::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};

/// huggingface_hub sends the preupload and LFS batch requests 256 files at a time.
const CHUNK_FILES: usize = 256;
/// A part of a multipart upload is read into memory; larger parts are refused.
const MAX_PART: u64 = 1 << 30;
const LFS_MEDIA: &str = "application/vnd.git-lfs+json";

/// One file to publish: where it is, where it goes in the repository, and its hashes.
#[derive(Clone, Debug)]
pub struct LocalFile {
    pub path_in_repo: String,
    pub source: PathBuf,
    pub size: u64,
    /// Hex sha256 of the content: the LFS object id.
    pub sha256: String,
    /// Hex git blob sha1: the id of a file kept in git.
    pub git_oid: String,
    /// The first 512 bytes, from which the hub tells text from binary.
    pub sample: Vec<u8>,
}

impl LocalFile {
    /// Reads `source` once for its hashes. `path_in_repo` must be a safe relative path.
    pub fn read(source: &Path, path_in_repo: &str) -> Result<Self> {
        if let Some(why) = names::unsafe_path_reason(path_in_repo) {
            return Err(Error::Hub {
                what: source.display().to_string(),
                msg: format!("cannot publish it as {path_in_repo:?}: {why}"),
            });
        }
        let mut f = std::fs::File::open(source).map_err(|e| Error::io(source, e))?;
        let size = f.metadata().map_err(|e| Error::io(source, e))?.len();
        let mut sha = sha2::Sha256::new();
        let mut git = sha1::Sha1::new();
        git.update(format!("blob {size}\0").as_bytes());
        let mut sample = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(source, e))?;
            if n == 0 {
                break;
            }
            if sample.len() < 512 {
                let take = (512 - sample.len()).min(n);
                sample.extend_from_slice(&buf[..take]);
            }
            sha.update(&buf[..n]);
            git.update(&buf[..n]);
        }
        Ok(Self {
            path_in_repo: path_in_repo.to_string(),
            source: source.to_path_buf(),
            size,
            sha256: hex(&sha.finalize()),
            git_oid: hex(&git.finalize()),
            sample,
        })
    }

    /// Every file under `dir` (hidden files and folders left out, as huggingface_hub's
    /// `upload_folder` leaves out `.git/` and `.cache/`), by `/`-separated relative path.
    pub fn folder(dir: &Path) -> Result<Vec<Self>> {
        fn walk(root: &Path, d: &Path, out: &mut Vec<LocalFile>) -> Result<()> {
            let mut entries: Vec<_> = std::fs::read_dir(d)
                .map_err(|e| Error::io(d, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for p in entries {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                if p.is_dir() {
                    walk(root, &p, out)?;
                } else if p.is_file() {
                    let rel = p.strip_prefix(root).unwrap_or(&p);
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.push(LocalFile::read(&p, &rel.join("/"))?);
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out)?;
        Ok(out)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// How to publish.
#[derive(Clone, Debug)]
pub struct PushOptions {
    pub kind: RepoKind,
    /// `org/name` (or `name`).
    pub id: String,
    /// The branch the commit goes to.
    pub revision: String,
    /// Create the repository private (when it does not exist yet).
    pub private: bool,
    pub message: String,
    pub description: String,
}

/// What a push did.
#[derive(Clone, Debug, Default)]
pub struct PushReport {
    /// The repository's address on the hub.
    pub url: String,
    /// The commit made, None when nothing had changed.
    pub commit: Option<String>,
    pub created: bool,
    /// Large files sent, and those the storage already held (not sent again).
    pub lfs_sent: usize,
    pub lfs_present: usize,
    pub bytes_sent: u64,
    /// Files equal to the repository's, left out of the commit.
    pub unchanged: usize,
    /// Files in the commit.
    pub committed: usize,
}

/// Progress of a push, for a progress bar.
pub trait PushProgress {
    /// `bytes` more of large files have been sent (or found already there).
    fn sent(&mut self, bytes: u64);
}

impl PushProgress for () {
    fn sent(&mut self, _: u64) {}
}

struct Answer {
    status: u16,
    body: serde_json::Value,
    etag: Option<String>,
}

impl Hub {
    fn push_error(&self, opts: &PushOptions, msg: String) -> Error {
        Error::Hub {
            what: format!("push to {} {}", kind_word(opts.kind), opts.id),
            msg,
        }
    }

    /// A request with a body; the answer's JSON (bounded) and ETag.
    fn call(
        &self,
        opts: &PushOptions,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer> {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(self.push_error(opts, format!("the hub named an unusable address {url:?}")));
        }
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept-Encoding", "identity");
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
            if ct == LFS_MEDIA {
                req = req.header("Accept", LFS_MEDIA);
            }
        }
        if let Some(a) = self.auth_for(url) {
            req = req.header("Authorization", a);
        }
        let req = req
            .body(body)
            .map_err(|e| self.push_error(opts, format!("bad request URL {url}: {e}")))?;
        self.answer(opts, url, req)
    }

    fn answer<B: ureq::AsSendBody>(
        &self,
        opts: &PushOptions,
        url: &str,
        req: ureq::http::Request<B>,
    ) -> Result<Answer> {
        let mut resp = self.agent.run(req).map_err(|e| Error::Network {
            what: format!("push to {} {}", kind_word(opts.kind), opts.id),
            endpoint: origin(url)
                .map(|(s, h, p)| format!("{s}://{h}:{p}"))
                .unwrap_or_else(|| url.to_string()),
            cause: e.to_string(),
            hint: "; run the same push again to resume",
        })?;
        let status = resp.status().as_u16();
        let etag = header(&resp, "etag");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok(Answer { status, body, etag })
    }

    /// The message for an answer that is not success: the hub's own `error` text, bounded.
    fn refused(&self, opts: &PushOptions, step: &str, a: &Answer) -> Error {
        let said: String = a.body["error"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        let hint = match a.status {
            401 => " (the token is invalid or expired: set HF_TOKEN to a valid one)",
            403 => " (the token may not write there: it needs write access to that namespace)",
            _ => "",
        };
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        };
        self.push_error(opts, format!("{step}: HTTP {}{said}{hint}", a.status))
    }

    /// Publishes `files` to the repository of `opts` in one commit.
    pub fn push(
        &self,
        opts: &PushOptions,
        files: &[LocalFile],
        progress: &mut dyn PushProgress,
    ) -> Result<PushReport> {
        if let Some(why) = names::bad_repo_id(&opts.id) {
            return Err(
                self.push_error(opts, format!("{:?} is not a repository id: {why}", opts.id))
            );
        }
        if let Some(why) = names::unsafe_path_reason(&opts.revision) {
            return Err(self.push_error(opts, format!("revision {:?}: {why}", opts.revision)));
        }
        if self.cfg.token.is_none() {
            return Err(self.push_error(
                opts,
                "no token: set HF_TOKEN to a token with write access (or log in with `hf auth \
                 login`, which writes $HF_HOME/token)"
                    .into(),
            ));
        }
        if self.cfg.offline {
            return Err(self.push_error(opts, "HF_HUB_OFFLINE is set".into()));
        }
        let ep = self.cfg.endpoint.trim_end_matches('/').to_string();
        let plural = opts.kind.plural();
        let mut report = PushReport {
            url: match opts.kind {
                RepoKind::Model => format!("{ep}/{}", opts.id),
                RepoKind::Dataset => format!("{ep}/datasets/{}", opts.id),
            },
            ..Default::default()
        };

        // 1. The repository.
        let (org, name) = match opts.id.split_once('/') {
            Some((o, n)) => (Some(o), n),
            None => (None, opts.id.as_str()),
        };
        let mut create = serde_json::json!({"name": name, "organization": org});
        if opts.private {
            create["visibility"] = "private".into();
        }
        create["type"] = kind_word(opts.kind).into();
        let a = self.call(
            opts,
            "POST",
            &format!("{ep}/api/repos/create"),
            Some("application/json"),
            create.to_string().into_bytes(),
        )?;
        match a.status {
            200 | 201 => report.created = true,
            409 => {}
            _ => return Err(self.refused(opts, "creating the repository", &a)),
        }

        // 2. The card's metadata, as the hub will judge it at the commit: refused before
        // anything is uploaded.
        if let Some(card) = files.iter().find(|f| f.path_in_repo == "README.md") {
            if card.size <= MAX_JSON {
                let content = std::fs::read_to_string(&card.source)
                    .map_err(|e| Error::io(&card.source, e))?;
                let body =
                    serde_json::json!({"content": content, "repoType": kind_word(opts.kind)});
                let a = self.call(
                    opts,
                    "POST",
                    &format!("{ep}/api/validate-yaml"),
                    Some("application/json"),
                    body.to_string().into_bytes(),
                )?;
                if a.status == 400 {
                    let errors: Vec<String> = a.body["errors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["message"].as_str())
                        .map(|m| m.chars().filter(|c| !c.is_control()).take(300).collect())
                        .collect();
                    return Err(self.push_error(
                        opts,
                        format!(
                            "README.md: the hub refuses its metadata: {}; nothing was uploaded",
                            errors.join("; ")
                        ),
                    ));
                }
                if !(200..300).contains(&a.status) {
                    return Err(self.refused(opts, "validating README.md", &a));
                }
            }
        }

        // 3. Which files go through LFS, and what the repository already has.
        let rev = encode(&opts.revision, false);
        let mut lfs = vec![false; files.len()];
        let mut same = vec![false; files.len()];
        for (c, chunk) in files.chunks(CHUNK_FILES).enumerate() {
            let payload = serde_json::json!({"files": chunk.iter().map(|f| serde_json::json!({
                "path": f.path_in_repo,
                "sample": base64::engine::general_purpose::STANDARD.encode(&f.sample),
                "size": f.size,
            })).collect::<Vec<_>>()});
            let a = self.call(
                opts,
                "POST",
                &format!("{ep}/api/{plural}/{}/preupload/{rev}", opts.id),
                Some("application/json"),
                payload.to_string().into_bytes(),
            )?;
            if a.status != 200 {
                return Err(self.refused(opts, "preupload", &a));
            }
            for (i, f) in chunk.iter().enumerate() {
                let k = c * CHUNK_FILES + i;
                let said = a.body["files"]
                    .as_array()
                    .and_then(|v| v.iter().find(|e| e["path"] == f.path_in_repo.as_str()))
                    .ok_or_else(|| {
                        self.push_error(
                            opts,
                            format!("preupload did not answer for {}", f.path_in_repo),
                        )
                    })?;
                lfs[k] = match said["uploadMode"].as_str() {
                    Some("lfs") => true,
                    Some("regular") => false,
                    other => {
                        return Err(self
                            .push_error(opts, format!("preupload: unknown upload mode {other:?}")))
                    }
                };
                let local = if lfs[k] { &f.sha256 } else { &f.git_oid };
                same[k] = said["oid"].as_str() == Some(local.as_str());
            }
        }
        report.unchanged = same.iter().filter(|&&s| s).count();

        // 4. Large files to the storage.
        let todo: Vec<usize> = (0..files.len()).filter(|&k| lfs[k] && !same[k]).collect();
        let prefix = match opts.kind {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
        };
        for chunk in todo.chunks(CHUNK_FILES) {
            let payload = serde_json::json!({
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": chunk.iter().map(|&k| serde_json::json!({
                    "oid": files[k].sha256, "size": files[k].size,
                })).collect::<Vec<_>>(),
                "hash_algo": "sha256",
                "ref": {"name": opts.revision},
            });
            let a = self.call(
                opts,
                "POST",
                &format!("{ep}/{prefix}{}.git/info/lfs/objects/batch", opts.id),
                Some(LFS_MEDIA),
                payload.to_string().into_bytes(),
            )?;
            if a.status != 200 {
                return Err(self.refused(opts, "LFS batch", &a));
            }
            for &k in chunk {
                let f = &files[k];
                let obj = a.body["objects"]
                    .as_array()
                    .and_then(|v| v.iter().find(|o| o["oid"] == f.sha256.as_str()))
                    .ok_or_else(|| {
                        self.push_error(
                            opts,
                            format!("the LFS batch did not answer for {}", f.path_in_repo),
                        )
                    })?;
                if let Some(e) = obj.get("error") {
                    return Err(
                        self.push_error(opts, format!("LFS batch refused {}: {e}", f.path_in_repo))
                    );
                }
                match obj.get("actions").filter(|a| !a.is_null()) {
                    None => report.lfs_present += 1,
                    Some(actions) => {
                        self.lfs_upload(opts, f, actions, progress)?;
                        report.lfs_sent += 1;
                        report.bytes_sent += f.size;
                        continue;
                    }
                }
                progress.sent(f.size);
            }
        }

        // 5. One commit.
        let mut lines = vec![serde_json::json!({"key": "header", "value": {
            "summary": opts.message, "description": opts.description,
        }})];
        for (k, f) in files.iter().enumerate() {
            if same[k] {
                continue;
            }
            lines.push(if lfs[k] {
                serde_json::json!({"key": "lfsFile", "value": {
                    "path": f.path_in_repo, "algo": "sha256", "oid": f.sha256, "size": f.size,
                }})
            } else {
                let content = std::fs::read(&f.source).map_err(|e| Error::io(&f.source, e))?;
                serde_json::json!({"key": "file", "value": {
                    "content": base64::engine::general_purpose::STANDARD.encode(content),
                    "path": f.path_in_repo,
                    "encoding": "base64",
                }})
            });
        }
        report.committed = lines.len() - 1;
        if report.committed == 0 {
            return Ok(report);
        }
        let mut body = Vec::new();
        for l in &lines {
            body.extend_from_slice(l.to_string().as_bytes());
            body.push(b'\n');
        }
        let a = self.call(
            opts,
            "POST",
            &format!("{ep}/api/{plural}/{}/commit/{rev}", opts.id),
            Some("application/x-ndjson"),
            body,
        )?;
        if a.status != 200 && a.status != 201 {
            return Err(self.refused(opts, "commit", &a));
        }
        report.commit = a.body["commitOid"]
            .as_str()
            .filter(|c| names::is_commit(c))
            .map(String::from);
        Ok(report)
    }

    /// One large file to where the LFS batch answer says: one PUT, or its parts and a completion.
    fn lfs_upload(
        &self,
        opts: &PushOptions,
        f: &LocalFile,
        actions: &serde_json::Value,
        progress: &mut dyn PushProgress,
    ) -> Result<()> {
        let upload = &actions["upload"];
        let href = upload["href"].as_str().ok_or_else(|| {
            self.push_error(
                opts,
                format!("LFS batch: no upload address for {}", f.path_in_repo),
            )
        })?;
        let header = &upload["header"];
        let chunk = match &header["chunk_size"] {
            serde_json::Value::Null => None,
            v => Some(
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|&c| c > 0 && c <= MAX_PART)
                    .ok_or_else(|| {
                        self.push_error(opts, format!("LFS batch: unusable chunk_size {v}"))
                    })?,
            ),
        };
        let what = |e| Error::io(&f.source, e);
        match chunk {
            None => {
                let file = std::fs::File::open(&f.source).map_err(what)?;
                let mut req = ureq::http::Request::builder()
                    .method("PUT")
                    .uri(href)
                    .header("Accept-Encoding", "identity");
                if let Some(a) = self.auth_for(href) {
                    req = req.header("Authorization", a);
                }
                let req = req
                    .body(file)
                    .map_err(|e| self.push_error(opts, format!("bad upload URL {href}: {e}")))?;
                let a = self.answer(opts, href, req)?;
                if !(200..300).contains(&a.status) {
                    return Err(self.refused(opts, &format!("upload of {}", f.path_in_repo), &a));
                }
                progress.sent(f.size);
            }
            Some(chunk) => {
                let mut parts: Vec<(u64, &str)> = header
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.as_str()?)))
                    .collect();
                parts.sort();
                if parts.len() as u64 != f.size.div_ceil(chunk)
                    || parts
                        .iter()
                        .enumerate()
                        .any(|(i, (n, _))| *n != i as u64 + 1)
                {
                    return Err(self.push_error(
                        opts,
                        format!(
                            "LFS batch: {} parts of {chunk} bytes for {} ({} bytes)",
                            parts.len(),
                            f.path_in_repo,
                            f.size
                        ),
                    ));
                }
                let mut file = std::fs::File::open(&f.source).map_err(what)?;
                let mut etags = Vec::new();
                for (n, url) in parts {
                    let mut buf = Vec::new();
                    (&mut file)
                        .take(chunk)
                        .read_to_end(&mut buf)
                        .map_err(what)?;
                    let len = buf.len() as u64;
                    let a = self.call(opts, "PUT", url, None, buf)?;
                    if !(200..300).contains(&a.status) {
                        return Err(self.refused(
                            opts,
                            &format!("upload of part {n} of {}", f.path_in_repo),
                            &a,
                        ));
                    }
                    let etag = a.etag.filter(|e| !e.is_empty()).ok_or_else(|| {
                        self.push_error(opts, format!("part {n} of {}: no ETag", f.path_in_repo))
                    })?;
                    etags.push(serde_json::json!({"partNumber": n, "etag": etag}));
                    progress.sent(len);
                }
                let done = serde_json::json!({"oid": f.sha256, "parts": etags});
                let a = self.call(
                    opts,
                    "POST",
                    href,
                    Some(LFS_MEDIA),
                    done.to_string().into_bytes(),
                )?;
                if !(200..300).contains(&a.status) {
                    return Err(self.refused(
                        opts,
                        &format!("completion of {}", f.path_in_repo),
                        &a,
                    ));
                }
            }
        }
        if let Some(verify) = actions["verify"]["href"].as_str() {
            let body = serde_json::json!({"oid": f.sha256, "size": f.size});
            let a = self.call(
                opts,
                "POST",
                verify,
                Some("application/json"),
                body.to_string().into_bytes(),
            )?;
            if !(200..300).contains(&a.status) {
                return Err(self.refused(opts, &format!("verification of {}", f.path_in_repo), &a));
            }
        }
        Ok(())
    }
}

fn kind_word(k: RepoKind) -> &'static str {
    match k {
        RepoKind::Model => "model",
        RepoKind::Dataset => "dataset",
    }
}
