//! `fairrec train`: fine-tune a model on a prepared dataset's train split, validating on
//! the valid split. The run itself (methods, run directory, resume) is
//! `fairrec_train::run`; this is its flags and progress display.

use crate::model_args::ModelArgs;
pub use crate::train_args::TrainArgs;
use anyhow::Result;
use fairrec_data::pipeline::read_manifest;
use fairrec_train::encode::scenario;
use fairrec_train::engine::trainer::Event;
use fairrec_train::fit::{check_fresh, fmt, remove_previous, Session};
use fairrec_train::run::{new_spec, read_spec, run as train_run, settled, SpecOptions};

pub fn run(a: &TrainArgs) -> Result<()> {
    let _lock = fairrec_core::fs::RunLock::acquire(&a.out, "fairrec train")?;
    // Nothing in --out changes before the run is known to go ahead.
    if !a.force && !a.resume {
        check_fresh(&a.out)?;
    }
    let manifest = read_manifest(&a.data)?;
    let spec = if a.resume {
        let spec = read_spec(&a.out)?;
        let asked = settled(
            a.config(spec.attributes.len())?,
            &manifest,
            &spec.attributes,
            &a.data,
        )?;
        if spec.train != asked {
            tracing::warn!(
                "--resume continues with the configuration saved in {}, not the flags given",
                a.out.join("train_config.json").display()
            );
        }
        spec
    } else {
        let attributes = scenario(&manifest, a.attributes.as_deref(), &a.data)?;
        let train = a.config(attributes.len())?;
        let options = SpecOptions {
            template: a.template,
            chat: !a.model.no_chat,
            answer_space: a.model.answer_space.clone(),
            limit_train: a.limit_train,
            limit_valid: a.limit_valid,
            auxiliary: a.auxiliary(&attributes),
            aux_values: a.aux_values,
            counterfactuals: a.counterfactuals,
        };
        new_spec(train, &manifest, attributes, &a.data, options)?
    };
    let margs = ModelArgs {
        no_chat: !spec.chat,
        answer_space: spec.answer_space.clone(),
        ..a.model.clone()
    };
    let mut loaded = margs.load_as(spec.train.method.base_dtype(a.model.dtype)?)?;
    if a.force && !a.resume {
        remove_previous(&a.out)?;
    }
    let session = Session {
        data: &a.data,
        out: &a.out,
        model: a.model.path()?,
        resume: a.resume,
        eval_before: !a.no_eval_before,
        git_revision: crate::git_revision(),
    };
    let bar = crate::progress_bar(
        0,
        "{bar:40} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]",
    );
    train_run(
        &session,
        &spec,
        &manifest,
        &mut loaded,
        &mut |ev| match ev {
            Event::Start { total_steps, done } => {
                bar.set_length(total_steps);
                bar.set_position(done);
            }
            Event::Step(s) => {
                bar.set_position(s.step);
                bar.set_message(format!("loss {:.4} {:.0} tokens/s", s.loss, s.tokens_per_s));
                tracing::debug!(
                    step = s.step,
                    loss = s.loss,
                    lr = s.lr,
                    grad_norm = s.grad_norm,
                    extra = ?s.extra
                );
            }
            Event::Eval(e) => bar.suspend(|| {
                say!(
                    "epoch {}: valid AUC {} F1 {}",
                    e.epoch.unwrap_or(0) + 1,
                    fmt(e.auc),
                    fmt(e.f1)
                )
            }),
            Event::Message(line) => bar.suspend(|| say!("{line}")),
        },
    )?;
    bar.finish_and_clear();
    Ok(())
}
