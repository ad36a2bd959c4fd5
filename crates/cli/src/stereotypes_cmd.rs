//! `fairrec data stereotypes DIR`: the train split's items by stereotype z-score per
//! sensitive attribute, and the group sizes at the usual thresholds (paper B's Figure 3),
//! to choose `--z-threshold` ([`fairrec_metrics::stereo_dist`]).

use anyhow::Result;
use clap::Args;
use fairrec_core::fs::{claim_output, write_atomic, write_json, Outputs, RunLock};
use fairrec_core::stage::Staged;
use fairrec_metrics::report::{html, markdown};
use fairrec_metrics::stereo_dist::{of_dataset, Distribution};
use std::path::PathBuf;

/// What `--out` receives.
pub const OUTPUTS: Outputs<'static> = Outputs {
    what: "a stereotype distribution",
    files: &["stereotypes.json", "stereotypes.md", "stereotypes.html"],
    whole_dir: false,
};

#[derive(Args, Debug)]
pub struct StereotypesArgs {
    /// A prepared dataset directory.
    pub dir: PathBuf,
    /// Sensitive attributes, comma-separated [default: all the dataset's].
    #[arg(long, value_delimiter = ',')]
    pub attributes: Option<Vec<String>>,
    /// Degrees from raw interaction counts instead of rates per group size.
    #[arg(long)]
    pub raw_counts: bool,
    /// Also write stereotypes.json, stereotypes.md and stereotypes.html here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the files already in --out.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: &StereotypesArgs) -> Result<()> {
    // The inputs are checked before --out is claimed.
    let (manifest, dists) = of_dataset(&a.dir, a.attributes.as_deref(), !a.raw_counts)?;
    let lock = a
        .out
        .as_ref()
        .map(|out| RunLock::acquire(out, "fairrec data stereotypes"))
        .transpose()?;
    let old = match &a.out {
        Some(out) => claim_output(out, OUTPUTS, a.force)?,
        None => Vec::new(),
    };
    let mut blocks = vec![fairrec_metrics::report::Block::Heading(
        1,
        format!(
            "Stereotype z-scores of {} ({} under {}, seed {})",
            a.dir.display(),
            manifest.dataset.name(),
            manifest.protocol.name(),
            manifest.seed
        ),
    )];
    blocks.extend(dists.iter().flat_map(Distribution::blocks));
    let md = markdown(&blocks);
    print!("{md}");
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out)?;
        let set = Staged::begin(out, old)?;
        write_json(&set.path("stereotypes.json"), &dists)?;
        write_atomic(&set.path("stereotypes.md"), md.as_bytes())?;
        let page = html(&blocks, "fairrec stereotypes", "stereotypes.json");
        write_atomic(&set.path("stereotypes.html"), page.as_bytes())?;
        set.commit()?;
        eprintln!("wrote {}", out.join("stereotypes.html").display());
    }
    drop(lock);
    Ok(())
}
