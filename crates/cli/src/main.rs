//! The `fairrec` command line.

/// `println!` that ends the process quietly when stdout is closed (`fairrec ... | head`).
macro_rules! say {
    ($($t:tt)*) => { $crate::say_line(&format!($($t)*)) };
}

mod audit_cmd;
mod bench_cmd;
mod data_cmd;
mod endpoint;
mod experiment;
mod lists_cmd;
mod metrics_cmd;
mod model_args;
mod model_cmd;
mod quickstart;
mod runfile;
mod score_cmd;
mod serve_cmd;
mod stereotypes_cmd;
mod train_args;
mod train_cmd;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in `mi_option_t` (include/mimalloc.h; the same index in mimalloc
/// v2 and v3; libmimalloc-sys does not name it).
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Keep freed pages instead of handing them back to the OS after 10 ms (mimalloc's
/// default). candle allocates fresh buffers for every op; with purging, each training step
/// spent 16% of its time in the kernel zeroing re-faulted pages (measured: SmolLM2 LoRA
/// training 177 -> 248 tokens/s, peak memory unchanged; see bench/NOTES.md). An explicit
/// `MIMALLOC_PURGE_DELAY` in the environment wins.
fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads it when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Audit LLM-based recommenders for unfairness across sensitive attributes, and fine-tune
/// them to be fairer (CL-MoE and MoS).
///
/// Every command also takes `--config FILE.toml`: a run file whose keys are the command's
/// long flags (flags on the command line win).
#[derive(Parser, Debug)]
#[command(name = "fairrec", version, args_override_self = true)]
struct Cli {
    /// More log output (-v debug, -vv trace); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Read flags from a TOML run file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Datasets: synthesize, prepare under a paper's protocol, show prompts, statistics.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Score a prepared split with a model in every prompt variant, then audit it.
    Audit(audit_cmd::AuditArgs),
    /// FaiRLLM's list audit of a served model: top-K lists asked for neutrally and per
    /// sensitive value, matched to the dataset's titles; Jaccard/SERP*/PRAG*, SNSR/SNSV.
    AuditLists(lists_cmd::AuditListsArgs),
    /// Audit a predictions file: F1/P/R/AUC, GD and Rate (paper A), stereotype-aware fairness
    /// (paper B), bootstrap intervals; writes metrics.json, report.md and report.html.
    Metrics(metrics_cmd::MetricsArgs),
    /// The built-in tiny model (tokenizer trained on a dataset's prompts, random weights).
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// P(Yes) of one prompt: prints `{"p_yes", "logit_yes", "logit_no", "n_tokens", "ids", "yes_token", "no_token"}` last.
    Score(score_cmd::ScoreArgs),
    /// An OpenAI-compatible server over fairrec's engine (/v1/completions,
    /// /v1/chat/completions with log-probabilities, /v1/models, /health).
    Serve(serve_cmd::ServeArgs),
    /// Fine-tune a model on a prepared dataset (LoRA, full fine-tuning, prompt tuning).
    Train(Box<train_cmd::TrainArgs>),
    /// Time scoring or LoRA training on synthetic token batches of a fixed shape.
    Bench(bench_cmd::BenchArgs),
    /// The embedded default: synthetic stereotype world -> paper A protocol -> prompts.
    Quickstart(quickstart::QuickstartArgs),
    /// A grid of datasets x models x methods x scenarios x seeds, one resumable cell at a
    /// time, and its results table.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
}

/// Where `say!` lines go instead of stdout (an experiment's cell log), if set.
static SINK: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

/// Send `say!` lines to `file` (or back to stdout with `None`) and hide the commands'
/// own progress bars while a file is set (an experiment draws one bar over its cells).
pub fn redirect_output(file: Option<std::fs::File>) {
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = file;
}

/// A progress bar with `template`, hidden while output is redirected.
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    if SINK.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// Write one line to stdout (or the redirected sink); a closed pipe ends the process with
/// success.
pub fn say_line(line: &str) {
    use std::io::Write;
    if let Some(f) = SINK.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        if let Err(e) = writeln!(f, "{line}") {
            tracing::warn!("cannot write the cell log: {e}");
        }
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(line.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// The git revision this binary was built from, if known.
pub fn git_revision() -> Option<String> {
    let r = env!("FAIRREC_GIT_REV");
    (!r.is_empty()).then(|| r.to_string())
}

fn main() {
    keep_freed_pages();
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cmd = Cli::command();
    let args = runfile::expand(&cmd, std::env::args_os().collect())?;
    let matches = cmd.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    execute(cli.command)
}

/// Run `argv` (`["fairrec", "train", ...]`) in this process (an experiment's cells).
pub fn run_argv(argv: &[String]) -> Result<()> {
    let cli = Cli::try_parse_from(argv)?;
    execute(cli.command)
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Experiment(c) => experiment::run(c),
        Command::Data(c) => data_cmd::run(c),
        Command::Audit(mut a) => a.model.resolve_hub().and_then(|_| audit_cmd::run(&a)),
        Command::AuditLists(a) => lists_cmd::run(&a),
        Command::Metrics(a) => metrics_cmd::run(&a),
        Command::Quickstart(a) => quickstart::run(a),
        Command::Score(mut a) => a.model.resolve_hub().and_then(|_| score_cmd::run(&a)),
        Command::Serve(a) => serve_cmd::run(&a),
        Command::Model(c) => model_cmd::run(c),
        Command::Train(mut a) => a.model.resolve_hub().and_then(|_| train_cmd::run(&a)),
        Command::Bench(a) => bench_cmd::run(&a),
    }
}
