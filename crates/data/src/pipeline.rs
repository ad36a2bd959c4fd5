//! `data prepare` as a library call: load, apply the protocol, write the three splits and
//! `manifest.json` (counts, seed, SHA-256 of every raw input and output, resolved
//! configuration). The four files land as one set ([`fairrec_core::stage`]): an error or a
//! kill leaves the earlier dataset whole, or the new one.

use crate::error::{DataError, Result};
use crate::loaders;
use crate::protocol::{prepare, Prepared, Protocol, ProtocolConfig};
use crate::raw::{sha256_hex, DatasetKind, SourceFile};
use crate::sample::{to_jsonl, write_set, Sample};
use std::collections::BTreeMap;
use std::path::Path;

/// Counts of one split.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitSummary {
    pub samples: usize,
    pub users: usize,
    pub positives: usize,
    /// attribute -> value -> (samples, positives).
    pub attributes: BTreeMap<String, BTreeMap<String, (usize, usize)>>,
    /// Mean number of history items per sample.
    pub mean_history: f64,
}

/// Summarise samples (used by the manifest and by `data stats`).
pub fn summarize(samples: &[Sample]) -> SplitSummary {
    let mut s = SplitSummary {
        samples: samples.len(),
        ..Default::default()
    };
    let mut users = std::collections::HashSet::new();
    let mut hist = 0usize;
    for x in samples {
        users.insert(x.user_id.as_str());
        s.positives += usize::from(x.label);
        hist += x.history_ids().len();
        for (a, v) in &x.attributes {
            let e = s
                .attributes
                .entry(a.clone())
                .or_default()
                .entry(v.clone())
                .or_default();
            e.0 += 1;
            e.1 += usize::from(x.label);
        }
    }
    s.users = users.len();
    s.mean_history = if samples.is_empty() {
        0.0
    } else {
        hist as f64 / samples.len() as f64
    };
    s
}

/// `manifest.json` of a prepared dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub fairrec_version: String,
    /// Git revision of the fairrec build that wrote it, when known.
    pub git_revision: Option<String>,
    pub dataset: DatasetKind,
    pub protocol: Protocol,
    pub seed: u64,
    pub item_type: String,
    /// Sensitive attributes studied and their value sets.
    pub attribute_values: BTreeMap<String, Vec<String>>,
    pub config: ProtocolConfig,
    /// Raw inputs with their SHA-256.
    pub sources: Vec<SourceFile>,
    pub splits: BTreeMap<String, SplitSummary>,
    /// What was left out, by reason (loader and protocol).
    pub dropped: BTreeMap<String, usize>,
    /// SHA-256 of each output file.
    pub outputs: BTreeMap<String, String>,
}

impl Manifest {
    /// One hash over the raw inputs and the prepared outputs, identifying the data of a run.
    pub fn data_hash(&self) -> String {
        let mut s = String::new();
        for f in &self.sources {
            s.push_str(&format!("{}:{}\n", f.file, f.sha256));
        }
        for (k, v) in &self.outputs {
            s.push_str(&format!("{k}:{v}\n"));
        }
        sha256_hex(s.as_bytes())
    }

    /// The studied sensitive attributes, sorted by name.
    pub fn attributes(&self) -> Vec<String> {
        self.attribute_values.keys().cloned().collect()
    }
}

/// The files of a prepared dataset.
pub const OUTPUTS: fairrec_core::fs::Outputs<'static> = fairrec_core::fs::Outputs {
    what: "a prepared dataset",
    files: &["train.jsonl", "valid.jsonl", "test.jsonl", "manifest.json"],
    whole_dir: false,
};

/// Load `dataset` from `raw_dir`, apply the protocol and write `out_dir`.
pub fn prepare_dir(
    dataset: DatasetKind,
    raw_dir: &Path,
    cfg: &ProtocolConfig,
    out_dir: &Path,
    git_revision: Option<String>,
) -> Result<(Manifest, Prepared)> {
    cfg.validate()?;
    let raw = loaders::load(dataset, raw_dir, &cfg.load)?;
    tracing::info!(
        users = raw.users.len(),
        items = raw.items.len(),
        ratings = raw.ratings.len(),
        "loaded {}",
        dataset.name()
    );
    let prepared = prepare(&raw, cfg)?;
    if prepared.train.is_empty() {
        return Err(DataError::Config {
            option: "raw".into(),
            message: format!(
                "{}: the protocol left no training samples (dropped: {:?}); nothing was written",
                raw_dir.display(),
                prepared.dropped
            ),
        });
    }
    let mut dropped = raw.dropped.clone();
    for (k, v) in &prepared.dropped {
        *dropped.entry(k.clone()).or_default() += v;
    }
    let mut outputs = BTreeMap::new();
    let mut splits = BTreeMap::new();
    let bodies: Vec<(&str, Vec<u8>)> = prepared
        .splits()
        .iter()
        .map(|(name, s)| (*name, to_jsonl(s)))
        .collect();
    for ((name, samples), (_, body)) in prepared.splits().iter().zip(&bodies) {
        outputs.insert(format!("{name}.jsonl"), sha256_hex(body));
        splits.insert(name.to_string(), summarize(samples));
    }
    let attribute_values = cfg
        .attributes
        .iter()
        .map(|a| {
            let vals = crate::prompt::domain(cfg.protocol, a)?;
            Ok((a.clone(), vals.iter().map(|v| v.to_string()).collect()))
        })
        .collect::<Result<_>>()?;
    let manifest = Manifest {
        fairrec_version: env!("CARGO_PKG_VERSION").to_string(),
        git_revision,
        dataset,
        protocol: cfg.protocol,
        seed: cfg.seed,
        item_type: dataset.item_type().to_string(),
        attribute_values,
        config: cfg.clone(),
        sources: raw.sources.clone(),
        splits,
        dropped,
        outputs,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes") + "\n";
    let names: Vec<String> = bodies.iter().map(|(n, _)| format!("{n}.jsonl")).collect();
    let mut files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&bodies)
        .map(|(n, (_, b))| (n.as_str(), b.as_slice()))
        .collect();
    files.push(("manifest.json", json.as_bytes()));
    write_set(out_dir, OUTPUTS.files, &files)?;
    Ok((manifest, prepared))
}

/// Read `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    settle(dir)?;
    let path = dir.join("manifest.json");
    let bytes = crate::text::read_bytes(
        &path,
        "manifest of a prepared dataset (run `fairrec data prepare`)",
    )?;
    serde_json::from_slice(&bytes).map_err(|e| DataError::Json {
        path,
        line: e.line(),
        message: e.to_string(),
    })
}

/// Read one split of a prepared dataset (`train`, `valid` or `test`).
pub fn read_split(dir: &Path, split: &str) -> Result<Vec<Sample>> {
    if !["train", "valid", "test"].contains(&split) {
        return Err(DataError::Config {
            option: "split".into(),
            message: format!("unknown split `{split}` (train, valid, test)"),
        });
    }
    settle(dir)?;
    let name = format!("{split}.jsonl");
    let path = dir.join(&name);
    let bytes = crate::text::read_bytes(&path, "prepared samples (run `fairrec data prepare`)")?;
    // The manifest is written last: a split is read only from a complete dataset, and only
    // as that preparation wrote it.
    let manifest = read_manifest(dir)?;
    if let Some(want) = manifest.outputs.get(&name) {
        if *want != sha256_hex(&bytes) {
            return Err(DataError::Modified {
                path,
                message: format!(
                    "its SHA-256 is not the one {} records: the file was edited, or comes from another preparation (a `data prepare --force` killed part-way?); prepare the dataset again",
                    dir.join("manifest.json").display()
                ),
            });
        }
    }
    crate::sample::parse_samples(&path, &bytes)
}

/// Complete a dataset whose preparation was killed after its commit point, so that a
/// reader sees the new dataset whole (never a mix).
fn settle(dir: &Path) -> Result<()> {
    fairrec_core::stage::settle(dir, false).map_err(|source| DataError::Write {
        path: dir.to_path_buf(),
        source,
    })
}
