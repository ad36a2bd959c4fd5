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
    /// From a served model whose listed log-probabilities missed an answer token:
    /// `p_yes` is a bound, not the value (`fairrec_serve::client`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub censored: bool,
}

/// A line as read, borrowing from the text (the variant is parsed once per distinct name).
#[derive(serde::Deserialize)]
struct RawLine<'a> {
    #[serde(borrow)]
    sample_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    variant: std::borrow::Cow<'a, str>,
    label: bool,
    p_yes: f64,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    history: Option<Vec<String>>,
    #[serde(default)]
    censored: bool,
}

fn parse_chunk(path: &Path, text: &str, first_line: usize) -> Result<Vec<(usize, Prediction)>> {
    let mut out = Vec::new();
    let mut names: std::collections::HashMap<String, Variant> = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| MetricsError::Line {
            path: path.to_path_buf(),
            line: first_line + i,
            message,
        };
        let r: RawLine =
            serde_json::from_str(line).map_err(|e| err(format!("invalid prediction: {e}")))?;
        let variant = match names.get(r.variant.as_ref()) {
            Some(v) => v.clone(),
            None => {
                let v: Variant = r
                    .variant
                    .parse()
                    .map_err(|e| err(format!("invalid prediction: {e}")))?;
                names.insert(r.variant.to_string(), v.clone());
                v
            }
        };
        if !r.p_yes.is_finite() || !(0.0..=1.0).contains(&r.p_yes) {
            return Err(err(format!(
                "p_yes must be a probability in [0, 1], got {}",
                r.p_yes
            )));
        }
        out.push((
            first_line + i,
            Prediction {
                sample_id: r.sample_id.into_owned(),
                variant,
                label: r.label,
                p_yes: r.p_yes,
                attributes: r.attributes,
                user_id: r.user_id,
                target: r.target,
                history: r.history,
                censored: r.censored,
            },
        ));
    }
    Ok(out)
}

/// Parse predictions from JSONL text; `path` names the source in errors. Large inputs are
/// parsed on all cores, in line order.
pub fn parse_predictions(path: &Path, text: &str) -> Result<Vec<Prediction>> {
    Ok(parse_numbered(path, text)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// As [`parse_predictions`], each prediction with its line number.
pub fn parse_numbered(path: &Path, text: &str) -> Result<Vec<(usize, Prediction)>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    // Cut the text at line boundaries into `threads` chunks, remembering each one's first line.
    let mut chunks: Vec<(&str, usize)> = Vec::new();
    let (mut start, mut line) = (0, 1);
    let target = text.len() / threads + 1;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        end = match text[end..].find('\n') {
            Some(k) if end < text.len() => end + k + 1,
            _ => text.len(),
        };
        chunks.push((&text[start..end], line));
        line += text[start..end].matches('\n').count();
        start = end;
    }
    let parts: Vec<Result<Vec<(usize, Prediction)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|(c, l)| s.spawn(move || parse_chunk(path, c, *l)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("parser thread"))
            .collect()
    });
    let mut lines = Vec::new();
    for p in parts {
        lines.extend(p?);
    }
    // One prediction per (sample, variant): a repeated line would be counted twice.
    let mut first: std::collections::HashMap<(&str, &Variant), usize> =
        std::collections::HashMap::with_capacity(lines.len());
    for (line, p) in &lines {
        if let Some(at) = first.insert((p.sample_id.as_str(), &p.variant), *line) {
            return Err(MetricsError::Line {
                path: path.to_path_buf(),
                line: *line,
                message: format!(
                    "sample `{}` in variant `{}` is predicted a second time (first at line {at})",
                    p.sample_id, p.variant
                ),
            });
        }
    }
    drop(first);
    if lines.is_empty() {
        return Err(MetricsError::Invalid(format!(
            "{}: no predictions",
            path.display()
        )));
    }
    Ok(lines)
}

/// Parse predictions from raw bytes read from `path`; invalid UTF-8 names the line.
pub fn parse_predictions_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<Prediction>> {
    Ok(parse_numbered_bytes(path, bytes)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// As [`parse_predictions_bytes`], each prediction with its line number.
pub fn parse_numbered_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, Prediction)>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
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
    parse_numbered(path, text)
}

/// Read a predictions JSONL file.
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>> {
    let bytes = std::fs::read(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_predictions_bytes(path, &bytes)
}

/// `predictions` as JSONL, one line each with its keys sorted (as [`read_predictions`]
/// reads them back).
pub fn to_jsonl(predictions: &[Prediction]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in predictions {
        // A `Prediction` always serializes (strings, numbers, maps of strings).
        if let Ok(v) = serde_json::to_value(p) {
            out.extend_from_slice(v.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    out
}
