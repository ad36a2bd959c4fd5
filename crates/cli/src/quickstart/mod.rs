//! `fairrec quickstart`: the embedded default, end to end, with no network and no file
//! outside the repository.
//!
//! It runs `experiments/quickstart.toml` (compiled in) as an experiment grid: the
//! synthetic stereotype world -> `data prepare` (paper A protocol, gender and age) -> the
//! built-in tiny model, fully fine-tuned on the world -> LoRA (the LLM-RS baseline),
//! CF-Diff and CL-MoE on top of it -> an audit of each in every prompt variant -> one
//! comparison report (`report.{html,md,json}`). Like any grid it is resumable: a rerun
//! skips finished steps.

mod render;
mod report;

use crate::experiment::{run_spec, spec::Spec};
use anyhow::{Context as _, Result};
use clap::Args;
use std::path::PathBuf;

/// The embedded default (the text of `experiments/quickstart.toml`).
pub const SPEC: &str = include_str!("../../../../experiments/quickstart.toml");

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Run directory.
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Users of the synthetic world [default: 3000].
    #[arg(long)]
    pub users: Option<usize>,
    /// Items of the synthetic world [default: 400].
    #[arg(long)]
    pub items: Option<usize>,
    /// Seed of the world, the data split, the model's initialisation and the training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epochs of the built-in model's full fine-tuning [default: 8].
    #[arg(long)]
    pub finetune_epochs: Option<usize>,
    /// Epochs of each method's LoRA training [default: 1].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Bootstrap resamples of the audits' intervals [default: 200].
    #[arg(long)]
    pub bootstrap: Option<usize>,
    /// Where to run: auto (the first CUDA device of a `--features cuda` build, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: fairrec_lm::device::DeviceSpec,
    /// Precision of the model's base: auto (bf16 on a GPU, f32 on the CPU), f32, bf16 or f16 (its full fine-tune is f32).
    #[arg(long, default_value = "auto")]
    pub dtype: fairrec_lm::device::DTypeSpec,
}

fn set(t: &mut Option<toml::Table>, key: &str, v: impl Into<toml::Value>) {
    t.get_or_insert_with(Default::default)
        .insert(key.into(), v.into());
}

/// The embedded spec with the command line's changes.
fn spec_for(a: &QuickstartArgs) -> Result<Spec> {
    let mut spec = Spec::parse(
        SPEC,
        "the embedded quickstart (experiments/quickstart.toml)",
    )?;
    let seed = i64::try_from(a.seed).context("--seed is too large")?;
    spec.seeds = vec![a.seed];
    let d = &mut spec.datasets[0];
    set(&mut d.synth, "seed", seed);
    set(&mut d.prepare, "seed", seed);
    if let Some(u) = a.users {
        set(&mut d.synth, "users", u as i64);
    }
    if let Some(i) = a.items {
        set(&mut d.synth, "items", i as i64);
    }
    let m = &mut spec.models[0];
    set(&mut m.init, "seed", seed);
    (m.device, m.dtype) = (Some(a.device.to_string()), Some(a.dtype.to_string()));
    if let Some(e) = a.finetune_epochs {
        set(&mut m.finetune, "epochs", e as i64);
    }
    if let Some(e) = a.epochs {
        spec.train.insert("epochs".into(), (e as i64).into());
    }
    if let Some(b) = a.bootstrap {
        spec.audit.insert("bootstrap".into(), (b as i64).into());
    }
    Ok(spec)
}

pub fn run(a: QuickstartArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let spec = spec_for(&a)?;
    say!(
        "fairrec quickstart -> {}\n  1. the synthetic stereotype world, prepared under paper A's protocol (gender and age)\n  2. the built-in tiny model, fully fine-tuned on it\n  3. {} on top of it, each audited in every prompt variant\n  4. the comparison report\n(each step's log is under {0}; a rerun skips finished steps)",
        a.out.display(),
        spec.methods.join(", ")
    );
    let grid = run_spec(&spec, &a.out, &Default::default())?;
    grid.check()?;
    let r = report::build(&a.out, &spec, &grid, t0.elapsed().as_secs_f64())?;
    render::write(&a.out, &r)?;
    for f in &r.findings {
        say!("\n{f}");
    }
    say!(
        "\nquickstart done in {:.0}s; report: {}",
        t0.elapsed().as_secs_f64(),
        a.out.join("report.html").display()
    );
    Ok(())
}
