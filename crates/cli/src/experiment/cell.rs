//! One cell of the grid: its resolved commands and hash ([`resolve`]), its run (train,
//! then audit, in this process: [`run_cell`]), its stale mark, and where it lives.

use super::spec::{self, Kind, Spec};
use super::{argv, call, flags, hash_hex, CellResult, STALE};
use anyhow::Result;
use fairrec_data::sample::write_atomic;
use std::path::{Path, PathBuf};

/// One cell of the grid.
pub(super) struct Cell<'a> {
    pub(super) dataset: &'a str,
    pub(super) data: &'a Path,
    /// The prepared data's manifest hash (part of the cell's identity).
    pub(super) data_hash: &'a str,
    pub(super) protocol: fairrec_data::protocol::Protocol,
    pub(super) model: &'a spec::ModelSpec,
    pub(super) model_path: &'a Path,
    /// Where the model's cells run.
    pub(super) place: &'a fairrec_lm::device::Place,
    pub(super) scenario: &'a str,
    pub(super) method: &'a str,
    pub(super) seed: Option<u64>,
}

/// A cell's resolved commands and its identity.
pub(super) struct Resolved {
    pub(super) kind: Kind,
    pub(super) train_argv: Option<Vec<String>>,
    pub(super) audit: Vec<String>,
    /// The hash of the commands, the data and the model: what a finished cell must carry.
    pub(super) hash: String,
}

/// The commands a cell runs under the file as it is now, and their hash.
pub(super) fn resolve(spec: &Spec, cell: &Cell) -> Result<Resolved> {
    let kind = Kind::parse(cell.method)?;
    let origin = format!("experiment `{}`", spec.name);
    let model_flags = flags(&["train"], &cell.model.flags, &origin)?;
    let (data, model) = (
        cell.data.to_string_lossy(),
        cell.model_path.to_string_lossy(),
    );
    let common: Vec<String> = [
        "--model",
        &model,
        "--data",
        &data,
        "--attributes",
        cell.scenario,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(model_flags)
    .collect();
    let seed = cell.seed.unwrap_or(spec.seeds[0]).to_string();
    let mut train_argv = None;
    if let Kind::Train(m) = kind {
        let mut f = common.clone();
        f.extend([
            "--method".into(),
            m.name().into(),
            "--seed".into(),
            seed.clone(),
        ]);
        f.extend(flags(
            &["train"],
            &spec.train,
            &format!("{origin} [train]"),
        )?);
        if let Some(t) = spec.method_train.get(cell.method) {
            f.extend(flags(
                &["train"],
                t,
                &format!("{origin} [method_train.{}]", cell.method),
            )?);
        }
        train_argv = Some(f);
    }
    let mut audit = common.clone();
    audit.extend([
        "--template".into(),
        kind.template(cell.protocol).name().into(),
        "--seed".into(),
        seed,
    ]);
    audit.extend(flags(
        &["audit"],
        &spec.audit,
        &format!("{origin} [audit]"),
    )?);
    if let Some(t) = spec.method_audit.get(cell.method) {
        audit.extend(flags(
            &["audit"],
            t,
            &format!("{origin} [method_audit.{}]", cell.method),
        )?);
    }
    let model_id = std::fs::metadata(cell.model_path)
        .map(|m| m.len())
        .unwrap_or(0);
    let mut identity = serde_json::json!({
        "train": train_argv, "audit": audit, "data": cell.data_hash, "model": [model, model_id],
    });
    // A method whose definition changed since its first revision: its earlier cells are stale
    // (the others' identities are as they were).
    if let Kind::Train(m) = kind {
        if m.revision() > 0 {
            identity["method_revision"] = m.revision().into();
        }
    }
    if let Some(p) = cell.place.identity() {
        identity["placement"] = p;
    }
    let hash = hash_hex(&identity);
    // Where the commands run is not part of their identity on the CPU in f32.
    for f in train_argv.iter_mut().chain([&mut audit]) {
        f.extend(cell.place.flags(None));
    }
    Ok(Resolved {
        kind,
        train_argv,
        audit,
        hash,
    })
}

/// Mark the finished cell in `dir` stale if its hash is not `hash` (the file's now), or
/// clear the mark. Stale cells stay on disk and out of the tables until they are rerun.
pub(super) fn mark_stale(dir: &Path, hash: &str) -> Result<()> {
    let done = std::fs::read(dir.join("cell.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<CellResult>(&b).ok());
    match done {
        Some(r) if r.hash != hash => write_atomic(
            &dir.join(STALE),
            format!(
                "finished under another configuration (cell hash {}; the experiment file now gives {hash}): left out of the tables until `fairrec experiment run` runs it again\n",
                r.hash
            )
            .as_bytes(),
        )?,
        _ => clear_stale(dir)?,
    }
    Ok(())
}

/// Remove the stale mark of the cell in `dir`, if any (its `cell.json` matches the file).
pub(super) fn clear_stale(dir: &Path) -> Result<()> {
    let marker = dir.join(STALE);
    if marker.exists() {
        std::fs::remove_file(&marker)?;
    }
    Ok(())
}

pub(super) fn run_cell(spec: &Spec, cell: &Cell, dir: &Path) -> Result<CellResult> {
    let t0 = std::time::Instant::now();
    let Resolved {
        kind,
        train_argv,
        mut audit,
        hash,
    } = resolve(spec, cell)?;
    let done = dir.join("cell.json");
    let (adir, tdir) = (dir.join("audit"), dir.join("train"));
    let paper_b = cell.protocol == fairrec_data::protocol::Protocol::Mos;
    let metrics =
        || super::table::cell_metrics(&adir.join("metrics.json"), &tdir.join("run.json"), paper_b);
    if let Ok(bytes) = std::fs::read(&done) {
        if let Ok(mut r) = serde_json::from_slice::<CellResult>(&bytes) {
            if r.hash == hash {
                // Figures are re-read from the audit, so that a cell finished by an older
                // fairrec carries what this one's tables take (e.g. the intervals).
                if adir.join("metrics.json").exists() {
                    let m = metrics()?;
                    if m != r.metrics {
                        r.metrics = m;
                        write_atomic(&done, (serde_json::to_string_pretty(&r)? + "\n").as_bytes())?;
                    }
                }
                clear_stale(dir)?;
                return Ok(r);
            }
        }
    }
    let hash_file = dir.join("cell_hash");
    if std::fs::read_to_string(&hash_file).ok().as_deref() != Some(hash.as_str()) && dir.exists() {
        std::fs::remove_dir_all(dir)?; // a cell of another configuration: start over
    }
    std::fs::create_dir_all(dir)?;
    write_atomic(&hash_file, hash.as_bytes())?;
    let log = dir.join("log.txt");
    if let Some(f) = &train_argv {
        if !tdir.join("summary.json").exists() {
            let ck = fairrec_train::engine::trainer::checkpoint_dir(&tdir);
            let resume = ck.exists() || fairrec_core::fs::previous_dir(&ck).exists();
            let t = tdir.to_string_lossy();
            let mode = if resume { "--resume" } else { "--force" };
            call(&argv(&["train", "--out", &t, mode], f), &log)?;
        }
        let best = tdir.join("best");
        let trained = if best.exists() {
            best
        } else {
            tdir.join("adapter")
        };
        let full = matches!(kind, Kind::Train(m) if m.saves_model());
        let flag = if full { "--model" } else { "--adapter" };
        audit.extend([flag.into(), trained.to_string_lossy().into_owned()]);
    }
    call(
        &argv(
            &["audit", "--force", "--out", &adir.to_string_lossy()],
            &audit,
        ),
        &log,
    )?;
    let r = CellResult {
        hash,
        dataset: cell.dataset.into(),
        model: cell.model.name.clone(),
        scenario: cell.scenario.into(),
        method: cell.method.into(),
        seed: cell.seed,
        protocol: Some(cell.protocol.name().to_string()),
        metrics: metrics()?,
        seconds: t0.elapsed().as_secs_f64(),
        placement: placement_of(&adir.join("run.json")),
    };
    write_atomic(&done, (serde_json::to_string_pretty(&r)? + "\n").as_bytes())?;
    Ok(r)
}

/// A cell's directory under `out/cells`.
pub fn cell_dir(out: &Path, c: &CellResult) -> PathBuf {
    out.join("cells").join(cell_name(
        &c.dataset,
        &c.model,
        &c.scenario,
        &c.method,
        c.seed,
    ))
}

pub(super) fn cell_name(
    dataset: &str,
    model: &str,
    scenario: &str,
    method: &str,
    seed: Option<u64>,
) -> String {
    format!(
        "{dataset}/{model}/{}/{method}/{}",
        scenario.replace(',', "+"),
        seed.map_or("prompt".into(), |s| format!("seed-{s}"))
    )
}

/// Where an audit ran, as its `run.json` records it.
fn placement_of(run: &Path) -> Option<fairrec_lm::device::Placement> {
    serde_json::from_slice(&std::fs::read(run).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use fairrec_lm::device::{DTypeSpec, DeviceSpec::Cpu, Place};

    /// A cell's identity on the CPU in f32 is the one it had before `--device`/`--dtype`
    /// (dd3db128217cbb2d is what fairrec 3b2886f gave this cell: committed cells stay
    /// valid); a half-precision base is another cell.
    #[test]
    fn a_cell_on_the_cpu_in_f32_keeps_its_identity() {
        let file = "name='pin'\nmethods=['cf-diff']\nscenarios=['gender']\nseeds=[0]\n[[datasets]]\nname='d'\npath='data'\n[[models]]\nname='m'\npath='model.gguf'";
        let spec = super::Spec::parse(file, "test").unwrap();
        let hash = |t: DTypeSpec| {
            let (place, p) = (Place::resolve(Cpu, t).unwrap(), std::path::Path::new);
            let cell = super::Cell {
                dataset: "d",
                data: p("data"),
                data_hash: "abc",
                protocol: fairrec_data::protocol::Protocol::ClMoe,
                model: &spec.models[0],
                model_path: p("model.gguf"),
                place: &place,
                scenario: "gender",
                method: "cf-diff",
                seed: Some(0),
            };
            super::resolve(&spec, &cell).unwrap().hash
        };
        assert_eq!(hash(DTypeSpec::F32), "dd3db128217cbb2d");
        assert_eq!(hash(DTypeSpec::Auto), hash(DTypeSpec::F32));
        assert_ne!(hash(DTypeSpec::Bf16), hash(DTypeSpec::F32));
    }
}
