//! Names that come from outside — a repository's file listing, module paths in its modules.json,
//! commit hashes and ETags in its headers, revisions and repository ids in a recipe — checked before
//! any of them becomes part of a path. The rule is huggingface_hub's (a file must land inside the
//! repository's snapshot folder), made stricter: a name is a relative path of plain components, so
//! that it cannot escape on any platform or filesystem, whatever is already on disk.

/// Why `name` cannot be a relative path inside a repository, or None when it can: non-empty, at
/// most 1,024 bytes, `/`-separated components that are each non-empty, not `.` or `..`, and free
/// of backslashes, NULs and other control characters; not absolute, no drive prefix (`C:`).
pub fn unsafe_path_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > 1024 {
        return Some("longer than 1,024 bytes");
    }
    if name.starts_with('/') {
        return Some("absolute");
    }
    if name.contains('\\') {
        return Some("contains a backslash");
    }
    if name.chars().any(|c| c.is_control()) {
        return Some("contains a NUL or control character");
    }
    let first = name.split('/').next().unwrap_or("");
    if first.len() >= 2 && first.as_bytes()[1] == b':' && first.as_bytes()[0].is_ascii_alphabetic()
    {
        return Some("has a drive prefix");
    }
    for c in name.split('/') {
        match c {
            "" => return Some("has an empty component (`//` or a trailing `/`)"),
            "." | ".." => return Some("has a `.` or `..` component"),
            _ => {}
        }
    }
    None
}

/// Why `id` is not a repository id (`name` or `org/name`, letters, digits, `-`, `_`, `.`; no `--`
/// or `..`; at most 96 characters, as huggingface_hub's `validate_repo_id` says), or None.
pub fn bad_repo_id(id: &str) -> Option<&'static str> {
    if id.is_empty() || id.len() > 96 {
        return Some("a repository id has 1 to 96 characters");
    }
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() > 2 {
        return Some("a repository id is `name` or `org/name`");
    }
    for p in &parts {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Some("a repository id has letters, digits, `-`, `_` and `.` only");
        }
        if p.starts_with(['-', '.']) || p.ends_with(['-', '.']) {
            return Some("a repository id's parts do not start or end with `-` or `.`");
        }
    }
    if id.contains("--") || id.contains("..") {
        return Some("a repository id has no `--` or `..`");
    }
    None
}

/// Whether `s` is a full commit hash (40 lowercase hex digits), as the hub names snapshots.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` can name a blob in the cache: the hub's ETags are a sha256 (LFS files) or a git
/// sha1 (the others) in hex; anything else from a server is refused rather than used as a name.
pub fn is_blob_name(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_escape_are_refused() {
        for ok in [
            "config.json",
            "1_Pooling/config.json",
            "data/train-00000-of-00002.parquet",
            "a b/ü.txt",
            "..hidden/x",
            "x..y",
        ] {
            assert_eq!(unsafe_path_reason(ok), None, "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\..\\b",
            "C:/Windows",
            "c:x",
            "a\0b",
            "a\nb",
            "../../../../../../../../tmp/trav/escaped/config.json",
        ] {
            assert!(unsafe_path_reason(bad).is_some(), "{bad:?} accepted");
        }
        assert!(unsafe_path_reason(&"a/".repeat(600)).is_some());
    }

    #[test]
    fn repository_ids_commits_and_blob_names() {
        for ok in [
            "gpt2",
            "org/name",
            "sentence-transformers/all-MiniLM-L6-v2",
            "a.b_c/d-e",
        ] {
            assert_eq!(bad_repo_id(ok), None, "{ok}");
        }
        for bad in [
            "", "a/b/c", "../x", "org/..", "a--b/c", "-a/b", "a/b.", "a b/c", "a/",
        ] {
            assert!(bad_repo_id(bad).is_some(), "{bad:?} accepted");
        }
        assert!(is_commit("4f7e2b0c9d1a3e5f7a9b0c2d4e6f8a0b1c3d5e7f"));
        assert!(!is_commit("4F7E2B0C9D1A3E5F7A9B0C2D4E6F8A0B1C3D5E7F"));
        assert!(!is_commit("main"));
        assert!(!is_commit("../../../../../../../../../../../../../../x"));
        assert!(is_blob_name(&"a".repeat(64)));
        assert!(!is_blob_name("../../x"));
        assert!(!is_blob_name("\"abc\""));
    }
}
