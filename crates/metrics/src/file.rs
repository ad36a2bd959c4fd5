//! `metrics.json`, the one file an audit writes for machines: [`MetricsFile`] is written
//! and read through the same type (the experiment tables and the quickstart read it back).

use crate::audit::Metrics;
use crate::lists::ListFairness;
use std::path::Path;

/// Where the audited figures came from.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Inputs {
    /// The predictions file and its SHA-256.
    pub predictions: Option<String>,
    pub predictions_sha256: Option<String>,
    /// The prepared dataset joined to the predictions.
    pub data: Option<String>,
    /// FaiRLLM's ranked lists and their SHA-256.
    pub lists: Option<String>,
    pub lists_sha256: Option<String>,
    pub git_revision: Option<String>,
}

/// The files `fairrec metrics` writes into its directory.
pub const OUTPUTS: fairrec_core::fs::Outputs<'static> = fairrec_core::fs::Outputs {
    what: "an audit report",
    files: &["metrics.json", "metrics.csv", "report.md", "report.html"],
    whole_dir: false,
};

/// Everything `metrics.json` holds: the audit of a predictions file (absent when only
/// ranked lists were audited), its inputs, and FaiRLLM's list figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricsFile {
    #[serde(flatten)]
    pub metrics: Option<Metrics>,
    pub inputs: Inputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairllm: Option<ListFairness>,
}

impl MetricsFile {
    /// Read `path`. The audit's part is read strictly when the file has one (its
    /// `original` block), so a damaged audit is an error, not a missing one.
    pub fn read(path: &Path) -> crate::Result<MetricsFile> {
        let bytes = std::fs::read(path).map_err(|source| crate::MetricsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // A field checked after parsing (through a `Value`) has no line.
        let bad = |e: serde_json::Error| match e.line() {
            0 => crate::MetricsError::File {
                path: path.to_path_buf(),
                message: format!("not a metrics.json: {e}"),
            },
            line => crate::MetricsError::Line {
                path: path.to_path_buf(),
                line,
                message: format!("not a metrics.json: {e}"),
            },
        };
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(bad)?;
        let inputs = take(&mut map, "inputs").map_err(bad)?.unwrap_or_default();
        let fairllm = take(&mut map, "fairllm").map_err(bad)?;
        let metrics = match map.contains_key("original") {
            true => Some(serde_json::from_value(map.into()).map_err(bad)?),
            false => None,
        };
        Ok(MetricsFile {
            metrics,
            inputs,
            fairllm,
        })
    }

    /// Write `path` atomically (keys sorted, as pretty JSON).
    pub fn write(&self, path: &Path) -> crate::Result<()> {
        fairrec_core::fs::write_json(path, self).map_err(|source| crate::MetricsError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Remove `key` from `map` and read it as a `T` (`None` when absent or null).
fn take<T: serde::de::DeserializeOwned>(
    map: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> serde_json::Result<Option<T>> {
    map.remove(key)
        .filter(|v| !v.is_null())
        .map(serde_json::from_value)
        .transpose()
}
