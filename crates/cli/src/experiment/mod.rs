//! `fairrec experiment run FILE.toml`: a grid of datasets x models x methods x scenarios x
//! seeds, run one cell at a time in this process, resumable; `fairrec experiment show DIR`
//! re-renders the tables from the finished cells.
//!
//! A cell is identified by the hash of its resolved commands (train and audit flags, the
//! data manifest's hash, the model). A finished cell (its `cell.json` carries that hash) is
//! skipped on rerun; a cell whose training was killed continues from its checkpoint
//! (`fairrec train --resume`, exact), and its audit is rerun. A cell whose configuration
//! changed starts over when it runs; until then (a run with `--methods`/`--seeds` that
//! leaves it out) it is marked stale and kept out of the tables. Prompting baselines are
//! scored once (their scores do not depend on the seed). Cells that fail are reported and
//! the others still run.

mod cache;
mod cell;
mod placing;
pub mod spec;
pub mod table;

use crate::runfile::flags_from_table;
use anyhow::{bail, Context as _, Result};
pub use cache::synth_dir;
use cache::{dataset_dir, model_path};
pub use cell::cell_dir;
use cell::{cell_name, mark_stale, resolve, run_cell, Cell};
use clap::{Args, CommandFactory, Subcommand};
use fairrec_data::pipeline::read_manifest;
use fairrec_data::sample::write_atomic;
use spec::{Kind, Spec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The marker file of a finished cell that the experiment file no longer describes.
const STALE: &str = "stale";

#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// Run (or continue) the grid of an experiment file; writes results.{md,html,csv}.
    Run(RunArgs),
    /// Re-render the results tables of an experiment directory from its finished cells.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment file (see `experiments/`).
    pub file: PathBuf,
    /// Output directory [default: runs/<name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only these methods (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Run only these seeds (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Where the cells of models without their own `device` run: auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<fairrec_lm::device::DeviceSpec>,
    /// The base's precision for models without their own `dtype`: auto, f32, bf16 or f16.
    #[arg(long)]
    pub dtype: Option<fairrec_lm::device::DTypeSpec>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// An experiment directory.
    pub dir: PathBuf,
}

/// What a finished cell records (`cell.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CellResult {
    pub hash: String,
    pub dataset: String,
    pub model: String,
    pub scenario: String,
    pub method: String,
    /// `None` for prompting baselines (seed-independent).
    pub seed: Option<u64>,
    /// The data's protocol (`cl-moe`: paper A's table; `mos`: paper B's); absent in cells
    /// written before it was recorded (all paper A's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `f1`, `auc` of the original prompts; `gd/<attr>`, `rate/<attr>`, `rate_sq/<attr>`.
    pub metrics: BTreeMap<String, f64>,
    pub seconds: f64,
    /// Where its audit ran (device, dtype, GPU, driver, CUDA; absent before 2026-12-05).
    #[serde(flatten)]
    pub placement: Option<fairrec_lm::device::Placement>,
}

pub fn run(c: ExperimentCommand) -> Result<()> {
    match c {
        ExperimentCommand::Run(a) => run_grid(&a),
        ExperimentCommand::Show(a) => {
            let _lock = fairrec_core::fs::RunLock::acquire(&a.dir, "fairrec experiment show")?;
            let path = a.dir.join("experiment.json");
            let bytes = std::fs::read(&path)
                .with_context(|| format!("{} is not an experiment directory", a.dir.display()))?;
            let spec: Spec = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not an experiment record", path.display()))?;
            let done = table::read_cells(&a.dir)?;
            table::write(&a.dir, &spec, &done.cells)?;
            say_stale(&done.stale);
            Ok(())
        }
    }
}

fn hash_hex(v: &serde_json::Value) -> String {
    format!("{:016x}", fairrec_core::fnv1a64(v.to_string().as_bytes()))
}

/// `fairrec <cmd...>` flags from a TOML table.
fn flags(cmd: &[&str], table: &toml::Table, origin: &str) -> Result<Vec<String>> {
    placing::refuse_in_table(table, origin)?;
    let root = crate::Cli::command();
    let mut sub = &root;
    for c in cmd {
        sub = sub.find_subcommand(c).context("known subcommand")?;
    }
    flags_from_table(table, sub, &cmd.join(" "), origin)
}

fn argv(parts: &[&str], extra: &[String]) -> Vec<String> {
    std::iter::once("fairrec".to_string())
        .chain(parts.iter().map(|s| s.to_string()))
        .chain(extra.iter().cloned())
        .collect()
}

/// Run `args` in-process with `say!` output appended to `log`.
fn call(args: &[String], log: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    crate::redirect_output(Some(f));
    crate::say_line(&format!("$ {}", args.join(" ")));
    let r = crate::run_argv(args);
    if let Err(e) = &r {
        crate::say_line(&format!("error: {e:#}"));
    }
    crate::redirect_output(None);
    r.with_context(|| format!("`{}` failed (log: {})", args[1..].join(" "), log.display()))
}

/// Check every flag table of `spec` before anything runs.
fn check_flags(spec: &Spec) -> Result<()> {
    let o = format!("experiment `{}`", spec.name);
    flags(&["train"], &spec.train, &format!("{o} [train]"))?;
    flags(&["audit"], &spec.audit, &format!("{o} [audit]"))?;
    for (m, t) in &spec.method_train {
        flags(&["train"], t, &format!("{o} [method_train.{m}]"))?;
    }
    for (m, t) in &spec.method_audit {
        flags(&["audit"], t, &format!("{o} [method_audit.{m}]"))?;
    }
    for d in &spec.datasets {
        let o = format!("{o} dataset `{}`", d.name);
        if let Some(t) = &d.synth {
            flags(&["data", "synth"], t, &o)?;
        }
        if let Some(t) = &d.prepare {
            flags(&["data", "prepare"], t, &o)?;
        }
    }
    for m in &spec.models {
        let o = format!("{o} model `{}`", m.name);
        flags(&["train"], &m.flags, &o)?;
        if let Some(t) = &m.init {
            flags(&["model", "init"], t, &o)?;
        }
        if let Some(t) = &m.finetune {
            flags(&["train"], t, &o)?;
        }
    }
    Ok(())
}

fn run_grid(a: &RunArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let mut spec = Spec::read(&a.file)?;
    for m in &mut spec.models {
        m.device = m.device.take().or(a.device.map(|d| d.to_string()));
        m.dtype = m.dtype.take().or(a.dtype.map(|d| d.to_string()));
    }
    check_flags(&spec).with_context(|| a.file.display().to_string())?;
    for x in a.methods.iter().flatten() {
        Kind::parse(x)?;
        if !spec.methods.contains(x) {
            bail!("--methods {x}: {} has no such method", a.file.display());
        }
    }
    let only = Only {
        methods: a.methods.clone(),
        seeds: a.seeds.clone(),
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&spec.name));
    let grid = run_spec(&spec, &out, &only).with_context(|| a.file.display().to_string())?;
    say!(
        "{} cells in {:.0}s; results in {}",
        grid.cells,
        t0.elapsed().as_secs_f64(),
        out.join("results.md").display()
    );
    grid.check()
}

/// The cells of an experiment file to run now (`--methods`, `--seeds`; `None`: all). The
/// others are left as they are, and the tables show every finished cell of the file's grid.
#[derive(Debug, Default)]
pub struct Only {
    pub methods: Option<Vec<String>>,
    pub seeds: Option<Vec<u64>>,
}

impl Only {
    fn keeps(&self, method: &str, seed: Option<u64>) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == method))
            && seed.is_none_or(|s| self.seeds.as_ref().is_none_or(|x| x.contains(&s)))
    }
}

/// What a grid run produced.
pub struct Grid {
    /// Cells in the grid.
    pub cells: usize,
    pub results: Vec<CellResult>,
    /// The cells that failed: name and why (the error's chain, one line).
    pub failed: Vec<(String, String)>,
    /// Each dataset's prepared directory, by name.
    pub data: BTreeMap<String, PathBuf>,
    /// The model the cells of (dataset, model) used (after any `finetune`).
    pub models: BTreeMap<(String, String), PathBuf>,
}

impl Grid {
    /// An error naming the failed cells, if any.
    pub fn check(&self) -> Result<()> {
        if !self.failed.is_empty() {
            let why: Vec<String> = self
                .failed
                .iter()
                .map(|(name, e)| format!("  {name}: {e}"))
                .collect();
            bail!("{} cell(s) failed:\n{}", self.failed.len(), why.join("\n"));
        }
        Ok(())
    }
}

/// Name the finished cells that the tables leave out because they are stale.
fn say_stale(stale: &[String]) {
    if !stale.is_empty() {
        say!(
            "{} finished cell(s) left out of the tables: run under another configuration of the experiment file (marked `{STALE}`; a run that includes them reruns them): {}",
            stale.len(),
            stale.join(", ")
        );
    }
}

/// A line above the progress bar, or on stdout when there is no bar to draw (not a
/// terminal), so that logs still show each finished cell.
fn line(bar: &indicatif::ProgressBar, s: String) {
    if bar.is_hidden() {
        say!("{s}");
    } else {
        bar.println(s);
    }
}

/// Run (or continue) the cells of `spec` that `only` keeps in `out`, and write the results
/// tables of every finished cell there (`experiment.json` is the whole file's grid).
pub fn run_spec(spec: &Spec, out: &Path, only: &Only) -> Result<Grid> {
    check_flags(spec)?;
    // One grid run per directory: a second one would rerun and remove the same cells.
    let _lock = fairrec_core::fs::RunLock::acquire(out, "fairrec experiment run")?;
    std::fs::create_dir_all(out)?;
    write_atomic(
        &out.join("experiment.json"),
        (serde_json::to_string_pretty(spec)? + "\n").as_bytes(),
    )?;
    let places = spec
        .models
        .iter()
        .map(|m| Ok((m.name.clone(), m.place()?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let mut datasets = Vec::new();
    let (mut data, mut model_paths) = (BTreeMap::new(), BTreeMap::new());
    for d in &spec.datasets {
        let dir = dataset_dir(out, d)?;
        let manifest = read_manifest(&dir).with_context(|| format!("dataset `{}`", d.name))?;
        let hash = manifest.data_hash();
        let mut models = Vec::new();
        for m in &spec.models {
            let p = model_path(out, m, &places[&m.name], &dir, &hash, &d.name)?;
            model_paths.insert((d.name.clone(), m.name.clone()), p.clone());
            models.push((m, p));
        }
        data.insert(d.name.clone(), dir.clone());
        datasets.push((d.name.as_str(), dir, hash, manifest.protocol, models));
    }
    let mut cells = Vec::new();
    for (dname, dir, hash, protocol, models) in &datasets {
        for (m, mpath) in models {
            for sc in &spec.scenarios {
                for method in &spec.methods {
                    let seeds: Vec<Option<u64>> = match Kind::parse(method)? {
                        Kind::Prompt(_) => vec![None],
                        Kind::Train(_) => spec.seeds.iter().map(|s| Some(*s)).collect(),
                    };
                    for seed in seeds {
                        let kept = only.keeps(method, seed);
                        cells.push((
                            kept,
                            Cell {
                                dataset: dname,
                                data: dir,
                                data_hash: hash,
                                protocol: *protocol,
                                model: m,
                                model_path: mpath,
                                place: &places[&m.name],
                                scenario: sc,
                                method,
                                seed,
                            },
                        ));
                    }
                }
            }
        }
    }
    // Cells not run now: a finished one that the file no longer describes is marked stale.
    for (_, c) in cells.iter().filter(|(kept, _)| !kept) {
        let name = cell_name(c.dataset, &c.model.name, c.scenario, c.method, c.seed);
        let dir = out.join("cells").join(&name);
        if dir.exists() {
            mark_stale(&dir, &resolve(spec, c)?.hash).with_context(|| name.clone())?;
        }
    }
    let cells: Vec<Cell> = cells
        .into_iter()
        .filter_map(|(k, c)| k.then_some(c))
        .collect();
    let bar = crate::progress_bar(
        cells.len() as u64,
        "{bar:40} {pos}/{len} cells {msg} [{elapsed_precise} < {eta_precise}]",
    );
    let (mut results, mut failed) = (Vec::new(), Vec::new());
    for c in &cells {
        let name = cell_name(c.dataset, &c.model.name, c.scenario, c.method, c.seed);
        bar.set_message(name.clone());
        match run_cell(spec, c, &out.join("cells").join(&name)) {
            Ok(r) => {
                line(&bar, format!("done   {name} ({:.0}s)", r.seconds));
                results.push(r);
            }
            Err(e) => {
                line(&bar, format!("FAILED {name}: {e:#}"));
                failed.push((name, format!("{e:#}")));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    table::update_pairs(out, spec, &data)?;
    let done = table::read_cells(out)?;
    table::write(out, spec, &done.cells)?;
    say_stale(&done.stale);
    Ok(Grid {
        cells: cells.len(),
        results,
        failed,
        data,
        models: model_paths,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every experiment file in the repository parses and its flag tables name real flags.
    #[test]
    fn the_repository_experiment_files_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let spec = super::Spec::read(&p).unwrap();
                super::check_flags(&spec).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "found {n} experiment files");
    }
}
