//! What a list audit asks, from a prepared dataset (its catalogue, item noun and
//! sensitive attributes), and the run's outputs.

use super::{ListConfig, ListRecord, ListsRun, ListsServed, MatchSummary};
use crate::error::{Result, ServeError};
use fairrec_core::Variant;
use fairrec_data::catalogue::Catalogue;
use fairrec_data::fairllm::{self, Instruction};
use fairrec_data::pipeline::{read_manifest, read_split, Manifest};
use fairrec_data::raw::sha256_hex;
use std::path::{Path, PathBuf};

/// The files `fairrec audit-lists` writes (besides its response cache, which a rerun reuses).
pub const OUTPUTS: fairrec_core::fs::Outputs<'static> = fairrec_core::fs::Outputs {
    what: "a list audit",
    files: &[
        "lists.jsonl",
        "run.json",
        "metrics.json",
        "report.md",
        "report.html",
    ],
    whole_dir: false,
};

/// The command line's choices.
#[derive(Debug, Clone)]
pub struct PlanArgs<'a> {
    pub data: &'a Path,
    /// Sensitive attributes (`None`: all the dataset's).
    pub attributes: Option<&'a [String]>,
    /// A seeds file (`None`: the catalogue's most popular items).
    pub seeds: Option<&'a Path>,
    /// Seeds used (the first N).
    pub n: usize,
    pub k: usize,
    pub instruction: &'a str,
    /// `None` or blank: no system message.
    pub system: Option<&'a str>,
}

/// The instructions of a list audit and what they came from.
#[derive(Debug, Clone)]
pub struct ListPlan {
    pub data: PathBuf,
    pub manifest: Manifest,
    pub catalogue: Catalogue,
    pub attributes: Vec<String>,
    /// `neutral`, then every value of each attribute.
    pub variants: Vec<Variant>,
    pub seeds: Vec<String>,
    pub seeds_from: String,
    pub seeds_sha256: Option<String>,
    /// Seed-major, variants in order.
    pub instructions: Vec<Instruction>,
    pub system: Option<String>,
}

fn invalid(flag: &str, message: String) -> ServeError {
    ServeError::Invalid {
        flag: flag.into(),
        message,
    }
}

/// Read the dataset and build every instruction.
pub fn plan(a: &PlanArgs) -> Result<ListPlan> {
    let manifest = read_manifest(a.data)?;
    let mut samples = Vec::new();
    for split in ["train", "valid", "test"] {
        samples.extend(read_split(a.data, split)?);
    }
    let catalogue = Catalogue::from_samples(&samples);
    let attributes = a
        .attributes
        .map_or_else(|| manifest.attributes(), <[String]>::to_vec);
    let mut variants = vec![Variant::Neutral];
    for attr in &attributes {
        let values = manifest.attribute_values.get(attr).ok_or_else(|| {
            invalid(
                "--attributes",
                format!(
                    "`{attr}` is not an attribute of {} (it has: {})",
                    a.data.display(),
                    manifest.attributes().join(", ")
                ),
            )
        })?;
        variants.extend(
            values
                .iter()
                .map(|v| Variant::stated([(attr.as_str(), v.as_str())])),
        );
    }
    let (mut seeds, seeds_from, seeds_sha256) = match a.seeds {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| invalid("--seeds", format!("{}: {e}", path.display())))?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| invalid("--seeds", format!("{} is not UTF-8: {e}", path.display())))?;
            let seeds = fairllm::parse_seeds(path, text)?;
            (seeds, path.display().to_string(), Some(sha256_hex(&bytes)))
        }
        None => (
            catalogue
                .most_popular(a.n)
                .iter()
                .map(|e| fairllm::item_seed(&manifest.item_type, &e.title))
                .collect(),
            "most popular items".to_string(),
            None,
        ),
    };
    seeds.truncate(a.n);
    if seeds.is_empty() {
        return Err(invalid("--instructions", "at least 1".into()));
    }
    let system = a.system.filter(|s| !s.trim().is_empty());
    let instructions = fairllm::instructions(
        a.instruction,
        system,
        &seeds,
        &variants,
        a.k,
        &manifest.item_type,
    )?;
    Ok(ListPlan {
        data: a.data.to_path_buf(),
        manifest,
        catalogue,
        attributes,
        variants,
        seeds,
        seeds_from,
        seeds_sha256,
        instructions,
        system: system.map(str::to_string),
    })
}

impl ListsRun {
    /// The record of a run of `plan` with `instruction` (as given) and `cfg`; `seconds` and
    /// `git_revision` are left for the caller.
    pub fn new(
        plan: &ListPlan,
        instruction: &str,
        cfg: ListConfig,
        served: ListsServed,
        matching: MatchSummary,
    ) -> Self {
        ListsRun {
            command: "audit-lists".into(),
            data: plan.data.clone(),
            data_hash: plan.manifest.data_hash(),
            attributes: plan.attributes.clone(),
            variants: plan.variants.iter().map(|v| v.to_string()).collect(),
            seeds_from: plan.seeds_from.clone(),
            seeds_sha256: plan.seeds_sha256.clone(),
            seeds: plan.seeds.clone(),
            instruction: instruction.to_string(),
            system: plan.system.clone(),
            k: cfg.k,
            max_tokens: cfg.max_tokens,
            requests: plan.instructions.len(),
            served,
            matching,
            seconds: 0.0,
            git_revision: None,
        }
    }
}

/// Write `lists.jsonl` (whole or not at all) and `run.json` under `out`; returns the lists' path.
pub fn write_outputs(out: &Path, records: &[ListRecord], run: &ListsRun) -> Result<PathBuf> {
    let mut jsonl = Vec::new();
    for r in records {
        serde_json::to_writer(&mut jsonl, r).map_err(|e| ServeError::Write {
            path: out.join("lists.jsonl"),
            message: e.to_string(),
        })?;
        jsonl.push(b'\n');
    }
    let path = out.join("lists.jsonl");
    fairrec_data::sample::write_atomic(&path, &jsonl)?;
    let run_path = out.join("run.json");
    fairrec_core::fs::write_json(&run_path, run).map_err(|e| ServeError::Write {
        path: run_path,
        message: e.to_string(),
    })?;
    Ok(path)
}
