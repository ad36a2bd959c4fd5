//! `fairrec quickstart`: the embedded default, end to end on the synthetic world.
//!
//! Today it runs the data side: the synthetic stereotype world -> `data prepare`
//! (paper A protocol, gender and age) -> statistics -> prompts of one test user in the
//! original, neutral and a counterfactual variant. It needs no network and no file outside
//! the repository.

use crate::data_cmd::{prepare, PrepareArgs, SynthArgs};
use anyhow::Result;
use clap::Args;
use fairrec_core::Variant;
use fairrec_data::pipeline::read_split;
use fairrec_data::prompt::{render, Template};
use fairrec_data::protocol::Protocol;
use fairrec_data::raw::DatasetKind;
use fairrec_data::sample::write_atomic;
use fairrec_data::synth::write_world;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Run directory.
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Users of the synthetic world.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Items of the synthetic world.
    #[arg(long, default_value_t = 400)]
    pub items: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(a: QuickstartArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let world = a.out.join("world");
    let synth = SynthArgs {
        out: world.clone(),
        users: Some(a.users),
        items: Some(a.items),
        min_ratings: None,
        max_ratings: None,
        seed: a.seed,
        female_share: None,
        group_effect: None,
        exposure: None,
        lean_appeal: None,
        noise: None,
    };
    let synth_cfg = synth.config();
    write_world(&synth_cfg, &world)?;
    say!("1/3 synthetic world -> {}", world.display());
    let data = a.out.join("data");
    let prep = PrepareArgs {
        dataset: DatasetKind::Ml100k,
        raw: world,
        protocol: Protocol::ClMoe,
        out: data.clone(),
        seed: a.seed,
        like_threshold: None,
        attributes: None,
        split: None,
        max_liked: None,
        max_disliked: None,
        sequences: None,
        seq_len: None,
        stride: None,
        sushi_order: None,
        sushi_inverted_scale: false,
        bx_include_implicit: false,
        bx_min_age: None,
        bx_max_age: None,
        force: true,
    };
    say!("2/3 data prepare");
    let manifest = prepare(&prep)?;
    let run = serde_json::json!({
        "command": "quickstart",
        "seed": a.seed,
        "git_revision": crate::git_revision(),
        "synth": synth_cfg,
        "protocol": manifest.config,
        "data_hash": manifest.data_hash(),
    });
    write_atomic(
        &a.out.join("run.json"),
        (serde_json::to_string_pretty(&run)? + "\n").as_bytes(),
    )?;
    say!("3/3 label balance of the planted stereotype (train split):");
    let train = &manifest.splits["train"];
    for (attr, values) in &train.attributes {
        for (v, (n, p)) in values {
            say!(
                "    {attr:<7} {v:<12} {n:>5} samples, {:>5.1}% liked",
                100.0 * *p as f64 / (*n).max(1) as f64
            );
        }
    }
    let test = read_split(&data, "test")?;
    if let Some(s) = test.first() {
        let scenario = manifest.attributes();
        let cf = Variant::stated([
            ("age", "old"),
            (
                "gender",
                if s.attributes["gender"] == "male" {
                    "female"
                } else {
                    "male"
                },
            ),
        ]);
        for v in [Variant::Original, Variant::Neutral, cf] {
            say!("\n[{v}] {}", render(Template::LlmRec, s, &v, &scenario)?);
        }
    }
    say!(
        "\nquickstart data side done in {:.1}s; prepared data in {} (inspect with `fairrec data stats {1}` / `fairrec data show {1}`)",
        t0.elapsed().as_secs_f64(),
        data.display()
    );
    Ok(())
}
