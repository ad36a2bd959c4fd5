//! The training loop: seeded epoch order, micro-batches with gradient accumulation,
//! clipping, AdamW with a warmup schedule, a NaN/inf guard, checkpoints and resume,
//! per-epoch validation (AUC, F1) with early stopping, and a JSONL log.
//!
//! Determinism: the epoch order comes from `(seed, epoch)`, the dropout masks from
//! `(seed, step, module)`, so the same seed gives the same bytes, and a run resumed from a
//! checkpoint continues exactly as the uninterrupted run would have.

use crate::config::TrainConfig;
use crate::engine::checkpoint::{self, LoopState};
use crate::engine::objective::{Example, Objective};
use crate::engine::optim::{clip, Optimizer};
use crate::engine::schedule::lr_at;
use crate::error::{io_err, Result, TrainError};
use candle_core::Tensor;
use fairrec_core::Rng;
use fairrec_lm::score::Scorer;
use fairrec_lm::tuning::Tuning;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One optimizer step, as logged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepLog {
    pub step: u64,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub tokens_per_s: f64,
    /// What the objective adds (loss parts, `tau`, expert usage).
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, f64>,
}

/// A validation pass.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalLog {
    pub epoch: Option<usize>,
    pub n: usize,
    pub auc: Option<f64>,
    pub f1: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Mean P(Yes).
    pub mean_p_yes: f64,
}

/// What the loop reports as it goes.
pub enum Event<'a> {
    Start {
        total_steps: u64,
        done: u64,
    },
    Step(&'a StepLog),
    Eval(&'a EvalLog),
    /// A line of progress from around the loop (the run's set-up, validation before
    /// training, its end).
    Message(&'a str),
}

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub steps: u64,
    pub total_steps: u64,
    pub tokens: u64,
    pub best_auc: Option<f64>,
    pub best_epoch: Option<usize>,
    pub evals: Vec<EvalLog>,
    pub stopped_early: bool,
    pub seconds: f64,
}

/// Everything one run needs.
pub struct Run<'a, O: Objective> {
    pub cfg: &'a TrainConfig,
    /// The run directory (`train_log.jsonl`, `checkpoint/`, `adapter/`, `best/`).
    pub dir: &'a Path,
    pub tuning: &'a Tuning,
    pub objective: &'a O,
    pub train: &'a [O::Item],
    /// Scored after every epoch when `cfg.eval`.
    pub valid: &'a [Example],
    pub scorer: &'a Scorer<'a>,
    /// Writes the trained weights (adapter files or a model directory) to a directory.
    pub save: &'a dyn Fn(&Path) -> Result<()>,
    /// Continue from `dir/checkpoint`.
    pub resume: bool,
}

/// The run directory's files.
pub fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("train_log.jsonl")
}

/// P(Yes) of each example (dropout off), in length-sorted batches.
pub fn predict(
    scorer: &Scorer,
    tuning: Option<&Tuning>,
    xs: &[Example],
    batch: usize,
) -> Result<Vec<f64>> {
    if let Some(t) = tuning {
        t.set_training(false);
    }
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by_key(|&i| xs[i].ids.len());
    let mut p = vec![0.0; xs.len()];
    for chunk in order.chunks(batch.max(1)) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|&i| xs[i].ids.clone()).collect();
        for (&i, v) in chunk.iter().zip(scorer.p_yes_encoded(&ids)?) {
            p[i] = v;
        }
    }
    Ok(p)
}

/// AUC, F1 (threshold 0.5), precision and recall of P(Yes) against the labels.
pub fn evaluate(p: &[f64], xs: &[Example], epoch: Option<usize>) -> EvalLog {
    use fairrec_metrics::classification::{auc, Confusion};
    let mut c = Confusion::default();
    let pairs: Vec<(bool, f64)> = xs.iter().zip(p).map(|(x, &p)| (x.label, p)).collect();
    for &(l, p) in &pairs {
        c.add(l, p >= 0.5, 1.0);
    }
    EvalLog {
        epoch,
        n: xs.len(),
        auc: auc(&pairs),
        f1: c.f1(),
        precision: c.precision(),
        recall: c.recall(),
        mean_p_yes: p.iter().sum::<f64>() / p.len().max(1) as f64,
    }
}

fn append_log(path: &Path, v: &impl serde::Serialize, lines: &mut usize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    let line = serde_json::to_string(v).map_err(|e| TrainError::Config(e.to_string()))?;
    writeln!(f, "{line}").map_err(io_err(path))?;
    *lines += 1;
    Ok(())
}

/// Keep the first `n` lines of the log (what the checkpoint had seen).
fn truncate_log(path: &Path, n: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_err(path)(e)),
    };
    let kept: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
    fairrec_core::fs::write_atomic(path, kept.as_bytes()).map_err(io_err(path))
}

/// The validation records of a log.
fn read_evals(path: &Path) -> Result<Vec<EvalLog>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "eval")
        .filter_map(|v| serde_json::from_value(v["eval"].clone()).ok())
        .collect())
}

fn non_finite(what: &'static str, value: f64, s: &LoopState, dir: &Path) -> TrainError {
    let ck = checkpoint_dir(dir);
    let kept = if ck.exists() {
        format!("The last good checkpoint is kept in {}.", ck.display())
    } else {
        "No checkpoint had been written yet.".into()
    };
    TrainError::NonFinite {
        what,
        value,
        step: s.step,
        epoch: s.epoch,
        kept,
    }
}

/// Train. Returns when the epochs or `max_steps` are done, or early stopping triggers.
pub fn train<O: Objective>(run: Run<O>, on: &mut dyn FnMut(Event)) -> Result<Summary> {
    let cfg = run.cfg;
    cfg.check_values()?;
    let t0 = Instant::now();
    let n = run.train.len();
    if n == 0 {
        return Err(TrainError::Config("no training examples".into()));
    }
    let per_step = cfg.batch_size * cfg.grad_accum;
    let steps_per_epoch = n.div_ceil(per_step);
    let mut total = (steps_per_epoch * cfg.epochs) as u64;
    if let Some(m) = cfg.max_steps {
        total = total.min(m);
    }
    let warmup = (cfg.warmup_ratio * total as f64).round() as u64;
    let ck_dir = checkpoint_dir(run.dir);
    let log = log_path(run.dir);
    std::fs::create_dir_all(run.dir).map_err(io_err(run.dir))?;
    let mut evals: Vec<EvalLog> = Vec::new();
    let mut vars = run.tuning.named_vars();
    vars.extend(run.objective.trained_vars());
    let mut opt = Optimizer::new(vars, cfg.rule())?;
    let fingerprint = cfg.fingerprint();
    let mut s = if run.resume {
        let s = checkpoint::load(&ck_dir, &mut opt, &fingerprint)?;
        run.objective.restore(&s.objective)?;
        truncate_log(&log, s.log_lines)?;
        evals = read_evals(&log)?;
        s
    } else {
        if fairrec_core::fs::recover_dir(&ck_dir).map_err(io_err(&ck_dir))? {
            return Err(TrainError::Checkpoint {
                path: ck_dir,
                message: "a checkpoint exists: resume it, or train into another directory".into(),
            });
        }
        truncate_log(&log, 0)?;
        LoopState {
            step: 0,
            epoch: 0,
            step_in_epoch: 0,
            best_auc: None,
            best_epoch: None,
            stale_epochs: 0,
            log_lines: 0,
            tokens: 0,
            fingerprint,
            objective: serde_json::Value::Null,
        }
    };
    let mut stopped_early = false;
    on(Event::Start {
        total_steps: total,
        done: s.step,
    });
    while s.epoch < cfg.epochs && s.step < total {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::derive(cfg.seed, &format!("epoch-order/{}", s.epoch)).shuffle(&mut order);
        let groups: Vec<&[usize]> = order.chunks(per_step).collect();
        while s.step_in_epoch < groups.len() {
            if s.step >= total {
                break;
            }
            let group = groups[s.step_in_epoch];
            let t_step = Instant::now();
            let all: Vec<&O::Item> = group.iter().map(|&i| &run.train[i]).collect();
            run.tuning.set_training(false);
            run.objective.begin_step(&all, cfg.batch_size)?;
            run.tuning.set_training(true);
            run.tuning.reseed(cfg.seed, s.step);
            let mut grads: Option<Vec<Tensor>> = None;
            let (mut loss_sum, mut tokens) = (0.0, 0usize);
            for mb in group.chunks(cfg.batch_size) {
                let items: Vec<&O::Item> = mb.iter().map(|&i| &run.train[i]).collect();
                let (loss, tok) = run.objective.loss(&items)?;
                let w = mb.len() as f64 / group.len() as f64;
                let lv = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                if !lv.is_finite() {
                    return Err(non_finite("loss", lv, &s, run.dir));
                }
                loss_sum += lv * w;
                tokens += tok;
                let store = (loss * w)?.backward()?;
                let mut gs = Vec::with_capacity(opt.params.len());
                for (name, var) in opt.vars() {
                    let g = store.get(var.as_tensor()).ok_or_else(|| {
                        TrainError::Config(format!("no gradient reached `{name}`"))
                    })?;
                    gs.push(g.clone());
                }
                grads = Some(match grads {
                    None => gs,
                    Some(acc) => acc
                        .iter()
                        .zip(&gs)
                        .map(|(a, g)| a + g)
                        .collect::<candle_core::Result<_>>()?,
                });
            }
            let mut grads = grads.expect("a step has at least one micro-batch");
            let norm = clip(&mut grads, cfg.max_grad_norm)?;
            if !norm.is_finite() {
                return Err(non_finite("gradient norm", norm, &s, run.dir));
            }
            let lr = lr_at(cfg.lr, cfg.schedule, warmup, total, s.step);
            opt.step(&grads, lr)?;
            let psum = crate::engine::optim::global_norm(
                &opt.vars()
                    .map(|(_, v)| v.as_tensor().clone())
                    .collect::<Vec<_>>(),
            )?;
            if !psum.is_finite() {
                return Err(non_finite("parameter norm", psum, &s, run.dir));
            }
            let extra = run.objective.end_step();
            s.objective = run.objective.state();
            s.step += 1;
            s.step_in_epoch += 1;
            s.tokens += tokens as u64;
            let rec = StepLog {
                step: s.step,
                epoch: s.epoch,
                loss: loss_sum,
                lr,
                grad_norm: norm,
                tokens,
                tokens_per_s: tokens as f64 / t_step.elapsed().as_secs_f64().max(1e-9),
                extra,
            };
            append_log(&log, &rec, &mut s.log_lines)?;
            on(Event::Step(&rec));
            if s.step % cfg.checkpoint_every == 0 && s.step_in_epoch < groups.len() {
                checkpoint::save(&ck_dir, &s, &opt)?;
                crate::tensorboard::write(run.dir, &log)?;
            }
        }
        // End of the epoch (possibly cut short by max_steps).
        let epoch = s.epoch;
        s.epoch += 1;
        s.step_in_epoch = 0;
        if cfg.eval && !run.valid.is_empty() {
            let p = match run.objective.predict_valid(run.valid, cfg.batch_size * 2) {
                Some(p) => p?,
                None => predict(run.scorer, Some(run.tuning), run.valid, cfg.batch_size * 2)?,
            };
            let e = evaluate(&p, run.valid, Some(epoch));
            append_log(
                &log,
                &serde_json::json!({"event": "eval", "eval": e}),
                &mut s.log_lines,
            )?;
            on(Event::Eval(&e));
            let improved = match (e.auc, s.best_auc) {
                (Some(a), Some(b)) => a > b,
                (Some(_), None) => true,
                _ => false,
            };
            if improved {
                s.best_auc = e.auc;
                s.best_epoch = Some(epoch);
                s.stale_epochs = 0;
                (run.save)(&run.dir.join("best"))?;
            } else {
                s.stale_epochs += 1;
            }
            evals.push(e);
        }
        checkpoint::save(&ck_dir, &s, &opt)?;
        crate::tensorboard::write(run.dir, &log)?;
        if cfg.early_stopping.is_some_and(|p| s.stale_epochs >= p) {
            stopped_early = true;
            break;
        }
    }
    run.tuning.set_training(false);
    (run.save)(&run.dir.join("adapter"))?;
    Ok(Summary {
        steps: s.step,
        total_steps: total,
        tokens: s.tokens,
        best_auc: s.best_auc,
        best_epoch: s.best_epoch,
        evals,
        stopped_early,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
