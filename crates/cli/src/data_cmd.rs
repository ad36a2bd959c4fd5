//! `fairrec data ...`: synthesize, prepare, show, stats (and `stereotypes`, in
//! [`crate::stereotypes_cmd`]).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fairrec_core::fs::claim_output;
use fairrec_core::Variant;
use fairrec_data::augment::{augment, AugmentConfig};
use fairrec_data::loaders::SushiOrder;
use fairrec_data::pipeline::{prepare_dir, read_manifest, read_split, summarize, Manifest};
use fairrec_data::prompt::{answer, render, Template};
use fairrec_data::protocol::{Protocol, ProtocolConfig};
use fairrec_data::raw::{sha256_hex, DatasetKind};
use fairrec_data::sample::parse_samples;
use fairrec_data::synth::{write_world, SynthConfig};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Load a raw dataset, apply a paper's protocol, write train/valid/test JSONL and a manifest.
    Prepare(PrepareArgs),
    /// Write the synthetic stereotype world as ML-100K-format raw files.
    Synth(SynthArgs),
    /// Print rendered prompts of a prepared dataset.
    Show(ShowArgs),
    /// Print counts, label balance and attribute distributions of a prepared dataset.
    Stats(StatsArgs),
    /// Paper B: the train split's items by stereotype z-score and the group sizes at the usual thresholds (its Figure 3), to choose --z-threshold.
    Stereotypes(crate::stereotypes_cmd::StereotypesArgs),
}

#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// ml-1m, ml-100k, sushi3 or book-crossing.
    #[arg(long)]
    pub dataset: DatasetKind,
    /// Directory holding the dataset's original files.
    #[arg(long)]
    pub raw: PathBuf,
    /// cl-moe (paper A) or mos (paper B).
    #[arg(long)]
    pub protocol: Protocol,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the split and of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A rating above this is a preference/positive label [default: 3 MovieLens, 2 Sushi3, 5 Book-Crossing].
    #[arg(long)]
    pub like_threshold: Option<f32>,
    /// Sensitive attributes, comma-separated [default: age,gender (cl-moe; age on Book-Crossing); mos: gender, age on Book-Crossing].
    #[arg(long)]
    pub attributes: Option<String>,
    /// train:valid:test ratios, e.g. 7:1:2 [default: 7:1:2 cl-moe, 8:1:1 mos].
    #[arg(long)]
    pub split: Option<String>,
    /// cl-moe: most recent preferences kept [default: 10].
    #[arg(long)]
    pub max_liked: Option<usize>,
    /// cl-moe: most recent unpreferences kept [default: 10].
    #[arg(long)]
    pub max_disliked: Option<usize>,
    /// mos: number of sequences drawn [default: 10000].
    #[arg(long)]
    pub sequences: Option<usize>,
    /// mos: interactions per sequence, the last is the target [default: 11].
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// mos: step between candidate windows of one user [default: 1].
    #[arg(long)]
    pub stride: Option<usize>,
    /// Sushi3: time order of a user's items, item-id or shuffled [default: item-id].
    #[arg(long)]
    pub sushi_order: Option<SushiOrder>,
    /// Sushi3: the score file is a pre-2016 copy with the inverted scale.
    #[arg(long)]
    pub sushi_inverted_scale: bool,
    /// Book-Crossing: keep implicit (0) ratings.
    #[arg(long)]
    pub bx_include_implicit: bool,
    /// Book-Crossing: ages below are read as missing [default: 5].
    #[arg(long)]
    pub bx_min_age: Option<u32>,
    /// Book-Crossing: ages above are read as missing [default: 100].
    #[arg(long)]
    pub bx_max_age: Option<u32>,
    /// Non-sensitive profile fields every prompt states, in every variant (e.g. occupation,zip; ours, none by default; `fairrec_data::prompt` words them).
    #[arg(long, value_delimiter = ',')]
    pub profile: Vec<String>,
    /// Overwrite an existing prepared dataset in --out.
    #[arg(long)]
    pub force: bool,
}

impl PrepareArgs {
    /// The protocol configuration these flags resolve to.
    pub fn config(&self) -> Result<ProtocolConfig> {
        let mut c = ProtocolConfig::new(self.protocol, self.dataset, self.seed);
        if let Some(t) = self.like_threshold {
            c.like_threshold = t;
        }
        if let Some(a) = &self.attributes {
            c.attributes = fairrec_data::protocol::parse_list(a);
        }
        if let Some(split) = &self.split {
            c.split = fairrec_data::protocol::parse_split(split)?;
        }
        c.profile = self.profile.iter().map(|p| p.trim().to_string()).collect();
        c.max_liked = self.max_liked.unwrap_or(c.max_liked);
        c.max_disliked = self.max_disliked.unwrap_or(c.max_disliked);
        c.sequences = self.sequences.unwrap_or(c.sequences);
        c.seq_len = self.seq_len.unwrap_or(c.seq_len);
        c.stride = self.stride.unwrap_or(c.stride);
        c.load.sushi.order = self.sushi_order.unwrap_or(c.load.sushi.order);
        c.load.sushi.inverted_scale = self.sushi_inverted_scale;
        c.load.book_crossing.include_implicit = self.bx_include_implicit;
        c.load.book_crossing.min_age = self.bx_min_age.unwrap_or(c.load.book_crossing.min_age);
        c.load.book_crossing.max_age = self.bx_max_age.unwrap_or(c.load.book_crossing.max_age);
        c.validate()?;
        Ok(c)
    }
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory for the raw files.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub users: Option<usize>,
    #[arg(long)]
    pub items: Option<usize>,
    #[arg(long)]
    pub min_ratings: Option<usize>,
    #[arg(long)]
    pub max_ratings: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Probability that a user is female [default: 0.4].
    #[arg(long)]
    pub female_share: Option<f64>,
    /// True effect of gender/age on ratings [default: 0, the fair world].
    #[arg(long)]
    pub group_effect: Option<f64>,
    /// Strength of group-correlated exposure [default: 1.5].
    #[arg(long)]
    pub exposure: Option<f64>,
    /// Extra appeal of female-/young-leaning items to everyone [default: 1.0].
    #[arg(long)]
    pub lean_appeal: Option<f64>,
    /// Rating noise [default: 0.6].
    #[arg(long)]
    pub noise: Option<f64>,
    /// Replace a synthetic world already in --out.
    #[arg(long)]
    pub force: bool,
}

impl SynthArgs {
    pub fn config(&self) -> SynthConfig {
        let d = SynthConfig::default();
        let items = self.items.unwrap_or(d.items);
        // Unset bounds adapt to a small catalogue; bounds given explicitly are checked as given.
        let max_ratings = self.max_ratings.unwrap_or(d.max_ratings.min(items));
        let min_ratings = self.min_ratings.unwrap_or(d.min_ratings.min(max_ratings));
        SynthConfig {
            users: self.users.unwrap_or(d.users),
            items,
            min_ratings,
            max_ratings,
            seed: self.seed,
            female_share: self.female_share.unwrap_or(d.female_share),
            group_effect: self.group_effect.unwrap_or(d.group_effect),
            exposure: self.exposure.unwrap_or(d.exposure),
            lean_appeal: self.lean_appeal.unwrap_or(d.lean_appeal),
            noise: self.noise.unwrap_or(d.noise),
            ..d
        }
    }
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A prepared dataset directory.
    pub dir: PathBuf,
    /// train, valid or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// How many samples.
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    /// Template [default: llm-rec for cl-moe, sequential for mos].
    #[arg(long)]
    pub template: Option<Template>,
    /// Variant: original, neutral, or attr=value[,attr=value] (attributes sorted by name).
    #[arg(long, default_value = "original")]
    pub variant: String,
    /// Show every training copy of the counterfactual augmentation instead, with its kind.
    #[arg(long)]
    pub augment: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// A prepared dataset directory.
    pub dir: PathBuf,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Prepare(a) => prepare(&a).map(|_| ()),
        DataCommand::Synth(a) => {
            let cfg = a.config();
            let _lock = fairrec_core::fs::RunLock::acquire(&a.out, "fairrec data synth")?;
            claim_output(&a.out, fairrec_data::synth::OUTPUTS, a.force)?;
            write_world(&cfg, &a.out)?;
            say!(
                "wrote the synthetic world ({} users, {} items, seed {}) to {}",
                cfg.users,
                cfg.items,
                cfg.seed,
                a.out.display()
            );
            Ok(())
        }
        DataCommand::Show(a) => show(&a),
        DataCommand::Stats(a) => stats(&a.dir),
        DataCommand::Stereotypes(a) => crate::stereotypes_cmd::run(&a),
    }
}

/// `data prepare`; returns the manifest.
pub fn prepare(a: &PrepareArgs) -> Result<Manifest> {
    let cfg = a.config()?;
    let _lock = fairrec_core::fs::RunLock::acquire(&a.out, "fairrec data prepare")?;
    claim_output(&a.out, fairrec_data::pipeline::OUTPUTS, a.force)?;
    let t0 = std::time::Instant::now();
    let (m, _) = prepare_dir(a.dataset, &a.raw, &cfg, &a.out, crate::git_revision())?;
    let sp = |k: &str| m.splits.get(k).map_or(0, |s| s.samples);
    say!(
        "prepared {} under {} in {:.2}s: train {} / valid {} / test {} samples -> {}",
        a.dataset.name(),
        a.protocol.name(),
        t0.elapsed().as_secs_f64(),
        sp("train"),
        sp("valid"),
        sp("test"),
        a.out.display()
    );
    for (reason, n) in &m.dropped {
        say!("  left out: {reason} = {n}");
    }
    Ok(m)
}

fn show(a: &ShowArgs) -> Result<()> {
    let m = read_manifest(&a.dir)?;
    let samples = read_split(&a.dir, &a.split)?;
    let template = a.template.unwrap_or(Template::default_for(m.protocol));
    let scenario = m.attributes();
    let variant: Variant = a
        .variant
        .parse()
        .with_context(|| format!("--variant `{}`", a.variant))?;
    if let Variant::Stated(map) = &variant {
        for (k, v) in map {
            match m.attribute_values.get(k) {
                Some(vals) if vals.contains(v) => {}
                Some(vals) => bail!(
                    "--variant: `{v}` is not a value of `{k}` (values: {})",
                    vals.join(", ")
                ),
                None => bail!(
                    "--variant: this dataset studies {}, not `{k}`",
                    scenario.join(", ")
                ),
            }
        }
    }
    for s in samples.iter().take(a.n) {
        let attrs: Vec<String> = s
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        say!(
            "== {} (user {}, {}; label {})",
            s.sample_id,
            s.user_id,
            attrs.join(", "),
            answer(s.label)
        );
        let copies = if a.augment {
            augment(s, &AugmentConfig::full(m.protocol, &scenario))?
                .into_iter()
                .map(|c| (c.kind.to_string(), c.variant))
                .collect()
        } else {
            vec![(String::new(), variant.clone())]
        };
        for (kind, v) in copies {
            let text = render(template, s, &v, &scenario)?;
            if kind.is_empty() {
                say!("[{template} / {v}]", template = template.name());
            } else {
                say!("[{kind} / {v}]");
            }
            say!("Input: {text}\nOutput: {}\n", answer(s.label));
        }
    }
    if samples.is_empty() {
        say!("(split {} is empty)", a.split);
    }
    Ok(())
}

fn stats(dir: &Path) -> Result<()> {
    let m = read_manifest(dir)?;
    say!(
        "{} under {} (seed {}), item type `{}`",
        m.dataset.name(),
        m.protocol.name(),
        m.seed,
        m.item_type
    );
    say!(
        "{:<6} {:>8} {:>7} {:>10} {:>9}",
        "split",
        "samples",
        "users",
        "positive",
        "history"
    );
    let mut per_split = Vec::new();
    for split in ["train", "valid", "test"] {
        let path = dir.join(format!("{split}.jsonl"));
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if m.outputs
            .get(&format!("{split}.jsonl"))
            .is_some_and(|h| *h != sha256_hex(&bytes))
        {
            tracing::warn!(
                "{} changed since `data prepare` wrote it (hash differs from manifest.json)",
                path.display()
            );
        }
        let s = summarize(&parse_samples(&path, &bytes)?);
        let pct = if s.samples == 0 {
            0.0
        } else {
            100.0 * s.positives as f64 / s.samples as f64
        };
        say!(
            "{split:<6} {:>8} {:>7} {:>9.1}% {:>9.2}",
            s.samples,
            s.users,
            pct,
            s.mean_history
        );
        per_split.push((split, s));
    }
    for attr in m.attributes() {
        say!("\n{attr}: samples (positive %) per split");
        for value in m.attribute_values.get(&attr).into_iter().flatten() {
            let cells: Vec<String> = per_split
                .iter()
                .map(|(split, s)| {
                    let (n, p) = s
                        .attributes
                        .get(&attr)
                        .and_then(|m| m.get(value))
                        .copied()
                        .unwrap_or((0, 0));
                    let pct = if n == 0 {
                        0.0
                    } else {
                        100.0 * p as f64 / n as f64
                    };
                    format!("{split} {n:>6} ({pct:>5.1}%)")
                })
                .collect();
            say!("  {value:<12} {}", cells.join("  "));
        }
    }
    if !m.dropped.is_empty() {
        say!("\nleft out:");
        for (k, v) in &m.dropped {
            say!("  {k:<32} {v}");
        }
    }
    Ok(())
}
