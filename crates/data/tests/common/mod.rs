//! Helpers shared by the data crate's integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Say that a test was skipped, visibly: writing to the stderr handle bypasses libtest's
/// output capture, so the line shows in a normal `cargo test` run. Under CI (`CI` set) a
/// missing dataset fails the test instead.
pub fn skipped(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}: CI must run every test (../shared beside the clone)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// The committed fixtures (formats of the originals, made-up content).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A dataset directory under `FAIRREC_DATA` (the real files in `../shared/data`), or `None`
/// with a message saying the test was skipped and why. The licenses of these files forbid
/// copying them into the repository, so tests read them in place.
pub fn real_data(name: &str) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("FAIRREC_DATA") else {
        skipped(&format!("FAIRREC_DATA is not set, so the real `{name}` files cannot be read (CI sets it to ../shared/data)"));
        return None;
    };
    let dir = PathBuf::from(root).join(name);
    if !dir.is_dir() {
        skipped(&format!("{} does not exist", dir.display()));
        return None;
    }
    Some(dir)
}
