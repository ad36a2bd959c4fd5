//! `fairrec audit-lists`: FaiRLLM's list audit of a served model (instructions, lists,
//! title matching in fairrec-data and fairrec-serve; the figures in fairrec-metrics).

use crate::endpoint::{connect_server, ServerArgs};
use crate::metrics_cmd::{self, MetricsArgs};
use anyhow::{bail, Result};
use clap::Args;
use fairrec_data::fairllm::{DEFAULT_INSTRUCTION, DEFAULT_SYSTEM};
use fairrec_lm::score::AnswerSpace;
use fairrec_serve::audit::Connection;
use fairrec_serve::client::AnswerMode;
use fairrec_serve::lists::{
    self, ask_lists, match_blocks, ListConfig, ListsRun, ListsServed, PlanArgs,
};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct AuditListsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Send each instruction as one raw prompt (`Input: ...\nOutput:`) to /v1/completions
    /// instead of as chat messages.
    #[arg(long)]
    pub no_chat: bool,
    /// A prepared dataset: its catalogue (titles are matched to it), item noun and
    /// sensitive attributes.
    #[arg(long)]
    pub data: PathBuf,
    /// Sensitive attributes, comma-separated [default: all the dataset's].
    #[arg(long, value_delimiter = ',')]
    pub attributes: Option<Vec<String>>,
    /// Seeds ("I am a fan of {seed}"), one per line, e.g. directors as FaiRLLM used
    /// [default: the dataset's most popular items, `the movie "Star Wars (1977)"`].
    #[arg(long)]
    pub seeds: Option<PathBuf>,
    /// Seeds used (the first N of --seeds, or the N most popular items); each is asked
    /// neutrally and once per sensitive value.
    #[arg(long, default_value_t = 100)]
    pub instructions: usize,
    /// Length K of the lists asked for, and the metrics' cut-off.
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// The instruction; {who} ("a", "a female", ...), {seed}, {k} and {item_type} are filled in.
    #[arg(long, default_value = DEFAULT_INSTRUCTION)]
    pub instruction: String,
    /// The system message ("" for none).
    #[arg(long, default_value = DEFAULT_SYSTEM)]
    pub system: String,
    /// Tokens the model may write per list [default: 25 per title].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Least similarity (1 - edit distance / length) of a fuzzy title match.
    #[arg(long, default_value_t = 0.85)]
    pub match_threshold: f64,
    /// Bootstrap resamples (over instructions) for the intervals.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Seed of the bootstrap, and sent with every request.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (lists.jsonl, responses.jsonl, run.json, metrics.json, report.md, report.html).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a list audit already in --out (its response cache is kept).
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: &AuditListsArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let _lock = fairrec_core::fs::RunLock::acquire(&a.out, "fairrec audit-lists")?;
    if !(0.0..=1.0).contains(&a.match_threshold) {
        bail!("--match-threshold: a similarity between 0 and 1");
    }
    let old = fairrec_core::fs::claim_output(&a.out, lists::OUTPUTS, a.force)?;
    let plan = lists::plan(&PlanArgs {
        data: &a.data,
        attributes: a.attributes.as_deref(),
        seeds: a.seeds.as_deref(),
        n: a.instructions,
        k: a.k,
        instruction: &a.instruction,
        system: Some(&a.system),
    })?;
    let cfg = ListConfig {
        k: a.k,
        max_tokens: a.max_tokens.unwrap_or(25 * a.k),
        threshold: a.match_threshold,
    };
    // The answer mode and space are for P(Yes) and play no part here.
    let mode = AnswerMode::Logprobs { top: 20 };
    let cache = a.out.join("responses.jsonl");
    let (client, template) = connect_server(
        &a.server,
        !a.no_chat,
        AnswerSpace::Auto,
        mode,
        a.seed,
        Some(&cache),
    )?;
    let insts = &plan.instructions;
    tracing::info!(
        "asking `{}` at {} for {} lists ({} seeds x {} variants, K = {})",
        client.cfg.model,
        client.url(),
        insts.len(),
        plan.seeds.len(),
        plan.variants.len(),
        a.k
    );
    let bar = crate::progress_bar(
        0,
        "{bar:40} {pos}/{len} lists {per_sec} [{elapsed_precise} < {eta_precise}]",
    );
    let (records, matching, traffic) = ask_lists(
        &client,
        template.as_ref(),
        insts,
        &plan.catalogue,
        cfg,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let served = ListsServed {
        connection: Connection::of(&client, template.is_some()),
        traffic,
    };
    let mut run = ListsRun::new(&plan, &a.instruction, cfg, served, matching);
    run.seconds = t0.elapsed().as_secs_f64();
    run.git_revision = crate::git_revision();
    let set = fairrec_core::stage::Staged::begin(&a.out, old)?;
    lists::write_outputs(set.staging_dir(), &records, &run)?;
    let (m, t) = (&run.matching.all, &run.served.traffic);
    say!(
        "{} lists ({} requests sent, {} cached): {} titles, {:.1}% matched ({} exact, {} fuzzy), {} short lists",
        m.lists, t.requests_sent, t.cached, m.titles, 100.0 * m.match_rate, m.exact, m.fuzzy, m.short_lists
    );
    metrics_cmd::run_with(
        &MetricsArgs {
            predictions: None,
            lists: Some(a.out.join("lists.jsonl")),
            k: a.k,
            data: None,
            allow_partial: false,
            threshold: 0.5,
            bootstrap: a.bootstrap,
            seed: a.seed,
            confidence: 0.95,
            z_threshold: fairrec_metrics::stereotype::ZThreshold::Auto,
            raw_counts: false,
            out: a.out.clone(),
            force: a.force,
        },
        match_blocks(&run.matching),
        &set,
    )?;
    set.commit()?;
    Ok(())
}
