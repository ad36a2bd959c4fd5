//! Embeds the git revision of the source tree (for run manifests).
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    let value = match (rev.is_empty(), dirty) {
        (true, _) => String::new(),
        (false, true) => format!("{rev}-dirty"),
        (false, false) => rev,
    };
    println!("cargo:rustc-env=FAIRREC_GIT_REV={value}");
    for p in ["../../.git/HEAD", "../../.git/index"] {
        println!("cargo:rerun-if-changed={p}");
    }
}
