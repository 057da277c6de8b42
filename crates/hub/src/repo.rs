//! A repository on the hub (a model or a dataset at a revision), and `hf://` references to its
//! files as recipes write them.

use crate::error::Error;
use crate::names;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    /// The word of the hub's URLs and of cache folder names (`models--…`).
    pub(crate) fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }
}

/// A repository at a revision (a branch, a tag or a commit). Built only through `Repo::new`,
/// which checks the id and the revision, so both are safe in URLs and cache paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repo {
    pub kind: RepoKind,
    pub id: String,
    pub revision: String,
}

impl Repo {
    pub fn new(kind: RepoKind, id: &str, revision: &str) -> Result<Self, Error> {
        let repo = Self {
            kind,
            id: id.to_string(),
            revision: revision.to_string(),
        };
        if let Some(why) = names::bad_repo_id(id) {
            return Err(repo.unsafe_name(id, why));
        }
        // A revision names a file under refs/ (branches like `refs/pr/1` are nested).
        if let Some(why) = names::unsafe_path_reason(revision) {
            return Err(repo.unsafe_name(revision, why));
        }
        Ok(repo)
    }

    pub fn model(id: &str) -> Result<Self, Error> {
        Self::new(RepoKind::Model, id, "main")
    }

    /// `models--org--name`, the repository's folder in the cache.
    pub fn cache_folder_name(&self) -> String {
        format!("{}--{}", self.kind.plural(), self.id.replace('/', "--"))
    }

    /// "model org/name@main" (and a file), for messages.
    pub fn describe(&self, file: Option<&str>) -> String {
        let kind = match self.kind {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        };
        match file {
            Some(f) => format!("{kind} {}@{}: {f}", self.id, self.revision),
            None => format!("{kind} {}@{}", self.id, self.revision),
        }
    }

    pub(crate) fn unsafe_name(&self, name: &str, why: &'static str) -> Error {
        Error::UnsafeName {
            repo: self.id.clone(),
            revision: self.revision.clone(),
            name: name.to_string(),
            why,
        }
    }

    /// The revision API: commit and file list at `revision`.
    pub(crate) fn info_url(&self, endpoint: &str) -> String {
        format!(
            "{endpoint}/api/{}/{}/revision/{}?blobs=true",
            self.kind.plural(),
            self.id,
            encode(&self.revision, false)
        )
    }

    /// Where the hub serves `file` at `revision` (or at a commit).
    pub(crate) fn file_url(&self, endpoint: &str, revision: &str, file: &str) -> String {
        let prefix = match self.kind {
            RepoKind::Model => String::new(),
            RepoKind::Dataset => "datasets/".into(),
        };
        format!(
            "{endpoint}/{prefix}{}/resolve/{}/{}",
            self.id,
            encode(revision, false),
            encode(file, true)
        )
    }
}

/// Percent-encoding of a URL path part: unreserved characters kept (and `/` when `keep_slash`),
/// everything else as %XX of its UTF-8 bytes.
pub(crate) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A reference to files of a repository, as recipes write it (huggingface_hub's `HfFileSystem`
/// form): `hf://datasets/ORG/NAME[@REVISION]/PATH` for a dataset, `hf://ORG/NAME[@REVISION]/PATH`
/// (or `hf://models/…`) for a model. PATH may be a glob (`*`, `?`, `[…]`, `**`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfRef {
    pub repo: Repo,
    pub path: String,
}

impl HfRef {
    /// None when `s` does not start with `hf://`; an error when it does but is malformed.
    pub fn parse(s: &str) -> Option<Result<Self, String>> {
        let rest = s.strip_prefix("hf://")?;
        Some(Self::parse_rest(rest).map_err(|e| format!("{s}: {e}")))
    }

    fn parse_rest(rest: &str) -> Result<Self, String> {
        let (kind, rest) = if let Some(r) = rest.strip_prefix("datasets/") {
            (RepoKind::Dataset, r)
        } else if let Some(r) = rest.strip_prefix("models/") {
            (RepoKind::Model, r)
        } else {
            (RepoKind::Model, rest)
        };
        let mut parts = rest.splitn(3, '/');
        let (org, name_rev, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(o), Some(n), Some(p)) if !p.is_empty() => (o, n, p),
            _ => {
                return Err(
                    "expected hf://datasets/ORG/NAME[@REVISION]/PATH (a file or a glob)".into(),
                )
            }
        };
        let (name, revision) = match name_rev.split_once('@') {
            // A revision with `/` (refs/pr/1) is written URL-encoded, as HfFileSystem does.
            Some((n, r)) => (n, r.replace("%2F", "/").replace("%2f", "/")),
            None => (name_rev, "main".to_string()),
        };
        let repo =
            Repo::new(kind, &format!("{org}/{name}"), &revision).map_err(|e| e.to_string())?;
        // A glob is matched against the listing; a plain path must itself be safe.
        let is_glob = path.contains(['*', '?', '[']);
        if !is_glob {
            if let Some(why) = names::unsafe_path_reason(path) {
                return Err(repo.unsafe_name(path, why).to_string());
            }
        } else if path.split('/').any(|c| c == ".." || c == ".") || path.starts_with('/') {
            return Err(repo
                .unsafe_name(path, "has a `.` or `..` component")
                .to_string());
        }
        Ok(Self {
            repo,
            path: path.to_string(),
        })
    }

    pub fn is_glob(&self) -> bool {
        self.path.contains(['*', '?', '['])
    }

    /// The files of `listing` this reference names, sorted: the path itself, or the glob's
    /// matches (`*` within one folder, `**` across folders).
    pub fn select<'a>(&self, listing: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = if self.is_glob() {
            let pattern = match glob::Pattern::new(&self.path) {
                Ok(p) => p,
                Err(_) => return Vec::new(),
            };
            let opts = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: true,
            };
            listing
                .into_iter()
                .filter(|f| pattern.matches_with(f, opts))
                .map(str::to_string)
                .collect()
        } else {
            listing
                .into_iter()
                .filter(|f| *f == self.path)
                .map(str::to_string)
                .collect()
        };
        out.sort();
        out.dedup();
        out
    }
}

impl std::fmt::Display for HfRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.repo.kind {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
        };
        let rev = if self.repo.revision == "main" {
            String::new()
        } else {
            format!("@{}", self.repo.revision.replace('/', "%2F"))
        };
        write!(f, "hf://{kind}{}{rev}/{}", self.repo.id, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_select() {
        let r = HfRef::parse(
            "hf://datasets/sentence-transformers/embedding-training-data/gooaq_pairs.jsonl.gz",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.repo.kind, RepoKind::Dataset);
        assert_eq!(r.repo.id, "sentence-transformers/embedding-training-data");
        assert_eq!(r.repo.revision, "main");
        assert_eq!(r.path, "gooaq_pairs.jsonl.gz");
        assert_eq!(
            r.to_string(),
            "hf://datasets/sentence-transformers/embedding-training-data/gooaq_pairs.jsonl.gz"
        );

        let g = HfRef::parse("hf://datasets/org/set@refs%2Fpr%2F1/data/*.jsonl.gz")
            .unwrap()
            .unwrap();
        assert_eq!(g.repo.revision, "refs/pr/1");
        let listing = [
            "data/a.jsonl.gz",
            "data/b.jsonl.gz",
            "data/sub/c.jsonl.gz",
            "README.md",
        ];
        assert_eq!(
            g.select(listing),
            vec!["data/a.jsonl.gz", "data/b.jsonl.gz"]
        );
        let deep = HfRef::parse("hf://datasets/org/set/**/*.jsonl.gz")
            .unwrap()
            .unwrap();
        assert_eq!(deep.select(listing).len(), 3);

        let m = HfRef::parse("hf://org/model/config.json").unwrap().unwrap();
        assert_eq!(m.repo.kind, RepoKind::Model);
        assert!(HfRef::parse("data/x.jsonl").is_none());
        for bad in [
            "hf://datasets/org",
            "hf://datasets/org/set",
            "hf://datasets/org/set/../../x",
            "hf://datasets/org/set/a/../../*.gz",
            "hf://datasets/../set/x",
            "hf://datasets/org/set@../../x/file",
        ] {
            assert!(HfRef::parse(bad).unwrap().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn urls_are_encoded() {
        let r = Repo::new(RepoKind::Dataset, "org/set", "refs/pr/1").unwrap();
        assert_eq!(
            r.file_url("http://h", &r.revision, "a b/c#.txt"),
            "http://h/datasets/org/set/resolve/refs%2Fpr%2F1/a%20b/c%23.txt"
        );
        assert_eq!(
            r.info_url("http://h"),
            "http://h/api/datasets/org/set/revision/refs%2Fpr%2F1?blobs=true"
        );
        assert_eq!(r.cache_folder_name(), "datasets--org--set");
    }
}
