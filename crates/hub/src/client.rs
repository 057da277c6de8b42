//! Talking to the hub: a repository's commit and file list (the revision API), and one file's
//! download into the cache. What the server says is checked before it is used: names through
//! `names`, sizes against the listing, content against the hash the hub names it by. Responses
//! are bounded (JSON to 16 MiB, a file to the size the hub announced), redirects are followed
//! within the endpoint's host only (the one exception: a large file the hub declares stored
//! elsewhere, fetched there without the token), and a download interrupted midway resumes from
//! where it stopped.

use crate::cache::{Cache, Lookup};
use crate::error::{Error, Result};
use crate::names;
use crate::repo::Repo;
use sha2::Digest;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Where models and datasets come from: the endpoint, the cache, a token, whether the network may
/// be used.
#[derive(Clone, Debug)]
pub struct HubConfig {
    pub endpoint: String,
    /// The `hub` folder of the cache (`models--org--name/…` below it).
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    pub offline: bool,
}

impl HubConfig {
    /// The configuration the Python tools read: `HF_ENDPOINT`, `HF_HUB_CACHE` or `HF_HOME`,
    /// `HF_TOKEN` (else the file `HF_TOKEN_PATH`, else `$HF_HOME/token`), `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let base = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            base.join("huggingface")
        });
        let token_file = var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("token"));
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(&token_file)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        Self {
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".into())
                .trim_end_matches('/')
                .to_string(),
            cache_dir: var("HF_HUB_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join("hub")),
            token,
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| {
                matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "on" | "yes")
            }),
        }
    }
}

/// One file of a repository as the revision API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    /// Bytes, when the listing says.
    pub size: Option<u64>,
    /// The sha256 of an LFS file's content.
    pub sha256: Option<String>,
}

/// A repository at one commit: its files (online: the listing; offline: what the cache holds).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub commit: String,
    pub files: Vec<RemoteFile>,
}

/// A JSON answer larger than this is refused (the revision API of a repository with 100,000 files
/// is a few MiB).
pub(crate) const MAX_JSON: u64 = 16 << 20;
/// Redirects followed within the endpoint's host before giving up (huggingface_hub follows
/// relative redirects of renamed repositories).
const MAX_REDIRECTS: usize = 10;

/// The hub client.
pub struct Hub {
    pub cfg: HubConfig,
    pub cache: Cache,
    pub(crate) agent: ureq::Agent,
}

/// What a HEAD of a file says.
struct FileMeta {
    commit: Option<String>,
    etag: String,
    size: u64,
    /// Where to GET it (the resolve URL, or the storage the hub redirected to).
    url: String,
}

/// The scheme, host and port of a URL, to tell whether a redirect leaves the endpoint's host.
pub(crate) fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default = if scheme == "https" { 443 } else { 80 };
    Some((
        scheme,
        uri.host()?.to_ascii_lowercase(),
        uri.port_u16().unwrap_or(default),
    ))
}

/// `location` resolved against `base` (absolute, or a path on the same origin).
fn join_location(base: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let (scheme, host, port) = origin(base)?;
    if location.starts_with('/') {
        return Some(format!("{scheme}://{host}:{port}{location}"));
    }
    let dir = &base[..base.rfind('/')? + 1];
    Some(format!("{dir}{location}"))
}

pub(crate) fn header(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// An ETag as the hub sends it (`"…"`, perhaps weak `W/"…"`), without the decoration.
fn bare_etag(s: &str) -> String {
    s.trim_start_matches("W/").trim_matches('"').to_string()
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("pairtrain/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            cache: Cache::new(cfg.cache_dir.clone()),
            cfg,
            agent,
        }
    }

    pub fn from_env() -> Self {
        Self::new(HubConfig::from_env())
    }

    fn network_error(&self, what: String, e: impl std::fmt::Display) -> Error {
        Error::Network {
            what,
            endpoint: self.cfg.endpoint.clone(),
            cause: e.to_string(),
            hint: "; set HF_HUB_OFFLINE=1 to use the cache only",
        }
    }

    /// The Authorization header for `url`: the token goes to the endpoint's own host only.
    pub(crate) fn auth_for(&self, url: &str) -> Option<String> {
        let token = self.cfg.token.as_ref()?;
        (origin(url).is_some() && origin(url) == origin(&self.cfg.endpoint))
            .then(|| format!("Bearer {token}"))
    }

    /// Sends a request, following redirects on the same origin; returns the final response and
    /// the URL it came from. A redirect to another origin is returned as it is, for the caller
    /// to judge.
    fn send(
        &self,
        method: &str,
        url: &str,
        range: Option<u64>,
        what: &dyn Fn() -> String,
    ) -> Result<(ureq::http::Response<ureq::Body>, String)> {
        let mut url = url.to_string();
        let mut seen = Vec::new();
        loop {
            let mut req = ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Accept-Encoding", "identity");
            if let Some(a) = self.auth_for(&url) {
                req = req.header("Authorization", a);
            }
            if let Some(from) = range {
                req = req.header("Range", format!("bytes={from}-"));
            }
            let req = req.body(()).map_err(|e| Error::Hub {
                what: what(),
                msg: format!("bad request URL {url}: {e}"),
            })?;
            let resp = self
                .agent
                .run(req)
                .map_err(|e| self.network_error(what(), e))?;
            let status = resp.status().as_u16();
            if !(300..400).contains(&status) {
                return Ok((resp, url));
            }
            let Some(location) = header(&resp, "location") else {
                return Err(Error::Hub {
                    what: what(),
                    msg: format!("HTTP {status} without a Location"),
                });
            };
            let next = join_location(&url, &location).ok_or_else(|| Error::Hub {
                what: what(),
                msg: format!("redirect to an unusable location {location:?}"),
            })?;
            if origin(&next) != origin(&url) {
                return Ok((resp, url));
            }
            seen.push(url);
            if seen.contains(&next) || seen.len() > MAX_REDIRECTS {
                return Err(Error::Hub {
                    what: what(),
                    msg: format!(
                        "redirect loop (more than {MAX_REDIRECTS} redirects, or back to {next})"
                    ),
                });
            }
            url = next;
        }
    }

    /// The error for a status that is not success.
    fn status_error(
        &self,
        resp: &ureq::http::Response<ureq::Body>,
        what: String,
        repo: &Repo,
    ) -> Error {
        let status = resp.status().as_u16();
        let code = header(resp, "x-error-code").unwrap_or_default();
        let msg = match (status, code.as_str()) {
            (401, _) | (403, _) | (_, "RepoNotFound") | (_, "GatedRepo") => format!(
                "HTTP {status}: the {} does not exist, or it is private or gated (set HF_TOKEN \
                 to a token that may read it)",
                repo.describe(None)
            ),
            (_, "RevisionNotFound") => format!(
                "HTTP {status}: the repository has no revision {:?}",
                repo.revision
            ),
            (404, _) => format!("HTTP 404 from {}", self.cfg.endpoint),
            _ => format!("HTTP {status} from {}", self.cfg.endpoint),
        };
        Error::Hub { what, msg }
    }

    /// The commit `repo`'s revision points to and its files. Online: the revision API (and the
    /// ref is recorded in the cache); offline: the cache's ref and snapshot folder.
    pub fn snapshot(&self, repo: &Repo) -> Result<Snapshot> {
        let what = || repo.describe(None);
        let rc = self.cache.repo(repo);
        if self.cfg.offline {
            let commit = rc
                .commit_of(&repo.revision)?
                .ok_or_else(|| Error::NotCached {
                    what: what(),
                    msg: format!(
                        "the cache {} has no snapshot of it; download it once with the network on",
                        self.cfg.cache_dir.display()
                    ),
                })?;
            let files = rc
                .snapshot_files(&commit)?
                .into_iter()
                .map(|name| RemoteFile {
                    name,
                    size: None,
                    sha256: None,
                })
                .collect();
            return Ok(Snapshot { commit, files });
        }
        let url = repo.info_url(&self.cfg.endpoint);
        let (mut resp, _) = self.send("GET", &url, None, &what)?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(Error::Hub {
                what: what(),
                msg: format!(
                    "the revision API redirected to another host ({}); refused",
                    header(&resp, "location").unwrap_or_default()
                ),
            });
        }
        if status != 200 {
            return Err(self.status_error(&resp, what(), repo));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(|e| Error::Hub {
                what: what(),
                msg: format!("revision API answer unreadable or over {MAX_JSON} bytes: {e}"),
            })?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| Error::Hub {
            what: what(),
            msg: format!("revision API answer is not the JSON expected: {e}"),
        })?;
        let commit = v["sha"].as_str().unwrap_or_default().to_string();
        if !names::is_commit(&commit) {
            return Err(repo.unsafe_name(&commit, "the revision API's sha is not a commit hash"));
        }
        let mut files = Vec::new();
        for s in v["siblings"].as_array().into_iter().flatten() {
            let Some(name) = s["rfilename"].as_str() else {
                continue;
            };
            // Refused here, once, for the whole repository: one hostile name fails the listing
            // rather than being skipped silently.
            if let Some(why) = names::unsafe_path_reason(name) {
                return Err(repo.unsafe_name(name, why));
            }
            let lfs = &s["lfs"];
            files.push(RemoteFile {
                name: name.to_string(),
                size: lfs["size"].as_u64().or_else(|| s["size"].as_u64()),
                sha256: lfs["sha256"]
                    .as_str()
                    .filter(|h| h.len() == 64 && names::is_blob_name(h))
                    .map(|h| h.to_ascii_lowercase()),
            });
        }
        rc.write_ref(&repo.revision, &commit)?;
        Ok(Snapshot { commit, files })
    }

    /// HEAD of `file` at `commit`: its ETag, size and where to get it; None when the hub says
    /// the file does not exist there.
    fn head(&self, repo: &Repo, commit: &str, file: &str) -> Result<Option<FileMeta>> {
        let what = || repo.describe(Some(file));
        let url = repo.file_url(&self.cfg.endpoint, commit, file);
        let (resp, at) = self.send("HEAD", &url, None, &what)?;
        let status = resp.status().as_u16();
        if status == 404 && header(&resp, "x-error-code").as_deref() == Some("EntryNotFound") {
            return Ok(None);
        }
        let redirected = (300..400).contains(&status);
        if !(200..300).contains(&status) && !redirected {
            return Err(self.status_error(&resp, what(), repo));
        }
        // An LFS file's own hash and size travel in X-Linked-* (the redirect's ETag is the
        // storage's); a redirect elsewhere is only followed for such a file.
        let linked = header(&resp, "x-linked-etag");
        let url = if redirected {
            let location = header(&resp, "location").unwrap_or_default();
            if linked.is_none() {
                return Err(Error::Hub {
                    what: what(),
                    msg: format!("redirect to another host ({location}) refused"),
                });
            }
            join_location(&at, &location).unwrap_or_default()
        } else {
            at
        };
        let etag = bare_etag(&linked.or_else(|| header(&resp, "etag")).unwrap_or_default());
        if !names::is_blob_name(&etag) {
            return Err(repo.unsafe_name(&etag, "the ETag is not a hex sha1 or sha256"));
        }
        let size = header(&resp, "x-linked-size")
            .or_else(|| header(&resp, "content-length"))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Error::Hub {
                what: what(),
                msg: "the hub did not say the file's size".into(),
            })?;
        Ok(Some(FileMeta {
            commit: header(&resp, "x-repo-commit"),
            etag: etag.to_ascii_lowercase(),
            size,
            url,
        }))
    }

    /// `file` of `repo` at `commit`, from the cache or downloaded into it (unless offline):
    /// Ok(None) when the repository has no such file (recorded in the cache, so that offline
    /// loads know it too). `listed` is the revision API's entry, whose size and hash the download
    /// must match; `progress` is told of every chunk of bytes written.
    pub fn fetch(
        &self,
        repo: &Repo,
        commit: &str,
        file: &str,
        listed: Option<&RemoteFile>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<PathBuf>> {
        let what = || repo.describe(Some(file));
        let rc = self.cache.repo(repo);
        match rc.lookup(commit, file)? {
            Lookup::Present(p) => return Ok(Some(p)),
            Lookup::Absent => return Ok(None),
            Lookup::Unknown if self.cfg.offline => {
                return Err(Error::NotCached {
                    what: what(),
                    msg: format!(
                        "it is not in the cache {} (commit {commit})",
                        self.cfg.cache_dir.display()
                    ),
                })
            }
            Lookup::Unknown => {}
        }
        let Some(meta) = self.head(repo, commit, file)? else {
            rc.mark_absent(commit, file)?;
            return Ok(None);
        };
        if let Some(c) = &meta.commit {
            if c != commit {
                return Err(Error::Hub {
                    what: what(),
                    msg: format!("asked for commit {commit}, the hub answered for {c}"),
                });
            }
        }
        if let Some(l) = listed {
            if l.size.is_some_and(|s| s != meta.size) {
                return Err(Error::Hub {
                    what: what(),
                    msg: format!(
                        "the listing says {} bytes, the file is {} bytes",
                        l.size.unwrap_or_default(),
                        meta.size
                    ),
                });
            }
            if let Some(h) = &l.sha256 {
                if h != &meta.etag {
                    return Err(Error::Hub {
                        what: what(),
                        msg: format!(
                            "the listing says sha256 {h}, the hub's ETag is {}",
                            meta.etag
                        ),
                    });
                }
            }
        }
        let blob = rc.blob_path(&meta.etag)?;
        let _lock = rc.lock_blob(&meta.etag)?;
        if !blob.is_file() {
            self.download(repo, file, &meta, progress)?;
        }
        Ok(Some(rc.link(commit, file, &meta.etag)?))
    }

    /// GETs a file into `blobs/<etag>.incomplete` (resuming what is there), checks its size and
    /// hash, and renames it to `blobs/<etag>`.
    fn download(
        &self,
        repo: &Repo,
        file: &str,
        meta: &FileMeta,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let what = || repo.describe(Some(file));
        let rc = self.cache.repo(repo);
        let part = rc.incomplete_path(&meta.etag)?;
        let blob = rc.blob_path(&meta.etag)?;
        let dir = part.parent().expect("blobs/ is a parent");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part)
            .map_err(|e| Error::io(&part, e))?;
        let mut have = out.metadata().map_err(|e| Error::io(&part, e))?.len();
        if have > meta.size {
            have = 0;
        }
        let fail = |e: Error| {
            // Kept only when the connection broke (resumable); anything else starts over.
            if !matches!(e, Error::Network { .. }) {
                let _ = std::fs::remove_file(&part);
            }
            e
        };
        let (mut resp, _) = self
            .send("GET", &meta.url, (have > 0).then_some(have), &what)
            .map_err(fail)?;
        match resp.status().as_u16() {
            206 => {}
            200 => have = 0,
            s if (300..400).contains(&s) => {
                return Err(fail(Error::Hub {
                    what: what(),
                    msg: format!(
                        "the file's storage redirected again ({}); refused",
                        header(&resp, "location").unwrap_or_default()
                    ),
                }))
            }
            _ => return Err(fail(self.status_error(&resp, what(), repo))),
        }
        out.set_len(have).map_err(|e| fail(Error::io(&part, e)))?;
        let mut hasher = Hasher::for_etag(&meta.etag, meta.size);
        out.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| fail(Error::io(&part, e)))?;
        let mut kept = (&mut out).take(have);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = kept.read(&mut buf).map_err(|e| fail(Error::io(&part, e)))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        progress(have);
        let mut body = resp.body_mut().as_reader();
        let mut got = have;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return Err(fail(self.network_error(what(), e))),
            };
            got += n as u64;
            if got > meta.size {
                return Err(fail(Error::Hub {
                    what: what(),
                    msg: format!(
                        "the server sent more than the {} bytes it announced",
                        meta.size
                    ),
                }));
            }
            out.write_all(&buf[..n])
                .map_err(|e| fail(Error::io(&part, e)))?;
            hasher.update(&buf[..n]);
            progress(n as u64);
        }
        if got != meta.size {
            return Err(fail(self.network_error(
                what(),
                format!("the transfer ended after {got} of {} bytes", meta.size),
            )));
        }
        out.sync_all().map_err(|e| fail(Error::io(&part, e)))?;
        if let Some((kind, want, got)) = hasher.mismatch(&meta.etag) {
            return Err(fail(Error::Hub {
                what: what(),
                msg: format!("corrupted download: {kind} {got}, the hub names it {want}"),
            }));
        }
        std::fs::rename(&part, &blob).map_err(|e| fail(Error::io(&blob, e)))
    }

    /// Whether a cached file still has the content its snapshot entry names: its blob's hash (and
    /// size) checked again. Returns the problem, or None.
    pub fn verify_cached(&self, repo: &Repo, commit: &str, file: &str) -> Result<Option<String>> {
        let rc = self.cache.repo(repo);
        let Lookup::Present(p) = rc.lookup(commit, file)? else {
            return Ok(Some("not in the cache".into()));
        };
        let target = std::fs::canonicalize(&p).map_err(|e| Error::io(&p, e))?;
        let etag = target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !names::is_blob_name(&etag) {
            // A copy rather than a link (no symlinks here): nothing names the content.
            return Ok(None);
        }
        let len = std::fs::metadata(&target)
            .map_err(|e| Error::io(&target, e))?
            .len();
        let mut hasher = Hasher::for_etag(&etag, len);
        let mut f = std::fs::File::open(&target).map_err(|e| Error::io(&target, e))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(&target, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher
            .mismatch(&etag)
            .map(|(kind, want, got)| format!("{kind} of the cached blob is {got}, not {want}")))
    }

    /// Removes a file's blob and snapshot entry, so that the next `fetch` downloads it again.
    pub fn evict(&self, repo: &Repo, commit: &str, file: &str) -> Result<()> {
        let rc = self.cache.repo(repo);
        if let Lookup::Present(p) = rc.lookup(commit, file)? {
            if let Ok(target) = std::fs::canonicalize(&p) {
                let _ = std::fs::remove_file(target);
            }
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }
}

/// The hash the hub names a file by: sha256 of the content for LFS files (a 64-digit ETag), git's
/// blob sha1 (`blob <len>\0` + content) for the others (40 digits).
enum Hasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl Hasher {
    fn for_etag(etag: &str, size: u64) -> Self {
        if etag.len() == 64 {
            Hasher::Sha256(sha2::Sha256::new())
        } else {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            Hasher::GitSha1(h)
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::GitSha1(h) => h.update(b),
        }
    }

    /// (what, expected, got) when the content's hash is not `etag`.
    fn mismatch(self, etag: &str) -> Option<(&'static str, String, String)> {
        let (kind, got) = match self {
            Hasher::Sha256(h) => ("sha256", hex(&h.finalize())),
            Hasher::GitSha1(h) => ("git sha1", hex(&h.finalize())),
        };
        (!got.eq_ignore_ascii_case(etag)).then(|| (kind, etag.to_string(), got))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_and_origins() {
        assert_eq!(
            join_location("http://h:8/a/b/c", "/x/y").as_deref(),
            Some("http://h:8/x/y")
        );
        assert_eq!(
            join_location("http://h:8/a/b/c", "d").as_deref(),
            Some("http://h:8/a/b/d")
        );
        assert_eq!(
            origin("https://huggingface.co/x"),
            origin("https://HuggingFace.co:443/y")
        );
        assert_ne!(
            origin("http://127.0.0.1:5/x"),
            origin("http://127.0.0.2:5/x")
        );
        assert_eq!(bare_etag("W/\"abc\""), "abc");
    }

    #[test]
    fn hashes_are_the_hubs() {
        // git hash-object of "hello\n".
        let mut h = Hasher::for_etag("ce013625030ba8dba906f756967f9e9ca394464a", 6);
        h.update(b"hello\n");
        assert!(h
            .mismatch("ce013625030ba8dba906f756967f9e9ca394464a")
            .is_none());
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        let mut h = Hasher::for_etag(sha, 6);
        h.update(b"hello\n");
        assert!(h.mismatch(sha).is_none());
        let mut h = Hasher::for_etag(sha, 6);
        h.update(b"hellO\n");
        assert!(h.mismatch(sha).is_some());
    }
}
