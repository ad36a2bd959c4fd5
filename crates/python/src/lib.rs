//! `fairrec._native`, the compiled half of the `fairrec` Python package (`python/`, built
//! with maturin): the same library calls as the `fairrec` command, with JSON strings in
//! and out. The Python half (`python/fairrec/`) turns them into dicts and pandas
//! DataFrames. No tensor code: models are reached through the `fairrec` command the wheel
//! also installs.
//!
//! Every error is a `fairrec.FairrecError` whose message is the command's (the error and
//! its causes joined by `: `, as `fairrec` prints them after `error: `).

use fairrec_core::fs::{claim_output, RunLock};
use fairrec_data::pipeline::{prepare_dir, read_split};
use fairrec_data::protocol::ProtocolConfig;
use fairrec_data::raw::{sha256_hex, DatasetKind, Protocol};
use fairrec_metrics::join::audit_file;
use fairrec_metrics::lists::parse_lists;
use fairrec_metrics::stereo_dist::of_dataset;
use fairrec_metrics::stereotype::{StereotypeConfig, ZThreshold};
use fairrec_metrics::{AuditConfig, Inputs, MetricsFile};
use pyo3::prelude::*;
use std::path::PathBuf;

pyo3::create_exception!(
    _native,
    FairrecError,
    pyo3::exceptions::PyException,
    "An error of fairrec's, with the message the `fairrec` command prints."
);

/// `e` and its causes as `fairrec` prints them (a cause already in the message is not
/// repeated).
fn fail(e: &dyn std::error::Error) -> PyErr {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        cause = c.source();
    }
    FairrecError::new_err(msg)
}

fn invalid(msg: String) -> PyErr {
    FairrecError::new_err(msg)
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| fail(&e))
}

/// The git revision this module was built from, if known.
fn git_revision() -> Option<String> {
    let r = env!("FAIRREC_GIT_REV");
    (!r.is_empty()).then(|| r.to_string())
}

/// Audit predictions (`content`: JSONL bytes; `source` names them in errors and in
/// `inputs`) as `fairrec metrics --predictions` does. Returns `(metrics.json, metrics.csv)`.
#[pyfunction]
#[pyo3(signature = (source, content, data=None, allow_partial=false, threshold=0.5,
    bootstrap=200, seed=0, confidence=0.95, z_threshold="auto", raw_counts=false))]
#[allow(clippy::too_many_arguments)]
fn audit_predictions(
    py: Python<'_>,
    source: String,
    content: Vec<u8>,
    data: Option<PathBuf>,
    allow_partial: bool,
    threshold: f64,
    bootstrap: usize,
    seed: u64,
    confidence: f64,
    z_threshold: &str,
    raw_counts: bool,
) -> PyResult<(String, String)> {
    let z_threshold: ZThreshold = z_threshold
        .parse()
        .map_err(|e| invalid(format!("z_threshold: {e}")))?;
    let cfg = AuditConfig {
        threshold,
        bootstrap,
        seed,
        confidence,
        stereotype: StereotypeConfig {
            z_threshold,
            normalize: !raw_counts,
        },
    };
    cfg.validate().map_err(|e| fail(&e))?;
    py.detach(move || {
        let path = PathBuf::from(&source);
        let (m, _) = audit_file(&path, &content, data.as_deref(), allow_partial, &cfg)
            .map_err(|e| fail(&e))?;
        let csv = m.to_long_csv();
        let file = MetricsFile {
            metrics: Some(m),
            inputs: Inputs {
                predictions: Some(source),
                predictions_sha256: Some(sha256_hex(&content)),
                data: data.map(|d| d.display().to_string()),
                git_revision: git_revision(),
                ..Inputs::default()
            },
            fairllm: None,
        };
        Ok((json(&file)?, csv))
    })
}

/// FaiRLLM's list metrics of ranked lists (`content`: JSONL bytes) as `fairrec metrics
/// --lists` computes them; returns them as JSON (`metrics.json`'s `fairllm`).
#[pyfunction]
#[pyo3(signature = (source, content, k=20, bootstrap=200, seed=0, confidence=0.95))]
fn list_fairness(
    py: Python<'_>,
    source: String,
    content: Vec<u8>,
    k: usize,
    bootstrap: usize,
    seed: u64,
    confidence: f64,
) -> PyResult<String> {
    py.detach(move || {
        let path = PathBuf::from(&source);
        let text = std::str::from_utf8(&content)
            .map_err(|e| invalid(format!("{source} is not UTF-8: {e}")))?;
        let lists = parse_lists(&path, text).map_err(|e| fail(&e))?;
        let lf = fairrec_metrics::lists::list_fairness(&lists, k, bootstrap, seed, confidence)
            .map_err(|e| fail(&e))?;
        json(&lf)
    })
}

/// The stereotype z-score distributions of a prepared dataset's train split, as `fairrec
/// data stereotypes` writes them (`stereotypes.json`).
#[pyfunction]
#[pyo3(signature = (data, attributes=None, raw_counts=false))]
fn stereotypes(
    py: Python<'_>,
    data: PathBuf,
    attributes: Option<Vec<String>>,
    raw_counts: bool,
) -> PyResult<String> {
    py.detach(move || {
        let (_, dists) =
            of_dataset(&data, attributes.as_deref(), !raw_counts).map_err(|e| fail(&e))?;
        json(&dists)
    })
}

/// Prepare `dataset` from its original files in `raw` under `protocol` into `out`, as
/// `fairrec data prepare` does; `options` (a JSON object) overrides the protocol's
/// settings by their `manifest.json` names (`like_threshold`, `attributes`, `split`, ...).
/// Returns the manifest as JSON.
#[pyfunction]
#[pyo3(signature = (dataset, raw, out, protocol="cl-moe", seed=0, options=None, force=false))]
#[allow(clippy::too_many_arguments)]
fn prepare(
    py: Python<'_>,
    dataset: &str,
    raw: PathBuf,
    out: PathBuf,
    protocol: &str,
    seed: u64,
    options: Option<String>,
    force: bool,
) -> PyResult<String> {
    let kind: DatasetKind = dataset
        .parse()
        .map_err(|e| invalid(format!("dataset: {e}")))?;
    let protocol: Protocol = protocol
        .parse()
        .map_err(|e| invalid(format!("protocol: {e}")))?;
    let cfg = configure(ProtocolConfig::new(protocol, kind, seed), options)?;
    py.detach(move || {
        let _lock = RunLock::acquire(&out, "fairrec.prepare").map_err(|e| fail(&e))?;
        claim_output(&out, fairrec_data::pipeline::OUTPUTS, force).map_err(|e| fail(&e))?;
        let (manifest, _) =
            prepare_dir(kind, &raw, &cfg, &out, git_revision()).map_err(|e| fail(&e))?;
        json(&manifest)
    })
}

/// `cfg` with the settings of the JSON object `options` replaced (an unknown name is an
/// error listing the known ones), checked.
fn configure(cfg: ProtocolConfig, options: Option<String>) -> PyResult<ProtocolConfig> {
    let Some(options) = options else {
        cfg.validate().map_err(|e| fail(&e))?;
        return Ok(cfg);
    };
    let given: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&options).map_err(|e| invalid(format!("options: {e}")))?;
    let mut value = serde_json::to_value(&cfg).map_err(|e| fail(&e))?;
    // Every setting's name, those left out of the JSON when empty included.
    let mut probe = cfg.clone();
    probe.profile = vec![String::new()];
    let probe = serde_json::to_value(&probe).map_err(|e| fail(&e))?;
    let names: Vec<&String> = probe
        .as_object()
        .expect("a config is an object")
        .keys()
        .filter(|n| !matches!(n.as_str(), "protocol" | "seed"))
        .collect();
    let known = value.as_object_mut().expect("a config is an object");
    for (k, v) in given {
        if !names.contains(&&k) {
            return Err(invalid(format!(
                "options: `{k}` is not a setting of the protocol (one of: {})",
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        known.insert(k, v);
    }
    let cfg: ProtocolConfig =
        serde_json::from_value(value).map_err(|e| invalid(format!("options: {e}")))?;
    cfg.validate().map_err(|e| fail(&e))?;
    Ok(cfg)
}

/// One split (`train`, `valid` or `test`) of a prepared dataset, checked as every command
/// reads it, as a JSON array of samples.
#[pyfunction]
fn load_split(py: Python<'_>, data: PathBuf, split: String) -> PyResult<String> {
    py.detach(move || json(&read_split(&data, &split).map_err(|e| fail(&e))?))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("git_revision", git_revision())?;
    m.add("FairrecError", m.py().get_type::<FairrecError>())?;
    m.add_function(wrap_pyfunction!(audit_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(list_fairness, m)?)?;
    m.add_function(wrap_pyfunction!(stereotypes, m)?)?;
    m.add_function(wrap_pyfunction!(prepare, m)?)?;
    m.add_function(wrap_pyfunction!(load_split, m)?)?;
    Ok(())
}
