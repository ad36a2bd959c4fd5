//! One prepared sample (a line of `train.jsonl`, `valid.jsonl` or `test.jsonl`) and the
//! JSONL reading/writing of samples.

use crate::error::{DataError, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// A user's history in one of the two papers' forms.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum History {
    /// Paper A: liked and disliked items before the target, oldest first.
    Split {
        history_liked: Vec<String>,
        history_disliked: Vec<String>,
        history_liked_ids: Vec<String>,
        history_disliked_ids: Vec<String>,
    },
    /// Paper B: the items before the target, oldest first.
    Sequence {
        history: Vec<String>,
        history_ids: Vec<String>,
    },
}

/// One prepared sample: a user, their history, one target item and the label.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Unique within a prepared dataset.
    pub sample_id: String,
    /// The dataset's own user id.
    pub user_id: String,
    /// True sensitive attributes, as the prompts word them (`gender`: `male`/`female`, ...).
    pub attributes: BTreeMap<String, String>,
    /// Non-sensitive attributes (occupation, zip, ...); not used by the papers' prompts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profile: BTreeMap<String, String>,
    /// The profile fields every prompt of this sample states, in the order of `fairrec data
    /// prepare --profile` (empty by default: the papers' prompts state none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stated_profile: Vec<(String, String)>,
    /// The noun for an item (`movie`, `sushi`, `book`).
    pub item_type: String,
    /// Target item title.
    pub target: String,
    /// Target item id in the raw dataset.
    pub target_id: String,
    /// The user's rating of the target.
    pub target_rating: f32,
    /// Will the user like the target (rating above the protocol's threshold)?
    pub label: bool,
    #[serde(flatten)]
    pub history: History,
}

impl Sample {
    /// All history item ids, oldest first within each list (liked first for paper A).
    pub fn history_ids(&self) -> Vec<&str> {
        match &self.history {
            History::Split {
                history_liked_ids,
                history_disliked_ids,
                ..
            } => history_liked_ids
                .iter()
                .chain(history_disliked_ids)
                .map(String::as_str)
                .collect(),
            History::Sequence { history_ids, .. } => {
                history_ids.iter().map(String::as_str).collect()
            }
        }
    }
}

/// Serialize samples as JSONL bytes (one object per line, `\n` endings).
pub fn to_jsonl(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 512);
    for s in samples {
        serde_json::to_writer(&mut out, s).expect("a Sample always serializes");
        out.push(b'\n');
    }
    out
}

/// Read a JSONL file of samples; an invalid line is an error naming file and line.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>> {
    let bytes = crate::text::read_bytes(path, "prepared samples (run `fairrec data prepare`)")?;
    parse_samples(path, &bytes)
}

/// Parse JSONL sample bytes read from `path` (named in errors).
pub fn parse_samples(path: &Path, bytes: &[u8]) -> Result<Vec<Sample>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DataError::Encoding {
            path: path.into(),
            line,
            message: "not UTF-8".into(),
        }
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let s: Sample = serde_json::from_str(line).map_err(|e| DataError::Json {
            path: path.into(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(s);
    }
    Ok(out)
}

/// Write `bytes` to `path` atomically: a temporary file beside it, then a rename, so a
/// failure never leaves a half-written file in place of a good one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    fairrec_core::fs::write_atomic(path, bytes).map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `files` (name, bytes) into `dir` as one set ([`fairrec_core::stage`]): they
/// replace the files named `outputs` present there, all at once, and a kill at any point
/// leaves either the old set or the new one. Other files in `dir` stay. The caller holds
/// `dir`'s [`fairrec_core::fs::RunLock`] where another process may write there.
pub fn write_set(dir: &Path, outputs: &[&str], files: &[(&str, &[u8])]) -> Result<()> {
    let write = |source| DataError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write)?;
    let old = outputs
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.exists())
        .collect();
    let set = fairrec_core::stage::Staged::begin(dir, old).map_err(write)?;
    for (name, bytes) in files {
        write_atomic(&set.path(name), bytes)?;
    }
    set.commit().map_err(write)
}
