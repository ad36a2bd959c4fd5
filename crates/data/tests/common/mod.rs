//! Helpers shared by the data crate's integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Valid raw inputs, small: ML-100K and Sushi3 written inline, the other datasets from
/// the committed fixtures.
pub const U_USER: &str = "1|24|M|technician|85711\n2|53|F|other|94043\n";
pub const U_DATA: &str = "1\t1\t3\t881250949\n2\t2\t5\t881250950\n";

pub fn u_item() -> Vec<u8> {
    let flags = ["0"; 19].join("|");
    format!("1|A Film (1995)|01-Jan-1995||http://x|{flags}\n2|Mis\u{e9}rables (1995)|01-Jan-1995||http://y|{flags}\n")
        .chars()
        .map(|c| c as u32 as u8)
        .collect()
}

pub fn ml100k(dir: &Path) {
    std::fs::write(dir.join("u.user"), U_USER).unwrap();
    std::fs::write(dir.join("u.item"), u_item()).unwrap();
    std::fs::write(dir.join("u.data"), U_DATA).unwrap();
}

pub fn copy_fixture(name: &str, dir: &Path) {
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
}

pub fn sushi(d: &Path) {
    std::fs::write(
        d.join("sushi3.udata"),
        "6371\t0\t2\t355\t0\t0\t0\t0\t0\t0\t0\n10007\t1\t1\t214\t26\t6\t1\t26\t6\t1\t0\n",
    )
    .unwrap();
    std::fs::write(d.join("sushi3.idata"), "0\tebi\t1\t0\t1\t2.7\t2.5\t1.8\t0.8\n1\tanago\t1\t0\t1\t0.9\t1.9\t2.0\t0.8\n2\tmaguro\t1\t0\t1\t1.7\t2.6\t1.8\t0.9\n").unwrap();
    std::fs::write(d.join("sushi3b.5000.10.score"), "4 -1 1\n-1 0 2\n").unwrap();
    std::fs::write(d.join("sushi3b.5000.10.order"), "3 1\n0 2 0 2\n0 2 2 1\n").unwrap();
}
