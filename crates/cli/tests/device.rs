//! `--device` (issue 24), CPU side: names are checked, a CUDA device asked of a build
//! without CUDA is an error saying how to get one, and the runs record where they ran.

mod common;
use common::*;

#[test]
fn device_flags_are_checked_and_recorded() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = data_and_model(t.path(), "12");
    let score = |device: &str| {
        fairrec(&[
            "score",
            "--model",
            p(&model),
            "--prompt",
            "Hi?",
            "--device",
            device,
        ])
    };
    let e = String::from_utf8_lossy(&score("gpu").stderr).into_owned();
    assert!(
        e.contains("--device") && e.contains("expected auto, cpu, cuda or cuda:N"),
        "{e}"
    );
    if !fairrec_lm::device::CUDA_BUILD {
        for d in ["cuda", "cuda:1"] {
            let o = score(d);
            assert!(!o.status.success());
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(
                e.contains("built without CUDA") && e.contains("--features cuda"),
                "{e}"
            );
        }
        // auto is the CPU on this build; every command takes the flag.
        assert!(score("auto").status.success());
        let out = t.path().join("audit");
        let mut args = audit_argv(&model, &data, "1", &out);
        args.extend(["--device", "auto"]);
        ok(&args);
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["device"], "cpu");
        let tr = t.path().join("train");
        ok(&[
            "train",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--max-steps",
            "1",
            "--no-eval",
            "--answer-space",
            "none",
            "--device",
            "cpu",
            "--out",
            p(&tr),
        ]);
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tr.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["device"], "cpu");
        let e = fails(&["bench", "--shape", "smollm2-135m", "--device", "cuda"]);
        assert!(e.contains("built without CUDA"), "{e}");
    }
}
