//! `--model org/name[@revision]`: Hugging Face ids resolved from a local cache laid out as
//! `huggingface_hub` writes it (here in a temporary directory, with the committed tiny
//! model); never a download unless `--download`.

mod common;

use common::{bin, p, small_dataset, tiny_hf_model};
use std::path::Path;
use std::process::{Command, Output};

const SHA: &str = "4f7c2b9a0d1e3f5a6b8c9d0e1f2a3b4c5d6e7f80";

/// `fairrec args` with the Hugging Face cache at `cache` (and no other HF setting).
fn with_cache(cache: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .env("HF_HUB_CACHE", cache)
        .env("HF_ENDPOINT", "http://127.0.0.1:9") // nothing listens: no download can happen
        .env_remove("HF_HOME")
        .output()
        .unwrap()
}

#[test]
fn a_model_id_resolves_from_the_cache_and_its_commit_reaches_run_json() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "20");
    let cache = t.path().join("hub");
    let repo = cache.join("models--org--tiny");
    tiny_hf_model(&repo.join("snapshots").join(SHA));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), SHA).unwrap();
    std::fs::write(repo.join("refs/v1"), format!("{SHA}\n")).unwrap();
    let audit = |model: &str, out: &str| {
        let out = t.path().join(out);
        let o = with_cache(
            &cache,
            &[
                "audit",
                "--model",
                model,
                "--data",
                p(&data),
                "--limit",
                "3",
                "--bootstrap",
                "0",
                "--out",
                p(&out),
            ],
        );
        (o, out)
    };
    let mut runs = Vec::new();
    for (model, out) in [
        ("org/tiny", "a"),
        ("org/tiny@v1", "b"),
        (&*format!("org/tiny@{SHA}"), "c"),
    ] {
        let (o, out) = audit(model, out);
        assert!(
            o.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let run = std::fs::read_to_string(out.join("run.json")).unwrap();
        assert!(
            run.contains(&format!("models--org--tiny/snapshots/{SHA}")),
            "{run}"
        );
        runs.push(std::fs::read(out.join("predictions.jsonl")).unwrap());
    }
    assert!(
        runs.windows(2).all(|w| w[0] == w[1]),
        "one snapshot, one set of predictions"
    );
    // Not cached: a clear error, no download attempted without --download.
    let (o, out) = audit("org/absent", "d");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && e.contains("--model")
            && e.contains("not in the Hugging Face cache")
            && e.contains("--download"),
        "{e}"
    );
    assert!(!out.exists());
    let (o, _) = audit("org/tiny@v9", "e");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no revision `v9`") && e.contains("main, v1"),
        "{e}"
    );
    // --download asks the Hub (here nobody answers) and writes nothing into the cache.
    let o = with_cache(
        &cache,
        &[
            "score",
            "--model",
            "org/absent",
            "--download",
            "--prompt",
            "Would you like it?",
        ],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("127.0.0.1:9/api/models/org/absent/revision/main"),
        "{e}"
    );
    assert!(!cache.join("models--org--absent").exists());
    // An existing directory is a path, whatever it looks like.
    std::fs::create_dir_all(t.path().join("org")).unwrap();
    let model = t.path().join("org/tiny");
    tiny_hf_model(&model);
    let o = Command::new(bin())
        .current_dir(t.path())
        .args([
            "audit",
            "--model",
            "org/tiny",
            "--data",
            p(&data),
            "--limit",
            "2",
            "--bootstrap",
            "0",
            "--out",
            "f",
        ])
        .env("HF_HUB_CACHE", t.path().join("empty"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
