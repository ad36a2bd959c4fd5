//! One method trained a few steps at two places (device and dtype) from the same start,
//! and its adapter audited at both: what `dtype.rs` (CPU f32 against CPU bf16) and
//! `gpu.rs` (CPU against CUDA) compare, each with its own tolerances.

use super::{audit_argv, ok, p};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::Path;

/// Where a run goes: `--device`, `--dtype`.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub device: &'static str,
    pub dtype: &'static str,
}

pub const CPU_F32: Place = Place {
    device: "cpu",
    dtype: "f32",
};

/// How the two runs compare.
#[derive(Debug)]
pub struct Compared {
    /// Cosine between the two runs' updates (each from its own start).
    pub cosine: f64,
    /// The second update's size over the first's.
    pub ratio: f64,
    /// Largest difference between the two trained adapters' variables.
    pub max_abs: f64,
    /// Largest difference in P(Yes) between the first run's adapter audited at each place.
    pub p_yes: f64,
    pub prompts: usize,
}

fn adapter(run: &Path) -> BTreeMap<String, Tensor> {
    let f = run.join("adapter/adapter_model.safetensors");
    candle_core::safetensors::load(&f, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect()
}

/// Every variable concatenated, f32.
fn flat(w: &BTreeMap<String, Tensor>) -> Vec<f32> {
    w.values()
        .flat_map(|t| {
            t.to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn train(model: &Path, data: &Path, method: &str, steps: &str, at: Place, out: &Path) {
    ok(&[
        "train",
        "--model",
        p(model),
        "--data",
        p(data),
        "--method",
        method,
        "--max-steps",
        steps,
        "--limit-train",
        "16",
        "--no-eval",
        "--device",
        at.device,
        "--dtype",
        at.dtype,
        "--out",
        p(out),
    ]);
    let rec = json(&out.join("run.json"));
    let device: fairrec_lm::device::DeviceSpec = at.device.parse().unwrap();
    assert_eq!(rec["device"], device.to_string());
    assert_eq!(rec["dtype"], at.dtype);
}

fn p_yes(audit: &Path) -> Vec<f64> {
    std::fs::read_to_string(audit.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["p_yes"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// Train `method` 2 steps at `a` and at `b` from each place's own start (a prompt
/// initialised from the embedding table starts from a bf16 table's rows over a bf16 base),
/// check that `b`'s variables are f32, and audit `a`'s adapter at both places.
pub fn compare(t: &Path, model: &Path, data: &Path, method: &str, a: Place, b: Place) -> Compared {
    let t = &t.join(format!("{}-{}", b.device.replace(':', "_"), b.dtype));
    let run = |at: Place, what: &str| {
        let name = format!("{method}-{}-{}-{what}", at.device, at.dtype);
        t.join(name.replace(':', "_"))
    };
    for at in [a, b] {
        train(model, data, method, "0", at, &run(at, "init"));
        train(model, data, method, "2", at, &run(at, "trained"));
    }
    let trained_b = adapter(&run(b, "trained"));
    for (k, v) in &trained_b {
        assert_eq!(v.dtype(), DType::F32, "{method}: {k} is not f32 at {b:?}");
    }
    let [ia, fa, ib] =
        [(a, "init"), (a, "trained"), (b, "init")].map(|(at, w)| adapter(&run(at, w)));
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        trained_b.keys().collect::<Vec<_>>()
    );
    let (ia, fa, ib, fb) = (flat(&ia), flat(&fa), flat(&ib), flat(&trained_b));
    let (mut dot, mut na, mut nb, mut max_abs) = (0f64, 0f64, 0f64, 0f64);
    for (((i, f), j), g) in ia.iter().zip(&fa).zip(&ib).zip(&fb) {
        let (u, v) = (f64::from(f - i), f64::from(g - j));
        (dot, na, nb) = (dot + u * v, na + u * u, nb + v * v);
        max_abs = max_abs.max(f64::from((f - g).abs()));
    }
    assert!(na > 0.0, "{method}: the run at {a:?} did not move");
    let mut ps = Vec::new();
    for at in [a, b] {
        let out = run(at, "audit");
        let trained = run(a, "trained").join("adapter");
        let mut args = audit_argv(model, data, "4", &out);
        args.extend([
            "--adapter",
            p(&trained),
            "--device",
            at.device,
            "--dtype",
            at.dtype,
        ]);
        ok(&args);
        assert_eq!(json(&out.join("run.json"))["dtype"], at.dtype);
        ps.push(p_yes(&out));
    }
    let p_yes = ps[0]
        .iter()
        .zip(&ps[1])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let c = Compared {
        cosine: dot / (na.sqrt() * nb.sqrt()),
        ratio: (nb / na).sqrt(),
        max_abs,
        p_yes,
        prompts: ps[0].len(),
    };
    eprintln!("{method} {a:?} vs {b:?}: {c:?}");
    assert!(c.prompts > 0);
    c
}
