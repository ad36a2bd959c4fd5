//! What an experiment's cells share: each dataset synthesized and prepared once
//! (`data/`), each model initialised or fine-tuned once (`models/`), under names that hash
//! their settings.

use super::spec;
use super::{argv, call, flags, hash_hex};
use anyhow::Result;
use fairrec_lm::device::{DTypeSpec, Place};
use std::path::{Path, PathBuf};

/// Where the synthetic world of `d` (if it is one) is written.
pub fn synth_dir(out: &Path, d: &spec::DatasetSpec) -> Option<PathBuf> {
    d.synth.as_ref()?;
    let key = serde_json::json!({"synth": d.synth, "prepare": d.prepare});
    Some(
        out.join("raw")
            .join(format!("{}-{}", d.name, &hash_hex(&key)[..8])),
    )
}

/// Prepare (or reuse) a dataset; returns its prepared directory.
pub(super) fn dataset_dir(out: &Path, d: &spec::DatasetSpec) -> Result<PathBuf> {
    if let Some(p) = &d.path {
        return spec::path(p);
    }
    let key = serde_json::json!({"synth": d.synth, "prepare": d.prepare});
    let dir = out
        .join("data")
        .join(format!("{}-{}", d.name, &hash_hex(&key)[..8]));
    if dir.join("manifest.json").exists() {
        return Ok(dir);
    }
    let origin = format!("dataset `{}`", d.name);
    let log = out.join("data").join(format!("{}.log", d.name));
    std::fs::create_dir_all(out.join("data"))?;
    let mut prep = d.prepare.clone().unwrap_or_default();
    if let (Some(s), Some(raw)) = (&d.synth, synth_dir(out, d)) {
        let f = flags(&["data", "synth"], s, &origin)?;
        call(
            &argv(
                &["data", "synth", "--force", "--out", &raw.to_string_lossy()],
                &f,
            ),
            &log,
        )?;
        prep.insert("raw".into(), raw.to_string_lossy().into_owned().into());
    } else if let Some(toml::Value::String(r)) = prep.get("raw") {
        let r = spec::expand(r)?;
        prep.insert("raw".into(), r.into());
    }
    let f = flags(&["data", "prepare"], &prep, &origin)?;
    let o = dir.to_string_lossy();
    call(
        &argv(&["data", "prepare", "--force", "--out", &o], &f),
        &log,
    )?;
    Ok(dir)
}

/// The model of `m` for dataset `data`: its path, or the built-in model made for the
/// dataset; then, if asked, fully fine-tuned on the dataset.
pub(super) fn model_path(
    out: &Path,
    m: &spec::ModelSpec,
    place: &Place,
    data: &Path,
    data_hash: &str,
    dname: &str,
) -> Result<PathBuf> {
    let mut key = serde_json::json!({"m": m.files_key(), "data": data_hash});
    if let Some(g) = place.gpu() {
        key["placement"] = g.into(); // a fine-tune on a GPU is another model
    }
    let stem = out
        .join("models")
        .join(format!("{}-{dname}-{}", m.name, &hash_hex(&key)[..8]));
    let log = stem.with_extension("log");
    let origin = format!("model `{}`", m.name);
    let d = data.to_string_lossy().into_owned();
    std::fs::create_dir_all(out.join("models"))?;
    let base = match (&m.path, &m.init) {
        (Some(p), _) => spec::path(p)?,
        (None, init) => {
            let dir = stem.join("init");
            if !dir.join("config.json").exists() {
                let f = flags(&["model", "init"], init.as_ref().expect("checked"), &origin)?;
                let o = dir.to_string_lossy();
                call(
                    &argv(&["model", "init", "--force", "--data", &d, "--out", &o], &f),
                    &log,
                )?;
            }
            dir
        }
    };
    let Some(ft) = &m.finetune else {
        return Ok(base);
    };
    let run = stem.join("finetune");
    if !run.join("summary.json").exists() {
        let mut f = flags(&["train"], ft, &format!("{origin} [finetune]"))?;
        f.extend(flags(&["train"], &m.flags, &origin)?);
        f.extend(place.flags(Some(DTypeSpec::F32))); // full fine-tuning is f32
        let ck = fairrec_train::engine::trainer::checkpoint_dir(&run);
        let mode = if ck.exists() { "--resume" } else { "--force" };
        let (b, o) = (base.to_string_lossy(), run.to_string_lossy());
        let args = [
            "train", "--method", "full", "--model", &b, "--data", &d, "--out", &o, mode,
        ];
        call(&argv(&args, &f), &log)?;
    }
    let best = run.join("best");
    Ok(if best.exists() {
        best
    } else {
        run.join("adapter")
    })
}
