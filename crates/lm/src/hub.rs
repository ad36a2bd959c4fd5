//! Hugging Face model ids, `org/name[@revision]`, resolved from the local Hugging Face
//! cache as `huggingface_hub` lays it out (ours; issue 27): `<cache>/models--org--name/`
//! with `refs/<revision>` holding a commit hash and `snapshots/<commit>/` holding the files.
//! The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
//! else `~/.cache/huggingface/hub`, as `huggingface_hub` looks for it. Nothing here touches
//! the network: [`Download`] lays fetched files out in the same cache for a caller that
//! fetches them (`fairrec_serve::hub`, behind `--download`).

use crate::error::{LmError, Result};
use std::path::{Path, PathBuf};

/// A model id resolved to a snapshot directory of the cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubModel {
    /// `org/name`.
    pub id: String,
    /// What was asked: a branch or tag (`main` by default) or a commit.
    pub revision: String,
    /// The commit the revision resolved to (the snapshot's name).
    pub commit: String,
    /// `<cache>/models--org--name/snapshots/<commit>`.
    pub path: PathBuf,
}

/// The Hugging Face cache directory, from the environment as `huggingface_hub` reads it.
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("HF_HUB_CACHE") {
        return d;
    }
    if let Some(d) = var("HF_HOME") {
        return d.join("hub");
    }
    let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")));
    cache
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("huggingface")
        .join("hub")
}

/// `s` read as a model id: `org/name` or `org/name@revision`, each part of letters, digits,
/// `-`, `_` and `.` (not starting with `.`), and not a path that exists. Returns the id and
/// the revision (`main` when none is given).
pub fn parse_id(s: &str) -> Option<(String, String)> {
    if Path::new(s).exists() {
        return None;
    }
    let (id, rev) = match s.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (s, "main"),
    };
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let (org, name) = id.split_once('/')?;
    let rev_ok = !rev.is_empty()
        && !rev.contains("..")
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    (part(org) && part(name) && rev_ok).then(|| (id.to_string(), rev.to_string()))
}

/// The cache directory of model `id` (`models--org--name`).
pub fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Resolve `id` at `revision` in `cache`: the commit `refs/<revision>` names, or
/// `revision` itself when it is a commit with a snapshot. An error, naming where it looked
/// and what the cache holds, when the model or the revision is not there.
pub fn resolve(cache: &Path, id: &str, revision: &str) -> Result<HubModel> {
    let repo = repo_dir(cache, id);
    let missing = |message: String| LmError::Model {
        path: repo.clone(),
        message,
    };
    if !repo.is_dir() {
        return Err(missing(format!(
            "{id} is not in the Hugging Face cache {} (HF_HUB_CACHE, HF_HOME): fetch it with `huggingface-cli download {id}`, or give audit, score or train --download",
            cache.display()
        )));
    }
    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(repo.join(d))
            .into_iter()
            .flatten()
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        v
    };
    let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
        Ok(c) => c.trim().to_string(),
        Err(_) if is_commit(revision) => revision.to_string(),
        Err(_) => {
            return Err(missing(format!(
                "{id}: no revision `{revision}` in the cache (refs: {}; snapshots: {})",
                names("refs").join(", "),
                names("snapshots").join(", ")
            )))
        }
    };
    let path = repo.join("snapshots").join(&commit);
    if !path.is_dir() {
        return Err(missing(format!(
            "{id}@{revision}: commit {commit} has no snapshot in the cache (snapshots: {})",
            names("snapshots").join(", ")
        )));
    }
    Ok(HubModel {
        id: id.into(),
        revision: revision.into(),
        commit,
        path,
    })
}

/// Files a download fetches of a model repository: the configuration, tokenizer and
/// safetensors weights fairrec loads (not other frameworks' weights or GGUF variants).
pub fn wanted(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.ends_with(".json")
        || name.ends_with(".safetensors")
        || name.ends_with(".model")
        || name == "merges.txt"
        || name == "vocab.txt"
}

/// A snapshot being written into the cache: files land in `snapshots/<commit>/` (each
/// written whole, through a temporary name) and `refs/<revision>` is written last, so an
/// interrupted download is never resolved.
pub struct Download {
    pub model: HubModel,
    repo: PathBuf,
}

impl Download {
    /// Start writing `id` at `commit` (what `revision` resolved to) into `cache`.
    pub fn begin(cache: &Path, id: &str, revision: &str, commit: &str) -> Result<Download> {
        if !is_commit(commit) {
            return Err(LmError::Invalid(format!(
                "{id}@{revision}: `{commit}` is not a commit hash"
            )));
        }
        let repo = repo_dir(cache, id);
        let path = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&path).map_err(|source| LmError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Download {
            model: HubModel {
                id: id.into(),
                revision: revision.into(),
                commit: commit.into(),
                path,
            },
            repo,
        })
    }

    /// Write one file of the snapshot (`name` relative to the repository root).
    pub fn file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        if name.split('/').any(|p| p.is_empty() || p == "..") {
            return Err(LmError::Invalid(format!(
                "{}: refusing the file name `{name}`",
                self.model.id
            )));
        }
        let path = self.model.path.join(name);
        let io = |source| LmError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("incomplete");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Finish: the revision now resolves to this snapshot.
    pub fn commit(self) -> Result<HubModel> {
        let refs = self.repo.join("refs");
        let path = refs.join(&self.model.revision);
        let io = |source| LmError::Io {
            path: path.clone(),
            source,
        };
        if !is_commit(&self.model.revision) {
            std::fs::create_dir_all(path.parent().unwrap_or(&refs)).map_err(io)?;
            std::fs::write(&path, &self.model.commit).map_err(io)?;
        }
        Ok(self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn ids_and_paths_are_told_apart() {
        let id = |s: &str| parse_id(s).map(|(a, b)| format!("{a}@{b}"));
        assert_eq!(
            id("Qwen/Qwen2-0.5B-Instruct").as_deref(),
            Some("Qwen/Qwen2-0.5B-Instruct@main")
        );
        assert_eq!(
            id("org/m.v2@refs/pr/1").as_deref(),
            Some("org/m.v2@refs/pr/1")
        );
        for not in [
            "model.gguf",
            "a/b/c",
            "/abs/path",
            "./org/x",
            "org/.hidden",
            "org/x@",
            "org/x@../..",
            "org/x y",
        ] {
            assert_eq!(id(not), None, "{not}");
        }
        // An existing path is a path.
        assert_eq!(id(env!("CARGO_MANIFEST_DIR")), None);
        assert_eq!(id("src/hub.rs"), None);
    }
}
