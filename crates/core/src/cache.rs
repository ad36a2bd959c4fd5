//! A run's cache of finished work: one JSON line per answer, `{"key": sha256 hex,
//! "response": {...}}`, appended (and flushed) as each answer arrives, so that a rerun of
//! a killed run finds everything the killed one finished and does only the rest. A line cut
//! short by a kill is ignored (and the next line starts fresh). Used for a served model's
//! answers (`responses.jsonl`: the key hashes the endpoint URL and the request body, which
//! names the served model) and for an audit's generated reasoning (`generations.jsonl`).

/// The cache file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct CacheError {
    pub path: PathBuf,
    pub message: String,
}

type Result<T> = std::result::Result<T, CacheError>;

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct Cache {
    path: PathBuf,
    answers: HashMap<String, serde_json::Value>,
    /// `None`: answers are not kept (a one-off `fairrec score`).
    file: Option<Mutex<std::fs::File>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    key: String,
    response: serde_json::Value,
}

/// The cache key of a request: sha256 of the URL (or what else names the source) and the
/// body.
pub fn key(url: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// Open (or start) the cache file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let err = |e: std::io::Error| CacheError {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(err(e)),
        };
        let mut answers = HashMap::new();
        for line in text.lines() {
            if let Ok(l) = serde_json::from_str::<Line>(line) {
                answers.insert(l.key, l.response);
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        if !text.is_empty() && !text.ends_with('\n') {
            file.write_all(b"\n").map_err(err)?;
        }
        Ok(Cache {
            path: path.to_path_buf(),
            answers,
            file: Some(Mutex::new(file)),
        })
    }

    /// A cache that keeps nothing.
    pub fn none() -> Self {
        Cache {
            path: PathBuf::new(),
            answers: HashMap::new(),
            file: None,
        }
    }

    /// Answers already held.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.answers.get(key)
    }

    /// Append an answer (one write of one whole line, flushed to the OS).
    pub fn put(&self, key: &str, response: &serde_json::Value) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut line = serde_json::to_string(&Line {
            key: key.to_string(),
            response: response.clone(),
        })
        .unwrap_or_default();
        line.push('\n');
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(line.as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| CacheError {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_survive_reopening_and_a_cut_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("responses.jsonl");
        let c = Cache::open(&p).unwrap();
        c.put("a", &serde_json::json!({"x": 1})).unwrap();
        c.put("b", &serde_json::json!({"x": 2})).unwrap();
        drop(c);
        // A kill in the middle of a line.
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("{\"key\":\"c\",\"resp");
        std::fs::write(&p, text).unwrap();
        let c = Cache::open(&p).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b"), Some(&serde_json::json!({"x": 2})));
        c.put("c", &serde_json::json!({"x": 3})).unwrap();
        drop(c);
        let c = Cache::open(&p).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("c"), Some(&serde_json::json!({"x": 3})));
        assert_ne!(key("u", "{}"), key("v", "{}"));
    }
}
