//! `ORG/NAME[@REVISION]`: a model repository on the Hub and the revision wanted.

use std::fmt;

/// The branch a name without `@REVISION` means.
pub const DEFAULT_REVISION: &str = "main";

/// A model repository and a revision (branch, tag or commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    /// `ORG/NAME`.
    pub repo: String,
    /// Branch, tag or 40-hex commit; default `main`.
    pub revision: String,
}

impl RepoId {
    /// Reads `ORG/NAME` or `ORG/NAME@REVISION`; `None` unless both parts are made of the
    /// characters the Hub allows in names (letters, digits, `-`, `_`, `.`), neither starts
    /// with `.` or `-`, and the revision, if any, is not empty.
    pub fn parse(spec: &str) -> Option<RepoId> {
        let (name, revision) = match spec.split_once('@') {
            Some((name, rev)) if !rev.is_empty() && !rev.contains("..") => (name, rev),
            Some(_) => return None,
            None => (spec, DEFAULT_REVISION),
        };
        let (org, model) = name.split_once('/')?;
        if !valid_part(org) || !valid_part(model) {
            return None;
        }
        Some(RepoId {
            repo: name.to_string(),
            revision: revision.to_string(),
        })
    }

    /// `ORG/NAME` at `revision`.
    pub fn new(repo: &str, revision: &str) -> Option<RepoId> {
        RepoId::parse(repo).map(|id| RepoId {
            repo: id.repo,
            revision: revision.to_string(),
        })
    }
}

fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 96
        && !part.starts_with(['.', '-'])
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.revision == DEFAULT_REVISION {
            write!(f, "{}", self.repo)
        } else {
            write!(f, "{}@{}", self.repo, self.revision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_revisions_parse_and_paths_do_not() {
        let id = RepoId::parse("openai/clip-vit-base-patch32").unwrap();
        assert_eq!(id.repo, "openai/clip-vit-base-patch32");
        assert_eq!(id.revision, "main");
        let id = RepoId::parse("laion/CLIP-ViT-B-32-laion2B-s34B-b79K@v1.0").unwrap();
        assert_eq!(id.revision, "v1.0");
        for not_a_name in [
            "model", "./a/b", "/a/b", "a/b/c", "a/", "/b", "../x", "a/b@", "a b/c", "a/.b",
        ] {
            assert_eq!(RepoId::parse(not_a_name), None, "{not_a_name}");
        }
    }
}
