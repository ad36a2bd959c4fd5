//! Predictions JSONL: one line per scored prompt,
//! `{"sample_id": str, "variant": str, "label": bool, "p_yes": float}`, optionally
//! `"attributes"` (the sample's true sensitive attributes), `"user_id"`, `"target"`
//! (item id or title) and `"history"` (item ids or titles).

use crate::error::{MetricsError, Result};
use fairrec_core::Variant;
use std::collections::BTreeMap;
use std::path::Path;

/// One scored prompt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    pub sample_id: String,
    pub variant: Variant,
    pub label: bool,
    pub p_yes: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<String>>,
}

/// Parse predictions from JSONL text; `path` names the source in errors.
pub fn parse_predictions(path: &Path, text: &str) -> Result<Vec<Prediction>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| MetricsError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let p: Prediction =
            serde_json::from_str(line).map_err(|e| err(format!("invalid prediction: {e}")))?;
        if !p.p_yes.is_finite() || !(0.0..=1.0).contains(&p.p_yes) {
            return Err(err(format!(
                "p_yes must be a probability in [0, 1], got {}",
                p.p_yes
            )));
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(MetricsError::Invalid(format!(
            "{}: no predictions",
            path.display()
        )));
    }
    Ok(out)
}

/// Read a predictions JSONL file.
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>> {
    let bytes = std::fs::read(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        MetricsError::Line {
            path: path.to_path_buf(),
            line,
            message: "not UTF-8".into(),
        }
    })?;
    parse_predictions(path, text)
}
